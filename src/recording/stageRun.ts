/**
 * One recording of a class's stage: the teacher's video (camera, or the screen share) and
 * microphone consumed through PlainTransports on loopback into ffmpeg, which transcodes to
 * H.264/AAC and writes HLS into the recording's directory. The playlist is of type EVENT: while
 * the class runs it is a live stream a student can follow (its WebRTC failing); stopped, ffmpeg
 * ends it with EXT-X-ENDLIST and the same files are the replay.
 */
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { types } from 'mediasoup';
import { FfmpegProcess, freeRtpPorts, type FfmpegExit } from '../media/ffmpegProcess.js';
import { StallWatch } from '../media/stallWatch.js';
import type { Logger } from '../observability/logger.js';

export interface StageSources {
  router: types.Router;
  video?: types.Producer | undefined;
  audio?: types.Producer | undefined;
  /** The video's capture size as its publisher declared it: the recording's frame. */
  size?: { width: number; height: number } | undefined;
}

/**
 * The recording's frame: the declared capture size, held under 1080p and even (x264's 4:2:0 needs
 * even sides); 1280×720 when nothing was declared.
 */
export function recordingFrame(size: { width: number; height: number } | undefined): { width: number; height: number } {
  if (!size || size.width < 2 || size.height < 2) return { width: 1280, height: 720 };
  const scale = Math.min(1, 1920 / size.width, 1080 / size.height);
  const even = (n: number): number => Math.max(2, 2 * Math.floor((n * scale) / 2));
  return { width: even(size.width), height: even(size.height) };
}

export interface StageRunOptions {
  ffmpeg: string;
  /** The recording's own directory (created by the caller): ffmpeg writes only there. */
  dir: string;
  segmentSeconds: number;
  /** Continue the directory's playlist after a discontinuity (the stage changed) instead of starting one. */
  append?: boolean | undefined;
  /** A run that is sent media for this long without writing a segment is hung, and killed. */
  stallMs: number;
  log: Logger;
}

/** The playlist ffmpeg writes in the recording's directory. */
export const PLAYLIST = 'index.m3u8';
/** The recording's frame rate, whatever the camera sends (WebRTC cameras vary theirs with the network). */
export const RECORDING_FPS = 30;
/** How often a run's progress is checked against the media it is sent, and keyframes asked. */
const TICK_MS = 700;
/** Keyframe asks stop after this many ticks, segment or not. */
const KEYFRAME_TICKS = 90;
/** Segment files: nothing else in a recording's directory is served. */
export const recordingFile = /^(index\.m3u8|seg-\d{1,6}\.ts)$/;

/** Codecs the plain consumers may receive: what the SDK sends (VP8 camera/screen, Opus). */
const RECEIVE: types.RtpCapabilities = {
  codecs: [
    { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2, preferredPayloadType: 100 },
    { kind: 'video', mimeType: 'video/VP8', clockRate: 90000, preferredPayloadType: 101, rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }] },
  ],
  headerExtensions: [],
};

interface Leg {
  kind: 'audio' | 'video';
  transport: types.PlainTransport;
  consumer: types.Consumer;
  rtpPort: number;
  rtcpPort: number;
}

export function stageSdp(legs: ReadonlyArray<Pick<Leg, 'kind' | 'rtpPort' | 'rtcpPort'> & { payloadType: number }>): string {
  const lines = ['v=0', 'o=- 0 0 IN IP4 127.0.0.1', 's=chorus-recording', 'c=IN IP4 127.0.0.1', 't=0 0'];
  for (const leg of legs) {
    lines.push(`m=${leg.kind} ${leg.rtpPort} RTP/AVP ${leg.payloadType}`, `a=rtcp:${leg.rtcpPort}`);
    lines.push(leg.kind === 'audio' ? `a=rtpmap:${leg.payloadType} opus/48000/2` : `a=rtpmap:${leg.payloadType} VP8/90000`, 'a=recvonly');
  }
  return [...lines, ''].join('\r\n');
}

