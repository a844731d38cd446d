// One playback: a PlaybackService session played by Shaka Player. It starts the session (entitlements, the signed
// manifest URL, the resume position), loads the DASH or HLS manifest from the session's edges with adaptive
// bitrate and content steering, and reports back: the position every heartbeat interval (10 s) and on pause,
// seek and exit (last write wins by the event time), and QoE reports (start-up time, stalls, switches, errors).
// The session's signed URL token expires with the session: every heartbeat answers with its renewal, which a
// request filter puts on every manifest, segment and steering request from then on. A protected title's session
// names its licence URL: Shaka asks it for ClearKey licences with the viewer's access token (docs/drm.md).

import { create } from "@bufbuild/protobuf";
import { timestampFromMs, durationFromMs } from "@bufbuild/protobuf/wkt";
import shaka from "shaka-player";
import { Code, ConnectError, playback, playbackOnExit } from "../api";
import { accessToken } from "../auth";
import { seconds } from "../format";
import { ClientInfoSchema, PlayerState, StreamingProtocol, type PlaybackSession } from "../gen/marquee/v1/playback_pb";
import { PathwayMap } from "./pathways";
import { QoeCollector } from "./qoe";

export type Protocol = "dash" | "hls";

/** What the player shows about itself (on screen with "i", and as data attributes for tests). */
export interface PlayerSnapshot {
  session: string;
  protocol: Protocol;
  state: "starting" | "playing" | "paused" | "buffering" | "seeking" | "ended" | "stopped" | "error";
  startupMs: number | null;
  resumedAt: number;
  height: number;
  bandwidth: number;
  estimatedBandwidth: number;
  pathway: string;
  stalls: number;
  stallMs: number;
  playingMs: number;
  switches: number;
  errors: number;
  lastPositionSent: number;
  /** Why playback stopped (state "error"), fit for the viewer, e.g. the licence service's refusal; "" if unknown. */
  stopReason: string;
}

export interface ControllerOptions {
  title: string; // titles/{id}
  profile: string; // accounts/{a}/profiles/{p}
  protocol: Protocol;
  region: string;
  /** When the viewer asked to play (performance.now()): start-up time is measured from here. */
  requestedAt: number;
  onChange: (snapshot: PlayerSnapshot) => void;
}

/** Times streaming is resumed after a network failure that Shaka's own retries did not overcome. */
const MAX_STREAMING_RETRIES = 5;

/** Thrown by start() with a message fit for the viewer. */
export class PlaybackRefused extends Error {}

const CODEC_CANDIDATES = [
  'video/mp4; codecs="avc1.64001f"',
  'video/mp4; codecs="avc1.640028"',
  'video/mp4; codecs="avc1.4d401f"',
  'video/mp4; codecs="avc1.42e01e"',
  'video/mp4; codecs="hvc1.1.6.L93.B0"',
  'video/webm; codecs="vp9"',
  'audio/mp4; codecs="mp4a.40.2"',
];

function supportedCodecs(): string[] {
  if (typeof MediaSource === "undefined") return [];
  return CODEC_CANDIDATES.filter((t) => MediaSource.isTypeSupported(t)).map((t) => /codecs="([^"]+)"/.exec(t)![1]);
}

let polyfilled = false;

export class PlaybackController {
  readonly qoe = new QoeCollector();
  private readonly pathways = new PathwayMap();
  private player: shaka.Player | null = null;
  private session: PlaybackSession | null = null;
  /** The session's latest signed URL token. */
  private urlToken = "";
  private heartbeat: number | undefined;
  private stopped = false;
  private firstFrame = false;
  private lastBandwidth = 0;
  private pathway = "";
  private streamingRetries = 0;
  private snapshot: PlayerSnapshot;
  private readonly listeners: [EventTarget, string, EventListener][] = [];

  constructor(
    private readonly video: HTMLVideoElement,
    private readonly options: ControllerOptions,
  ) {
    this.snapshot = {
      session: "",
      protocol: options.protocol,
      state: "starting",
      startupMs: null,
      resumedAt: 0,
      height: 0,
      bandwidth: 0,
      estimatedBandwidth: 0,
      pathway: "",
      stalls: 0,
      stallMs: 0,
      playingMs: 0,
      switches: 0,
      errors: 0,
      lastPositionSent: -1,
      stopReason: "",
    };
  }

