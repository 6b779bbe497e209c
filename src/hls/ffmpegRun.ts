/**
 * One ffmpeg process turning a room's Opus RTP (from a mediasoup PlainTransport on loopback)
 * into AAC segments of HLS-ready MPEG-TS. ffmpeg's segment muxer writes the segments and a CSV
 * list of the finished ones (name, start, end); the room's RollingPlaylist turns those into the
 * served playlist. A "run" ends when it is stopped (the broadcast paused or ended), when ffmpeg
 * exits by itself (a crash), or when it is killed as hung.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FfmpegProcess, type FfmpegExit } from '../media/ffmpegProcess.js';
import type { Logger } from '../observability/logger.js';

/** Segment files ffmpeg writes: `seg-<run>-<index>.ts`. Nothing else in a room dir is served. */
export const segmentName = /^seg-(\d{1,9})-(\d{1,9})\.ts$/;

export interface RunOptions {
  ffmpeg: string;
  /** The room's directory: ffmpeg runs there and writes only there. */
  dir: string;
  run: number;
  rtpPort: number;
  rtcpPort: number;
  payloadType: number;
  segmentSeconds: number;
  /** Entries ffmpeg keeps in its CSV list (it rewrites the file atomically each segment). */
  listKeep: number;
  aacBitrate: number;
  log: Logger;
}

export interface FinishedSegment {
  uri: string;
  index: number;
  duration: number;
}

/** The SDP ffmpeg reads to receive what the PlainTransport sends (RFC 7587: opus/48000/2). */
export function opusSdp(rtpPort: number, rtcpPort: number, payloadType: number): string {
  return [
    'v=0',
    'o=- 0 0 IN IP4 127.0.0.1',
    's=chorus-hls',
    'c=IN IP4 127.0.0.1',
    't=0 0',
    `m=audio ${rtpPort} RTP/AVP ${payloadType}`,
    `a=rtcp:${rtcpPort}`,
    `a=rtpmap:${payloadType} opus/48000/2`,
    'a=recvonly',
    '',
  ].join('\r\n');
}

export function ffmpegArgs(o: Pick<RunOptions, 'run' | 'segmentSeconds' | 'listKeep' | 'aacBitrate'>, sdpFile: string): string[] {
  return [
    '-hide_banner',
    '-nostdin',
    '-loglevel', 'error',
    // The SDP is a local file naming a local UDP source; nothing else may be opened.
    '-protocol_whitelist', 'file,udp,rtp',
    // The codec is known from the SDP: do not wait seconds to "analyse" the stream.
    '-analyzeduration', '200000',
    '-probesize', '4096',
    '-reorder_queue_size', '64',
    '-f', 'sdp',
    '-i', sdpFile,
    '-map', '0:a:0',
    // Opus DTX leaves gaps in silences; fill them so the timeline (and segment lengths) match
    // real time instead of shrinking.
    '-af', 'aresample=async=1',
    '-c:a', 'aac',
    '-b:a', String(o.aacBitrate),
    '-ac', '1',
    '-ar', '48000',
    '-f', 'segment',
    '-segment_format', 'mpegts',
    '-segment_time', String(o.segmentSeconds),
    '-segment_list', `run-${o.run}.csv`,
    '-segment_list_type', 'csv',
    '-segment_list_size', String(o.listKeep),
    `seg-${o.run}-%d.ts`,
  ];
}

export class FfmpegRun {
  /** Highest segment index already reported by `finished()`. */
  #reported = -1;

  private constructor(
    readonly options: RunOptions,
    private readonly process: FfmpegProcess,
  ) {}

  static async start(options: RunOptions): Promise<FfmpegRun> {
    const sdpFile = `run-${options.run}.sdp`;
    await writeFile(join(options.dir, sdpFile), opusSdp(options.rtpPort, options.rtcpPort, options.payloadType));
    return new FfmpegRun(options, new FfmpegProcess(options.ffmpeg, ffmpegArgs(options, sdpFile), options.dir, options.log.child({ run: options.run })));
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  /** How ffmpeg ended, once it has. */
  get exit(): FfmpegExit | undefined {
    return this.process.exit;
  }

  /** ffmpeg's last stderr lines, for the log when a run fails. */
  get stderrTail(): string[] {
    return this.process.stderrTail;
  }

  /** Segments ffmpeg finished since the last call, oldest first. */
  async finished(): Promise<FinishedSegment[]> {
    let csv: string;
    try {
      csv = await readFile(join(this.options.dir, `run-${this.options.run}.csv`), 'utf8');
    } catch {
      return [];
    }
    const fresh: FinishedSegment[] = [];
    for (const line of csv.split('\n')) {
      const [uri, start, end] = line.trim().split(',');
      const match = segmentName.exec(uri ?? '');
      if (!match || Number(match[1]) !== this.options.run) continue;
      const index = Number(match[2]);
      const duration = Number(end) - Number(start);
      if (index <= this.#reported || !(duration > 0)) continue;
      fresh.push({ uri: uri!, index, duration });
    }
    fresh.sort((a, b) => a.index - b.index);
    if (fresh.length > 0) this.#reported = fresh[fresh.length - 1]!.index;
    return fresh;
  }

  /** Asks ffmpeg to finish (it closes the segment under way and lists it); kills it if it does not. */
  stop(graceMs = 3000): Promise<void> {
    return this.process.stop(graceMs);
  }

  kill(): Promise<void> {
    return this.process.kill();
  }
}
