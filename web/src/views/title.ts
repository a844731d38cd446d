// A title: details, play (or resume from the last position), the rating summary, the profile's own rating
// (RateTitle), and reviews (ListReviews, CreateReview).

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, catalog, describeError, playback } from "../api";
import { currentProfile, profileId } from "../auth";
import { canDownload, downloadTitle, records } from "../offline";
import { announce, h, replace } from "../dom";
import { clock, maturityLabel, runtime, seconds } from "../format";
import { ReviewState, type RatingSummary, type Review, type Title } from "../gen/marquee/v1/catalog_pb";
import type { View } from "../router";
import { poster } from "./cards";
import { requestPlay } from "./watch";

const MAX_REVIEW = 5000;

function stars(n: number): string {
  return "★".repeat(n) + "☆".repeat(Math.max(0, 5 - n));
}

function summaryText(summary: RatingSummary | undefined): string {
  if (!summary || summary.count === 0n) return "No ratings yet";
  const count = Number(summary.count);
  return `${summary.average.toFixed(1)} out of 5 from ${count.toLocaleString()} rating${count === 1 ? "" : "s"}`;
}

function reviewItem(review: Review): HTMLElement {
  const when = review.createTime ? timestampDate(review.createTime) : null;
  return h(
    "li",
    { class: "review", "data-testid": "review" },
    h(
      "p",
      { class: "review-head" },
      h("strong", {}, review.authorDisplayName || "A viewer"),
      review.stars ? h("span", { class: "stars", "aria-label": `${review.stars} stars` }, stars(review.stars)) : null,
      when ? h("time", { datetime: when.toISOString() }, when.toLocaleDateString()) : null,
      // listed to its author only: hidden from everyone else after reports
      review.state === ReviewState.HIDDEN
        ? h("span", { class: "badge", "data-testid": "review-hidden" }, "Hidden after reports")
        : null,
    ),
    h("p", { class: "review-text" }, review.text),
  );
}

function ratingControl(
  titleName: string,
  initial: number,
  onRated: (stars: number, summary: RatingSummary | undefined) => void,
): HTMLElement {
  const status = h("span", { class: "rating-status", role: "status", "data-testid": "rating-status" });
  const fieldset = h("fieldset", { class: "rate", "data-testid": "rating-control" }, h("legend", {}, "Your rating"));
  for (let n = 1; n <= 5; n++) {
    const id = `rate-${n}`;
    const input = h("input", {
      type: "radio",
      name: "stars",
      id,
      value: n,
      checked: n === initial,
      "data-testid": `rate-${n}`,
    });
    input.addEventListener("change", async () => {
      status.textContent = "Saving…";
      try {
        const reply = await catalog.rateTitle({ name: `${titleName}/ratings/${profileId()}`, stars: n });
        status.textContent = `You rated it ${n} out of 5`;
        announce(status.textContent);
        onRated(n, reply.summary);
      } catch (err) {
        status.textContent = describeError(err);
      }
    });
    fieldset.append(
      input,
      h(
        "label",
        { for: id, title: `${n} star${n > 1 ? "s" : ""}` },
        h("span", { class: "visually-hidden" }, `${n} star${n > 1 ? "s" : ""}`),
        h("span", { "aria-hidden": "true" }, "★"),
      ),
    );
  }
  fieldset.append(status);
  return fieldset;
}

/** The review form. The server signs it with the profile's name and the profile's current rating. */
function reviewForm(titleName: string, onPosted: (review: Review) => void): HTMLElement {
  const text = h("textarea", {
    id: "review-text",
    rows: 4,
    maxlength: MAX_REVIEW,
    required: true,
    "data-testid": "review-text",
  });
  const error = h("p", { class: "error", role: "alert" });
  const submit = h("button", { type: "submit", "data-testid": "review-submit" }, "Post review");
  const form = h(
    "form",
    { class: "review-form", "aria-labelledby": "review-form-heading" },
    h("h3", { id: "review-form-heading" }, "Write a review"),
    h("label", { for: "review-text", class: "visually-hidden" }, "Your review"),
    text,
    error,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    if (!text.value.trim()) {
      error.textContent = "Write something first.";
      text.focus();
      return;
    }
    submit.disabled = true;
    try {
      const reply = await catalog.createReview({ parent: titleName, review: { text: text.value.trim() } });
      text.value = "";
      if (reply.review) onPosted(reply.review);
      announce("Review posted");
    } catch (err) {
      error.textContent = describeError(err);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

async function ownRating(titleName: string): Promise<number> {
  try {
    const reply = await catalog.getRating({ name: `${titleName}/ratings/${profileId()}` });
    return reply.rating?.stars ?? 0;
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.NotFound) return 0;
    throw err;
  }
}

async function resumeAt(titleName: string, profile: string): Promise<number> {
  try {
    const reply = await playback.getPosition({ profile, title: titleName });
    const p = reply.position;
    return p && !p.finished ? seconds(p.position) : 0;
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.NotFound) return 0;
    throw err;
  }
}

/** "Download" (for this browser's device), its progress, then a link to the Downloads screen. */
function downloadControl(id: string, title: Title): HTMLElement | null {
  if (!title.playable || !canDownload()) return null;
  const status = h("span", { class: "download-status", role: "status", "data-testid": "download-status" });
  const done = () =>
    replace(status, h("a", { href: "/downloads", "data-testid": "download-done" }, "Downloaded: see Downloads"));
  const button = h("button", { type: "button", class: "secondary", "data-testid": "download-button" }, "Download");
  if (records().some((r) => r.titleId === id)) {
    button.hidden = true;
    done();
  }
  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = "Downloading…";
    try {
      await downloadTitle(id, title.displayName, (p) => {
        status.textContent = `Downloading… ${Math.round(p * 100)}%`;
      });
      button.hidden = true;
      done();
      announce("Downloaded");
    } catch (err) {
      status.textContent = describeError(err);
      button.disabled = false;
    }
  });
  return h("p", { class: "download" }, button, " ", status);
}

