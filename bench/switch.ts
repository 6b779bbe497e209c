/**
 * Call path switch benchmark: two participants in a call go peer-to-peer; a third joins (the call
 * moves to the SFU) and leaves (back to peer-to-peer after CHORUS_CALL_P2P_BACK_MS), N times.
 * Every participant is the real SDK (CallClient) on Node WebRTC sending a tone of its own.
 *
 *   npm run bench:switch -- [--runs N] [--back-ms MS] [--out DIR]
 *
 * Per switch and per receiver of the pair, the audio gap: from the last tone frame decoded on
 * the old path to the first on the new one (0 when the two overlapped: make before break), and
 * the switch duration as the node measures it (decision → every participant in the switch
 * reporting media on the new path: chorus_call_mode_transition_duration_seconds), and the gaps the
 * SDKs reported (chorus_call_mode_transition_gap_seconds). Calls dropped
 * = participants not joined at the end. One JSON line on stdout, appended to
 * <out>/switch.jsonl; <out>/switch.html charts the gaps of every run there.
 */
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import wrtc from '@roamhq/wrtc';
import { TokenService } from '../src/auth/tokens.js';
import { CallClient, type RemoteTrack } from '../src/client/callClient.js';
import type { P2pFactory } from '../src/client/p2pLink.js';
import { toneTrack, webrtcHandlerFactory } from '../test/support/nodePeer.js';
import { colourTrack, palette } from '../test/support/nodeVideo.js';
import { startBenchNode } from './lib/benchNode.js';
import { gitCommit } from './lib/gitCommit.js';
import { histogramCdf } from './lib/report.js';
import { recordRun } from './lib/runLog.js';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    'back-ms': { type: 'string', default: '1000' },
    out: { type: 'string', default: 'bench/results' },
  },
  strict: true,
});
const RUNS = Number(args.runs);
const BACK_MS = Number(args['back-ms']);
if (!Number.isInteger(RUNS) || RUNS < 1 || !Number.isInteger(BACK_MS) || BACK_MS < 0) {
  process.stderr.write('usage: npm run bench:switch -- [--runs N>=1] [--back-ms MS>=0] [--out DIR]\n');
  process.exit(2);
}
const outDir = resolve(process.cwd(), args.out);
const log = (line: string): void => void process.stderr.write(`[bench:switch] ${line}\n`);
const p2p: P2pFactory = { RTCPeerConnection: wrtc.RTCPeerConnection as unknown as P2pFactory['RTCPeerConnection'] };
const TONE_RMS = 0.05;

/**
 * When a receiver decodes each remote participant's tone and camera, per track it was given: a
 * switch hands it a new track for the same participant and source, and the gap is the time
 * between the last tone frame (or video frame) of the old track and the first of the new.
 */
class GapMeter {
  /** Per remote peer and source: every track so far, the current one last. */
  readonly #tracks = new Map<string, Array<{ last: number | undefined; first: number | undefined; stop(): void }>>();
  readonly gaps: { audio: number[]; video: number[] } = { audio: [], video: [] };

  attach(track: RemoteTrack): void {
    if ((track.source !== 'microphone' && track.source !== 'camera') || !track.mediaTrack) return;
    const key = `${track.peerId}:${track.source}`;
    const history = this.#tracks.get(key) ?? [];
    this.#tracks.set(key, history);
    const gaps = track.kind === 'audio' ? this.gaps.audio : this.gaps.video;
    const previous = history.at(-1);
    const entry = { last: undefined as number | undefined, first: undefined as number | undefined, stop: () => undefined as void };
    history.push(entry);
    const decoded = (): void => {
      const now = performance.now();
      if (entry.first === undefined) {
        entry.first = now;
        // The old path may still be playing (make before break): no gap then.
        if (previous?.last !== undefined) gaps.push(Math.max(0, now - previous.last));
        // The old track is done with once the new one plays.
        setTimeout(() => previous?.stop(), 2000);
      }
      entry.last = now;
    };
    let stopped = false;
    if (track.kind === 'audio') {
      const sink = new wrtc.nonstandard.RTCAudioSink(track.mediaTrack as never);
      sink.ondata = ({ samples, channelCount }: { samples: Int16Array; channelCount: number }) => {
        let sum = 0;
        const n = samples.length / channelCount;
        for (let i = 0; i < n; i++) sum += ((samples[i * channelCount] ?? 0) / 32768) ** 2;
        if (Math.sqrt(sum / n) >= TONE_RMS) decoded();
      };
      entry.stop = () => void (stopped || ((stopped = true), sink.stop()));
    } else {
      const sink = new wrtc.nonstandard.RTCVideoSink(track.mediaTrack as never);
      sink.onframe = decoded;
      entry.stop = () => void (stopped || ((stopped = true), sink.stop()));
    }
  }

  /** Whether the current tone track from `peerId` decoded the tone within the last 200 ms. */
  hears(peerId: string | undefined): boolean {
    const last = peerId ? this.#tracks.get(`${peerId}:microphone`)?.at(-1)?.last : undefined;
    return last !== undefined && performance.now() - last < 200;
  }

