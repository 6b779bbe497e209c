/**
 * Reading a node's HLS output the way a player would, then checking it with real tools: the
 * playlist is parsed by hls-parser in strict mode (it throws on spec violations), segments are
 * inspected by ffprobe and decoded by ffmpeg to PCM, whose level and pitch are measured.
 */
import { spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { parse, setOptions, types } from 'hls-parser';

setOptions({ strictMode: true });

export type MediaPlaylist = InstanceType<typeof types.MediaPlaylist>;

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** The `error` object of a JSON error answer. */
  error?: { code: string; message: string; retryable: boolean } | undefined;
}

/** GET with the path sent exactly as given (no URL normalisation of `..` or `%2F`). */
export function rawGet(baseUrl: string, path: string, headers: Record<string, string> = {}, localAddress?: string): Promise<HttpAnswer> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, path, method: 'GET', headers, ...(localAddress ? { localAddress } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        let error: HttpAnswer['error'];
        if (String(res.headers['content-type'] ?? '').includes('json')) {
          error = (JSON.parse(body.toString('utf8')) as { error?: HttpAnswer['error'] }).error;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, error });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export interface PollingPlayer {
  /** Playlist answers so far, by HTTP status. */
  answers: number[];
  /** Stops reloading (resolves once the request in flight is answered). */
  stop(): Promise<void>;
}

/**
 * A live HLS player's traffic: reloads the playlist every `everyMs` (what players do, about
 * once per segment) until stopped, from `localAddress` if given (any 127.x.y.z on loopback, so
 * players can come from different addresses).
 */
export function pollPlaylist(baseUrl: string, path: string, options: { headers?: Record<string, string>; localAddress?: string; everyMs?: number } = {}): PollingPlayer {
  const { headers = {}, localAddress, everyMs = 300 } = options;
  const answers: number[] = [];
  let stopped = false;
  let wake: (() => void) | undefined;
  const loop = (async () => {
    while (!stopped) {
      answers.push((await rawGet(baseUrl, path, headers, localAddress)).status);
      if (stopped) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, everyMs);
      });
    }
  })();
  return {
    answers,
    async stop() {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}

/** Fetches and strictly parses a media playlist; throws with the server's error otherwise. */
export async function fetchPlaylist(baseUrl: string, path: string, headers: Record<string, string> = {}): Promise<{ playlist: MediaPlaylist; text: string }> {
  const answer = await rawGet(baseUrl, path, headers);
  if (answer.status !== 200) throw new Error(`playlist ${path}: HTTP ${answer.status} ${answer.body.toString('utf8')}`);
  const text = answer.body.toString('utf8');
  const parsed = parse(text);
  if (parsed.isMasterPlaylist) throw new Error('expected a media playlist');
  return { playlist: parsed as MediaPlaylist, text };
}

function run(command: string, args: string[], input?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`${command} exited ${code}: ${Buffer.concat(err).toString('utf8').slice(-500)}`));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

export interface ProbedStream {
  codec_type: string;
  codec_name: string;
  sample_rate?: string;
  channels?: number;
}

/** ffprobe's view of a segment's streams and container. */
export async function probeSegment(segment: Buffer): Promise<{ streams: ProbedStream[]; format: string }> {
  const json = await run('ffprobe', ['-v', 'error', '-show_streams', '-show_format', '-of', 'json', '-i', 'pipe:0'], segment);
  const parsed = JSON.parse(json.toString('utf8')) as { streams: ProbedStream[]; format: { format_name: string } };
  return { streams: parsed.streams, format: parsed.format.format_name };
}

export const PCM_RATE = 16000;

/** Decodes a segment (or several concatenated MPEG-TS segments) to mono float PCM at 16 kHz. */
export async function decodeSegment(segment: Buffer): Promise<Float32Array> {
  const pcm = await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'mpegts', '-i', 'pipe:0', '-ac', '1', '-ar', String(PCM_RATE), '-f', 's16le', 'pipe:1'], segment);
  const samples = new Float32Array(pcm.length / 2);
  for (let i = 0; i < samples.length; i++) samples[i] = pcm.readInt16LE(i * 2) / 32768;
  return samples;
}

/** RMS level and zero-crossing pitch estimate of PCM samples. */
export function analyse(samples: Float32Array, rate = PCM_RATE): { rms: number; frequency: number } {
  let sum = 0;
  let crossings = 0;
  for (let i = 0; i < samples.length; i++) {
    const v = samples[i]!;
    sum += v * v;
    if (i > 0 && samples[i - 1]! < 0 && v >= 0) crossings++;
  }
  const n = Math.max(1, samples.length);
  return { rms: Math.sqrt(sum / n), frequency: (crossings * rate) / n };
}
