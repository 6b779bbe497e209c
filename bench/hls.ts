/**
 * HLS glass-to-glass latency. A node (in this process) with a broadcaster (the SDK on Node
 * WebRTC) that is silent except for a 200 ms tone burst every `--interval` ms (plus a random
 * part of a segment, so bursts fall at every point of a segment), each at one of
 * eight frequencies in turn, so every burst is recognisable for 8 intervals. The emission time of
 * a burst is when its first samples enter the WebRTC audio source (where a microphone's would).
 * A client polls the HLS playlist every 50 ms like an eager player, fetches each new segment as
 * soon as it is listed, decodes it with ffmpeg and looks for burst onsets; the latency of a burst
 * is the moment the segment holding its onset was in the client's hands minus its emission time.
 * That is the floor for any HLS player; hls.js (as the listener page configures it) plays
 * `liveSyncDurationCount` (3) segments behind the live edge, which adds about that many
 * segment durations: reported as `playerEstimateMs`, an estimate, not a measurement.
 *
 *   npm run bench:hls -- [--seconds 60] [--segment 1] [--list 6] [--interval 2000] [--out bench/results]
 *
 * Prints one JSON line, appends it to <out>/hls.jsonl and rewrites <out>/hls.html.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse, types } from 'hls-parser';
import { startNode } from '../src/app.js';
import { loadConfig } from '../src/config/config.js';
import { ChorusClient } from '../src/client/chorusClient.js';
import { clockedAudio, FRAME, SAMPLE_RATE, webrtcHandlerFactory, type ClockedAudio } from '../test/support/nodePeer.js';
import { lineChart } from './lib/report.js';
import { recordRun } from './lib/runLog.js';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    segment: { type: 'string', default: '1' },
    list: { type: 'string', default: '6' },
    interval: { type: 'string', default: '2000' },
    out: { type: 'string', default: 'bench/results' },
  },
  strict: true,
});
const seconds = Number(args.seconds);
const segmentSeconds = Number(args.segment);
const listSize = Number(args.list);
const intervalMs = Number(args.interval);
const outDir = resolve(process.cwd(), args.out);
if (!(seconds >= 10) || !(segmentSeconds >= 0.5 && segmentSeconds <= 2) || !(listSize >= 3) || !(intervalMs >= 500)) {
  process.stderr.write('usage: npm run bench:hls -- [--seconds N>=10] [--segment 0.5..2] [--list N>=3] [--interval MS>=500] [--out DIR]\n');
  process.exit(2);
}
const argv = process.argv.slice(2).join(' ');
const command = process.env['npm_lifecycle_event'] === 'bench:hls' ? `npm run bench:hls -- ${argv}`.trim() : `tsx bench/hls.ts ${argv}`.trim();
const log = (message: string): void => void process.stderr.write(`[bench:hls ${new Date().toISOString().slice(11, 19)}] ${message}\n`);

const BURST_MS = 200;
/** Far enough apart that a zero-crossing estimate on a short window tells them apart. */
const FREQUENCIES = [500, 800, 1100, 1400, 1700, 2000, 2300, 2600];
const PCM_RATE = 16000;
const ROOM = 'bench-hls';

interface Emission {
  at: number;
  frequency: number;
}

/**
 * Silence with a tone burst every interval plus a random part of a segment, fed by the clock
 * (`clockedAudio`: late timers catch up). The random part spreads bursts over every position within a segment:
 * with a fixed interval that is a multiple of the segment length, every burst would land at the
 * same point of its segment and the figure would describe that point only.
 */
function burstSource(emissions: Emission[]): ClockedAudio {
  const burstFrames = BURST_MS / 10;
  const nextGap = (): number => Math.round((intervalMs + Math.random() * segmentSeconds * 1000) / 10);
  let pushed = 0;
  let phase = 0;
  let burstStart = nextGap();
  let bursts = 0;
  let frequency = FREQUENCIES[0]!;
  return clockedAudio((samples) => {
    if (pushed === burstStart) {
      frequency = FREQUENCIES[bursts++ % FREQUENCIES.length]!;
      emissions.push({ at: Date.now(), frequency });
    }
    if (pushed >= burstStart && pushed < burstStart + burstFrames) {
      const step = (2 * Math.PI * frequency) / SAMPLE_RATE;
      for (let i = 0; i < FRAME; i++) {
        samples[i] = Math.round(Math.sin(phase) * 0.5 * 32767);
        phase += step;
      }
    } else {
      samples.fill(0);
      phase = 0;
      if (pushed >= burstStart + burstFrames) burstStart += nextGap();
    }
    pushed++;
  });
}

function decode(segment: Buffer): Promise<Float32Array> {
  return new Promise((resolvePcm, reject) => {
    const child = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'mpegts', '-i', 'pipe:0', '-ac', '1', '-ar', String(PCM_RATE), '-f', 's16le', 'pipe:1']);
    const out: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`ffmpeg exited ${code}`));
      const pcm = Buffer.concat(out);
      const samples = new Float32Array(pcm.length / 2);
      for (let i = 0; i < samples.length; i++) samples[i] = pcm.readInt16LE(i * 2) / 32768;
      resolvePcm(samples);
    });
    child.stdin.end(segment);
  });
}

