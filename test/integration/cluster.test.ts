/**
 * The cluster under failure, end to end: redis, three node processes and nginx (running
 * deploy/nginx.conf) in front of them; a broadcaster and listeners are SDK clients on Node
 * WebRTC that only know nginx's URL, so every reconnect goes through the balancer like a real
 * client's. After an edge node is SIGKILLed, every listener must hear the tone again; the time
 * from the kill to audio restored is printed as a JSON line. (Origin kill, drain and Redis
 * outage through nginx were not yet reliable here — about one run in three lost a listener —
 * and are left to the cluster issue; cascade, drain, sharedState and store tests cover those
 * mechanisms in process.)
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusClient } from '../../src/client/chorusClient.js';
import { startCluster, type Cluster, type ClusterNode } from '../support/cluster.js';
import { joinListener, type TestListener } from '../support/listener.js';
import { toneTrack, type ToneSource } from '../support/nodePeer.js';
import { nodeClient, until } from '../support/testNode.js';

const ROOM = 'cluster-city';
const TONE = 1000;
const LISTENERS = 6;
/** Generous: a restore includes socket reconnect backoff, a new join, ICE/DTLS and re-piping. */
const RESTORE_MS = 40_000;

let cluster: Cluster;
let tone: ToneSource;
let broadcaster: ChorusClient;
const listeners: TestListener[] = [];
const timings: Record<string, unknown> = {};
let workersBefore: Set<number>;

function mediasoupWorkers(): Set<number> {
  try {
    return new Set(execFileSync('pgrep', ['-f', 'mediasoup-worker'], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number));
  } catch {
    return new Set(); // pgrep exits 1 when nothing matches
  }
}

function parentOf(pid: number): number | undefined {
  try {
    return Number(execFileSync('ps', ['-o', 'ppid=', '-p', String(pid)], { encoding: 'utf8' }).trim());
  } catch {
    return undefined;
  }
}

const placementOf = (client: ChorusClient): ClusterNode | undefined => cluster.nodeOf(client.peerId);
const describePlacement = (): string =>
  listeners.map((l, i) => `L${i}@${placementOf(l.client)?.nodeId ?? '?'}`).concat(`B@${placementOf(broadcaster)?.nodeId ?? '?'}`).join(' ');

/** Waits until every session's node is known from the logs (the log line can trail the join answer). */
async function placed(): Promise<void> {
  await until(() => [broadcaster, ...listeners.map((l) => l.client)].every((c) => c.state === 'joined' && placementOf(c) !== undefined), 20_000, `placement of every session (${describePlacement()})`);
}

/** Time from `t0` until each listener hears the tone again (ms), in listener order. */
async function restoreTimes(t0: number, ms = RESTORE_MS): Promise<number[]> {
  return Promise.all(
    listeners.map(async (l, i) => {
      try {
        await l.hears(TONE, ms);
      } catch (error) {
        throw new Error(`listener L${i} (${l.client.state}, on ${placementOf(l.client)?.nodeId ?? '?'}): ${(error as Error).message}; events: ${l.events.slice(-12).join(',')}`);
      }
      return Date.now() - t0;
    }),
  );
}

function report(step: string, data: Record<string, unknown>): void {
  timings[step] = data;
  console.log(JSON.stringify({ clusterTest: step, ...data }));
}

beforeAll(async () => {
  workersBefore = mediasoupWorkers();
  cluster = await startCluster({ nodes: 3, drainDeadlineMs: 8000 });
}, 180_000);

afterAll(async () => {
  await Promise.all(listeners.map((l) => l.close().catch(() => undefined)));
  await broadcaster?.close().catch(() => undefined);
  tone?.stop();
  await cluster?.stop();
  console.log(JSON.stringify({ clusterTestSummary: timings }));
  expect(cluster?.orphans ?? []).toEqual([]);
  // No worker of ours may survive: any mediasoup-worker that appeared meanwhile and is orphaned
  // (re-parented to init) or still ours would be one. (Other sessions' tests may run workers
  // of their own at the same time, so a bare count is not the test.)
  const leftover = [...mediasoupWorkers()].filter((pid) => !workersBefore.has(pid) && (parentOf(pid) === 1 || parentOf(pid) === process.pid));
  expect(leftover).toEqual([]);
}, 60_000);

test('through nginx, listeners spread over the nodes and all hear the broadcast', async () => {
  tone = toneTrack(TONE);
  broadcaster = nodeClient(cluster.entry(), ROOM, await cluster.mint(ROOM, 'broadcaster', 'imam'));
  await broadcaster.join();
  await broadcaster.publish(tone.track);
  const t0 = Date.now();
  for (let i = 0; i < LISTENERS; i++) listeners.push(await joinListener(cluster.entry(), ROOM));
  await restoreTimes(t0, 30_000);
  await placed();
  const perNode = cluster.peersPerNode();
  const nodesWithListeners = new Set(listeners.map((l) => placementOf(l.client)!.index));
  report('initial', { placement: describePlacement(), peersPerNode: perNode, allHeardMs: Date.now() - t0 });
  // Round-robin / least-connections over three nodes: listeners land on more than one node,
  // so some are served by an edge pulling the broadcast from the origin.
  expect(nodesWithListeners.size).toBeGreaterThan(1);
  expect([...nodesWithListeners].some((i) => i !== placementOf(broadcaster)!.index)).toBe(true);
}, 120_000);

test('(a) SIGKILL of an edge node: its listeners reconnect through nginx and hear again', async () => {
  await placed();
  const origin = placementOf(broadcaster)!;
  const edge = cluster.nodes.find((n) => n !== origin && listeners.some((l) => placementOf(l.client) === n));
  expect(edge, `an edge with listeners (${describePlacement()})`).toBeDefined();
  const affected = listeners.map((l, i) => (placementOf(l.client) === edge ? i : -1)).filter((i) => i >= 0);
  const before = describePlacement();

  const t0 = Date.now();
  const killed = edge!.kill('SIGKILL');
  try {
    const times = await restoreTimes(t0);
    expect((await killed).signal).toBe('SIGKILL');
    await placed();
    for (const i of affected) expect(placementOf(listeners[i]!.client)).not.toBe(edge);
    const restoreMs = affected.map((i) => times[i]!);
    report('edgeKill', { killed: edge!.nodeId, before, after: describePlacement(), affected: affected.length, restoreMs, restoreMaxMs: Math.max(...restoreMs), allListenersMs: times });
  } finally {
    await killed.catch(() => undefined);
    await edge!.restart();
  }
}, 120_000);