  /** Starts the session and playback; resolves once the manifest is loaded (play may still be pending). */
  async start(): Promise<void> {
    const client = create(ClientInfoSchema, {
      region: this.options.region,
      protocols: [StreamingProtocol.DASH, StreamingProtocol.HLS],
      codecs: supportedCodecs(),
      maxHeight: Math.round(screen.height * (window.devicePixelRatio || 1)),
    });
    let reply;
    try {
      reply = await playback.startPlayback({ title: this.options.title, profile: this.options.profile, client });
    } catch (err) {
      throw new PlaybackRefused(refusal(err));
    }
    if (this.stopped) return;
    const session = reply.session;
    if (!session?.manifestUrls) throw new PlaybackRefused("The service sent no session.");
    this.session = session;
    this.urlToken = session.urlToken;
    this.snapshot.session = session.name;
    const resume = seconds(session.resumePosition);
    this.snapshot.resumedAt = resume;

    if (!polyfilled) {
      shaka.polyfill.installAll();
      polyfilled = true;
    }
    const player = new shaka.Player();
    this.player = player;
    await player.attach(this.video);
    player.configure({
      streaming: {
        bufferingGoal: 30,
        rebufferingGoal: 0.5,
        bufferBehind: 30,
        // Every edge of the session failing (past the retries over its alternative base URLs) is not the end for
        // a VOD stream: steering may move the session, or an edge come back. Resume with a backoff.
        failureCallback: (error: shaka.util.Error) => this.retryStreaming(error),
        retryParameters: {
          maxAttempts: 5,
          baseDelay: 250,
          backoffFactor: 2,
          fuzzFactor: 0.5,
          timeout: 10_000,
          stallTimeout: 3_000,
          connectionTimeout: 3_000,
        },
      },
      manifest: {
        retryParameters: {
          maxAttempts: 4,
          baseDelay: 250,
          backoffFactor: 2,
          fuzzFactor: 0.5,
          timeout: 10_000,
          stallTimeout: 0,
          connectionTimeout: 3_000,
        },
      },
      abr: {
        enabled: true,
        // The edge's throughput is what counts, not the browser's idea of the network.
        useNetworkInformation: false,
        // Loopback and nearby edges answer in a few ms: still real samples, not cache hits.
        cacheLoadThreshold: 0,
      },
    });
    if (session.licenseUri) {
      // a protected title: ClearKey licences from the session's licence endpoint (see wire() for the token)
      player.configure({ drm: { servers: { "org.w3.clearkey": session.licenseUri } } });
    }
    this.wire(player);
    const uri = this.options.protocol === "hls" ? session.manifestUrls.hlsUri : session.manifestUrls.dashUri;
    try {
      await player.load(uri, resume > 0 ? resume : null);
    } catch (err) {
      if (this.stopped) return;
      throw new PlaybackRefused(`The video could not be loaded (${shakaMessage(err)}).`);
    }
    if (this.stopped) return;
    this.refreshTrack();
    this.startHeartbeat(seconds(session.heartbeatInterval) || 10);
    this.emit();
  }

  private retryable(error: shaka.util.Error): boolean {
    return (
      error.category === shaka.util.Error.Category.NETWORK &&
      this.streamingRetries < MAX_STREAMING_RETRIES &&
      !this.stopped
    );
  }

  private retryStreaming(error: shaka.util.Error): void {
    if (!this.retryable(error)) return;
    const delaySeconds = 2 ** this.streamingRetries;
    this.streamingRetries += 1;
    this.player?.retryStreaming(delaySeconds);
  }

  /** Starts playing; false when the browser wants a gesture first (autoplay policy). */
  async play(): Promise<boolean> {
    try {
      await this.video.play();
      return true;
    } catch (err) {
      if (err instanceof DOMException && err.name === "NotAllowedError") return false;
      throw err;
    }
  }

  get current(): PlayerSnapshot {
    return this.snapshot;
  }

