/**
 * HLS for one room on the node holding its broadcast. A supervisor tick (every 200 ms) keeps one
 * ffmpeg run going while the broadcast is live and unpaused: the broadcast producer is consumed
 * on its router through a PlainTransport (RTP on loopback, RTCP on its own port) and fed to
 * ffmpeg; finished segments go into the rolling playlist. The tick also
 *  - ends the run when the broadcast pauses, ends or is replaced (the next run starts with a
 *    discontinuity, so the playlist stays one continuous stream),
 *  - notices ffmpeg exiting by itself (crash) or producing no segment for `stallMs` (hang), and
 *    starts another run after an exponential backoff, giving up after `maxRestarts` failures in
 *    a row (for a minute, or until a new broadcast),
 *  - deletes segments that rolled off the playlist (after a grace period for players that just
 *    read the previous playlist), so the room's disk use is bounded,
 *  - closes the whole room's HLS, files included, when nobody fetched anything for `idleMs`.
 * All state changes happen in the tick, one at a time, so there are no racing transitions.
 */
import { EventEmitter } from 'node:events';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ExponentialBackoff, type IBackoff } from 'cockatiel';
import type { types } from 'mediasoup';
import type { Logger } from '../observability/logger.js';
import { ChorusError } from '../protocol/errors.js';
import { freeRtpPorts } from '../media/ffmpegProcess.js';
import { StallWatch } from '../media/stallWatch.js';
import { FfmpegRun } from './ffmpegRun.js';
import { RollingPlaylist } from './playlist.js';
import type { HlsSettings } from './settings.js';

/** The room's broadcast on this node: its producer and the router it lives on. */
export interface LiveBroadcast {
  producer: types.Producer;
  router: types.Router;
}

interface ActiveRun {
  ffmpeg: FfmpegRun;
  transport: types.PlainTransport;
  producer: types.Producer;
  /** Owed a segment from its start, and again after each one. */
  stall: StallWatch;
  segments: number;
}

interface RoomHlsEvents {
  segment: [];
  /** ffmpeg failed `maxRestarts` + 1 times in a row; no more runs for now. */
  failed: [];
  closed: [reason: string];
}

const TICK_MS = 200;
const AAC_BITRATE = 64_000;
const GIVE_UP_COOLDOWN_MS = 60_000;

export class RoomHls extends EventEmitter<RoomHlsEvents> {
  readonly playlist: RollingPlaylist;
  readonly #log: Logger;
  readonly #timer: NodeJS.Timeout;
  readonly #backoffFactory = new ExponentialBackoff({ initialDelay: 500, maxDelay: 10_000 });
  #backoff: IBackoff<unknown> | undefined;
  #run: ActiveRun | undefined;
  #runs = 0;
  #failures = 0;
  #restartAt = 0;
  #gaveUpAt: number | undefined;
  #gaveUpProducer: types.Producer | undefined;
  #lastFetch = Date.now();
  /** Requests waiting for the first segment: HLS is wanted while they wait. */
  #waiting = 0;
  #ticking: Promise<void> | undefined;
  #closed = false;
  /** Files that rolled off the playlist, deleted once no player can still be asking for them. */
  readonly #doomed: Array<{ uri: string; at: number }> = [];
  /** Restarts after a failure, for tests and diagnostics. */
  restarts = 0;