function details(title: Title, resume: number, rating: number): HTMLElement {
  const id = title.name.split("/").pop() ?? "";
  const summary = h("p", { class: "summary", "data-testid": "rating-summary" }, summaryText(title.ratingSummary));
  const reviews = h("ul", { class: "reviews", "data-testid": "reviews", "aria-live": "polite" });
  const play = h(
    "button",
    { type: "button", class: "primary play", "data-testid": "play-button", disabled: !title.playable },
    title.playable ? (resume > 0 ? `Resume from ${clock(resume)}` : "Play") : "Not available yet",
  );
  play.addEventListener("click", () => requestPlay(id));
  const download = downloadControl(id, title);
  const meta = [
    title.releaseYear ? String(title.releaseYear) : "",
    maturityLabel(title.maturityRating),
    seconds(title.runtime) ? runtime(seconds(title.runtime)) : "",
    title.genres.join(", "),
  ].filter(Boolean);
  const cast = title.cast.map((p) => p.displayName).slice(0, 6);
  const directors = title.directors.map((p) => p.displayName);
  const section = h(
    "article",
    { class: "title-page", "data-testid": "title-page", "data-title": id },
    h(
      "div",
      { class: "title-hero" },
      poster(title, "hero"),
      h(
        "div",
        { class: "title-info" },
        h("h1", { "data-testid": "title-name", tabindex: -1 }, title.displayName),
        title.originalTitle && title.originalTitle !== title.displayName
          ? h("p", { class: "original" }, title.originalTitle)
          : null,
        h("p", { class: "meta" }, meta.join(" · ")),
        h("p", { class: "description" }, title.description),
        cast.length ? h("p", { class: "people" }, h("span", {}, "Cast: "), cast.join(", ")) : null,
        directors.length ? h("p", { class: "people" }, h("span", {}, "Director: "), directors.join(", ")) : null,
        play,
        download,
        summary,
        ratingControl(title.name, rating, (_stars, s) => {
          if (s) summary.textContent = summaryText(s);
        }),
      ),
    ),
    title.seasons.length
      ? h(
          "section",
          { class: "seasons", "aria-label": "Episodes" },
          title.seasons.map((season) =>
            h(
              "div",
              {},
              h("h2", {}, `Season ${season.number}`),
              h(
                "ol",
                {},
                season.episodes.map((ep) =>
                  h(
                    "li",
                    {},
                    h(
                      "a",
                      { href: `/title/${encodeURIComponent(ep.title.split("/").pop() ?? "")}` },
                      `${ep.number}. ${ep.displayName}`,
                    ),
                  ),
                ),
              ),
            ),
          ),
        )
      : null,
    h(
      "section",
      { class: "reviews-section", "aria-labelledby": "reviews-heading" },
      h("h2", { id: "reviews-heading" }, "Reviews"),
      reviewForm(title.name, (review) => {
        reviews.querySelector("[data-testid=no-reviews]")?.remove();
        reviews.prepend(reviewItem(review));
      }),
      reviews,
    ),
  );
  void (async () => {
    try {
      const reply = await catalog.listReviews({ parent: title.name, pageSize: 20 });
      reviews.prepend(...reply.reviews.map(reviewItem));
      if (!reply.reviews.length && !reviews.children.length) {
        reviews.append(h("li", { class: "empty", "data-testid": "no-reviews" }, "No reviews yet. Be the first."));
      }
    } catch (err) {
      reviews.append(h("li", { class: "error" }, describeError(err)));
    }
  })();
  return section;
}

export const titleView: View = (main, params) => {
  const profile = currentProfile();
  if (!profile) return;
  const name = `titles/${params.id}`;
  const holder = h(
    "div",
    { class: "title-holder", "aria-busy": "true" },
    h("h1", { class: "visually-hidden" }, "Loading"),
  );
  main.append(holder);
  let cancelled = false;
  void (async () => {
    try {
      const [reply, resume, rating] = await Promise.all([
        catalog.getTitle({ name }),
        resumeAt(name, profile.name),
        ownRating(name),
      ]);
      if (cancelled || !reply.title) return;
      document.title = `${reply.title.displayName} · Marquee`;
      holder.setAttribute("aria-busy", "false");
      replace(holder, details(reply.title, resume, rating));
      holder.querySelector<HTMLElement>("h1")?.focus();
      // Warm the player's code while the viewer reads: play starts faster.
      void import("../player/controller");
    } catch (err) {
      if (cancelled) return;
      const notFound = err instanceof ConnectError && err.code === Code.NotFound;
      replace(
        holder,
        h("h1", {}, notFound ? "Title not found" : "Could not load the title"),
        h("p", { class: "error" }, describeError(err)),
      );
    }
  })();
  return () => {
    cancelled = true;
  };
};
