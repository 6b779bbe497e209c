/**
 * Pre-encoded media for light call participants: a moving test pattern encoded once by ffmpeg
 * (libvpx VP8) at three sizes, a quarter, a half and the full capture size (the simulcast layers
 * a browser sends), and a tone encoded once as Opus in 20 ms packets. A light participant sends
 * these files' frames as RTP, looped, so the load generator spends nothing on encoding and a
 * benchmark of fifty participants measures the SFU rather than fifty encoders.
 *
 * The frames are real: every keyframe starts with a keyframe tag, and a browser joining the
 * benchmark's call decodes what it receives.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface VideoLayer {
  width: number;
  height: number;
  /** One entry per frame, in order; the first is a keyframe, then one every second. */
  frames: Buffer[];
}

export interface LightMedia {
  fps: number;
  layers: VideoLayer[];
  /** Opus packets of 20 ms each. */
  opus: Buffer[];
}

export interface LightMediaOptions {
  width: number;
  height: number;
  fps: number;
  /** Length of the loop. */
  seconds: number;
}

/** Bitrate for a layer of this many pixels per second: about 0.08 bit per pixel, as a browser sends. */
function kbps(width: number, height: number, fps: number): number {
  return Math.max(60, Math.round((width * height * fps * 0.08) / 1000));
}