  constructor(
    readonly roomId: string,
    readonly dir: string,
    private readonly settings: HlsSettings,
    /** The room's live broadcast on this node right now, if any. */
    private readonly source: () => LiveBroadcast | undefined,
    log: Logger,
  ) {
    super();
    this.#log = log.child({ component: 'hls', room: roomId });
    this.playlist = new RollingPlaylist(settings.listSize, settings.segmentSeconds);
    this.#timer = setInterval(() => void this.#tick(), TICK_MS);
    this.#timer.unref();
    void this.#tick();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The running ffmpeg's process id, if a run is under way. */
  get pid(): number | undefined {
    return this.#run?.ffmpeg.exit ? undefined : this.#run?.ffmpeg.pid;
  }

  get failed(): boolean {
    return this.#gaveUpAt !== undefined;
  }

  /** Someone fetched the playlist or a segment: the room's HLS is wanted. */
  touch(): void {
    this.#lastFetch = Date.now();
  }

  /** Resolves once the playlist lists a segment; UNAVAILABLE after `timeoutMs`. */
  async ready(timeoutMs: number): Promise<void> {
    if (this.playlist.length > 0) return;
    const failed = (): ChorusError => new ChorusError('UNAVAILABLE', 'HLS for this room failed (ffmpeg keeps failing); try again in a minute');
    if (this.failed) throw failed();
    this.#waiting++;
    await new Promise<void>((resolve, reject) => {
      const done = (error?: ChorusError): void => {
        this.#waiting--;
        this.touch();
        clearTimeout(timer);
        this.off('segment', onSegment);
        this.off('failed', onFailed);
        this.off('closed', onClosed);
        if (error) reject(error);
        else resolve();
      };
      const onSegment = (): void => done();
      const onFailed = (): void => done(failed());
      const onClosed = (): void => done(new ChorusError('UNAVAILABLE', 'HLS for this room stopped before its first segment'));
      const timer = setTimeout(() => done(new ChorusError('UNAVAILABLE', `HLS did not produce a segment within ${timeoutMs} ms`)), timeoutMs);
      this.on('segment', onSegment);
      this.on('failed', onFailed);
      this.on('closed', onClosed);
    });
  }

  /** Absolute path of a segment players may fetch now (listed, or just rolled off), else undefined. */
  segmentPath(uri: string): string | undefined {
    if (this.playlist.has(uri) || this.#doomed.some((d) => d.uri === uri)) return join(this.dir, uri);
    return undefined;
  }

  #tick(): Promise<void> {
    if (this.#ticking || this.#closed) return this.#ticking ?? Promise.resolve();
    this.#ticking = this.#step(Date.now())
      .catch((error: unknown) => this.#log.error({ err: error }, 'HLS supervisor step failed'))
      .finally(() => {
        this.#ticking = undefined;
      });
    return this.#ticking;
  }

  async #step(now: number): Promise<void> {
    const live = this.source();
    const wanted = live && !live.producer.closed && !live.producer.paused ? live : undefined;
    if (now - this.#lastFetch > this.settings.idleMs && this.#waiting === 0 && !(this.settings.always && live)) {
      await this.#shutdown('idle');
      return;
    }
    const run = this.#run;
    if (run) {
      await this.#collect(run, now);
      if (run.producer !== wanted?.producer || run.transport.closed) {
        await this.#endRun(run, run.producer.closed ? 'broadcast ended' : run.producer.paused ? 'broadcast paused' : 'broadcast replaced');
      } else if (run.ffmpeg.exit) {
        this.#log.warn({ run: run.ffmpeg.options.run, exit: run.ffmpeg.exit, stderr: run.ffmpeg.stderrTail }, 'ffmpeg exited by itself');
        await this.#endRun(run, 'ffmpeg exited');
        this.#failed(now);
      } else if (run.stall.stalled(now)) {
        this.#log.warn({ run: run.ffmpeg.options.run, pid: run.ffmpeg.pid, segments: run.segments, stderr: run.ffmpeg.stderrTail }, 'ffmpeg produced no segment in time; killing it');
        await run.ffmpeg.kill();
        await this.#endRun(run, 'ffmpeg hung');
        this.#failed(now);
      }
    }
    if (this.#gaveUpAt !== undefined && (now - this.#gaveUpAt > GIVE_UP_COOLDOWN_MS || (wanted && wanted.producer !== this.#gaveUpProducer))) {
      this.#log.info('trying HLS again after giving up');
      this.#gaveUpAt = undefined;
      this.#failures = 0;
      this.#backoff = undefined;
    }
    if (!this.#run && wanted && now >= this.#restartAt && this.#gaveUpAt === undefined) await this.#startRun(wanted, now);
    await this.#sweep(now);
  }

  #failed(now: number): void {
    this.#failures++;
    if (this.#failures > this.settings.maxRestarts) {
      this.#gaveUpAt = now;
      this.#gaveUpProducer = this.source()?.producer;
      this.#log.error({ failures: this.#failures }, 'ffmpeg keeps failing; HLS for this room gives up for now');
      this.emit('failed');
      return;
    }
    this.#backoff = this.#backoff ? this.#backoff.next(undefined) : this.#backoffFactory.next();
    this.#restartAt = now + this.#backoff.duration;
    this.restarts++;
    this.#log.info({ failures: this.#failures, delayMs: Math.round(this.#backoff.duration) }, 'restarting ffmpeg after a backoff');
  }

  async #startRun(live: LiveBroadcast, now: number): Promise<void> {
    const number = ++this.#runs;
    await mkdir(this.dir, { recursive: true });
    const { rtp: rtpPort, rtcp: rtcpPort } = (await freeRtpPorts(1))[0]!;
    // RTCP on its own port (rtcpMux off): ffmpeg's SDP input expects RTP and RTCP apart.
    const transport = await live.router.createPlainTransport({
      listenInfo: { protocol: 'udp', ip: '127.0.0.1' },
      rtcpMux: false,
      comedia: false,
      appData: { hls: true },
    });
    try {
      await transport.connect({ ip: '127.0.0.1', port: rtpPort, rtcpPort });
      const opus = live.router.rtpCapabilities.codecs?.filter((c) => c.mimeType.toLowerCase() === 'audio/opus') ?? [];
      const consumer = await transport.consume({ producerId: live.producer.id, rtpCapabilities: { codecs: opus, headerExtensions: [] }, paused: true });
      const codec = consumer.rtpParameters.codecs[0];
      if (!codec) throw new Error('no codec to consume');
      const ffmpeg = await FfmpegRun.start({
        ffmpeg: this.settings.ffmpeg,
        dir: this.dir,
        run: number,
        rtpPort,
        rtcpPort,
        payloadType: codec.payloadType,
        segmentSeconds: this.settings.segmentSeconds,
        listKeep: this.settings.listSize + 2,
        aacBitrate: AAC_BITRATE,
        log: this.#log,
      });
      await consumer.resume();
      this.playlist.startRun();
      this.#run = { ffmpeg, transport, producer: live.producer, stall: new StallWatch(this.settings.stallMs, now), segments: 0 };
      this.#log.info({ run: number, pid: ffmpeg.pid, producer: live.producer.id, rtpPort, rtcpPort }, 'ffmpeg started');
    } catch (error) {
      transport.close();
      throw error;
    }
  }

  async #collect(run: ActiveRun, now: number): Promise<void> {
    for (const segment of await run.ffmpeg.finished()) {
      const removed = this.playlist.add(segment.uri, segment.duration, now);
      // Players that read the previous playlist may still ask for these for a few seconds.
      for (const old of removed) this.#doomed.push({ uri: old.uri, at: now + this.playlist.targetDuration * 3000 });
      run.segments++;
      run.stall.progressed(now);
      if (this.#failures > 0) {
        this.#failures = 0;
        this.#backoff = undefined;
      }
      this.emit('segment');
    }
  }

