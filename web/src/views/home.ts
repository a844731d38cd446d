// Home: continue watching (PlaybackService), recommendations with their reasons (RecommendationService, when it
// answers), trending and one row per genre (CatalogService). Each row loads on its own; a row that fails or
// comes back empty is left out, so a missing service never blanks the page. Recommendation rows report their
// impressions and clicks back (rowevents.ts).

import { catalog, describeError, isAbsentService, playback, recommendations } from "../api";
import { currentProfile } from "../auth";
import { h } from "../dom";
import { seconds, viewerRegion } from "../format";
import { TitleOrder, type Title } from "../gen/marquee/v1/catalog_pb";
import { RecommendationRow } from "../gen/marquee/v1/recommendations_pb";
import type { View } from "../router";
import { row, titleCard } from "./cards";
import { RowEvents } from "./rowevents";

const ROW_LENGTH = 20;

/** Titles by name, fetched in one call (the catalog leaves out what this profile may not see). */
async function titlesByName(names: string[]): Promise<Map<string, Title>> {
  const unique = [...new Set(names)];
  if (unique.length === 0) return new Map();
  const reply = await catalog.batchGetTitles({ names: unique });
  return new Map(reply.titles.map((t) => [t.name, t]));
}

async function continueWatching(profile: string): Promise<HTMLElement[]> {
  const reply = await playback.listContinueWatching({ parent: profile, pageSize: ROW_LENGTH });
  const titles = await titlesByName(reply.entries.map((e) => e.title));
  const cards = reply.entries.flatMap((entry) => {
    const title = titles.get(entry.title);
    if (!title) return [];
    const total = seconds(entry.runtime) || seconds(title.runtime);
    return [titleCard(title, { progress: total ? seconds(entry.position) / total : 0 })];
  });
  return cards.length ? [row("Continue watching", cards, "continue")] : [];
}

/** Recommendation rows; also says whether one of them is "trending" (then the catalog's is not shown). */
async function recommended(
  profile: string,
  region: string,
  events: RowEvents,
): Promise<{ rows: HTMLElement[]; trending: boolean }> {
  try {
    const reply = await recommendations.listRecommendationRows({
      parent: profile,
      region,
      maxRows: 4,
      itemsPerRow: ROW_LENGTH,
    });
    const titles = await titlesByName(reply.rows.flatMap((r) => r.recommendations.map((rec) => rec.title)));
    let trending = false;
    const rows = reply.rows.flatMap((result) => {
      const cards = result.recommendations.flatMap((rec, position) => {
        const title = titles.get(rec.title);
        if (!title) return [];
        const card = titleCard(title, { caption: rec.reason?.text || undefined });
        card.dataset.position = String(position); // in the row as served, for its click
        return [card];
      });
      if (cards.length === 0) return [];
      if (result.row === RecommendationRow.TRENDING) trending = true;
      const testid = result.row === RecommendationRow.TRENDING ? "trending" : "recommendations";
      const section = row(result.displayName || "Recommended for you", cards, testid);
      events.track(section, result.eventToken);
      return [section];
    });
    return { rows, trending };
  } catch (err) {
    if (!isAbsentService(err)) console.warn("recommendations:", describeError(err));
    return { rows: [], trending: false };
  }
}

async function trending(region: string): Promise<HTMLElement[]> {
  const reply = await catalog.listTitles({
    filter: { region, playableOnly: true },
    orderBy: TitleOrder.POPULARITY,
    pageSize: ROW_LENGTH,
  });
  return reply.titles.length
    ? [
        row(
          "Trending now",
          reply.titles.map((t) => titleCard(t)),
          "trending",
        ),
      ]
    : [];
}

async function genres(region: string): Promise<HTMLElement[]> {
  const reply = await catalog.listBrowseRows({ region, maxRows: 12, titlesPerRow: ROW_LENGTH });
  return reply.rows
    .filter((r) => r.titles.length > 0)
    .map((r) =>
      row(
        r.displayName || r.genre,
        r.titles.map((t) => titleCard(t)),
        "genre",
      ),
    );
}

export const homeView: View = (main) => {
  const profile = currentProfile();
  if (!profile) return;
  const region = viewerRegion();
  const slots = {
    continue: h("div", { class: "slot" }),
    recommended: h("div", { class: "slot" }),
    trending: h("div", { class: "slot" }),
    genres: h("div", { class: "slot" }),
  };
  const status = h("p", { class: "error", role: "alert" });
  main.append(
    h(
      "div",
      { class: "home", "data-testid": "home" },
      h("h1", { class: "visually-hidden" }, `Home for ${profile.displayName}`),
      status,
      slots.continue,
      slots.recommended,
      slots.trending,
      slots.genres,
    ),
  );
  let cancelled = false;
  const rowEvents = new RowEvents(profile.name);
  const fill = async (slot: HTMLElement, load: () => Promise<HTMLElement[]>, what: string) => {
    try {
      const rows = await load();
      if (!cancelled) slot.replaceChildren(...rows);
    } catch (err) {
      if (!cancelled && !isAbsentService(err)) status.textContent = `Could not load ${what}: ${describeError(err)}`;
    }
  };
  void fill(slots.continue, () => continueWatching(profile.name), "continue watching");
  void fill(slots.genres, () => genres(region), "the genres");
  void (async () => {
    const rec = await recommended(profile.name, region, rowEvents);
    if (cancelled) return;
    slots.recommended.replaceChildren(...rec.rows);
    if (!rec.trending) await fill(slots.trending, () => trending(region), "trending titles");
  })();
  return () => {
    cancelled = true;
    rowEvents.close();
  };
};