  close(): void {
    for (const history of this.#tracks.values()) for (const entry of history) entry.stop();
  }
}

interface Participant {
  client: CallClient;
  gaps: GapMeter;
  stop(): void;
}

/** The pair's cameras: small, so the two software encoders and decoders leave the machine to the node. */
const CAMERA = { width: 320, height: 180, fps: 15 };

async function join(url: string, tokens: TokenService, room: string, identity: string, frequency: number, withCamera: boolean): Promise<Participant> {
  const token = await tokens.mint({ room, identity, role: 'participant', kind: 'call' });
  const client = new CallClient({ url, roomId: room, token, handlerFactory: webrtcHandlerFactory(), socket: { transports: ['websocket'] }, p2p });
  const gaps = new GapMeter();
  client.on('tracksubscribed', (track) => gaps.attach(track));
  const tone = toneTrack(frequency);
  const camera = withCamera ? colourTrack(frequency < 400 ? palette.red : palette.blue, CAMERA.width, CAMERA.height, CAMERA.fps) : undefined;
  await client.join();
  await client.publish(tone.track, 'microphone');
  if (camera) await client.publish(camera.track, 'camera', { video: { width: CAMERA.width, height: CAMERA.height } });
  return { client, gaps, stop: () => (gaps.close(), tone.stop(), camera?.stop()) };
}

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Count and sum of one of the node's switch histograms (by `to`), per direction, and its buckets. */
async function switchHistogram(url: string, name: string): Promise<Map<string, { count: number; sum: number; buckets: Array<[number, number]> }>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<string, { count: number; sum: number; buckets: Array<[number, number]> }>();
  const pattern = new RegExp(`^${name}_(bucket|sum|count)\\{(.*)\\} (\\S+)$`);
  for (const line of text.split('\n')) {
    const m = pattern.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    const to = labels['to'] ?? '?';
    const entry = out.get(to) ?? { count: 0, sum: 0, buckets: [] };
    out.set(to, entry);
    if (m[1] === 'sum') entry.sum = Number(m[3]);
    else if (m[1] === 'count') entry.count = Number(m[3]);
    else entry.buckets.push([labels['le'] === '+Inf' ? Infinity : Number(labels['le']), Number(m[3])]);
  }
  return out;
}

/** The smallest bucket bound holding quantile q (the histogram's resolution, not interpolated). */
function bucketQuantile(buckets: Array<[number, number]>, count: number, q: number): number | null {
  if (count === 0) return null;
  for (const [le, n] of [...buckets].sort((a, b) => a[0] - b[0])) if (n >= q * count) return le;
  return null;
}

const pct = (values: number[], p: number): number | null => {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]! * 10) / 10;
};
const summary = (values: number[]) => ({ n: values.length, p50: pct(values, 50), p95: pct(values, 95), max: pct(values, 100) });

