/**
 * What a node costs doing nothing: a Chorus node (embedded defaults: memory state, embedded
 * records) started in its own process, left alone for a settle time, then measured over a window:
 * CPU of the node process, of its records process (the embedded database) and of its mediasoup
 * workers (% of one core), and how often the threads of the node and of the workers woke
 * (context switches a second, voluntary and not, summed over every thread).
 *
 *   npm run bench:idle -- [--duration S] [--settle S] [--workers W] [--out DIR]
 *
 * Prints one JSON line to stdout (progress to stderr), appends it to <out>/idle.jsonl and
 * rewrites <out>/idle.html (every run, in order, with its commit).
 */
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { startBenchNode } from './lib/benchNode.js';
import { gitCommit } from './lib/gitCommit.js';
import { TreeSampler, busiestThreads, contextSwitches, machineUsagePct, round, threadTicks, usage, workerPids } from './lib/procstat.js';
import { lineChart } from './lib/report.js';
import { recordRun } from './lib/runLog.js';
import { fetchGcPauses, gcPausesBetween } from './lib/serverTimes.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '60' },
    settle: { type: 'string', default: '10' },
    workers: { type: 'string', default: '2' },
    out: { type: 'string', default: 'bench/results' },
    env: { type: 'string', multiple: true, default: [] },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
const usageText = 'usage: npm run bench:idle -- [--duration S] [--settle S] [--workers W] [--out DIR] [--env NAME=VALUE ...]';
if (args.help) {
  process.stdout.write(`${usageText}\n`);
  process.exit(0);
}
const positive = (name: string, value: string | undefined): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`--${name} must be a whole number >= 1\n${usageText}\n`);
    process.exit(2);
  }
  return n;
};
const durationS = positive('duration', args.duration);
const settleS = positive('settle', args.settle);
const workers = positive('workers', args.workers);
const log = (line: string): void => void process.stderr.write(`[idle] ${line}\n`);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface IdleRun {
  ts: string;
  commit: string | undefined;
  command: string;
  machine: { cpus: number; model: string; node: string };
  workers: number;
  durationS: number;
  /** Node process plus its workers, % of one core. */
  serverCpuPct: number;
  nodeCpuPct: number;
  /** The embedded records database's process (`chorus-records`), when the node has one. */
  recordsCpuPct?: number;
  workersCpuPct: number;
  /** Wake-ups a second: the node process's threads, and its workers' summed. */
  nodeWakeupsPerS: number;
  workersWakeupsPerS: number;
  machineCpuPct: number;
  /** The node process's busiest threads over the window. */
  nodeThreads: { thread: string; cpuPct: number }[];
  /** The node's garbage-collection pauses in the window, ms of its main thread by kind (its /metrics). */
  nodeGcMs?: Record<string, number> | undefined;
}

function render(runs: IdleRun[]): string {
  const points = (pick: (r: IdleRun) => number): Array<[number, number]> => runs.map((r, i) => [i + 1, pick(r)]);
  const rows = runs
    .map((r, i) => `<tr><td>${i + 1}</td><td>${r.ts}</td><td>${r.commit ?? ''}</td><td>${r.nodeCpuPct}</td><td>${r.recordsCpuPct ?? ''}</td><td>${r.workersCpuPct}</td><td>${r.nodeWakeupsPerS}</td><td>${r.workersWakeupsPerS}</td></tr>`)
    .join('');
  return `<!doctype html><meta charset="utf-8"><title>Chorus idle node</title><body style="font-family:sans-serif">
<h1>An idle node's cost</h1>
${lineChart({ title: 'CPU of an idle node (% of one core)', xLabel: 'run', yLabel: '% of a core', series: [{ name: 'node process', points: points((r) => r.nodeCpuPct) }, { name: 'mediasoup workers', points: points((r) => r.workersCpuPct) }] })}
${lineChart({ title: 'Wake-ups a second', xLabel: 'run', yLabel: 'context switches / s', series: [{ name: 'node process', points: points((r) => r.nodeWakeupsPerS) }, { name: 'mediasoup workers', points: points((r) => r.workersWakeupsPerS) }] })}
<table border="1" cellpadding="4"><tr><th>run</th><th>when</th><th>commit</th><th>node %</th><th>records process %</th><th>workers %</th><th>node wake-ups/s</th><th>workers wake-ups/s</th></tr>${rows}</table>`;
}

// Settings the node is run with beyond its defaults (`--env CHORUS_RECORDS=false`), to see what costs.
const extraEnv = Object.fromEntries(args.env.map((pair) => [pair.split('=')[0]!, pair.slice(pair.indexOf('=') + 1)]));
const node = await startBenchNode({ MEDIASOUP_WORKERS: String(workers), ...extraEnv }, log);
try {
  const root = node.proc.pid!;
  log(`node ${root} up at ${node.url}; settling ${settleS} s`);
  await sleep(settleS * 1000);
  node.rememberTree();
  const sampler = new TreeSampler(() => new Map([['server', root]]));
  const wakeups = (): { node: number; workers: number } => ({ node: contextSwitches(root), workers: workerPids(root).reduce((sum, pid) => sum + contextSwitches(pid), 0) });
  // Read first: the scrape wakes the node, which the window must not count.
  const gcBefore = await fetchGcPauses(node.url);
  const before = wakeups();
  const threadsBefore = threadTicks(root);
  const from = performance.now();
  for (let i = 0; i <= durationS; i++) {
    sampler.sample();
    if (i < durationS) await sleep(1000);
  }
  const after = wakeups();
  const gcAfter = await fetchGcPauses(node.url);
  const seconds = (performance.now() - from) / 1000;
  const window = sampler.samples;
  const server = usage(window, 'server');
  const nodeCpu = server.procs.filter((p) => p.pid === root).reduce((sum, p) => sum + p.cpuPct, 0);
  // The embedded records database's process (a child of the node since 44a6da8), counted apart.
  const recordsCpu = server.procs.filter((p) => p.comm === 'chorus-records').reduce((sum, p) => sum + p.cpuPct, 0);
  const cores = cpus().length;
  const run: IdleRun = {
    ts: new Date().toISOString(),
    commit: gitCommit(),
    command: `npm run bench:idle -- --duration ${durationS} --settle ${settleS} --workers ${workers}${args.env.map((e) => ` --env ${e}`).join('')}`,
    machine: { cpus: cores, model: cpus()[0]?.model ?? 'unknown', node: process.version },
    workers,
    durationS,
    serverCpuPct: server.cpuPct,
    nodeCpuPct: round(nodeCpu, 2),
    workersCpuPct: round(server.cpuPct - nodeCpu - recordsCpu, 2),
    recordsCpuPct: round(recordsCpu, 2),
    nodeWakeupsPerS: round((after.node - before.node) / seconds, 1),
    workersWakeupsPerS: round((after.workers - before.workers) / seconds, 1),
    machineCpuPct: machineUsagePct(window, cores),
    nodeThreads: busiestThreads(threadsBefore, threadTicks(root), seconds, 4),
    nodeGcMs: gcPausesBetween(gcBefore, gcAfter),
  };
  const written = recordRun(args.out, 'idle', run, render);
  process.stdout.write(`${JSON.stringify(run)}\n`);
  log(`recorded in ${written.jsonl}; chart ${written.html}`);
} finally {
  await node.stop();
}
