/**
 * Cluster failover benchmark: redis, K Chorus node processes and nginx (deploy/nginx.conf) from
 * test/support/cluster.ts; one broadcaster and N listeners, all SDK clients on Node WebRTC that
 * only know nginx's URL. Measures join time through the balancer, then the time each listener
 * takes to hear the tone again after an edge node and then the origin node are SIGKILLed, and
 * Redis commands per join.
 *
 *   npm run bench:cluster -- [--listeners N] [--nodes K] [--concurrency C] [--restore-timeout MS] [--out DIR]
 *
 * Prints one JSON line to stdout (progress on stderr), appends it to <out>/cluster.jsonl and
 * rewrites <out>/cluster.html (self-contained, inline SVG) from every run there.
 */
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { startCluster, type Cluster, type ClusterNode } from '../test/support/cluster.js';
import { joinListener, type TestListener } from '../test/support/listener.js';
import { toneTrack } from '../test/support/nodePeer.js';
import { nodeClient, until } from '../test/support/testNode.js';
import { histogramCdf, lineChart } from './lib/report.js';
import { gitCommit } from './lib/gitCommit.js';
import { recordRun } from './lib/runLog.js';

const { values: args } = parseArgs({
  options: {
    listeners: { type: 'string', default: '30' },
    nodes: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '5' },
    'restore-timeout': { type: 'string', default: '40000' },
    out: { type: 'string', default: 'bench/results' },
    redis: { type: 'string', default: 'single' },
  },
  strict: true,
});
const N = Number(args.listeners);
const K = Number(args.nodes);
const concurrency = Math.max(1, Number(args.concurrency));
const restoreTimeoutMs = Number(args['restore-timeout']);
const outDir = resolve(process.cwd(), args.out);
const redisMode = args.redis;
if (!Number.isInteger(N) || N < 1 || !Number.isInteger(K) || K < 2 || (redisMode !== 'single' && redisMode !== 'cluster')) {
  process.stderr.write('usage: npm run bench:cluster -- [--listeners N>=1] [--nodes K>=2] [--concurrency C] [--restore-timeout MS] [--redis single|cluster] [--out DIR]\n');
  process.exit(2);
}
const argv = process.argv.slice(2).join(' ');
const command = process.env['npm_lifecycle_event'] === 'bench:cluster' ? `npm run bench:cluster -- ${argv}`.trim() : `tsx bench/cluster.ts ${argv}`.trim();
const TONE = 440;
const ROOM = 'bench-cluster';

const log = (message: string): void => void process.stderr.write(`[bench:cluster ${new Date().toISOString().slice(11, 19)}] ${message}\n`);

function pct(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
const summary = (values: number[]): { p50: number; p95: number; max: number; n: number } => ({ p50: pct(values, 50), p95: pct(values, 95), max: values.length ? Math.max(...values) : 0, n: values.length });

/** Total commands Redis has executed (INFO commandstats, summed over a cluster's masters), and per command. */
async function commandStats(servers: Redis[]): Promise<{ total: number; byCommand: Record<string, number> }> {
  const byCommand: Record<string, number> = {};
  let total = 0;
  for (const info of await Promise.all(servers.map((server) => server.info('commandstats')))) {
    for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      byCommand[m[1]!] = (byCommand[m[1]!] ?? 0) + Number(m[2]);
      total += Number(m[2]);
    }
  }
  return { total, byCommand };
}

interface ClusterRun {
  ts: string;
  nodes: number;
  listeners: number;
  listenersPerNode: number[];
  joinMs: { p50: number; p95: number; max: number };
  edgeKill: { node: string; affected: number; restoreMs: { p50: number; p95: number; max: number } };
  originKill: { node: string; newOrigin: string | undefined; broadcasterBackMs: number; restoreMs: { p50: number; p95: number; max: number } };
  listenersLost: number;
  /** `single` (one redis-server) or `cluster` (a three-master Redis Cluster). */
  redis: string;
  redisOpsPerJoin: number;
  redisOpsPerJoinRaw: number;
  machine: { cpus: number; model: string; node: string };
  commit: string | undefined;
  command: string;
  joinTimesMs?: number[];
  edgeRestoreTimesMs?: number[];
  originRestoreTimesMs?: number[];
}

