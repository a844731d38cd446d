// Title cards and the horizontal rows of the home page and search results.

import { h } from "../dom";
import { hueOf, idOf, maturityLabel } from "../format";
import type { Title } from "../gen/marquee/v1/catalog_pb";

export interface CardExtras {
  /** A line under the title, e.g. a recommendation's reason. */
  caption?: string;
  /** Watched fraction 0..1 for continue watching. */
  progress?: number;
}

/** Artwork: the admin-set poster when there is one, else a typographic placeholder in the title's colour. */
export function poster(title: Title, size: "card" | "hero" = "card"): HTMLElement {
  const uri = title.artwork?.posterUri;
  if (uri && /^https?:\/\//.test(uri)) {
    return h("img", { class: `poster ${size}`, src: uri, alt: "", loading: "lazy" });
  }
  return h(
    "div",
    { class: `poster ${size} placeholder`, style: `--hue: ${hueOf(title.name)}`, "aria-hidden": "true" },
    h("span", {}, title.displayName),
  );
}

export function titleCard(title: Title, extras: CardExtras = {}): HTMLElement {
  const id = idOf(title.name);
  const label = [title.displayName, title.releaseYear ? String(title.releaseYear) : "", extras.caption ?? ""]
    .filter(Boolean)
    .join(", ");
  return h(
    "li",
    { class: "card" },
    h(
      "a",
      { href: `/title/${encodeURIComponent(id)}`, "data-testid": "title-card", "data-title": id, "aria-label": label },
      poster(title),
      extras.progress !== undefined
        ? h(
            "span",
            { class: "progress", "aria-hidden": "true" },
            h("span", { style: `width: ${Math.round(Math.min(1, Math.max(0, extras.progress)) * 100)}%` }),
          )
        : null,
      h("span", { class: "card-title" }, title.displayName),
      h(
        "span",
        { class: "card-meta" },
        [title.releaseYear || "", maturityLabel(title.maturityRating)].filter(Boolean).join(" · "),
      ),
      extras.caption ? h("span", { class: "card-caption" }, extras.caption) : null,
    ),
  );
}

/** A titled row of cards; arrow keys move between the cards of a row. */
export function row(heading: string, cards: HTMLElement[], testid: string): HTMLElement {
  const id = `row-${testid}-${Math.random().toString(36).slice(2, 8)}`;
  const list = h("ul", { class: "row-cards" }, cards);
  list.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
    const links = [...list.querySelectorAll<HTMLAnchorElement>("a")];
    const at = links.indexOf(document.activeElement as HTMLAnchorElement);
    if (at < 0) return;
    const next = links[at + (event.key === "ArrowRight" ? 1 : -1)];
    if (next) {
      event.preventDefault();
      next.focus();
    }
  });
  return h(
    "section",
    { class: "row", "aria-labelledby": id, "data-testid": `row-${testid}` },
    h("h2", { id }, heading),
    list,
  );
}
