/**
 * What a broadcast's listeners hear over a lossy downlink, for each audio packet size: a Chorus
 * node in its own process (as `npm start` runs it), a speaker publishing a tone or the speech
 * sample, and K real SDK listeners (libwebrtc: NetEq decodes and conceals) in a network namespace
 * whose incoming UDP loses a given share of datagrams at random. For each packet size the node is
 * started with that `CHORUS_BROADCAST_FRAME_MS`; for each loss the listeners are measured over a
 * window: packets lost, the share of played-out audio NetEq had to make up (concealed), how
 * often and for how long, and the jitter buffer's delay.
 *
 *   npm run bench:loss -- [--frame-ms 20,40,60] [--loss 0,2,5,10] [--listeners K] [--duration S]
 *       [--settle S] [--source tone|speech] [--out DIR]
 *
 * Needs root, iproute2 and nftables (scripts/setup.sh --test installs them). The namespace's link
 * is a veth pair: under a millisecond of round trip, no jitter, loss independent packet by packet
 * (no bursts; this kernel has no netem). Prints one JSON line to stdout (progress to stderr),
 * appends it to <out>/loss.jsonl and rewrites <out>/loss.html.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { audioWindow, type AudioCounters } from '../test/support/audioCounters.js';
import { createNetns, type Netns } from '../test/support/netns.js';
import { startRemoteListeners, type RemoteListeners } from '../test/support/remoteListeners.js';
import { stopChild } from '../test/support/stopChild.js';
import { loadConfig } from '../src/config/config.js';
import { TokenService } from '../src/auth/tokens.js';
import { startBenchNode, type BenchNode } from './lib/benchNode.js';
import { gitCommit } from './lib/gitCommit.js';
import type { BroadcasterProcConfig, ChildToParent } from './lib/messages.js';
import { cli } from './lib/cli.js';
import { lineChart } from './lib/report.js';
import { recordRun } from './lib/runLog.js';
import { round } from './lib/procstat.js';

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(benchDir, '..');

const { values: args } = parseArgs({
  options: {
    'frame-ms': { type: 'string', default: '20,40,60' },
    loss: { type: 'string', default: '0,2,5,10' },
    listeners: { type: 'string', default: '4' },
    duration: { type: 'string', default: '30' },
    settle: { type: 'string', default: '3' },
    source: { type: 'string', default: 'tone' },
    out: { type: 'string', default: 'bench/results' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
const usageText = 'usage: npm run bench:loss -- [--frame-ms 20,40,60] [--loss 0,2,5,10] [--listeners K] [--duration S] [--settle S] [--source tone|speech] [--out DIR]';
const { fail, whole } = cli(usageText, args.help);
// Each packet size is checked by the node's own settings, so the bench accepts what the node does.
const frames = args['frame-ms'].split(',').map((v) => {
  try {
    return loadConfig({ CHORUS_BROADCAST_FRAME_MS: v.trim() }).media.broadcastFrameMs;
  } catch {
    return fail(`--frame-ms takes packet sizes the node accepts (10, 20, 40, 60), not ${v}`);
  }
});
const losses = args.loss.split(',').map((v) => {
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 && n <= 50 ? n : fail(`--loss takes percentages from 0 to 50, not ${v}`);
});
const listeners = whole('listeners', args.listeners, 1, 50);
const durationS = whole('duration', args.duration, 5, 600);
const settleS = whole('settle', args.settle, 0, 60);
const source = args.source === 'tone' || args.source === 'speech' ? args.source : fail('--source must be tone or speech');

const log = (line: string): void => void process.stderr.write(`[loss ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface LossPoint {
  frameMs: number;
  /** The share of datagrams dropped on the way in (asked of nftables). */
  dropPct: number;
  /** Packets the listeners never got, % of those sent to them (inbound-rtp packetsLost). */
  packetsLostPct: number;
  /** Played-out audio that NetEq made up, % of all it played (concealedSamples / totalSamplesReceived). */
  concealedPct: number;
  concealmentsPerMin: number;
  /** Mean length of one concealment, ms of audio. */
  concealmentMeanMs: number;
  /** Mean time a sample waited in the jitter buffer, ms: the listener's own playout delay. */
  jitterBufferMs: number;
}

export interface LossRun {
  ts: string;
  commit: string | undefined;
  command: string;
  machine: { cpus: number; model: string; node: string };
  source: 'tone' | 'speech';
  listeners: number;
  durationS: number;
  points: LossPoint[];
}

/** The window's figures, summed over the listeners. */
function point(frameMs: number, dropPct: number, w: AudioCounters, listenerCount: number, seconds: number): LossPoint {
  return {
    frameMs,
    dropPct,
    packetsLostPct: w.received + w.lost > 0 ? round((100 * w.lost) / (w.received + w.lost), 2) : 0,
    concealedPct: w.samples > 0 ? round((100 * w.concealed) / w.samples, 2) : 0,
    concealmentsPerMin: round((w.concealmentEvents / listenerCount / seconds) * 60, 1),
    concealmentMeanMs: w.concealmentEvents > 0 ? round(w.concealed / w.concealmentEvents / 48, 1) : 0,
    jitterBufferMs: w.jitterBufferEmitted > 0 ? round((1000 * w.jitterBufferDelayS) / w.jitterBufferEmitted, 1) : 0,
  };
}

