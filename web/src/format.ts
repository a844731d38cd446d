// Formatting and naming helpers shared by the screens.

import type { Duration } from "@bufbuild/protobuf/wkt";

/** Seconds in a protobuf Duration (0 when absent). */
export function seconds(d: Duration | undefined): number {
  return d ? Number(d.seconds) + d.nanos / 1e9 : 0;
}

/** "1:02:03" or "4:05". */
export function clock(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const secs = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

/** "1 h 52 min" or "48 min". */
export function runtime(totalSeconds: number): string {
  const minutes = Math.round(totalSeconds / 60);
  if (minutes < 60) return `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** The id in a resource name: "titles/toy-story-1995" -> "toy-story-1995". */
export function idOf(name: string): string {
  return name.slice(name.lastIndexOf("/") + 1);
}

/** A stable hue for a title, so its placeholder artwork keeps its colour. */
export function hueOf(text: string): number {
  let hash = 0;
  for (const ch of text) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return hash % 360;
}

/** The viewer's region (ISO 3166-1 alpha-2) from the browser's language, "US" when it names none. */
export function viewerRegion(): string {
  for (const tag of navigator.languages ?? [navigator.language]) {
    const region = tag.split("-").find((part, i) => i > 0 && /^[A-Za-z]{2}$/.test(part));
    if (region) return region.toUpperCase();
  }
  return "US";
}

const MATURITY_LABELS: Record<number, string> = {
  1: "All ages",
  2: "7+",
  3: "PG",
  4: "13+",
  5: "16+",
  6: "18+",
};

export function maturityLabel(rating: number): string {
  return MATURITY_LABELS[rating] ?? "";
}
