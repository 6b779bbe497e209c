/**
 * What the call and class benchmarks share on the parent side: the Chorus servers (one node, or
 * K behind nginx with Redis), the IPC round trips with the light load-generator processes, and
 * the server's CPU/RSS over the steady window with the "this run starved the machine" verdict.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { TokenService } from '../../src/auth/tokens.js';
import type { Role, RoomKind } from '../../src/protocol/messages.js';
import { startCluster } from '../../test/support/cluster.js';
import { startBenchNode } from './benchNode.js';
import type { FromParent, ToParent } from './callMessages.js';
import * as hdr from 'hdr-histogram-js';
import { TreeSampler, machineUsagePct, round, usage } from './procstat.js';

/**
 * Command-line helpers that exit with the usage: `help` (after --help or a missing required
 * option) and `int` (an integer option of at least `min`).
 */
export function cli(usageText: string): { help(asked: boolean): never; fail(message: string): never; int(name: string, value: string | undefined, min: number): number } {
  const fail = (message: string): never => {
    process.stderr.write(`${message}\n${usageText}\n`);
    process.exit(2);
  };
  return {
    help(asked) {
      process.stderr.write(`${usageText}\n`);
      process.exit(asked ? 0 : 2);
    },
    fail,
    int(name, value, min) {
      const n = Number(value);
      return Number.isInteger(n) && n >= min ? n : fail(`--${name} must be an integer >= ${min}`);
    },
  };
}

export const percentile = (values: number[], p: number): number | null => {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};

/** Media latency from a histogram of µs, in ms. */
export function fromHistogram(h: hdr.Histogram): { samples: number; p50: number | null; p99: number | null; max?: number } {
  return h.totalCount === 0 ? { samples: 0, p50: null, p99: null } : { samples: h.totalCount, p50: round(h.getValueAtPercentile(50) / 1000, 2), p99: round(h.getValueAtPercentile(99) / 1000, 2), max: round(h.maxValue / 1000, 2) };
}

/** Resolves once `count` messages of `type` came from `children` (any of them), else rejects. */
export function waitFor<T extends ToParent['type']>(children: ChildProcess[], type: T, count: number, timeoutMs: number): Promise<Array<Extract<ToParent, { type: T }>>> {
  return new Promise((resolvePromise, reject) => {
    const got: Array<Extract<ToParent, { type: T }>> = [];
    const onMessage = (message: ToParent): void => {
      if (message.type !== type) return;
      got.push(message as Extract<ToParent, { type: T }>);
      if (got.length === count) done();
    };
    const done = (): void => {
      clearTimeout(timer);
      for (const child of children) child.off('message', onMessage);
      resolvePromise(got);
    };
    const timer = setTimeout(() => {
      for (const child of children) child.off('message', onMessage);
      reject(new Error(`only ${got.length}/${count} '${type}' messages within ${timeoutMs} ms`));
    }, timeoutMs);
    if (count === 0) return done();
    for (const child of children) child.on('message', onMessage);
  });
}

export const broadcast = (children: ChildProcess[], message: FromParent): void => {
  for (const child of children) if (child.connected) child.send(message);
};

/** The Chorus side: one node, or K behind nginx with Redis (test/support/cluster.ts). */
export interface Servers {
  url: string;
  /** Each node's own address (not through nginx). */
  nodeUrls: string[];
  /** Sampler groups: one per node process (its mediasoup workers are in its tree). */
  groups(): Array<[string, number]>;
  rememberTree(): void;
  mint(room: string, identity: string, role: Role): Promise<string>;
  stop(): Promise<unknown>;
}

/** `host`: one node only, listening (signaling and media) there instead of 127.0.0.1. */
export async function startServers(options: { nodes: number; kind: RoomKind; env: Record<string, string>; log: (line: string) => void; host?: string | undefined }): Promise<Servers> {
  const { nodes, kind, env, log, host } = options;
  if (nodes === 1) {
    const secret = randomBytes(32).toString('base64url');
    const tokens = new TokenService(new TextEncoder().encode(secret), 3600);
    const listen: Record<string, string> = host ? { CHORUS_HOST: host, RTC_LISTEN_IP: host, RTC_ANNOUNCED_ADDRESS: host } : {};
    const node = await startBenchNode({ ...env, ...listen, CHORUS_TOKEN_SECRET: secret }, log);
    return {
      url: node.url,
      nodeUrls: [node.url],
      groups: () => [['server-0', node.proc.pid!]],
      rememberTree: () => node.rememberTree(),
      mint: (room, identity, role) => tokens.mint({ room, identity, role, kind }),
      stop: () => node.stop(),
    };
  }
  if (host) throw new Error('a cluster listens on 127.0.0.1 only');
  log(`starting ${nodes} nodes, Redis and nginx`);
  // Records off, as in every cluster test: a PGlite per node would measure itself.
  const cluster = await startCluster({ nodes, env, logLevel: 'warn', rtcPortBase: 30_000 });
  return {
    url: cluster.url,
    nodeUrls: cluster.nodes.map((n) => n.url),
    groups: () => cluster.nodes.map((n, i) => [`server-${i}`, n.process.pid!] as [string, number]),
    rememberTree: () => undefined,
    mint: (room, identity, role) => cluster.tokens.mint({ room, identity, role, kind }),
    stop: () => cluster.stop(),
  };
}