export function recordingArgs(hasVideo: boolean, hasAudio: boolean, segmentSeconds: number, append = false, frame = recordingFrame(undefined)): string[] {
  const { width: w, height: h } = frame;
  // One frame size for the whole run: a simulcast camera starts on its lowest layer (80×45 for a
  // 320×180 capture, which x264 refuses) and climbs; every layer is scaled into the same frame.
  // One frame rate too: when the camera's first keyframe comes after ffmpeg stopped probing (the
  // microphone filled its analysis window), ffmpeg knows no rate and takes the RTP clock's,
  // 90,000 frames a second, then duplicates frames to fill it and never catches up to write a segment.
  const fit = `scale=${w}:${h}:force_original_aspect_ratio=decrease:force_divisible_by=2,pad=${w}:${h}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=${RECORDING_FPS}`;
  return [
    '-hide_banner', '-nostdin', '-loglevel', 'warning',
    '-protocol_whitelist', 'file,udp,rtp',
    '-analyzeduration', '1000000', '-probesize', '1000000',
    '-reorder_queue_size', '128',
    '-f', 'sdp', '-i', 'stage.sdp',
    ...(hasVideo ? ['-map', '0:v:0', '-vf', fit, '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p', '-force_key_frames', `expr:gte(t,n_forced*${segmentSeconds})`] : []),
    // Opus DTX leaves gaps in silences: filled, so the timeline matches real time.
    ...(hasAudio ? ['-map', '0:a:0', '-af', 'aresample=async=1', '-c:a', 'aac', '-b:a', '96000', '-ar', '48000'] : []),
    '-f', 'hls',
    '-hls_time', String(segmentSeconds),
    '-hls_playlist_type', 'event',
    // A later run (the stage changed) continues the same playlist: numbering goes on, a discontinuity marks the switch.
    ...(append ? ['-hls_flags', 'append_list+discont_start'] : []),
    '-hls_segment_filename', 'seg-%05d.ts',
    PLAYLIST,
  ];
}

/**
 * Ends the playlist of a recording that is over, if ffmpeg did not: once its input has gone quiet
 * (the recorded tracks ended) ffmpeg reads a SIGINT only with the next packet, so it is killed
 * after the grace without writing #EXT-X-ENDLIST, and players would wait for more forever. What
 * it had not finished is lost: the segment under way, not in the playlist.
 */
export async function endPlaylist(dir: string): Promise<boolean> {
  const text = await readFile(join(dir, PLAYLIST), 'utf8').catch(() => undefined);
  if (text === undefined || text.includes('#EXT-X-ENDLIST')) return false;
  await appendFile(join(dir, PLAYLIST), `${text.endsWith('\n') ? '' : '\n'}#EXT-X-ENDLIST\n`);
  return true;
}

export class StageRun {
  readonly #timer: NodeJS.Timeout;
  #stopping = false;