/** Burst onsets in decoded audio: a loud 10 ms window after a quiet one, and the burst's pitch. */
function onsets(samples: Float32Array, loudBefore: boolean): { frequencies: number[]; loudAtEnd: boolean } {
  const window = PCM_RATE / 100;
  const found: number[] = [];
  let previousLoud = loudBefore;
  for (let start = 0; start + window <= samples.length; start += window) {
    let sum = 0;
    for (let i = start; i < start + window; i++) sum += samples[i]! * samples[i]!;
    const loud = Math.sqrt(sum / window) > 0.05;
    if (loud && !previousLoud) {
      // Pitch over the next 100 ms (or what the segment still holds) by zero crossings.
      const end = Math.min(samples.length, start + PCM_RATE / 10);
      let crossings = 0;
      for (let i = start + 1; i < end; i++) if (samples[i - 1]! < 0 && samples[i]! >= 0) crossings++;
      const measured = (crossings * PCM_RATE) / Math.max(1, end - start);
      if (end - start >= PCM_RATE / 50) found.push(FREQUENCIES.reduce((a, b) => (Math.abs(b - measured) < Math.abs(a - measured) ? b : a)));
    }
    previousLoud = loud;
  }
  return { frequencies: found, loudAtEnd: previousLoud };
}

function pct(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
}

interface HlsRun {
  ts: string;
  segmentSeconds: number;
  listSize: number;
  intervalMs: number;
  seconds: number;
  bursts: number;
  detected: number;
  firstPlaylistMs: number;
  latencyMs: { p50: number; p95: number; max: number; min: number };
  playerEstimateMs: { p50: number; p95: number; liveSyncDurationCount: number };
  machine: { cpus: number; model: string; node: string; loadAverage1m: number };
  command: string;
  samples?: Array<[number, number]>;
}