type Sample = TreeSampler['samples'][number];

function treeRss(sample: Sample, group: string, commPrefix = ''): number {
  return [...(sample.groups.get(group)?.procs.values() ?? [])].filter((p) => p.comm.startsWith(commPrefix)).reduce((n, p) => n + p.rssKiB, 0) / 1024;
}

/**
 * Samples the servers and the load generators once a second from now on. `idle` is the servers'
 * memory before anyone joined, so what joins add can be told from what the node holds anyway.
 */
export function startSampling(servers: Servers, generators: () => ChildProcess[]): {
  sampler: TreeSampler;
  stop(): void;
  /** Server and load-generator figures over [from, to] (performance.now() times). */
  figures(from: number, to: number): {
    server: { cpuPct: number; rssMiB: number; idleRssMiB: number; workerRssMiB: number; workerRssGrowthMiB: number; cpuPctPerNode?: number[]; procs: Array<{ comm: string; cpuPct: number }> };
    loadGeneratorCpuPct: number;
    loadGeneratorMaxProcCpuPct: number;
    machineCpuPct: number;
    otherCpuPct: number;
  };
} {
  const sampler = new TreeSampler(() => new Map([...servers.groups(), ...generators().map((c, i) => [`gen-${i}`, c.pid!] as [string, number])]));
  const tick = setInterval(() => {
    servers.rememberTree();
    sampler.sample();
  }, 1000);
  servers.rememberTree();
  sampler.sample();
  const serverGroups = servers.groups().map(([group]) => group);
  const serverRss = (sample: Sample, commPrefix = ''): number => serverGroups.reduce((n, g) => n + treeRss(sample, g, commPrefix), 0);
  const idle = sampler.samples[0]!;
  return {
    sampler,
    stop: () => clearInterval(tick),
    figures(from, to) {
      clearInterval(tick);
      sampler.sample();
      const window = sampler.window(from, to);
      const perNode = serverGroups.map((g) => usage(window, g));
      const generatorUsage = generators().map((_, i) => usage(window, `gen-${i}`));
      const last = sampler.samples.at(-1)!;
      const serverCpu = perNode.reduce((n, u) => n + u.cpuPct, 0);
      const generatorCpu = generatorUsage.reduce((n, g) => n + g.cpuPct, 0);
      const machineCpuPct = machineUsagePct(window, cpus().length);
      return {
        server: {
          cpuPct: round(perNode.reduce((n, u) => n + u.cpuPct, 0), 1),
          rssMiB: round(perNode.reduce((n, u) => n + u.rssMiB, 0), 1),
          idleRssMiB: round(serverRss(idle), 1),
          workerRssMiB: round(serverRss(last, 'mediasoup-work'), 1),
          // The node's own heap grows and shrinks with its garbage collector (and the embedded
          // database's first start); the workers hold the media state, so their growth is the
          // per-client figure.
          workerRssGrowthMiB: serverRss(last, 'mediasoup-work') - serverRss(idle, 'mediasoup-work'),
          ...(perNode.length > 1 ? { cpuPctPerNode: perNode.map((u) => u.cpuPct) } : {}),
          procs: perNode.flatMap((u) => u.procs).map((p) => ({ comm: p.comm, cpuPct: p.cpuPct })),
        },
        loadGeneratorCpuPct: round(generatorCpu, 1),
        loadGeneratorMaxProcCpuPct: round(Math.max(0, ...generatorUsage.map((g) => g.cpuPct)), 1),
        machineCpuPct,
        // What neither the servers nor the load generator were charged for: the kernel's loopback
        // work, and whatever else runs on a shared machine.
        otherCpuPct: round(machineCpuPct - serverCpu - generatorCpu, 1),
      };
    },
  };
}

/** Why a run measures a starved machine rather than the SFU (empty: a valid run). */
export function starvation(figures: { loadGeneratorMaxProcCpuPct: number; machineCpuPct: number }, streams: { expected: number; subscribed: number }, failedJoins: number): string[] {
  const cores = cpus().length;
  return [
    ...(figures.loadGeneratorMaxProcCpuPct > 85 ? [`a load-generator process used ${figures.loadGeneratorMaxProcCpuPct}% of a core: add --procs`] : []),
    ...(figures.machineCpuPct > 90 * cores ? [`the machine was ${figures.machineCpuPct}% of ${cores} cores busy (server and load generator share it)`] : []),
    ...(streams.subscribed < streams.expected ? [`${streams.expected - streams.subscribed} streams were never subscribed`] : []),
    ...(failedJoins > 0 ? [`${failedJoins} joins failed`] : []),
  ];
}

/** Consumer layer changes of rooms of `kind` so far, summed over the nodes (their /metrics). */
export async function layerChanges(servers: Servers, kind: RoomKind): Promise<{ up: number; down: number }> {
  const total = { up: 0, down: 0 };
  for (const url of servers.nodeUrls) {
    const text = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })
      .then((r) => r.text())
      .catch(() => '');
    for (const direction of ['up', 'down'] as const) {
      for (const m of text.matchAll(new RegExp(`^chorus_consumer_layer_changes_total\\{[^}]*kind="${kind}"[^}]*direction="${direction}"[^}]*\\} (\\d+)`, 'gm'))) total[direction] += Number(m[1]);
    }
  }
  return total;
}
