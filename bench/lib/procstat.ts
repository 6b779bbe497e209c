/**
 * CPU and memory of process trees, read straight from /proc (Linux only): utime+stime from
 * /proc/<pid>/stat, VmRSS from /proc/<pid>/status, children found by scanning /proc for ppid.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

let clockTicks: number | undefined;
/** Kernel clock ticks per second (USER_HZ), the unit of utime/stime. */
export function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

export interface ProcStat {
  pid: number;
  ppid: number;
  comm: string;
  /** utime + stime, in clock ticks. */
  ticks: number;
  /** Start time since boot, in clock ticks: tells a reused pid from the original. */
  start: number;
}

export function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm sits in parentheses and may itself contain spaces or parentheses.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const comm = text.slice(open + 1, close);
  const f = text.slice(close + 2).split(' ');
  // f[0] is field 3 (state); utime=14, stime=15, starttime=22 in 1-based proc(5) numbering.
  return { pid, ppid: Number(f[1]), comm, ticks: Number(f[11]) + Number(f[12]), start: Number(f[19]) };
}

export function readRssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Every process on the machine, by pid. */
export function allStats(): Map<number, ProcStat> {
  const out = new Map<number, ProcStat>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s) out.set(s.pid, s);
  }
  return out;
}

/** `root` and all its descendants (root first), from one /proc scan. */
export function tree(root: number, stats: Map<number, ProcStat> = allStats()): ProcStat[] {
  const kids = new Map<number, ProcStat[]>();
  for (const s of stats.values()) {
    const list = kids.get(s.ppid);
    if (list) list.push(s);
    else kids.set(s.ppid, [s]);
  }
  const rootStat = stats.get(root);
  if (!rootStat) return [];
  const out: ProcStat[] = [];
  const queue = [rootStat];
  while (queue.length > 0) {
    const s = queue.shift()!;
    out.push(s);
    queue.push(...(kids.get(s.pid) ?? []));
  }
  return out;
}

/** Busy and total jiffies of the whole machine (all cores), from /proc/stat. */
export function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0); // user..steal; guest is inside user
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: total - idle, total };
}

export interface GroupSample {
  /** Per process key (`pid:start`): ticks and rss at this instant. */
  procs: Map<string, { pid: number; comm: string; ticks: number; rssKiB: number }>;
}

/**
 * Samples named groups of process trees (e.g. "server", "listeners-0"), once a call. Averages
 * over a window come from the tick difference between two samples, so a missed second costs
 * nothing; RSS is the sum over the tree at each sample.
 */
export class TreeSampler {
  readonly samples: { t: number; machine: { busy: number; total: number }; groups: Map<string, GroupSample> }[] = [];

  constructor(private readonly roots: () => Map<string, number>) {}

  sample(): void {
    const t = performance.now();
    const stats = allStats();
    const groups = new Map<string, GroupSample>();
    for (const [name, root] of this.roots()) {
      const procs: GroupSample['procs'] = new Map();
      for (const s of tree(root, stats)) {
        // tsx's esbuild service transpiles at start-up only: not part of what is measured.
        if (s.comm === 'esbuild') continue;
        procs.set(`${s.pid}:${s.start}`, { pid: s.pid, comm: s.comm, ticks: s.ticks, rssKiB: readRssKiB(s.pid) });
      }
      groups.set(name, { procs });
    }
    this.samples.push({ t, machine: machineTicks(), groups });
  }

  /** Samples taken within [from, to] (performance.now() times). */
  window(from: number, to: number): TreeSampler['samples'] {
    return this.samples.filter((s) => s.t >= from && s.t <= to);
  }
}

export interface GroupUsage {
  /** Mean CPU over the window, % of one core (can exceed 100 on several cores). */
  cpuPct: number;
  /** Peak of the tree's summed RSS over the window, MiB. */
  rssMiB: number;
  /** Mean RSS over the window, MiB. */
  rssMeanMiB: number;
  /** Per process in the tree: mean CPU % of one core, by comm and pid. */
  procs: { pid: number; comm: string; cpuPct: number; rssMiB: number }[];
}