  /**
   * Ends the session: StopPlayback with the last position and the final QoE report (in one call, so the report is
   * in the session's totals before it ends). Should the service refuse that report, the stop is sent again
   * without it. `leaving`: the page is unloading.
   */
  async stop(leaving = false): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    window.clearInterval(this.heartbeat);
    for (const [target, type, fn] of this.listeners) target.removeEventListener(type, fn);
    const session = this.session;
    const position = this.video.currentTime;
    this.qoe.notPlaying();
    this.qoe.stallEnded();
    this.snapshot.state = "stopped";
    const client = leaving ? playbackOnExit : playback;
    const calls: Promise<unknown>[] = [];
    if (session) {
      const stop = {
        session: session.name,
        position: durationFromMs(Math.round(position * 1000)),
        eventTime: timestampFromMs(Date.now()),
      };
      const finalReport = this.qoe.take(this.pathway, this.lastBandwidth);
      calls.push(
        client.stopPlayback({ ...stop, finalReport }).catch((err: unknown) => {
          if (err instanceof ConnectError && err.code === Code.InvalidArgument) return client.stopPlayback(stop);
          throw err;
        }),
      );
    }
    const player = this.player;
    this.player = null;
    if (player) calls.push(player.destroy());
    await Promise.allSettled(calls);
  }

  private on(target: EventTarget, type: string, fn: EventListener): void {
    target.addEventListener(type, fn);
    this.listeners.push([target, type, fn]);
  }

  private wire(player: shaka.Player): void {
    const video = this.video;
    const RequestType = shaka.net.NetworkingEngine.RequestType;
    player.getNetworkingEngine()?.registerRequestFilter((type, request) => {
      if (type === RequestType.LICENSE || type === RequestType.KEY) {
        // licences (DASH) and raw keys (HLS, KEYFORMAT "identity") check the viewer (the access token), not a
        // signed URL
        return accessToken().then((token) => {
          request.headers["Authorization"] = `Bearer ${token}`;
        });
      }
      request.uris = request.uris.map((uri) => withToken(uri, this.urlToken));
    });
    player.getNetworkingEngine()?.registerResponseFilter((type, response) => {
      const bytes = response.data.byteLength;
      if (type === RequestType.MANIFEST && !response.uri.includes("/index.m3u8")) {
        this.pathways.learn(new TextDecoder().decode(response.data), response.uri);
      } else if (type === RequestType.SEGMENT) {
        this.qoe.downloaded(bytes);
        this.streamingRetries = 0;
        const pathway = this.pathways.pathwayOf(response.uri);
        if (pathway && pathway !== this.pathway) {
          this.pathway = pathway;
          this.emit();
        }
      }
    });
    this.on(player, "buffering", (event) => {
      const buffering = (event as Event & { buffering: boolean }).buffering;
      if (buffering) {
        // Waiting for data before the first frame is start-up, and after a seek it is the seek: not stalls.
        if (this.firstFrame && !video.seeking) this.qoe.stallStarted(video.currentTime);
        else this.qoe.notPlaying();
      } else {
        this.qoe.stallEnded();
        if (!video.paused && !video.seeking) this.qoe.playing();
      }
      this.emit();
    });
    this.on(player, "adaptation", () => this.refreshTrack());
    this.on(player, "variantchanged", () => this.refreshTrack());
    this.on(player, "error", (event) => {
      const detail = (event as CustomEvent<shaka.util.Error>).detail;
      const fatal = detail.severity === shaka.util.Error.Severity.CRITICAL;
      this.qoe.error(String(detail.code), shakaMessage(detail), fatal);
      // (a network failure is retried by retryStreaming, which Shaka calls right after this event)
      if (fatal && !this.retryable(detail)) {
        this.snapshot.state = "error";
        this.snapshot.stopReason = licenceRefusal(detail) ?? "";
      }
      this.emit();
    });
    this.on(video, "playing", () => {
      this.qoe.playing();
      this.emit();
    });
    this.on(video, "pause", () => {
      this.qoe.notPlaying();
      if (!video.ended) void this.sendPosition(PlayerState.PAUSED);
      this.emit();
    });
    this.on(video, "seeking", () => {
      this.qoe.notPlaying();
      this.qoe.stallEnded();
      this.emit();
    });
    this.on(video, "seeked", () => {
      if (!video.paused) this.qoe.playing();
      void this.sendPosition(video.paused ? PlayerState.PAUSED : PlayerState.PLAYING);
      this.emit();
    });
    this.on(video, "ended", () => {
      this.qoe.notPlaying();
      void this.sendPosition(PlayerState.ENDED);
      this.emit();
    });
    // The first frame on screen ends the start-up time.
    const firstFrame = () => {
      if (this.firstFrame || this.stopped) return;
      this.firstFrame = true;
      this.qoe.firstFrame(performance.now() - this.options.requestedAt);
      this.snapshot.startupMs = this.qoe.startupMs;
      this.emit();
    };
    if ("requestVideoFrameCallback" in video) {
      video.requestVideoFrameCallback(() => firstFrame());
    } else {
      this.on(video, "playing", firstFrame);
    }
  }

  private refreshTrack(): void {
    const active = this.player?.getVariantTracks().find((t) => t.active);
    if (!active) return;
    if (this.lastBandwidth && active.bandwidth !== this.lastBandwidth) {
      this.qoe.bitrateSwitch(this.lastBandwidth, active.bandwidth);
    }
    this.lastBandwidth = active.bandwidth;
    this.snapshot.height = active.height ?? 0;
    this.snapshot.bandwidth = active.bandwidth;
    this.emit();
  }

  private state(): PlayerState {
    const v = this.video;
    if (v.ended) return PlayerState.ENDED;
    if (v.seeking) return PlayerState.SEEKING;
    if (this.qoe.stalled) return PlayerState.BUFFERING;
    return v.paused ? PlayerState.PAUSED : PlayerState.PLAYING;
  }

  private startHeartbeat(intervalSeconds: number): void {
    this.heartbeat = window.setInterval(() => {
      void this.sendPosition(this.state());
      void this.sendQoe();
    }, intervalSeconds * 1000);
  }

  private async sendPosition(state: PlayerState): Promise<void> {
    const session = this.session;
    if (!session || this.stopped) return;
    const position = this.video.currentTime;
    try {
      const reply = await playback.updatePosition({
        session: session.name,
        position: durationFromMs(Math.round(position * 1000)),
        eventTime: timestampFromMs(Date.now()),
        state,
      });
      if (reply.urlToken && this.session === session) this.urlToken = reply.urlToken;
      this.snapshot.lastPositionSent = position;
      this.emit();
    } catch (err) {
      // An expired session (the tab slept past the timeout): a new one takes over where the viewer is.
      if (err instanceof ConnectError && err.code === Code.FailedPrecondition && !this.stopped) {
        await this.renewSession();
      } else {
        console.warn("UpdatePosition failed:", err);
      }
    }
  }

  private async sendQoe(): Promise<void> {
    const session = this.session;
    if (!session || this.stopped) return;
    const active = this.player?.getStats();
    this.snapshot.estimatedBandwidth = active?.estimatedBandwidth ?? 0;
    try {
      await playback.reportQoe({ session: session.name, report: this.qoe.take(this.pathway, this.lastBandwidth) });
    } catch (err) {
      console.warn("ReportQoe failed:", err);
    }
  }

  private async renewSession(): Promise<void> {
    const player = this.player;
    if (!player) return;
    const at = this.video.currentTime;
    const reply = await playback.startPlayback({
      title: this.options.title,
      profile: this.options.profile,
      client: create(ClientInfoSchema, {
        region: this.options.region,
        protocols: [StreamingProtocol.DASH, StreamingProtocol.HLS],
      }),
    });
    if (!reply.session?.manifestUrls || this.stopped) return;
    this.session = reply.session;
    this.urlToken = reply.session.urlToken;
    this.snapshot.session = reply.session.name;
    const urls = reply.session.manifestUrls;
    await player.load(this.options.protocol === "hls" ? urls.hlsUri : urls.dashUri, at);
  }

  private emit(): void {
    const s = this.snapshot;
    s.stalls = this.qoe.totals.stalls;
    s.stallMs = Math.round(this.qoe.totals.stallMs);
    s.playingMs = Math.round(this.qoe.totals.playingMs);
    s.switches = this.qoe.totals.switches;
    s.errors = this.qoe.totals.errors;
    s.pathway = this.pathway;
    if (s.state !== "error" && s.state !== "stopped") {
      const v = this.video;
      s.state = v.ended
        ? "ended"
        : v.seeking
          ? "seeking"
          : this.qoe.stalled
            ? "buffering"
            : !this.firstFrame
              ? "starting"
              : v.paused
                ? "paused"
                : "playing";
    }
    this.options.onChange({ ...s });
  }
}