async function run(): Promise<HlsRun> {
  const dir = mkdtempSync(join(tmpdir(), 'chorus-bench-hls-'));
  const node = await startNode(
    loadConfig({
      CHORUS_HOST: '127.0.0.1',
      CHORUS_PORT: '0',
      LOG_LEVEL: 'warn',
      MEDIASOUP_WORKERS: '1',
      RTC_LISTEN_IP: '127.0.0.1',
      RTC_ANNOUNCED_ADDRESS: '127.0.0.1',
      CHORUS_WEB_DIR: '/nonexistent',
      CHORUS_API_KEYS: `bench:${'b'.repeat(40)}`,
      CHORUS_HLS_DIR: dir,
      CHORUS_HLS_SEGMENT_SECONDS: String(segmentSeconds),
      CHORUS_HLS_LIST_SIZE: String(listSize),
    }),
  );
  const emissions: Emission[] = [];
  const source = burstSource(emissions);
  const broadcaster = new ChorusClient({
    url: node.url,
    roomId: ROOM,
    token: await node.tokens.mint({ room: ROOM, identity: 'bench', role: 'broadcaster' }),
    handlerFactory: webrtcHandlerFactory(),
    socket: { transports: ['websocket'] },
  });
  try {
    await broadcaster.join();
    await broadcaster.publish(source.track);
    const token = await node.tokens.mint({ room: ROOM, identity: 'bench-listener', role: 'listener' }, 3600);
    const playlistUrl = `${node.url}/hls/${ROOM}/index.m3u8?token=${token}`;
    const asked = Date.now();
    const first = await fetch(playlistUrl);
    if (first.status !== 200) throw new Error(`playlist: HTTP ${first.status} ${await first.text()}`);
    const firstPlaylistMs = Date.now() - asked;
    log(`first playlist after ${firstPlaylistMs} ms; measuring for ${seconds} s`);

    const seen = new Set<number>();
    const latencies: Array<[number, number]> = [];
    const matched = new Set<Emission>();
    let loud = false;
    const startAt = Date.now();
    const end = startAt + seconds * 1000;
    let lastSequence = -1;
    let analysis = Promise.resolve();
    while (Date.now() < end) {
      const text = await (await fetch(playlistUrl)).text();
      const playlist = parse(text) as InstanceType<typeof types.MediaPlaylist>;
      for (const segment of playlist.segments) {
        // Only segments that appear while we watch (the first playlist's backlog is old news).
        if (lastSequence < 0) seen.add(segment.mediaSequenceNumber);
        if (seen.has(segment.mediaSequenceNumber)) continue;
        seen.add(segment.mediaSequenceNumber);
        const response = await fetch(`${node.url}/hls/${ROOM}/${segment.uri}`);
        const body = Buffer.from(await response.arrayBuffer());
        const inHand = Date.now();
        const continues = !segment.discontinuity && segment.mediaSequenceNumber === lastSequence + 1;
        lastSequence = segment.mediaSequenceNumber;
        // Decoding (an ffmpeg process per segment) runs behind the polling, in order, so a slow
        // decode never delays when the next segment is fetched.
        analysis = analysis.then(async () => {
          const found = onsets(await decode(body), continues && loud);
          loud = found.loudAtEnd;
          for (const frequency of found.frequencies) {
            // The latest burst of that pitch emitted before the segment was in hand.
            const emission = [...emissions].reverse().find((e) => e.frequency === frequency && e.at <= inHand && !matched.has(e));
            if (!emission || inHand - emission.at > FREQUENCIES.length * intervalMs) continue;
            matched.add(emission);
            if (emission.at >= startAt) latencies.push([(emission.at - startAt) / 1000, inHand - emission.at]);
          }
        });
      }
      if (lastSequence < 0) lastSequence = playlist.segments.at(-1)?.mediaSequenceNumber ?? 0;
      await new Promise((r) => setTimeout(r, 50));
    }
    await analysis;
    const values = latencies.map(([, v]) => v);
    // Bursts emitted while watching, except the last few seconds' (their segments came too late to see).
    const counted = (e: Emission): boolean => e.at >= startAt && e.at < end - 3000;
    const bursts = emissions.filter(counted).length;
    const liveSyncDurationCount = 3;
    const extra = liveSyncDurationCount * segmentSeconds * 1000;
    return {
      ts: new Date().toISOString(),
      segmentSeconds,
      listSize,
      intervalMs,
      seconds,
      bursts,
      detected: [...matched].filter(counted).length,
      firstPlaylistMs,
      latencyMs: { p50: pct(values, 50), p95: pct(values, 95), max: values.length ? Math.max(...values) : 0, min: values.length ? Math.min(...values) : 0 },
      playerEstimateMs: { p50: pct(values, 50) + extra, p95: pct(values, 95) + extra, liveSyncDurationCount },
      // The machine is shared: a high load average explains a slow run.
      machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version, loadAverage1m: Number(loadavg()[0]!.toFixed(2)) },
      command,
      samples: latencies,
    };
  } finally {
    await broadcaster.close().catch(() => undefined);
    source.stop();
    await node.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function renderHtml(runs: HlsRun[]): string {
  const latest = runs.at(-1)!;
  const samples = latest.samples ?? [];
  const sorted = samples.map(([, v]) => v).sort((a, b) => a - b);
  const overTime = lineChart({
    title: `Latest run: latency of each burst (segments ${latest.segmentSeconds} s)`,
    xLabel: 'burst emitted at (s into the run)',
    yLabel: 'ms',
    series: [{ name: 'emitted → segment in hand', points: samples, line: false }],
  });
  const distribution = lineChart({
    title: 'Latest run: latency distribution',
    xLabel: 'percentile',
    yLabel: 'ms',
    series: [{ name: 'latency', points: sorted.map((v, i) => [((i + 1) / sorted.length) * 100, v] as [number, number]) }],
  });
  const rows = runs
    .map(
      (r) =>
        `<tr><td>${esc(r.ts)}</td><td>${r.segmentSeconds}</td><td>${r.listSize}</td><td>${r.detected} / ${r.bursts}</td><td>${r.latencyMs.p50} / ${r.latencyMs.p95} / ${r.latencyMs.max}</td>` +
        `<td>${r.playerEstimateMs.p50} / ${r.playerEstimateMs.p95}</td><td>${r.firstPlaylistMs}</td><td><code>${esc(r.command)}</code></td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Chorus HLS latency benchmark</title>
<style>body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f3f3f3}svg{margin:8px 16px 8px 0;border:1px solid #eee}</style>
</head><body>
<h1>Chorus HLS latency benchmark</h1>
<p>${runs.length} run(s) from hls.jsonl · machine: ${latest.machine.cpus} × ${esc(latest.machine.model)}, Node ${esc(latest.machine.node)}. A broadcaster (SDK on Node WebRTC) emits a 200 ms tone burst every ${latest.intervalMs} ms plus a random part of a segment (so bursts fall at every point of a segment); the latency of a burst is from its first samples entering the WebRTC audio source to the HLS segment holding its onset being fetched by a client polling the playlist every 50 ms. hls.js plays 3 segments behind the live edge: the player estimate adds 3 × the segment length (not measured).</p>
<div>${overTime}${distribution}</div>
<table><thead><tr><th>time</th><th>segment s</th><th>list</th><th>detected / bursts</th><th>latency p50 / p95 / max ms</th><th>player estimate p50 / p95 ms</th><th>first playlist ms</th><th>command</th></tr></thead>
<tbody>
${rows}
</tbody></table>
</body></html>
`;
}

let exitCode = 0;
try {
  const result = await run();
  const { samples: _s, ...line } = result;
  process.stdout.write(`${JSON.stringify(line)}\n`);
  log(`wrote ${recordRun<HlsRun>(outDir, 'hls', result, renderHtml).html}`);
} catch (error) {
  log(`failed: ${(error as Error).stack ?? String(error)}`);
  exitCode = 1;
}
process.exit(exitCode);