  async #endRun(run: ActiveRun, reason: string): Promise<void> {
    this.#run = undefined;
    run.transport.close();
    await run.ffmpeg.stop();
    // ffmpeg closed its last segment on the way out: list it too.
    await this.#collect(run, Date.now());
    const number = run.ffmpeg.options.run;
    await Promise.all([`run-${number}.sdp`, `run-${number}.csv`].map((f) => rm(join(this.dir, f), { force: true })));
    this.#log.info({ run: number, reason, segments: run.segments }, 'ffmpeg run ended');
  }

  async #sweep(now: number): Promise<void> {
    while (this.#doomed.length > 0 && this.#doomed[0]!.at <= now) {
      const { uri } = this.#doomed.shift()!;
      await rm(join(this.dir, uri), { force: true });
    }
  }

  /** Stops ffmpeg and removes the room's files. */
  async close(reason = 'closed'): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // A step under way may be starting a run: let it finish, then take everything down.
    await this.#ticking;
    await this.#shutdown(reason);
  }

  async #shutdown(reason: string): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    const run = this.#run;
    this.#run = undefined;
    if (run) {
      run.transport.close();
      await run.ffmpeg.stop(1000);
    }
    await rm(this.dir, { recursive: true, force: true });
    this.#log.info({ reason }, 'HLS stopped and its files removed');
    this.emit('closed', reason);
  }
}
