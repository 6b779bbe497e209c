/**
 * Call benchmark: C calls of P participants on one Chorus node (its own process, so its CPU is
 * measured apart), every participant publishing a tone and a camera in three VP8 simulcast
 * layers and receiving everyone else by a grid policy (every tile small, so the low layer, and
 * the active speaker large).
 *
 * Participants are light by default (bench/callLight.ts): pre-encoded Opus and VP8 sent as RTP
 * over werift, received without decoding, so the load generator can hold fifty. With
 * `--publisher sdk` each is the real SDK on Node WebRTC (bench/callParticipants.ts): encoders,
 * decoders and all, which saturates this machine's load generator near ten participants.
 *
 *   npm run bench:call -- --calls C --participants P [--nodes K] [--publisher light|sdk] [--procs K]
 *       [--duration S] [--audio-only] [--width W --height H --fps F] [--out DIR]
 *
 * Prints one JSON line (progress on stderr), appends it to <out>/call-results.jsonl and rewrites
 * <out>/call.html (an inline-SVG chart over every run there). With `--nodes K` > 1 the server is
 * K nodes behind nginx with Redis (test/support/cluster.ts); participants enter through nginx and
 * follow the node's WRONG_NODE to the one holding their call, and server CPU is the nodes' sum.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as hdr from 'hdr-histogram-js';
import type { ParticipantsConfig } from './lib/callMessages.js';
import { broadcast, cli, fromHistogram, percentile, startSampling, startServers, starvation, waitFor } from './lib/callHarness.js';
import { gitCommit } from './lib/gitCommit.js';
import { prepareLightMedia } from './lib/lightMedia.js';
import { round } from './lib/procstat.js';
import { readRuns } from './lib/runLog.js';

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(benchDir, '..');

const { values: args } = parseArgs({
  options: {
    calls: { type: 'string', default: '1' },
    participants: { type: 'string' },
    procs: { type: 'string' },
    publisher: { type: 'string', default: 'light' },
    nodes: { type: 'string', default: '1' },
    duration: { type: 'string', default: '15' },
    settle: { type: 'string', default: '4' },
    width: { type: 'string', default: '640' },
    height: { type: 'string', default: '360' },
    fps: { type: 'string', default: '15' },
    'audio-only': { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench/results' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
const usageText = 'usage: npm run bench:call -- --calls C --participants P [--nodes K] [--publisher light|sdk] [--procs K] [--duration S] [--settle S] [--audio-only] [--width W --height H --fps F] [--out DIR]';
const { int, fail, help } = cli(usageText);
if (args.help || !args.participants) help(args.help);
const C = int('calls', args.calls, 1);
const P = int('participants', args.participants, 2);
const NODES = int('nodes', args.nodes, 1);
if (args.publisher !== 'light' && args.publisher !== 'sdk') fail('--publisher must be light or sdk');
const light = args.publisher === 'light';
const total = C * P;
// What a load-generator process can hold is set by the streams it receives: a light one takes
// about 1200 (one core, werift's SRTP in JavaScript) and is given 400; an SDK one decodes, and is
// given 10 participants.
const streamsEach = P - 1;
const K = Math.min(total, args.procs ? int('procs', args.procs, 1) : Math.max(1, light ? Math.ceil((total * streamsEach * (args['audio-only'] ? 1 : 2)) / 400) : Math.ceil(total / 10)));
const durationS = int('duration', args.duration, 1);
const settleS = int('settle', args.settle, 0);
const video = !args['audio-only'];
const width = int('width', args.width, 64);
const height = int('height', args.height, 36);
const fps = int('fps', args.fps, 1);
const outDir = resolve(repoRoot, args.out);
const log = (line: string): void => void process.stderr.write(`[bench:call] ${line}\n`);

async function main(): Promise<void> {
  const node = await startServers({ nodes: NODES, kind: 'call', env: { MEDIASOUP_WORKERS: '2', CHORUS_CALL_MAX_PARTICIPANTS: String(Math.max(50, P)), RTC_INITIAL_BITRATE: '1500000' }, log });
  const children: ChildProcess[] = [];
  let sampling: ReturnType<typeof startSampling> | undefined;
  try {
    const media = light && video ? await prepareLightMedia(join(tmpdir(), 'chorus-bench-media'), { width, height, fps, seconds: 10 }) : undefined;
    const audioOnlyMedia = light && !video ? await prepareLightMedia(join(tmpdir(), 'chorus-bench-media'), { width: 64, height: 36, fps: 1, seconds: 10 }) : undefined;
    const specs = await Promise.all(
      Array.from({ length: total }, async (_, i) => {
        const room = `bench-call-${Math.floor(i / P)}`;
        return { room, identity: `p${i}`, token: await node.mint(room, `p${i}`, 'participant') };
      }),
    );
    for (let k = 0; k < K; k++) {
      const config: ParticipantsConfig = {
        url: node.url,
        secret: '',
        participants: specs.filter((_, i) => i % K === k),
        video,
        width,
        height,
        fps,
        tile: { width: Math.round(width / 4), height: Math.round(height / 4) },
        speaker: { width, height },
        media: media ?? audioOnlyMedia,
      };
      children.push(fork(join(benchDir, light ? 'callLight.ts' : 'callParticipants.ts'), [JSON.stringify(config)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    }
    // The node at rest (its records database included): per-participant memory is what joins add.
    sampling = startSampling(node, () => children);
    const joining = waitFor(children, 'joined', total, 60_000 + 4000 * Math.ceil(total / K));
    broadcast(children, { type: 'join' });
    const joins = await joining;
    const failed = joins.filter((j) => j.error);
    log(`${joins.length - failed.length}/${total} joined; settling ${settleS} s`);
    await new Promise((r) => setTimeout(r, settleS * 1000));
    const measuring = waitFor(children, 'measured', K, (durationS + 60) * 1000);
    const from = performance.now();
    broadcast(children, { type: 'measure-start' });
    await new Promise((r) => setTimeout(r, durationS * 1000));
    broadcast(children, { type: 'measure-stop' });
    const measured = await measuring;
    const to = performance.now();
    const { server, ...load } = sampling.figures(from, to);
    const latencies = measured.flatMap((m) => m.latencies);
    // Light participants count every packet's age into histograms; merged here.
    const merged = { audio: hdr.build(), video: hdr.build() };
    for (const m of measured) {
      if (!m.latencyHistograms) continue;
      merged.audio.add(hdr.decodeFromCompressedBase64(m.latencyHistograms.audio));
      merged.video.add(hdr.decodeFromCompressedBase64(m.latencyHistograms.video));
    }
    const all = hdr.build();
    all.add(merged.audio);
    all.add(merged.video);
    const packetsReceived = measured.reduce((n, m) => n + m.packetsReceived, 0);
    const packetsLost = measured.reduce((n, m) => n + m.packetsLost, 0);
    const bytes = measured.reduce((n, m) => n + m.bytesReceived, 0);
    const windowS = Math.max(...measured.map((m) => m.windowMs)) / 1000;
    // Each participant receives every other's microphone and camera.
    const forwarded = C * P * (P - 1) * (video ? 2 : 1);
    const joinMs = joins.filter((j) => !j.error).map((j) => j.joinMs);
    const allMediaMs = joins.flatMap((j) => (j.error || j.allMediaMs === null ? [] : [j.allMediaMs]));
    const record = {
      bench: 'call',
      ts: new Date().toISOString(),
      commit: gitCommit(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model },
      calls: C,
      participants: P,
      publisher: light ? 'light' : 'sdk',
      nodes: NODES,
      procs: K,
      video: video ? { width, height, fps, layers: 3 } : false,
      durationS: round(windowS, 1),
      joins: { ok: joinMs.length, failed: failed.length, p50Ms: round(percentile(joinMs, 50) ?? 0), p95Ms: round(percentile(joinMs, 95) ?? 0) },
      // Everyone in the call heard and seen (first packet of each track present at join).
      allMediaMs: { samples: allMediaMs.length, p50: round(percentile(allMediaMs, 50) ?? 0), p95: round(percentile(allMediaMs, 95) ?? 0) },
      latencyMs: light
        ? { ...fromHistogram(all), audio: fromHistogram(merged.audio), video: fromHistogram(merged.video) }
        : { samples: latencies.length, p50: percentile(latencies, 50), p99: percentile(latencies, 99) },
      // Every participant subscribed to every other's tracks: received should equal expected.
      streams: { expected: forwarded, subscribed: measured.reduce((n, m) => n + m.streams, 0) },
      loss: packetsReceived + packetsLost > 0 ? round(packetsLost / (packetsReceived + packetsLost), 5) : null,
      freezes: measured.reduce((n, m) => n + m.freezes, 0),
      ...(light ? { missingCaptureTime: measured.reduce((n, m) => n + (m.missingCaptureTime ?? 0), 0), subscribeFailures: measured.reduce((n, m) => n + (m.subscribeFailures ?? 0), 0) } : {}),
      // Light participants do not decode: frames are those received whole (their last packet).
      [light ? 'framesReceived' : 'framesDecoded']: measured.reduce((n, m) => n + m.frames, 0),
      egressMbps: round((bytes * 8) / windowS / 1e6, 2),
      server: {
        cpuPct: server.cpuPct,
        cpuPctPerParticipant: round(server.cpuPct / total, 3),
        cpuPctPerForwardedStream: round(server.cpuPct / forwarded, 4),
        rssMiB: server.rssMiB,
        idleRssMiB: server.idleRssMiB,
        workerRssMiB: server.workerRssMiB,
        workerRssMiBPerParticipant: round(server.workerRssGrowthMiB / total, 2),
        ...(server.cpuPctPerNode ? { cpuPctPerNode: server.cpuPctPerNode } : {}),
        procs: server.procs,
      },
      ...load,
    };
    // A run whose load generator or machine ran out of CPU measures the machine, not the SFU.
    const problems = starvation(record, record.streams, failed.length);
    Object.assign(record, { valid: problems.length === 0, problems });
    process.stdout.write(`${JSON.stringify(record)}\n`);
    mkdirSync(outDir, { recursive: true });
    appendFileSync(join(outDir, 'call-results.jsonl'), `${JSON.stringify(record)}\n`);
    const runs = readRuns<typeof record>(join(outDir, 'call-results.jsonl'));
    writeFileSync(join(outDir, 'call.html'), chart(runs));
    log(`wrote ${join(outDir, 'call-results.jsonl')} and ${join(outDir, 'call.html')}`);
    const closing = waitFor(children, 'closed', K, 30_000).catch(() => []);
    broadcast(children, { type: 'close' });
    await closing;
  } finally {
    // On every path: a sampler left ticking would keep this process alive after a failed run.
    sampling?.stop();
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await node.stop();
  }
}

/** One bar group per run: latency p50/p99 (ms) and server CPU per participant (% of a core × 10). */
function chart(runs: Array<{ calls: number; participants: number; video: unknown; latencyMs: { p50: number | null; p99: number | null }; server: { cpuPctPerParticipant: number }; joins: { p95Ms: number } }>): string {
  const barW = 14;
  const groupW = barW * 4 + 20;
  const height = 260;
  const max = Math.max(1, ...runs.flatMap((r) => [r.latencyMs.p99 ?? 0, r.joins.p95Ms / 10, r.server.cpuPctPerParticipant * 10]));
  const y = (v: number): number => height - 30 - (v / max) * (height - 60);
  const bars = runs
    .map((r, i) => {
      const x = 40 + i * groupW;
      const values = [
        [r.latencyMs.p50 ?? 0, '#1c64d8'],
        [r.latencyMs.p99 ?? 0, '#7aa7f0'],
        [r.joins.p95Ms / 10, '#2e7d32'],
        [r.server.cpuPctPerParticipant * 10, '#c62828'],
      ] as const;
      return (
        values.map(([v, colour], j) => `<rect x="${x + j * barW}" y="${y(v)}" width="${barW - 2}" height="${height - 30 - y(v)}" fill="${colour}"><title>${v}</title></rect>`).join('') +
        `<text x="${x}" y="${height - 12}" font-size="10">${r.calls}×${r.participants}${r.video ? '' : ' a'}</text>`
      );
    })
    .join('');
  return `<!doctype html><meta charset="utf-8"><title>bench:call</title>
<h1>bench:call</h1>
<p>Per run (calls × participants; "a" = audio only): media latency p50 and p99 (ms, blue), join p95 (ms ÷ 10, green), server CPU per participant (% of a core × 10, red).</p>
<svg xmlns="http://www.w3.org/2000/svg" width="${80 + runs.length * groupW}" height="${height}">${bars}<line x1="35" x2="${60 + runs.length * groupW}" y1="${height - 30}" y2="${height - 30}" stroke="#999"/></svg>
<pre>${runs.map((r) => JSON.stringify(r)).join('\n')}</pre>`;
}

main().catch((error: unknown) => {
  log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
});