let cluster: Cluster | undefined;
const listeners: TestListener[] = [];

async function run(): Promise<ClusterRun> {
  log(`starting redis (${redisMode}), ${K} nodes and nginx`);
  cluster = await startCluster({ nodes: K, rtcPortSpan: Math.max(1000, N * 4), drainDeadlineMs: 5000, redisCluster: redisMode === 'cluster' });
  const c = cluster;
  const servers = c.redisCluster ? await c.redisCluster.masters() : [c.redis!];
  const redis = servers.map((server) => new Redis(server.url, { lazyConnect: false }));
  const where = (l: TestListener): ClusterNode | undefined => c.nodeOf(l.client.peerId);

  const tone = toneTrack(TONE);
  const broadcaster = nodeClient(c.entry(), ROOM, await c.mint(ROOM, 'broadcaster', 'speaker'));
  await broadcaster.join();
  await broadcaster.publish(tone.track);
  log(`broadcaster publishing via ${c.url}`);

  // Background Redis traffic (heartbeats, leases, the signaling adapter's reads), measured over a
  // quiet window, is subtracted from the join phase's count at the same rate.
  const quietMs = 3000;
  const q0 = await commandStats(redis);
  const tq = performance.now();
  await new Promise((r) => setTimeout(r, quietMs)); // a measurement window, not a synchronisation
  const q1 = await commandStats(redis);
  const backgroundPerMs = (q1.total - q0.total) / (performance.now() - tq);

  const s0 = await commandStats(redis);
  const tj = performance.now();
  const joinTimes: number[] = [];
  let failedJoins = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < N) {
        next++;
        const t0 = performance.now();
        try {
          const listener = await joinListener(c.entry(), ROOM);
          listeners.push(listener);
          await listener.hears(TONE, 30_000);
          joinTimes.push(Math.round(performance.now() - t0));
        } catch (error) {
          failedJoins++;
          log(`join failed: ${(error as Error).message}`);
        }
      }
    }),
  );
  const joinPhaseMs = performance.now() - tj;
  const s1 = await commandStats(redis);
  const rawOps = s1.total - s0.total;
  const redisOpsPerJoinRaw = rawOps / Math.max(1, joinTimes.length);
  const redisOpsPerJoin = Math.max(0, rawOps - backgroundPerMs * joinPhaseMs) / Math.max(1, joinTimes.length);
  await until(() => listeners.every((l) => where(l) !== undefined) && c.nodeOf(broadcaster.peerId) !== undefined, 20_000, 'placement of every session');
  const perNode = c.nodes.map((n) => listeners.filter((l) => where(l) === n).length);
  log(`${joinTimes.length}/${N} joined, per node ${perNode.join('/')}, join p50 ${pct(joinTimes, 50)} ms; redis ops/join ${redisOpsPerJoin.toFixed(1)} (raw ${redisOpsPerJoinRaw.toFixed(1)})`);

  const lost = new Set<TestListener>();
  /** ms from t0 until each listener hears again (undefined: not within the timeout). */
  const restore = (subset: TestListener[], t0: number): Promise<Array<number | undefined>> =>
    Promise.all(
      subset.map((l) =>
        l.hears(TONE, restoreTimeoutMs).then(
          () => Date.now() - t0,
          () => {
            lost.add(l);
            const consumer = l.client.consumer;
            const media = {
              peer: l.client.peerId,
              transport: l.client.transport?.connectionState,
              consumer: consumer && { producerId: consumer.producerId, closed: consumer.closed, paused: consumer.paused, track: consumer.track.readyState },
              probe: l.probe() && { frames: l.probe()!.frames, rms: Number(l.probe()!.rms.toFixed(3)), hz: l.probe()!.frequency },
            };
            log(`lost a listener: ${l.client.state} on ${where(l)?.nodeId ?? '?'}, broadcast ${JSON.stringify(l.client.broadcast)}, media ${JSON.stringify(media)}, events ${l.events.slice(-12).join(',')}`);
            return undefined;
          },
        ),
      ),
    );

  // Edge kill: the node with the most listeners that is not the origin.
  const origin0 = c.nodeOf(broadcaster.peerId)!;
  const edge = c.nodes.filter((n) => n !== origin0).sort((a, b) => perNode[b.index]! - perNode[a.index]!)[0]!;
  const onEdge = listeners.filter((l) => where(l) === edge);
  log(`SIGKILL edge ${edge.nodeId} (${onEdge.length} listeners)`);
  let t0 = Date.now();
  const edgeKilled = edge.kill('SIGKILL');
  const edgeTimes = (await restore(onEdge, t0)).filter((v): v is number => v !== undefined);
  await edgeKilled;
  await edge.restart();
  log(`edge kill: restore p50 ${pct(edgeTimes, 50)} ms, max ${Math.max(0, ...edgeTimes)} ms`);

  // Origin kill: every listener is affected (edges must re-pipe from the new origin).
  const origin = c.nodeOf(broadcaster.peerId)!;
  const oldPeer = broadcaster.peerId;
  log(`SIGKILL origin ${origin.nodeId}`);
  t0 = Date.now();
  const originKilled = origin.kill('SIGKILL');
  const alive = listeners.filter((l) => !lost.has(l));
  const originRestore = restore(alive, t0);
  let broadcasterBackMs = -1;
  await until(() => broadcaster.state === 'joined' && broadcaster.peerId !== oldPeer && broadcaster.producer !== undefined, restoreTimeoutMs, 'broadcaster back').then(
    () => (broadcasterBackMs = Date.now() - t0),
    () => log('the broadcaster did not come back'),
  );
  const originTimes = (await originRestore).filter((v): v is number => v !== undefined);
  await originKilled;
  await until(() => c.nodeOf(broadcaster.peerId) !== undefined, 10_000, 'broadcaster placement').catch(() => undefined);
  const newOrigin = c.nodeOf(broadcaster.peerId)?.nodeId;
  log(`origin kill: broadcaster back in ${broadcasterBackMs} ms on ${newOrigin}; restore p50 ${pct(originTimes, 50)} ms, max ${Math.max(0, ...originTimes)} ms`);

  for (const r of redis) r.disconnect();
  await broadcaster.close().catch(() => undefined);
  tone.stop();
  return {
    ts: new Date().toISOString(),
    nodes: K,
    listeners: N,
    listenersPerNode: perNode,
    joinMs: (({ p50, p95, max }) => ({ p50, p95, max }))(summary(joinTimes)),
    edgeKill: { node: edge.nodeId, affected: onEdge.length, restoreMs: (({ p50, p95, max }) => ({ p50, p95, max }))(summary(edgeTimes)) },
    originKill: { node: origin.nodeId, newOrigin, broadcasterBackMs, restoreMs: (({ p50, p95, max }) => ({ p50, p95, max }))(summary(originTimes)) },
    listenersLost: lost.size + failedJoins,
    redis: redisMode,
    redisOpsPerJoin: Math.round(redisOpsPerJoin * 10) / 10,
    redisOpsPerJoinRaw: Math.round(redisOpsPerJoinRaw * 10) / 10,
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
    commit: gitCommit(),
    command,
    joinTimesMs: joinTimes,
    edgeRestoreTimesMs: edgeTimes,
    originRestoreTimesMs: originTimes,
  };
}

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!);
}