function render(runs: LossRun[]): string {
  const last = runs.at(-1);
  const series = (pick: (p: LossPoint) => number) =>
    [...new Set(last?.points.map((p) => p.frameMs))].map((frameMs) => ({
      name: `${frameMs} ms packets`,
      points: (last?.points ?? []).filter((p) => p.frameMs === frameMs).map((p): [number, number] => [p.dropPct, pick(p)]),
    }));
  const rows = runs
    .flatMap((r) => r.points.map((p) => `<tr><td>${r.ts}</td><td>${r.commit ?? ''}</td><td>${r.source}</td><td>${p.frameMs}</td><td>${p.dropPct}</td><td>${p.packetsLostPct}</td><td>${p.concealedPct}</td><td>${p.concealmentsPerMin}</td><td>${p.concealmentMeanMs}</td><td>${p.jitterBufferMs}</td></tr>`))
    .join('');
  return `<!doctype html><meta charset="utf-8"><title>Chorus: listeners on a lossy link</title><body style="font-family:sans-serif">
<h1>What listeners hear over a lossy downlink</h1><p>The newest run's points; every run in the table.</p>
${lineChart({ title: 'Audio made up by the listener (concealed), by datagrams dropped', xLabel: 'datagrams dropped (%)', yLabel: 'concealed (% of audio)', series: series((p) => p.concealedPct) })}
${lineChart({ title: 'Jitter buffer delay', xLabel: 'datagrams dropped (%)', yLabel: 'ms', series: series((p) => p.jitterBufferMs) })}
<table border="1" cellpadding="4"><tr><th>when</th><th>commit</th><th>source</th><th>packet ms</th><th>dropped %</th><th>packets lost %</th><th>concealed %</th><th>concealments / min</th><th>mean concealment ms</th><th>jitter buffer ms</th></tr>${rows}</table>`;
}

let netns: Netns | undefined;
let node: BenchNode | undefined;
let broadcaster: ChildProcess | undefined;
let remote: RemoteListeners | undefined;

async function stopRoom(): Promise<void> {
  const speaker = broadcaster;
  await Promise.all([remote?.close(), speaker && stopChild(speaker, () => speaker.connected && speaker.send({ type: 'close' }))]);
  [remote, broadcaster] = [undefined, undefined];
  await node?.stop();
  node = undefined;
}

async function measure(frameMs: number): Promise<LossPoint[]> {
  const ns = netns!;
  const secret = `chorus-bench-${randomBytes(24).toString('hex')}`;
  const roomId = `loss-${randomBytes(4).toString('hex')}`;
  node = await startBenchNode({ CHORUS_TOKEN_SECRET: secret, CHORUS_HOST: ns.hostIp, RTC_LISTEN_IP: ns.hostIp, RTC_ANNOUNCED_ADDRESS: ns.hostIp, CHORUS_BROADCAST_FRAME_MS: String(frameMs) }, log);
  log(`${frameMs} ms packets: node ready at ${node.url}`);
  const bcConfig: BroadcasterProcConfig = { url: node.url, roomId, secret, frequency: 440, source };
  const speaker = fork(join(benchDir, 'broadcaster.ts'), [JSON.stringify(bcConfig)], { cwd: repoRoot, execArgv: ['--import', 'tsx'], stdio: ['ignore', 2, 2, 'ipc'] });
  broadcaster = speaker;
  await new Promise<void>((ok, reject) => {
    const timer = setTimeout(() => reject(new Error('the speaker was not publishing within 30 s')), 30_000);
    speaker.on('message', (m: ChildToParent) => {
      if (m.type === 'log') log(`speaker: ${m.message}`);
      if (m.type === 'publishing') {
        clearTimeout(timer);
        ok();
      }
    });
    speaker.once('exit', (code) => reject(new Error(`the speaker exited (code ${code})`)));
  });
  // The listeners' tokens are minted here: the secret stays out of their command line.
  const mint = new TokenService(new TextEncoder().encode(secret), 3600);
  const tokens = await Promise.all(Array.from({ length: listeners }, (_, i) => mint.mint({ room: roomId, identity: `loss-listener-${i}`, role: 'listener' })));
  remote = await startRemoteListeners(ns, { url: node.url, roomId, tokens, maxLifetimeMs: (losses.length * (durationS + settleS) + 120) * 1000 });
  log(`${listeners} listener(s) in namespace ${ns.name} play the speaker`);
  const points: LossPoint[] = [];
  for (const drop of losses) {
    await ns.loss(drop);
    await sleep(settleS * 1000);
    const before = await remote.sample();
    const from = performance.now();
    await sleep(durationS * 1000);
    const after = await remote.sample();
    const p = point(frameMs, drop, audioWindow(before, after), listeners, (performance.now() - from) / 1000);
    log(`${frameMs} ms, ${drop} % dropped: ${JSON.stringify(p)}`);
    points.push(p);
  }
  await ns.loss(undefined);
  await stopRoom();
  return points;
}

let exitCode = 0;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: cleaning up`);
    void stopRoom()
      .then(() => netns?.close())
      .finally(() => process.exit(130));
  });
}
try {
  netns = await createNetns();
  const points: LossPoint[] = [];
  for (const frameMs of frames) points.push(...(await measure(frameMs)));
  const argv = process.argv.slice(2).join(' ');
  const run: LossRun = {
    ts: new Date().toISOString(),
    commit: gitCommit(),
    command: process.env['npm_lifecycle_event'] === 'bench:loss' ? `npm run bench:loss -- ${argv}`.trim() : `tsx bench/loss.ts ${argv}`,
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
    source,
    listeners,
    durationS,
    points,
  };
  const written = recordRun(args.out, 'loss', run, render);
  process.stdout.write(`${JSON.stringify(run)}\n`);
  log(`recorded in ${written.jsonl}; chart ${written.html}`);
} catch (error) {
  log(`FAILED: ${error instanceof Error ? error.message : String(error)}`);
  exitCode = 1;
} finally {
  await stopRoom().catch(() => undefined);
  await netns?.close();
}
process.exit(exitCode);