  private constructor(
    private readonly legs: Leg[],
    private readonly process: FfmpegProcess,
    dir: string,
    stallMs: number,
    log: Logger,
  ) {
    const segments = (): Promise<number> => readFile(join(dir, PLAYLIST), 'utf8').then((text) => text.split('#EXTINF').length - 1, () => 0);
    const ask = (): void => {
      for (const leg of legs) if (leg.kind === 'video' && !leg.consumer.closed) void leg.consumer.requestKeyFrame().catch(() => undefined);
    };
    // One count of the playlist per tick serves both jobs below.
    //  - ffmpeg decodes from a keyframe, and a WebRTC encoder sends one only when asked: a few asks
    //    in the first seconds; then, while this run has added no segment to the playlist (ffmpeg
    //    can take seconds to start on a busy host), one every ~3 s, for at most about a minute.
    //  - A hung ffmpeg (stuck, or too slow to ever keep up) writes no segment while media keeps
    //    coming: killed, it ends by itself and the recording starts a new run. Time without media
    //    to record (a paused camera, a muted microphone) does not count against it.
    const stall = new StallWatch(stallMs, Date.now());
    const before = segments();
    let ticks = 0;
    let asking = true;
    let had = -1;
    let sent = -1;
    let busy = false;
    this.#timer = setInterval(() => {
      ticks++;
      if (asking && ticks <= 4) ask();
      if (busy || this.#stopping || this.process.exit) return;
      busy = true;
      void Promise.all([before, segments(), this.#bytesSent()])
        .then(([first, has, bytes]) => {
          const now = Date.now();
          if (has > first) asking = false;
          else if (asking && ticks > 4 && ticks % 4 === 0 && ticks <= KEYFRAME_TICKS) ask();
          if (has > had || bytes <= sent) stall.progressed(now);
          [had, sent] = [has, bytes];
          if (stall.stalled(now) && !this.#stopping) {
            log.warn({ pid: this.process.pid, segments: has, stallMs, ffmpeg: this.process.stderrTail.slice(-5) }, 'recording ffmpeg hung: media sent, no segment written; killing it');
            void this.process.kill();
          }
        })
        .catch(() => undefined)
        .finally(() => (busy = false));
    }, TICK_MS);
    this.#timer.unref();
    void process.exited.then(() => clearInterval(this.#timer));
  }

  async #bytesSent(): Promise<number> {
    let total = 0;
    for (const leg of this.legs) {
      if (leg.transport.closed) continue;
      for (const stats of await leg.transport.getStats()) total += stats.bytesSent;
    }
    return total;
  }

  static async start(sources: StageSources, options: StageRunOptions): Promise<StageRun> {
    const producers = [sources.video, sources.audio].filter((p): p is types.Producer => p !== undefined && !p.closed);
    if (producers.length === 0) throw new Error('nothing to record');
    const ports = await freeRtpPorts(producers.length);
    const legs: Leg[] = [];
    try {
      for (const [i, producer] of producers.entries()) {
        const transport = await sources.router.createPlainTransport({ listenInfo: { protocol: 'udp', ip: '127.0.0.1' }, rtcpMux: false, comedia: false });
        const { rtp: rtpPort, rtcp: rtcpPort } = ports[i]!;
        await transport.connect({ ip: '127.0.0.1', port: rtpPort, rtcpPort });
        const consumer = await transport.consume({ producerId: producer.id, rtpCapabilities: RECEIVE, paused: true });
        // The recording is the stage at its best: the top simulcast layer.
        if (consumer.type === 'simulcast') await consumer.setPreferredLayers({ spatialLayer: 2, temporalLayer: 2 });
        legs.push({ kind: producer.kind, transport, consumer, rtpPort, rtcpPort });
      }
      const sdp = stageSdp(legs.map((l) => ({ kind: l.kind, rtpPort: l.rtpPort, rtcpPort: l.rtcpPort, payloadType: l.consumer.rtpParameters.codecs[0]!.payloadType })));
      await writeFile(join(options.dir, 'stage.sdp'), sdp);
      const hasVideo = legs.some((l) => l.kind === 'video');
      const hasAudio = legs.some((l) => l.kind === 'audio');
      const ffmpeg = new FfmpegProcess(options.ffmpeg, recordingArgs(hasVideo, hasAudio, options.segmentSeconds, options.append, recordingFrame(sources.size)), options.dir, options.log);
      const run = new StageRun(legs, ffmpeg, options.dir, options.stallMs, options.log);
      // ffmpeg needs a moment to bind its ports; packets sent before are lost (a keyframe is asked again).
      for (const leg of legs) await leg.consumer.resume();
      return run;
    } catch (error) {
      for (const leg of legs) leg.transport.close();
      throw error;
    }
  }

  get exit(): FfmpegExit | undefined {
    return this.process.exit;
  }

  get stderrTail(): string[] {
    return this.process.stderrTail;
  }

  /** ffmpeg finishes the open segment and ends the playlist (the replay); killed if it hangs. */
  /** Resolves once ffmpeg has ended: true if by itself (a crash, a port taken), false after stop(). */
  get endedByItself(): Promise<boolean> {
    return this.process.exited.then(() => !this.#stopping);
  }

  async stop(graceMs = 5000): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#timer);
    await this.process.stop(graceMs);
    for (const leg of this.legs) leg.transport.close();
  }
}