/** `uri` with its signed URL token replaced by `token` (URIs without one, or another origin's, are left alone). */
export function withToken(uri: string, token: string): string {
  if (!token || !uri.includes("token=")) return uri;
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return uri;
  }
  if (!url.searchParams.has("token")) return uri;
  url.searchParams.set("token", token);
  return url.href;
}

function shakaMessage(err: unknown): string {
  if (err instanceof shaka.util.Error) return licenceRefusal(err) ?? `Shaka error ${err.code}`;
  return err instanceof Error ? err.message : String(err);
}

/**
 * The licence service's reason when a licence request was refused (LICENSE_REQUEST_FAILED wrapping the HTTP
 * error, whose body is {"error": {"code", "reason", "message"}}), else null.
 */
function licenceRefusal(err: shaka.util.Error): string | null {
  if (err.code !== shaka.util.Error.Code.LICENSE_REQUEST_FAILED) return null;
  const http: unknown = err.data[0];
  if (!(http instanceof shaka.util.Error) || typeof http.data[2] !== "string") return null;
  try {
    const body = JSON.parse(http.data[2]) as { error?: { message?: unknown } };
    const message = body.error?.message;
    return typeof message === "string" && message ? `no licence: ${message}` : null;
  } catch {
    return null;
  }
}

/** The viewer-facing reason a session was refused (playability, region, maturity, stream limit). */
function refusal(err: unknown): string {
  if (!(err instanceof ConnectError)) return err instanceof Error ? err.message : String(err);
  switch (err.code) {
    case Code.ResourceExhausted:
      return "Too many screens are playing on this account. Stop one and try again.";
    case Code.NotFound:
      return "This title does not exist.";
    case Code.FailedPrecondition:
    case Code.PermissionDenied:
      return err.rawMessage;
    default:
      return err.rawMessage || err.message;
  }
}
