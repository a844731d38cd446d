// Quality of experience, as the playback contract defines it (marquee.v1.QoeReport): the start-up time once,
// then per report the stalls, bitrate switches and errors since the previous report, the time spent playing,
// the bytes downloaded, the pathway and the bandwidth of the rendition being played.

import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  BitrateSwitchSchema,
  PlayerErrorSchema,
  QoeReportSchema,
  StallSchema,
  type BitrateSwitch,
  type PlayerError,
  type QoeReport,
  type Stall,
} from "../gen/marquee/v1/playback_pb";

const MAX_EVENTS = 1000; // per report, as the service accepts

export class QoeCollector {
  /** Totals over the whole session, for the on-screen statistics and the tests. */
  readonly totals = { stalls: 0, stallMs: 0, switches: 0, errors: 0, playingMs: 0 };
  startupMs: number | null = null;
  private startupReported = false;
  private stalls: Stall[] = [];
  private switches: BitrateSwitch[] = [];
  private errors: PlayerError[] = [];
  private stallStartedAt: number | null = null;
  private stallPosition = 0;
  private playingSince: number | null = null;
  private playingMs = 0;
  private bytes = 0;

  firstFrame(startupMs: number): void {
    if (this.startupMs === null) this.startupMs = startupMs;
  }

  /** Playback started or resumed moving (the clock for playing time). */
  playing(now = performance.now()): void {
    this.playingSince ??= now;
  }

  /** Playback stopped moving: paused, stalled, seeking or ended. */
  notPlaying(now = performance.now()): void {
    if (this.playingSince !== null) {
      const ms = now - this.playingSince;
      this.playingMs += ms;
      this.totals.playingMs += ms;
      this.playingSince = null;
    }
  }

  /** A stall: waiting for data while playing, not because of a seek or the start. */
  stallStarted(positionSeconds: number, now = performance.now()): void {
    if (this.stallStartedAt !== null) return;
    this.notPlaying(now);
    this.stallStartedAt = now;
    this.stallPosition = positionSeconds;
  }

  stallEnded(now = performance.now()): void {
    if (this.stallStartedAt === null) return;
    const ms = now - this.stallStartedAt;
    this.stallStartedAt = null;
    this.totals.stalls += 1;
    this.totals.stallMs += ms;
    if (this.stalls.length < MAX_EVENTS) {
      this.stalls.push(
        create(StallSchema, {
          position: durationFromMs(Math.round(this.stallPosition * 1000)),
          duration: durationFromMs(Math.round(ms)),
        }),
      );
    }
  }

  get stalled(): boolean {
    return this.stallStartedAt !== null;
  }

  bitrateSwitch(from: number, to: number): void {
    if (from === to) return;
    this.totals.switches += 1;
    if (this.switches.length < MAX_EVENTS) {
      this.switches.push(
        create(BitrateSwitchSchema, {
          fromBandwidth: BigInt(Math.round(from)),
          toBandwidth: BigInt(Math.round(to)),
          time: timestampFromMs(Date.now()),
        }),
      );
    }
  }

  error(code: string, message: string, fatal: boolean): void {
    this.totals.errors += 1;
    if (this.errors.length < MAX_EVENTS) {
      this.errors.push(create(PlayerErrorSchema, { code, message: message.slice(0, 500), fatal }));
    }
  }

  downloaded(bytes: number): void {
    this.bytes += bytes;
  }

  /** The report since the previous one (a stall in progress is reported once it ends). */
  take(pathwayId: string, currentBandwidth: number, now = performance.now()): QoeReport {
    if (this.playingSince !== null) {
      const ms = now - this.playingSince;
      this.playingMs += ms;
      this.totals.playingMs += ms;
      this.playingSince = now;
    }
    const report = create(QoeReportSchema, {
      stalls: this.stalls,
      bitrateSwitches: this.switches,
      errors: this.errors,
      pathwayId,
      bytesDownloaded: BigInt(this.bytes),
      playingTime: durationFromMs(Math.round(this.playingMs)),
      currentBandwidth: BigInt(Math.round(currentBandwidth)),
    });
    if (this.startupMs !== null && !this.startupReported) {
      report.startupTime = durationFromMs(Math.round(this.startupMs));
      this.startupReported = true;
    }
    this.stalls = [];
    this.switches = [];
    this.errors = [];
    this.playingMs = 0;
    this.bytes = 0;
    return report;
  }
}