function renderHtml(runs: ClusterRun[]): string {
  const byN = [...runs].sort((a, b) => a.listeners - b.listeners);
  const pts = (pick: (r: ClusterRun) => number): [number, number][] => byN.map((r) => [r.listeners, pick(r)]);
  const trend = lineChart({
    title: 'Audio restored after a node is SIGKILLed, vs listeners',
    xLabel: 'listeners (N)',
    yLabel: 'ms',
    series: [
      { name: 'edge kill p95', points: pts((r) => r.edgeKill.restoreMs.p95) },
      { name: 'origin kill p95', points: pts((r) => r.originKill.restoreMs.p95) },
      { name: 'origin kill max', points: pts((r) => r.originKill.restoreMs.max), dashed: true },
      { name: 'join p95', points: pts((r) => r.joinMs.p95), dashed: true, color: '#999' },
    ],
  });
  const latest = runs[runs.length - 1];
  const figures = latest
    ? [
        histogramCdf({ title: `Join time through nginx (N=${latest.listeners})`, xLabel: 'ms, token to first audible frame', values: latest.joinTimesMs ?? [] }),
        histogramCdf({ title: `Edge SIGKILL: restore time of its ${latest.edgeKill.affected} listeners`, xLabel: 'ms, kill to audible again', values: latest.edgeRestoreTimesMs ?? [] }),
        histogramCdf({ title: 'Origin SIGKILL: restore time of every listener', xLabel: 'ms, kill to audible again', values: latest.originRestoreTimesMs ?? [] }),
      ].join('\n')
    : '';
  const rows = runs
    .map(
      (r) =>
        `<tr><td>${esc(r.ts)}</td><td>${r.nodes}</td><td>${r.listeners}</td><td>${r.listenersPerNode.join(' / ')}</td><td>${r.joinMs.p50} / ${r.joinMs.p95}</td>` +
        `<td>${r.edgeKill.affected}</td><td>${r.edgeKill.restoreMs.p50} / ${r.edgeKill.restoreMs.p95} / ${r.edgeKill.restoreMs.max}</td>` +
        `<td>${r.originKill.broadcasterBackMs}</td><td>${r.originKill.restoreMs.p50} / ${r.originKill.restoreMs.p95} / ${r.originKill.restoreMs.max}</td>` +
        `<td>${r.listenersLost}</td><td>${r.redisOpsPerJoin} (raw ${r.redisOpsPerJoinRaw})${r.redis === 'cluster' ? ' on a Redis Cluster' : ''}</td><td><code>${esc(r.command)}</code></td></tr>`,
    )
    .join('\n');
  const machine = latest?.machine;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Chorus cluster failover benchmark</title>
<style>body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f3f3f3}svg{margin:8px 16px 8px 0;border:1px solid #eee}</style>
</head><body>
<h1>Chorus cluster failover benchmark</h1>
<p>${runs.length} run(s) from cluster.jsonl${machine ? ` · machine: ${machine.cpus} × ${esc(machine.model)}, Node ${esc(machine.node)}` : ''}. Redis, K node processes and nginx (deploy/nginx.conf) on loopback; one broadcaster and N listeners (SDK on Node WebRTC, in one process) that only know nginx's URL. Restore time = from the SIGKILL to the first audible frames of the tone again (≥ 50 fresh frames, so ≥ 0.5 s even when nothing was lost). Redis ops per join = INFO commandstats delta over the join phase minus the background rate measured over a quiet window, ÷ joins.</p>
<div>${trend}</div>
<h2>Latest run</h2>
<div>${figures}</div>
<h2>Runs</h2>
<table><thead><tr><th>time</th><th>nodes</th><th>N</th><th>listeners per node</th><th>join p50 / p95 ms</th><th>edge listeners</th><th>edge kill restore p50 / p95 / max ms</th><th>broadcaster back ms</th><th>origin kill restore p50 / p95 / max ms</th><th>lost</th><th>redis ops / join</th><th>command</th></tr></thead>
<tbody>
${rows}
</tbody></table>
</body></html>
`;
}

let exitCode = 0;
try {
  const result = await run();
  const { joinTimesMs: _j, edgeRestoreTimesMs: _e, originRestoreTimesMs: _o, ts: _t, redisOpsPerJoinRaw: _r, ...line } = result;
  process.stdout.write(`${JSON.stringify(line)}\n`);
  log(`wrote ${recordRun<ClusterRun>(outDir, 'cluster', result, renderHtml).html}`);
} catch (error) {
  log(`failed: ${(error as Error).stack ?? String(error)}`);
  exitCode = 1;
} finally {
  await Promise.all(listeners.map((l) => l.close().catch(() => undefined)));
  await cluster?.stop();
  if (cluster?.orphans.length) {
    log(`killed ${cluster.orphans.length} leftover process(es) of dead nodes: ${cluster.orphans.join(', ')}`);
  }
}
process.exit(exitCode);
