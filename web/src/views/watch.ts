// The player screen: the video with the browser's own accessible controls, a back link, the title, and an
// on-screen statistics panel ("i"). Keyboard: Space or K play/pause, arrows seek 10 s, F full screen,
// Escape back to the title. Shaka Player is loaded with this screen (its own chunk).

import { catalog, describeError } from "../api";
import { currentProfile } from "../auth";
import { h, replace } from "../dom";
import { clock, viewerRegion } from "../format";
import { navigate, type View } from "../router";
import type { PlayerSnapshot, Protocol } from "../player/controller";

let requestedAt: number | null = null;

/** Opens the player for a title; start-up time is measured from this call (the viewer's play request). */
export function requestPlay(titleId: string, protocol?: Protocol): void {
  requestedAt = performance.now();
  navigate(`/watch/${encodeURIComponent(titleId)}${protocol ? `?protocol=${protocol}` : ""}`);
}

function kbps(bps: number): string {
  return bps ? `${Math.round(bps / 1000).toLocaleString()} kbit/s` : "–";
}

function statsRows(s: PlayerSnapshot): [string, string][] {
  return [
    ["State", s.state],
    ["Protocol", s.protocol.toUpperCase()],
    ["Resolution", s.height ? `${s.height}p` : "–"],
    ["Bitrate", kbps(s.bandwidth)],
    ["Estimated bandwidth", kbps(s.estimatedBandwidth)],
    ["Edge (pathway)", s.pathway || "–"],
    ["Start-up", s.startupMs === null ? "–" : `${Math.round(s.startupMs)} ms`],
    ["Stalls", `${s.stalls} (${(s.stallMs / 1000).toFixed(1)} s)`],
    ["Bitrate switches", String(s.switches)],
    ["Resumed at", clock(s.resumedAt)],
    ["Session", s.session.split("/").pop() ?? ""],
  ];
}

export const watchView: View = (main, params, query) => {
  const profile = currentProfile();
  if (!profile) return;
  const titleName = `titles/${params.id}`;
  const protocol: Protocol = query.get("protocol") === "hls" ? "hls" : "dash";
  const startedAt = requestedAt ?? performance.now();
  requestedAt = null;

  const video = h("video", {
    class: "video",
    controls: true,
    playsinline: true,
    preload: "auto",
    "data-testid": "video",
    "aria-label": "Video",
  });
  const heading = h("h1", { class: "watch-title", "data-testid": "watch-title" }, "");
  const message = h("p", { class: "watch-message", role: "alert", "data-testid": "player-message" });
  const stats = h("dl", {
    class: "stats",
    hidden: true,
    "data-testid": "player-stats",
    "aria-label": "Playback statistics",
  });
  const back = h(
    "a",
    { href: `/title/${encodeURIComponent(params.id)}`, class: "back", "data-testid": "player-back" },
    "← Back",
  );
  const tapToPlay = h("button", { type: "button", class: "primary tap-to-play", hidden: true }, "▶ Play");
  const container = h(
    "div",
    { class: "watch", "data-testid": "player", "data-state": "starting" },
    h("div", { class: "watch-bar" }, back, heading),
    video,
    tapToPlay,
    message,
    stats,
  );
  main.append(container);
  document.body.classList.add("watching");

  let controller: import("../player/controller").PlaybackController | null = null;
  let left = false;

  const show = (s: PlayerSnapshot) => {
    const d = container.dataset;
    d.state = s.state;
    d.session = s.session;
    d.protocol = s.protocol;
    d.startupMs = s.startupMs === null ? "" : String(Math.round(s.startupMs));
    d.height = String(s.height);
    d.bandwidth = String(s.bandwidth);
    d.pathway = s.pathway;
    d.stalls = String(s.stalls);
    d.stallMs = String(s.stallMs);
    d.playingMs = String(s.playingMs);
    d.switches = String(s.switches);
    d.resumedAt = String(s.resumedAt);
    d.positionSent = String(s.lastPositionSent);
    if (s.state === "error" && !message.textContent) {
      message.textContent = s.stopReason
        ? `Playback stopped: ${s.stopReason}`
        : "Playback stopped: the video could not be fetched. Reload the page to try again.";
    }
    if (!stats.hidden) {
      replace(
        stats,
        statsRows(s).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
      );
    }
  };

  const onKey = (event: KeyboardEvent) => {
    if (event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement) return;
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const key = event.key;
    if (key === " " || key === "k") {
      if (event.target === video && key === " ") return; // the native controls handle it
      event.preventDefault();
      if (video.paused) void video.play();
      else video.pause();
    } else if (key === "ArrowRight" || key === "ArrowLeft") {
      if (event.target === video) return;
      event.preventDefault();
      video.currentTime = Math.max(0, video.currentTime + (key === "ArrowRight" ? 10 : -10));
    } else if (key === "f") {
      if (document.fullscreenElement) void document.exitFullscreen();
      else void container.requestFullscreen?.();
    } else if (key === "i") {
      stats.hidden = !stats.hidden;
      if (controller) show(controller.current);
    } else if (key === "Escape" && !document.fullscreenElement) {
      navigate(`/title/${encodeURIComponent(params.id)}`);
    }
  };
  const onPageHide = () => void controller?.stop(true);
  document.addEventListener("keydown", onKey);
  window.addEventListener("pagehide", onPageHide);
  tapToPlay.addEventListener("click", () => {
    tapToPlay.hidden = true;
    void video.play();
    video.focus();
  });

  void (async () => {
    try {
      const [{ PlaybackController, PlaybackRefused }, title] = await Promise.all([
        import("../player/controller"),
        catalog.getTitle({ name: titleName }).catch(() => null),
      ]);
      if (left) return;
      if (title?.title) {
        heading.textContent = title.title.displayName;
        document.title = `${title.title.displayName} · Marquee`;
      }
      controller = new PlaybackController(video, {
        title: titleName,
        profile: profile.name,
        protocol,
        region: viewerRegion(),
        requestedAt: startedAt,
        onChange: show,
      });
      try {
        await controller.start();
      } catch (err) {
        if (err instanceof PlaybackRefused) {
          container.dataset.state = "error";
          message.textContent = err.message;
          return;
        }
        throw err;
      }
      if (left) return;
      if (!(await controller.play())) {
        // The browser wants a gesture before playing with sound (e.g. after a reload).
        tapToPlay.hidden = false;
        tapToPlay.focus();
      } else {
        video.focus();
      }
    } catch (err) {
      if (left) return;
      container.dataset.state = "error";
      message.textContent = describeError(err);
    }
  })();

  return () => {
    left = true;
    document.removeEventListener("keydown", onKey);
    window.removeEventListener("pagehide", onPageHide);
    document.body.classList.remove("watching");
    void controller?.stop();
  };
};
