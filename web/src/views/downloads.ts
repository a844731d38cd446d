// The profile's downloads on this browser: title, size and when its licence ends; play (offline too), delete.
// Online, every download checks in first (its licence renewed, or word that it was revoked); offline, the
// licence's own terms decide (see offline.ts).

import { describeError } from "../api";
import { announce, h, replace } from "../dom";
import {
  checkIn,
  deleteDownload,
  endsAt,
  playOffline,
  record,
  records,
  refusal,
  startedPlaying,
  type OfflineRecord,
} from "../offline";
import type { View } from "../router";

function size(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${Math.max(1, Math.round(bytes / 1e6))} MB`;
}

export const downloadsView: View = (main) => {
  const list = h("ul", { class: "downloads", "data-testid": "downloads", "aria-live": "polite" });
  const message = h("p", { class: "watch-message", role: "alert", "data-testid": "offline-message" });
  const video = h("video", { class: "video", controls: true, playsinline: true, "data-testid": "offline-video" });
  const stage = h("section", { class: "offline-player", hidden: true, "data-testid": "offline-player" }, video);
  let stop: (() => Promise<void>) | null = null;
  let left = false;

  async function stopPlaying(): Promise<void> {
    const s = stop;
    stop = null;
    if (s) await s();
  }

  async function play(r: OfflineRecord): Promise<void> {
    message.textContent = "";
    const current = record(r.download) ?? r;
    const why = refusal(current);
    if (why) {
      message.textContent = why;
      stage.dataset.state = "refused";
      return;
    }
    await stopPlaying();
    const next = await startedPlaying(current);
    stage.hidden = false;
    try {
      stop = await playOffline(video, next);
      stage.dataset.state = "playing";
      stage.dataset.download = next.download;
      await video.play();
    } catch (err) {
      message.textContent = `The download could not be played (${describeError(err)}).`;
      stage.dataset.state = "failed";
    }
  }

  function item(r: OfflineRecord): HTMLElement {
    const ends = new Date(endsAt(r));
    const state = r.revoked ? `Revoked (${r.revoked})` : refusal(r) ? "Expired" : `Until ${ends.toLocaleString()}`;
    const playButton = h("button", { type: "button", class: "primary", "data-testid": "offline-play" }, "▶ Play");
    playButton.addEventListener("click", () => void play(r));
    const remove = h("button", { type: "button", class: "secondary", "data-testid": "offline-delete" }, "Delete");
    remove.addEventListener("click", async () => {
      remove.disabled = true;
      if (stage.dataset.download === r.download) await stopPlaying();
      try {
        await deleteDownload(r);
        announce(`${r.displayName} deleted`);
      } catch (err) {
        message.textContent = describeError(err);
      }
      draw();
    });
    return h(
      "li",
      { class: "download-item", "data-testid": "download-item", "data-download": r.download, "data-title": r.titleId },
      h("strong", {}, r.displayName),
      " ",
      h("span", { "data-testid": "download-size" }, size(r.sizeBytes)),
      " · ",
      h("span", { "data-testid": "download-state" }, state),
      " ",
      playButton,
      " ",
      remove,
    );
  }

  function draw(): void {
    const all = records();
    if (!all.length) {
      replace(list, h("li", { class: "empty", "data-testid": "no-downloads" }, "Nothing downloaded yet."));
      return;
    }
    replace(list, all.map(item));
  }

  main.append(h("section", { class: "downloads-page" }, h("h1", {}, "Downloads"), message, list, stage));
  draw();
  void (async () => {
    // online: every download checks in (its licence renewed, or revoked) before the list settles
    for (const r of records()) {
      try {
        await checkIn(r);
      } catch (err) {
        message.textContent = describeError(err);
      }
    }
    if (!left) {
      draw();
      list.dataset.checked = "true";
    }
  })();
  return () => {
    left = true;
    void stopPlaying();
  };
};
