// Impressions and clicks of recommendation rows, for the service's CTR per row
// (RecommendationService.ReportRecommendationEvents). Every row comes with an opaque, server-signed event token;
// a row counts as shown once at least half of it has been on screen, and a tile as clicked when it is chosen.
// Events are sent in small batches (a click at once), naming the row by its token and the tile by its position in
// the row as served. The service counts each row's impression and each tile's click once, so sending an event
// twice is harmless; a failure is logged and dropped (telemetry never gets in the viewer's way). What is pending
// when the page goes away is sent on requests that outlive it.

import { create } from "@bufbuild/protobuf";
import { describeError, recommendations, recommendationsOnExit } from "../api";
import {
  RecommendationEventKind,
  RecommendationEventSchema,
  type RecommendationEvent,
} from "../gen/marquee/v1/recommendations_pb";

const MAX_EVENTS = 100; // per call, as the service accepts
const BATCH_MS = 1000;
const SHOWN = 0.5; // the share of a row on screen that counts as an impression

export class RowEvents {
  private pending: RecommendationEvent[] = [];
  private timer: number | undefined;
  private readonly tokens = new Map<Element, string>();
  private readonly observer: IntersectionObserver | null;
  private readonly onPageHide = () => this.flush(true);

  constructor(private readonly profile: string) {
    this.observer =
      typeof IntersectionObserver === "undefined"
        ? null
        : new IntersectionObserver((entries) => this.shown(entries), { threshold: SHOWN });
    window.addEventListener("pagehide", this.onPageHide);
  }

  /**
   * Reports the row's impression once it is on screen, and a click for each of its tiles chosen. The tiles are
   * the row's elements with `data-position`: their position in the row as the service served it.
   */
  track(row: HTMLElement, eventToken: string): void {
    if (!eventToken) return;
    this.tokens.set(row, eventToken);
    row.addEventListener("click", (event) => {
      const tile = (event.target as Element | null)?.closest<HTMLElement>("[data-position]");
      const position = Number(tile?.dataset.position);
      if (!tile || !row.contains(tile) || !Number.isInteger(position)) return;
      this.add(RecommendationEventKind.CLICK, eventToken, position);
      this.flush();
    });
    if (this.observer) this.observer.observe(row);
    else this.add(RecommendationEventKind.IMPRESSION, eventToken); // no way to tell: shown with the page
  }

  /** Stops watching the rows (the page is left) and sends what is pending. */
  close(): void {
    window.removeEventListener("pagehide", this.onPageHide);
    this.observer?.disconnect();
    this.tokens.clear();
    this.flush();
  }

  private shown(entries: IntersectionObserverEntry[]): void {
    for (const entry of entries) {
      const token = this.tokens.get(entry.target);
      if (!entry.isIntersecting || entry.intersectionRatio < SHOWN || token === undefined) continue;
      this.observer?.unobserve(entry.target); // one impression per row as served
      this.add(RecommendationEventKind.IMPRESSION, token);
    }
  }

  private add(kind: RecommendationEventKind, eventToken: string, position = 0): void {
    this.pending.push(create(RecommendationEventSchema, { eventToken, kind, position }));
    if (this.pending.length >= MAX_EVENTS) this.flush();
    else this.timer ??= window.setTimeout(() => this.flush(), BATCH_MS);
  }

  private flush(leaving = false): void {
    window.clearTimeout(this.timer);
    this.timer = undefined;
    const client = leaving ? recommendationsOnExit : recommendations;
    while (this.pending.length > 0) {
      const events = this.pending.splice(0, MAX_EVENTS);
      client
        .reportRecommendationEvents({ parent: this.profile, events })
        .catch((err: unknown) => console.warn("recommendation events:", describeError(err)));
    }
  }
}