async function main(): Promise<void> {
  const secret = randomBytes(32).toString('base64url');
  const tokens = new TokenService(new TextEncoder().encode(secret), 3600);
  const node = await startBenchNode({ CHORUS_TOKEN_SECRET: secret, CHORUS_CALL_P2P_BACK_MS: String(BACK_MS) }, log);
  const pair: Participant[] = [];
  const toSfu = { audio: [] as number[], video: [] as number[] };
  const toP2p = { audio: [] as number[], video: [] as number[] };
  let dropped = 0;
  try {
    const room = 'bench-switch';
    pair.push(await join(node.url, tokens, room, 'a', 300, true), await join(node.url, tokens, room, 'b', 500, true));
    const [a, b] = pair as [Participant, Participant];
    // Each switch gives each of the pair a new track per source of the other: four gaps.
    const gapCount = (): number => a.gaps.gaps.audio.length + b.gaps.gaps.audio.length + a.gaps.gaps.video.length + b.gaps.gaps.video.length;
    const take = (into: { audio: number[]; video: number[] }): void => {
      for (const p of [a, b]) {
        into.audio.push(...p.gaps.gaps.audio.slice(-1));
        into.video.push(...p.gaps.gaps.video.slice(-1));
      }
    };
    // Settled switches, as the node counts them: everyone in the switch plays from the new path.
    const settledTo = async (to: string): Promise<number> => (await switchHistogram(node.url, 'chorus_call_mode_transition_duration_seconds')).get(to)?.count ?? 0;
    const settles = async (to: string, count: number, what: string): Promise<void> => {
      const deadline = performance.now() + 20_000 + BACK_MS;
      while ((await settledTo(to)) < count) {
        if (performance.now() > deadline) throw new Error(`timed out waiting for ${what} to settle`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await until(() => a.client.mediaPath === 'p2p' && b.client.mediaPath === 'p2p', 20_000, 'the first direct link');
    await settles('p2p', 1, 'the first direct link');
    await until(() => a.gaps.hears(b.client.peerId) && b.gaps.hears(a.client.peerId), 20_000, 'both to hear each other directly');
    for (let run = 1; run <= RUNS; run++) {
      const before = gapCount();
      const c = await join(node.url, tokens, room, `c${run}`, 800, false);
      await until(() => a.client.mediaPath === 'sfu' && b.client.mediaPath === 'sfu' && gapCount() >= before + 4, 20_000, `run ${run}: the switch to the SFU`).catch((error: unknown) => {
        throw new Error(`${String(error)} (paths ${a.client.mediaPath}/${b.client.mediaPath}, gaps ${gapCount() - before} of 4)`);
      });
      await settles('sfu', run, `run ${run}: the switch to the SFU`);
      take(toSfu);
      const mid = gapCount();
      await c.client.close();
      c.stop();
      await until(() => a.client.mediaPath === 'p2p' && b.client.mediaPath === 'p2p' && gapCount() >= mid + 4, 20_000 + BACK_MS, `run ${run}: the switch back to peer-to-peer`);
      await settles('p2p', run + 1, `run ${run}: the switch back to peer-to-peer`);
      take(toP2p);
      const last = (values: number[]): string => values.slice(-2).map((g) => g.toFixed(0)).join('/');
      log(`run ${run}/${RUNS}: gaps to SFU audio ${last(toSfu.audio)} video ${last(toSfu.video)} ms, back audio ${last(toP2p.audio)} video ${last(toP2p.video)} ms`);
    }
    dropped = pair.filter((p) => p.client.state !== 'joined').length;
    const durations = await switchHistogram(node.url, 'chorus_call_mode_transition_duration_seconds');
    const reported = await switchHistogram(node.url, 'chorus_call_mode_transition_gap_seconds');
    const fromHistogram = (histogram: typeof durations, to: string, unit: string) => {
      const d = histogram.get(to);
      return d ? { [unit]: d.count, meanMs: d.count ? Math.round((d.sum / d.count) * 1000) : null, p50AtMostMs: msOf(bucketQuantile(d.buckets, d.count, 0.5)), p95AtMostMs: msOf(bucketQuantile(d.buckets, d.count, 0.95)) } : null;
    };
    const duration = (to: string) => fromHistogram(durations, to, 'switches');
    const record = {
      bench: 'switch',
      ts: new Date().toISOString(),
      commit: gitCommit(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model },
      command: `npm run bench:switch -- ${process.argv.slice(2).join(' ')}`.trim(),
      runs: RUNS,
      backMs: BACK_MS,
      audioGapMs: { toSfu: summary(toSfu.audio), toP2p: summary(toP2p.audio) },
      videoGapMs: { toSfu: summary(toSfu.video), toP2p: summary(toP2p.video) },
      camera: CAMERA,
      switchDuration: { toSfu: duration('sfu'), toP2p: duration('p2p') },
      // What the SDKs told the node (p2p.state gapMs): time since the old path's last audio packet when the new one took over.
      reportedGapMs: { toSfu: fromHistogram(reported, 'sfu', 'reports'), toP2p: fromHistogram(reported, 'p2p', 'reports') },
      callsDropped: dropped,
      gapsToSfuMs: toSfu.audio.map((g) => Math.round(g)),
      gapsToP2pMs: toP2p.audio.map((g) => Math.round(g)),
      videoGapsToSfuMs: toSfu.video.map((g) => Math.round(g)),
      videoGapsToP2pMs: toP2p.video.map((g) => Math.round(g)),
    };
    process.stdout.write(`${JSON.stringify(record)}\n`);
    const written = recordRun(outDir, 'switch', record, (runs) => chart(runs));
    log(`wrote ${written.jsonl} and ${written.html}`);
  } finally {
    for (const p of pair) {
      await p.client.close().catch(() => undefined);
      p.stop();
    }
    await node.stop();
  }
}

const msOf = (seconds: number | null): number | null => (seconds === null ? null : seconds === Infinity ? Infinity : Math.round(seconds * 1000));

function chart(runs: Array<{ ts: string; gapsToSfuMs: number[]; gapsToP2pMs: number[]; videoGapsToSfuMs?: number[]; videoGapsToP2pMs?: number[] }>): string {
  const last = runs.at(-1);
  return `<!doctype html><meta charset="utf-8"><title>bench:switch</title><h1>bench:switch</h1>
<p>Gap per switch and receiver (last tone frame or video frame on the old path → first on the new; 0 = they overlapped), latest run.</p>
${last ? histogramCdf({ title: 'audio, to the SFU', xLabel: 'gap (ms)', values: last.gapsToSfuMs }) : ''}
${last ? histogramCdf({ title: 'audio, back to peer-to-peer', xLabel: 'gap (ms)', values: last.gapsToP2pMs }) : ''}
${last?.videoGapsToSfuMs ? histogramCdf({ title: 'video, to the SFU', xLabel: 'gap (ms)', values: last.videoGapsToSfuMs }) : ''}
${last?.videoGapsToP2pMs ? histogramCdf({ title: 'video, back to peer-to-peer', xLabel: 'gap (ms)', values: last.videoGapsToP2pMs }) : ''}
<pre>${runs.map((r) => JSON.stringify(r)).join('\n')}</pre>`;
}

main().catch((error: unknown) => {
  log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
});