/** CPU and RSS of one group between the first and last sample of `samples`. */
export function usage(samples: TreeSampler['samples'], group: string): GroupUsage {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (!first || !last || first === last) return { cpuPct: 0, rssMiB: 0, rssMeanMiB: 0, procs: [] };
  const seconds = (last.t - first.t) / 1000;
  const a = first.groups.get(group)?.procs ?? new Map();
  const b = last.groups.get(group)?.procs ?? new Map();
  const procs: GroupUsage['procs'] = [];
  for (const [key, end] of b) {
    const begin = a.get(key);
    // A process born inside the window counts from zero ticks.
    const ticks = end.ticks - (begin?.ticks ?? 0);
    procs.push({ pid: end.pid, comm: end.comm, cpuPct: round((ticks / clkTck() / seconds) * 100, 1), rssMiB: round(end.rssKiB / 1024, 1) });
  }
  const rss = samples.map((s) => [...(s.groups.get(group)?.procs.values() ?? [])].reduce((sum, p) => sum + p.rssKiB, 0) / 1024);
  return {
    cpuPct: round(procs.reduce((sum, p) => sum + p.cpuPct, 0), 1),
    rssMiB: round(Math.max(...rss), 1),
    rssMeanMiB: round(rss.reduce((x, y) => x + y, 0) / rss.length, 1),
    procs,
  };
}

/** Whole-machine busy CPU over the window, % of one core (max = cores x 100). */
export function machineUsagePct(samples: TreeSampler['samples'], cores: number): number {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (!first || !last || first === last) return 0;
  const busy = last.machine.busy - first.machine.busy;
  const total = last.machine.total - first.machine.total;
  return total > 0 ? round((busy / total) * cores * 100, 1) : 0;
}

export function round(v: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** utime+stime of every thread of `pid`, by tid, with the thread's name. */
export function threadTicks(pid: number): Map<number, { comm: string; ticks: number }> {
  const out = new Map<number, { comm: string; ticks: number }>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const comm = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
      const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
      out.set(Number(tid), { comm, ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      /* thread ended */
    }
  }
  return out;
}

/**
 * The busiest threads of a process between two threadTicks() snapshots `seconds` apart, as %
 * of one core: a process can be stuck on one saturated thread while its total looks modest.
 */
export function busiestThreads(
  before: Map<number, { comm: string; ticks: number }>,
  after: Map<number, { comm: string; ticks: number }>,
  seconds: number,
  top = 3,
): { thread: string; cpuPct: number }[] {
  const rows: { thread: string; cpuPct: number }[] = [];
  for (const [tid, end] of after) {
    const ticks = end.ticks - (before.get(tid)?.ticks ?? 0);
    rows.push({ thread: end.comm, cpuPct: round((ticks / clkTck() / seconds) * 100, 1) });
  }
  return rows.sort((a, b) => b.cpuPct - a.cpuPct).slice(0, top);
}

/** A process's main thread (tid = pid) against all its other threads, % of one core, between two threadTicks() snapshots. */
export function nodeThreadShares(
  before: Map<number, { comm: string; ticks: number }>,
  after: Map<number, { comm: string; ticks: number }>,
  pid: number,
  seconds: number,
): { mainCpuPct: number; otherCpuPct: number } {
  let main = 0;
  let other = 0;
  for (const [tid, end] of after) {
    const ticks = end.ticks - (before.get(tid)?.ticks ?? 0);
    if (tid === pid) main += ticks;
    else other += ticks;
  }
  const pct = (ticks: number): number => round((ticks / clkTck() / seconds) * 100, 2);
  return { mainCpuPct: pct(main), otherCpuPct: pct(other) };
}

/** The mediasoup workers under a node's process (not its other children, such as an HLS ffmpeg). */
export function workerPids(node: number): number[] {
  return tree(node)
    .filter((s) => s.pid !== node && s.comm.startsWith('mediasoup'))
    .map((s) => s.pid);
}

/**
 * Context switches so far of every thread of `pid`, or of its thread `tid` alone (a wake-up each,
 * near enough, when mostly idle).
 */
export function contextSwitches(pid: number, tid?: number): number {
  let total = 0;
  let tasks: string[] = [];
  try {
    tasks = tid === undefined ? readdirSync(`/proc/${pid}/task`) : [String(tid)];
  } catch {
    return 0;
  }
  for (const task of tasks) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8');
      for (const match of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm)) total += Number(match[1]);
    } catch {
      /* the thread ended */
    }
  }
  return total;
}
