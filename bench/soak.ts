/**
 * Soak: does a node give back what it takes? For M minutes, rooms open and close over and over —
 * a broadcaster publishes a tone, listeners join, hear it and leave, and a ghost session creates
 * a transport it never connects (the stale-session sweep must remove it) and then just vanishes —
 * while the node's RSS, its mediasoup workers' RSS and its open file descriptors are sampled.
 * Memory that only grows shows as a positive slope over the second half of the run.
 *
 *   npm run bench:soak -- --minutes M [--listeners L] [--interval S] [--out DIR]
 *
 * Prints one JSON line and writes <out>/soak-<time>.json and <out>/soak.html (RSS and fds over time).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { io } from 'socket.io-client';
import { ApiKeyring } from '../src/auth/apiKeys.js';
import { TokenService } from '../src/auth/tokens.js';
import { ChorusClient } from '../src/client/chorusClient.js';
import { toneTrack, webrtcHandlerFactory } from '../test/support/nodePeer.js';
import { startBenchNode, type BenchNode } from './lib/benchNode.js';
import { allStats, readRssKiB, round, tree } from './lib/procstat.js';
import { lineChart } from './lib/report.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    listeners: { type: 'string', default: '8' },
    interval: { type: 'string', default: '5' },
    out: { type: 'string', default: join(repoRoot, 'bench/results') },
  },
});
const minutes = Number(args.minutes);
const listenersPerCycle = Number(args.listeners);
const intervalS = Number(args.interval);
if (!(minutes > 0) || !(listenersPerCycle >= 1) || !(intervalS >= 1)) {
  process.stderr.write('usage: npm run bench:soak -- --minutes M [--listeners L] [--interval S] [--out DIR]\n');
  process.exit(2);
}
const log = (line: string): void => void process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const secret = randomBytes(24).toString('hex');
const keys = ApiKeyring.parse(`soak:${secret}`);
const tokens = new TokenService(keys, 600, 3600);
const handlerFactory = webrtcHandlerFactory();

interface Sample {
  t: number;
  nodeRssMiB: number;
  workersRssMiB: number;
  fds: number;
  cycles: number;
}

function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

function sample(node: BenchNode, t0: number, cycles: number): Sample {
  const pid = node.proc.pid!;
  node.rememberTree();
  const workers = tree(pid, allStats()).filter((s) => s.pid !== pid);
  return {
    t: round((Date.now() - t0) / 1000, 1),
    nodeRssMiB: round(readRssKiB(pid) / 1024, 1),
    workersRssMiB: round(workers.reduce((n, w) => n + readRssKiB(w.pid), 0) / 1024, 1),
    fds: fdCount(pid),
    cycles,
  };
}

/** Least-squares slope of y over x (per second), or 0 with fewer than two points. */
function slope(points: Array<[number, number]>): number {
  if (points.length < 2) return 0;
  const n = points.length;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  const num = points.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0);
  const den = points.reduce((s, p) => s + (p[0] - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

async function client(url: string, room: string, role: 'broadcaster' | 'listener'): Promise<ChorusClient> {
  const token = await tokens.mint({ room, identity: `${role}-${randomBytes(4).toString('hex')}`, role });
  const c = new ChorusClient({ url, roomId: room, token, handlerFactory, socket: { transports: ['websocket'] }, retry: { initialMs: 200, maxMs: 1000 } });
  await c.join();
  return c;
}

/** A session that joins and creates a transport it never connects: the stale sweep's work. */
async function ghost(url: string, room: string): Promise<() => void> {
  const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
  await new Promise<void>((ok, fail) => {
    socket.once('connect', ok);
    socket.once('connect_error', fail);
  });
  const token = await tokens.mint({ room, identity: `ghost-${randomBytes(4).toString('hex')}`, role: 'listener' });
  await socket.timeout(5000).emitWithAck('join', { roomId: room, token });
  await socket.timeout(5000).emitWithAck('createTransport', { direction: 'recv' });
  return () => socket.disconnect();
}

async function cycle(url: string, n: number): Promise<{ joins: number; failures: number }> {
  const room = `soak-${n}`;
  const tone = toneTrack(440);
  let failures = 0;
  const broadcaster = await client(url, room, 'broadcaster');
  await broadcaster.publish(tone.track);
  const listeners = await Promise.all(
    Array.from({ length: listenersPerCycle }, async () => {
      const l = await client(url, room, 'listener');
      const heard = new Promise<boolean>((ok) => {
        const timer = setTimeout(() => ok(false), 15_000);
        l.once('track', () => {
          clearTimeout(timer);
          ok(true);
        });
      });
      if (!(await heard)) failures++;
      return l;
    }),
  );
  const dropGhost = await ghost(url, room);
  await Promise.all(listeners.map((l) => l.close()));
  await broadcaster.close();
  tone.stop();
  dropGhost();
  return { joins: listenersPerCycle + 2, failures };
}

async function adminCounts(url: string): Promise<{ rooms: number; peers: number }> {
  const res = await fetch(`${url}/api/admin/rooms`, { headers: { authorization: `Basic ${Buffer.from(`soak:${secret}`).toString('base64')}` } });
  const body = (await res.json()) as { rooms: Array<{ peers: number }> };
  return { rooms: body.rooms.length, peers: body.rooms.reduce((n, r) => n + r.peers, 0) };
}

async function main(): Promise<void> {
  const node = await startBenchNode(
    { CHORUS_API_KEYS: `soak:${secret}`, MEDIASOUP_WORKERS: '2', CHORUS_STALE_PEER_MS: '3000' },
    log,
  );
  const stopAll = async (): Promise<void> => void (await node.stop());
  process.once('SIGINT', () => void stopAll().finally(() => process.exit(130)));
  try {
    const t0 = Date.now();
    const end = t0 + minutes * 60_000;
    const samples: Sample[] = [];
    let cycles = 0;
    let joins = 0;
    let failures = 0;
    const timer = setInterval(() => samples.push(sample(node, t0, cycles)), intervalS * 1000);
    samples.push(sample(node, t0, 0));
    log(`soaking for ${minutes} min: ${listenersPerCycle} listeners + broadcaster + ghost per cycle`);
    while (Date.now() < end) {
      const r = await cycle(node.url, cycles).catch((error: unknown) => {
        log(`cycle ${cycles} failed: ${error instanceof Error ? error.message : String(error)}`);
        return { joins: 0, failures: 1 };
      });
      cycles++;
      joins += r.joins;
      failures += r.failures;
      if (cycles % 10 === 0) log(`${cycles} cycles, ${joins} joins, ${failures} failures`);
    }
    clearInterval(timer);
    // Ghosts must be gone within the stale timeout (their sockets are cut without a leave).
    let left = await adminCounts(node.url);
    for (let waited = 0; waited < 20_000 && (left.rooms > 0 || left.peers > 0); waited += 500) {
      await sleep(500);
      left = await adminCounts(node.url);
    }
    samples.push(sample(node, t0, cycles));
    const secondHalf = samples.filter((s) => s.t >= (samples.at(-1)!.t / 2));
    const result = {
      minutes,
      listenersPerCycle,
      cycles,
      joins,
      failures,
      roomsLeft: left.rooms,
      peersLeft: left.peers,
      node: {
        rssStartMiB: samples[1]?.nodeRssMiB ?? samples[0]!.nodeRssMiB,
        rssEndMiB: samples.at(-1)!.nodeRssMiB,
        rssSlopeMiBPerHour: round(slope(secondHalf.map((s) => [s.t, s.nodeRssMiB])) * 3600, 1),
        fdsStart: samples[0]!.fds,
        fdsEnd: samples.at(-1)!.fds,
        fdsSlopePerHour: round(slope(secondHalf.map((s) => [s.t, s.fds])) * 3600, 1),
      },
      workers: {
        rssStartMiB: samples[1]?.workersRssMiB ?? samples[0]!.workersRssMiB,
        rssEndMiB: samples.at(-1)!.workersRssMiB,
        rssSlopeMiBPerHour: round(slope(secondHalf.map((s) => [s.t, s.workersRssMiB])) * 3600, 1),
      },
      samples: samples.length,
      machine: { cpus: cpus().length, model: cpus()[0]?.model.replace(/\s+\d+-Core Processor$/, '').trim() ?? '?', node: process.version },
      command: `npm run bench:soak -- ${process.argv.slice(2).join(' ')}`.trim(),
      commit: (() => {
        try {
          return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim();
        } catch {
          return 'unknown';
        }
      })(),
      ts: new Date().toISOString(),
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    mkdirSync(args.out!, { recursive: true });
    const stamp = result.ts.replace(/[:.]/g, '-');
    writeFileSync(join(args.out!, `soak-${stamp}.json`), JSON.stringify({ ...result, series: samples }, null, 1));
    const chart = (title: string, yLabel: string, series: Array<{ name: string; key: keyof Sample }>): string =>
      lineChart({ title, xLabel: 'seconds', yLabel, series: series.map((s) => ({ name: s.name, points: samples.map((x) => [x.t, x[s.key]] as [number, number]) })) });
    writeFileSync(
      join(args.out!, 'soak.html'),
      `<!doctype html><meta charset="utf-8"><title>Chorus soak</title><body style="font-family:sans-serif"><h1>Soak: ${minutes} min, ${cycles} cycles, ${joins} joins</h1><pre>${result.command}\n${JSON.stringify({ node: result.node, workers: result.workers, roomsLeft: result.roomsLeft, peersLeft: result.peersLeft })}</pre>` +
        chart('RSS over time', 'MiB', [{ name: 'node', key: 'nodeRssMiB' }, { name: 'mediasoup workers', key: 'workersRssMiB' }]) +
        chart('Open file descriptors (node)', 'fds', [{ name: 'fds', key: 'fds' }]) +
        chart('Cycles completed', 'cycles', [{ name: 'cycles', key: 'cycles' }]),
    );
    log(`wrote ${join(args.out!, 'soak.html')}`);
  } finally {
    await stopAll();
  }
}

// Exit explicitly: @roamhq/wrtc's native finalizers abort the process if they run during Node's
// own environment teardown (after the JSON line is out, but with a core dump and exit code 134).
main().then(
  () => process.exit(0),
  (error: unknown) => {
    log(`failed: ${error instanceof Error ? error.stack : String(error)}`);
    process.exit(1);
  },
);
