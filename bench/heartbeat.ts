/**
 * What Socket.IO's heartbeat costs the node, and why: the node's own signaling server alone in a
 * process of its own (bench/lib/heartbeatServer.ts), N idle clients in this one, for each ping
 * interval asked: the server's CPU (% of one core) and wake-ups a second over the window, and
 * from them the cost of one ping and its answer above the longest interval asked (nearly no
 * pings). With engine.io's own timers (`--aligns 0`) each client's ping runs from its own last
 * answer, so the pings come spread over the interval; with a grid (`CHORUS_PING_ALIGN_MS`, the
 * node's default 1000) the pings due in one step go out together. The wake-ups show how many of
 * them the event loop handles at a time. `--spread S` connects the clients over S seconds, as
 * listeners arrive, rather than all at once (which bunches their pings from the start).
 *
 *   npm run bench:heartbeat -- [--clients N] [--intervals MS,...] [--aligns MS,...] [--spread S] [--duration S] [--out DIR]
 *
 * Prints one JSON line (progress to stderr), appends it to <out>/heartbeat.jsonl and rewrites
 * <out>/heartbeat.html.
 */
import { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { io, type Socket } from 'socket.io-client';
import { gitCommit } from './lib/gitCommit.js';
import { clkTck, contextSwitches, readStat, round } from './lib/procstat.js';
import { lineChart } from './lib/report.js';
import { recordRun } from './lib/runLog.js';

const { values: args } = parseArgs({
  options: {
    clients: { type: 'string', default: '200' },
    intervals: { type: 'string', default: '1000,5000,15000,25000,60000,600000' },
    aligns: { type: 'string', default: '0,1000' },
    spread: { type: 'string', default: '0' },
    duration: { type: 'string', default: '20' },
    out: { type: 'string', default: 'bench/results' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
const usageText = 'usage: npm run bench:heartbeat -- [--clients N] [--intervals MS,...] [--aligns MS,...] [--spread S] [--duration S] [--out DIR]';
if (args.help) {
  process.stdout.write(`${usageText}\n`);
  process.exit(0);
}
const clients = Number(args.clients);
const durationS = Number(args.duration);
const intervals = args.intervals.split(',').map(Number);
const aligns = args.aligns.split(',').map(Number);
const spreadS = Number(args.spread);
if (
  !(Number.isInteger(clients) && clients >= 1 && clients <= 5000) ||
  !(Number.isInteger(durationS) && durationS >= 5 && durationS <= 600) ||
  !intervals.every((ms) => Number.isInteger(ms) && ms >= 100) ||
  !aligns.every((ms) => Number.isInteger(ms) && ms >= 0 && ms <= 10_000) ||
  !(spreadS >= 0 && spreadS <= 120)
) {
  process.stderr.write(`--clients 1..5000, --duration 5..600 s, --intervals whole ms >= 100, --aligns whole ms 0..10000, --spread 0..120 s\n${usageText}\n`);
  process.exit(2);
}
const log = (line: string): void => void process.stderr.write(`[heartbeat] ${line}\n`);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const ticksOf = (pid: number): number => readStat(pid)?.ticks ?? 0;

interface Point {
  pingIntervalMs: number;
  /** The grid pings were aligned to; 0: engine.io's own per-connection timers. */
  pingAlignMs: number;
  pingsPerS: number;
  serverCpuPct: number;
  serverWakeupsPerS: number;
  /** Server CPU per ping and answer above the same server with (nearly) no pings, µs (null: too few pings to tell). */
  usPerPing: number | null;
}

interface HeartbeatRun {
  ts: string;
  commit: string | undefined;
  command: string;
  machine: { cpus: number; model: string; node: string };
  clients: number;
  durationS: number;
  /** Seconds the clients' connects were spread over (0: one after another, at once). */
  spreadS?: number;
  points: Point[];
}

async function measure(pingIntervalMs: number, pingAlignMs: number): Promise<Omit<Point, 'usPerPing'>> {
  const server = spawn(process.execPath, ['--import', 'tsx', 'bench/lib/heartbeatServer.ts', String(pingIntervalMs), String(pingAlignMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const sockets: Socket[] = [];
  try {
    const port = await new Promise<number>((resolve, reject) => {
      server.once('exit', (code) => reject(new Error(`the server exited (${code}) before listening`)));
      server.stdout!.once('data', (chunk: Buffer) => resolve((JSON.parse(String(chunk)) as { port: number }).port));
    });
    for (let i = 0; i < clients; i++) {
      const socket = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], reconnection: false });
      sockets.push(socket);
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('connect_error', reject);
      });
      if (spreadS > 0) await sleep((spreadS * 1000) / clients);
    }
    // Past start-up, and past one whole interval where that is short, so the timers run as they will.
    await sleep(Math.min(3000 + pingIntervalMs, 8000));
    const pid = server.pid!;
    const [ticks0, wake0, t0] = [ticksOf(pid), contextSwitches(pid), performance.now()];
    await sleep(durationS * 1000);
    const seconds = (performance.now() - t0) / 1000;
    const dropped = sockets.filter((s) => !s.connected).length;
    if (dropped > 0) throw new Error(`${dropped} clients were dropped during the window`);
    return {
      pingIntervalMs,
      pingAlignMs,
      pingsPerS: round((clients * 1000) / pingIntervalMs, 2),
      serverCpuPct: round(((ticksOf(pid) - ticks0) / clkTck() / seconds) * 100, 2),
      serverWakeupsPerS: round((contextSwitches(pid) - wake0) / seconds, 1),
    };
  } finally {
    for (const socket of sockets) socket.close();
    server.kill();
  }
}

function render(runs: HeartbeatRun[]): string {
  const last = runs.at(-1)!;
  // One line per grid (older runs have no grid: engine.io's own timers).
  const grids = [...new Set(last.points.map((p) => p.pingAlignMs ?? 0))];
  const series = (pick: (p: Point) => number): Array<{ name: string; points: Array<[number, number]> }> =>
    grids.map((grid) => ({
      name: grid > 0 ? `aligned to ${grid} ms` : "engine.io's timers",
      points: last.points.filter((p) => (p.pingAlignMs ?? 0) === grid).map((p) => [p.pingsPerS, pick(p)] as [number, number]),
    }));
  const rows = runs
    .flatMap((r, i) =>
      r.points.map(
        (p) =>
          `<tr><td>${i + 1}</td><td>${r.commit ?? ''}</td><td>${r.clients}</td><td>${r.spreadS ?? 0}</td><td>${p.pingIntervalMs}</td><td>${p.pingAlignMs ?? 0}</td><td>${p.pingsPerS}</td><td>${p.serverCpuPct}</td><td>${p.serverWakeupsPerS}</td><td>${p.usPerPing ?? ''}</td></tr>`,
      ),
    )
    .join('');
  return `<!doctype html><meta charset="utf-8"><title>Chorus heartbeat</title><body style="font-family:sans-serif">
<h1>Socket.IO's heartbeat on the node's signaling server (${last.clients} idle clients, last run)</h1>
${lineChart({ title: 'Server CPU against pings a second', xLabel: 'pings / s', yLabel: '% of a core', series: series((p) => p.serverCpuPct) })}
${lineChart({ title: 'Server wake-ups against pings a second', xLabel: 'pings / s', yLabel: 'wake-ups / s', series: series((p) => p.serverWakeupsPerS) })}
<table border="1" cellpadding="4"><tr><th>run</th><th>commit</th><th>clients</th><th>connects over s</th><th>interval ms</th><th>grid ms</th><th>pings/s</th><th>server %</th><th>wake-ups/s</th><th>µs per ping</th></tr>${rows}</table>`;
}

const measured: Array<Omit<Point, 'usPerPing'>> = [];
for (const align of aligns) {
  for (const ms of intervals) {
    log(`${clients} clients, a ping every ${ms} ms, ${align > 0 ? `aligned to ${align} ms` : "engine.io's own timers"}: measuring ${durationS} s`);
    measured.push(await measure(ms, align));
  }
}
// The reference for each grid: its longest interval asked (nearly no pings in the window).
const baseOf = (p: Omit<Point, 'usPerPing'>): Omit<Point, 'usPerPing'> =>
  measured.filter((q) => q.pingAlignMs === p.pingAlignMs).reduce((a, b) => (b.pingIntervalMs > a.pingIntervalMs ? b : a));
const run: HeartbeatRun = {
  ts: new Date().toISOString(),
  commit: gitCommit(),
  command: `npm run bench:heartbeat -- --clients ${clients} --intervals ${intervals.join(',')} --aligns ${aligns.join(',')} --spread ${spreadS} --duration ${durationS}`,
  machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
  clients,
  durationS,
  spreadS,
  points: measured.map((p) => {
    const base = baseOf(p);
    // Only where the pings stand well above the run-to-run noise of an idle process (±0.2 % here).
    return { ...p, usPerPing: p.pingsPerS - base.pingsPerS < 10 ? null : round(((p.serverCpuPct - base.serverCpuPct) / 100 / (p.pingsPerS - base.pingsPerS)) * 1e6, 1) };
  }),
};
const written = recordRun(args.out, 'heartbeat', run, render);
process.stdout.write(`${JSON.stringify(run)}\n`);
log(`recorded in ${written.jsonl}; chart ${written.html}`);
process.exit(0);