/** Encodes the media into `dir` unless it is there from an earlier run with the same options. */
export async function prepareLightMedia(dir: string, options: LightMediaOptions): Promise<{ videoFiles: string[]; audioFile: string }> {
  mkdirSync(dir, { recursive: true });
  const { width, height, fps, seconds } = options;
  const videoFiles: string[] = [];
  for (const scale of [4, 2, 1]) {
    const w = Math.round(width / scale / 2) * 2;
    const h = Math.round(height / scale / 2) * 2;
    const file = join(dir, `vp8-${w}x${h}-${fps}fps-${seconds}s.ivf`);
    videoFiles.push(file);
    if (existsSync(file)) continue;
    const rate = kbps(w, h, fps);
    // Realtime settings, as a sender in a call uses: no lookahead, no alt-ref frames, a keyframe
    // every second so a new subscriber or layer switch starts within one.
    await run('ffmpeg', [
      ...['-hide_banner', '-loglevel', 'error', '-y'],
      ...['-f', 'lavfi', '-i', `testsrc2=size=${w}x${h}:rate=${fps}`, '-t', String(seconds)],
      ...['-c:v', 'libvpx', '-deadline', 'realtime', '-cpu-used', '8', '-lag-in-frames', '0', '-auto-alt-ref', '0'],
      ...['-g', String(fps), '-keyint_min', String(fps), '-b:v', `${rate}k`, '-maxrate', `${rate}k`, '-bufsize', `${rate}k`],
      ...['-f', 'ivf', `${file}.part`],
    ]);
    await run('mv', [`${file}.part`, file]);
  }
  const audioFile = join(dir, `opus-${seconds}s.ogg`);
  if (!existsSync(audioFile)) {
    // A tone whose loudness rises and falls, so voice activity and levels have something to see.
    await run('ffmpeg', [
      ...['-hide_banner', '-loglevel', 'error', '-y'],
      ...['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${seconds}`],
      ...['-af', 'volume=0.3+0.25*sin(2*PI*t/3):eval=frame'],
      ...['-c:a', 'libopus', '-b:a', '32k', '-frame_duration', '20', '-application', 'voip', '-f', 'ogg', `${audioFile}.part`],
    ]);
    await run('mv', [`${audioFile}.part`, audioFile]);
  }
  return { videoFiles, audioFile };
}

export function loadLightMedia(files: { videoFiles: string[]; audioFile: string }, fps: number): LightMedia {
  return {
    fps,
    layers: files.videoFiles.map((file) => readIvf(readFileSync(file))),
    opus: readOggOpus(readFileSync(files.audioFile)),
  };
}

/** IVF: a 32-byte file header ("DKIF"), then per frame a 4-byte size, an 8-byte pts and the frame. */
export function readIvf(data: Buffer): VideoLayer {
  if (data.toString('ascii', 0, 4) !== 'DKIF') throw new Error('not an IVF file');
  const headerSize = data.readUInt16LE(6);
  const width = data.readUInt16LE(12);
  const height = data.readUInt16LE(14);
  const frames: Buffer[] = [];
  for (let at = headerSize; at + 12 <= data.length; ) {
    const size = data.readUInt32LE(at);
    frames.push(data.subarray(at + 12, at + 12 + size));
    at += 12 + size;
  }
  if (frames.length === 0 || !isVp8Keyframe(frames[0]!)) throw new Error('IVF file does not start with a VP8 keyframe');
  return { width, height, frames };
}

/** RFC 6386 9.1: bit 0 of the frame tag is 0 for a keyframe. */
export function isVp8Keyframe(frame: Buffer): boolean {
  return (frame[0]! & 0x01) === 0;
}

/** The Opus packets of an Ogg stream (RFC 7845), without its OpusHead and OpusTags headers. */
export function readOggOpus(data: Buffer): Buffer[] {
  const packets: Buffer[] = [];
  let pending: Buffer[] = [];
  for (let at = 0; at + 27 <= data.length; ) {
    if (data.toString('ascii', at, at + 4) !== 'OggS') throw new Error(`no Ogg page at byte ${at}`);
    const segments = data[at + 26]!;
    const table = data.subarray(at + 27, at + 27 + segments);
    let body = at + 27 + segments;
    for (const lacing of table) {
      pending.push(data.subarray(body, body + lacing));
      body += lacing;
      // A segment shorter than 255 bytes ends a packet; 255 means it goes on.
      if (lacing < 255) {
        packets.push(Buffer.concat(pending));
        pending = [];
      }
    }
    at = body;
  }
  return packets.filter((p) => !p.subarray(0, 8).equals(Buffer.from('OpusHead')) && !p.subarray(0, 8).equals(Buffer.from('OpusTags')));
}

/**
 * A VP8 frame as RTP payloads (RFC 7741): each starts with a 4-byte payload descriptor carrying
 * a 15-bit picture id (the SFU rewrites it when it switches layers), the first one flagged as
 * the start of the frame.
 */
export function packetizeVp8(frame: Buffer, pictureId: number, maxPayload = 1100): Buffer[] {
  const payloads: Buffer[] = [];
  for (let at = 0; at < frame.length; at += maxPayload) {
    const chunk = frame.subarray(at, at + maxPayload);
    const descriptor = Buffer.from([0x80 | (at === 0 ? 0x10 : 0), 0x80, 0x80 | ((pictureId >> 8) & 0x7f), pictureId & 0xff]);
    payloads.push(Buffer.concat([descriptor, chunk]));
  }
  return payloads;
}

/**
 * The width of a VP8 keyframe from its first RTP payload (RFC 7741 descriptor, then RFC 6386
 * 9.1's frame tag, start code and size); undefined for any other packet. Tells which simulcast
 * layer a receiver gets without decoding it.
 */
export function vp8KeyframeWidth(payload: Buffer): number | undefined {
  const b0 = payload[0];
  // S (start of partition) with partition index 0: the frame's first packet.
  if (b0 === undefined || (b0 & 0x10) === 0 || (b0 & 0x07) !== 0) return undefined;
  let at = 1;
  if (b0 & 0x80) {
    const x = payload[at++] ?? 0;
    if (x & 0x80) at += (payload[at] ?? 0) & 0x80 ? 2 : 1;
    if (x & 0x40) at++;
    if (x & 0x30) at++;
  }
  if (payload.length < at + 10 || !isVp8Keyframe(payload.subarray(at))) return undefined;
  if (payload[at + 3] !== 0x9d || payload[at + 4] !== 0x01 || payload[at + 5] !== 0x2a) return undefined;
  return payload.readUInt16LE(at + 6) & 0x3fff;
}
