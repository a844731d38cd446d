// Offline downloads in the browser: DownloadService makes the download (for this browser's registered device,
// see auth.ts) and hands over its offline licence; Shaka Player's offline storage keeps the title's segments
// (encrypted as served) in IndexedDB; this module keeps each download's record (its name, the licence's keys and
// terms) in localStorage. Headless Chromium's ClearKey has temporary sessions only, so the licence is kept with
// the download and given to Shaka as clear keys each time it plays (docs/drm.md).
//
// The licence's terms are enforced here offline: past its expiry, or its play window after the first offline
// play, a download refuses to play. Online, every download checks in (RenewDownload): a renewed licence, or word
// that it was revoked (its device removed, its account signed out everywhere, its title out of the region).

import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, downloads } from "./api";
import { currentDevice, currentProfile } from "./auth";
import type { OfflineLicense } from "./gen/marquee/v1/download_pb";

const RECORDS_KEY = "marquee.downloads";

export interface OfflineRecord {
  download: string; // accounts/{a}/profiles/{p}/downloads/{d}
  profile: string;
  titleId: string;
  displayName: string;
  offlineUri: string; // Shaka's offline:... URI of the stored segments
  sizeBytes: number;
  keys: Record<string, string>; // key id (hex) -> key (hex): the offline licence
  expireMs: number; // when the licence ends
  playWindowMs: number; // how long it lasts once offline playback starts
  playStartMs?: number; // the first offline play, once there was one
  revoked?: string; // why it was revoked (DEVICE_REMOVED, SIGNED_OUT, GEO_BLOCKED, ...)
}

export class DownloadRefused extends Error {}

/** Shaka Player, loaded when first needed (its own chunk, as for streaming). */
async function shakaPlayer(): Promise<typeof import("shaka-player").default> {
  return (await import("shaka-player")).default;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function all(): OfflineRecord[] {
  try {
    return JSON.parse(localStorage.getItem(RECORDS_KEY) ?? "[]") as OfflineRecord[];
  } catch {
    return [];
  }
}

function saveAll(records: OfflineRecord[]): void {
  localStorage.setItem(RECORDS_KEY, JSON.stringify(records));
}

function put(record: OfflineRecord): void {
  saveAll([...all().filter((r) => r.download !== record.download), record]);
}

function withLicence(record: OfflineRecord, licence: OfflineLicense | undefined): OfflineRecord {
  if (!licence) return record;
  const keys: Record<string, string> = {};
  for (const k of licence.keys) keys[hex(k.keyId)] = hex(k.key);
  return {
    ...record,
    keys,
    expireMs: licence.expireTime ? timestampMs(licence.expireTime) : record.expireMs,
    playWindowMs: licence.playWindow ? Number(licence.playWindow.seconds) * 1000 : record.playWindowMs,
    playStartMs: undefined,
    revoked: undefined,
  };
}

/** The current profile's downloads, newest first. */
export function records(): OfflineRecord[] {
  const profile = currentProfile()?.name;
  return all()
    .filter((r) => r.profile === profile)
    .reverse();
}

export function record(download: string): OfflineRecord | undefined {
  return all().find((r) => r.download === download);
}

/** When the licence ends: its expiry, or its play window after the first offline play, whichever is first. */
export function endsAt(r: OfflineRecord): number {
  return r.playStartMs ? Math.min(r.expireMs, r.playStartMs + r.playWindowMs) : r.expireMs;
}

/** Why it may not play now, or null when it may. */
export function refusal(r: OfflineRecord, now = Date.now()): string | null {
  if (r.revoked) return `This download was revoked (${r.revoked}): delete it.`;
  if (now >= endsAt(r)) return "This download's licence has expired: go online to renew it.";
  return null;
}

/** Whether this browser may download: it is a registered device and has IndexedDB (Shaka's offline storage). */
export function canDownload(): boolean {
  return currentDevice() !== "" && typeof indexedDB !== "undefined";
}

/** Downloads a title for this device: the download and its licence, then its segments into offline storage. */
export async function downloadTitle(
  titleId: string,
  displayName: string,
  onProgress: (fraction: number) => void,
): Promise<OfflineRecord> {
  const profile = currentProfile();
  if (!profile || !canDownload()) throw new DownloadRefused("Downloads need this browser registered as a device.");
  const reply = await downloads.createDownload({ parent: profile.name, title: `titles/${titleId}` });
  const made = reply.download;
  if (!made?.manifestUrls) throw new DownloadRefused("The service sent no download.");
  let draft: OfflineRecord = withLicence(
    {
      download: made.name,
      profile: profile.name,
      titleId,
      displayName,
      offlineUri: "",
      sizeBytes: 0,
      keys: {},
      expireMs: 0,
      playWindowMs: 0,
    },
    reply.license,
  );
  const shaka = await shakaPlayer();
  const storage = new shaka.offline.Storage();
  try {
    storage.configure({
      drm: { clearKeys: draft.keys },
      offline: { usePersistentLicense: false, progressCallback: (_: unknown, p: number) => onProgress(p) },
    });
    const stored = (await storage.store(made.manifestUrls.dashUri, { download: made.name }).promise) as {
      offlineUri: string | null;
      size: number;
    };
    draft = { ...draft, offlineUri: stored.offlineUri ?? "", sizeBytes: stored.size };
  } catch (err) {
    await downloads.releaseDownload({ name: made.name }).catch(() => undefined);
    throw err;
  } finally {
    await storage.destroy();
  }
  put(draft);
  return draft;
}

/** Deletes the stored segments and the record, and releases the download (frees its place) when online. */
export async function deleteDownload(r: OfflineRecord): Promise<void> {
  const shaka = await shakaPlayer();
  const storage = new shaka.offline.Storage();
  try {
    if (r.offlineUri) await storage.remove(r.offlineUri);
  } finally {
    await storage.destroy();
  }
  saveAll(all().filter((x) => x.download !== r.download));
  if (navigator.onLine && r.revoked !== "RELEASED") {
    await downloads.releaseDownload({ name: r.download }).catch(() => undefined);
  }
}

/** Online: renews the licence of a download of this device, or learns that it was revoked. A renewal is a new
 * licence, its play window unstarted (RenewDownload resets it), so an unreported offline play is not reported first. */
export async function checkIn(r: OfflineRecord): Promise<OfflineRecord> {
  if (!navigator.onLine || r.revoked) return r;
  let next = r;
  try {
    const reply = await downloads.renewDownload({ name: r.download });
    next = withLicence(r, reply.license);
  } catch (err) {
    if (!(err instanceof ConnectError)) throw err;
    if (err.code === Code.FailedPrecondition && /revoked/.test(err.rawMessage)) {
      const reason = /\(([A-Z_]+)\)/.exec(err.rawMessage)?.[1] ?? "REVOKED";
      next = { ...r, revoked: reason };
    } else if (err.code === Code.NotFound) {
      next = { ...r, revoked: "RELEASED" };
    } else {
      return r; // an outage, or another device's: keep what it has
    }
  }
  put(next);
  return next;
}

/** Marks the first offline play (the play window starts) and tells the service when online. */
export async function startedPlaying(r: OfflineRecord): Promise<OfflineRecord> {
  if (r.playStartMs) return r;
  const next: OfflineRecord = { ...r, playStartMs: Date.now() };
  if (navigator.onLine) {
    try {
      await downloads.startOfflinePlayback({ name: r.download });
    } catch {
      // left unreported: the next check-in's renewal starts a new licence, its play window unstarted
    }
  }
  put(next);
  return next;
}

/** Plays a download from offline storage in `video`, its licence's keys given to Shaka as clear keys; the returned
 * function stops it. */
export async function playOffline(video: HTMLVideoElement, r: OfflineRecord): Promise<() => Promise<void>> {
  const shaka = await shakaPlayer();
  shaka.polyfill.installAll();
  const player = new shaka.Player();
  const stop = async () => {
    await player.destroy();
  };
  try {
    await player.attach(video);
    player.configure({ drm: { clearKeys: r.keys } });
    await player.load(r.offlineUri);
  } catch (err) {
    await stop();
    throw err;
  }
  return stop;
}
