/**
 * A call in a cluster (two node processes behind nginx, one Redis): participants entering through
 * the balancer are placed together on the room's node and hear each other; when that node is
 * killed, every participant comes back on the other node, republishes and is heard again by the
 * others, without the application doing anything.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startCluster, type Cluster } from '../support/cluster.js';
import { hears, joinCallPeer, type CallPeer } from '../support/callPeer.js';
import { until } from '../support/testNode.js';

let cluster: Cluster;
const peers: CallPeer[] = [];

beforeAll(async () => {
  cluster = await startCluster({ nodes: 2, rtcPortBase: 12_000 });
}, 120_000);

afterAll(async () => {
  for (const p of peers) await p.close();
  await cluster?.stop();
});

const everyoneHearsEveryone = (): boolean => peers.every((p) => peers.every((q) => q === p || hears(p, q)));

test('participants entering anywhere are placed on one node and hear each other; that node dies and the call comes back on the other', async () => {
  const room = 'cluster-call';
  for (const [i, f] of [300, 500, 800].entries()) {
    const identity = `c${i}`;
    const token = await cluster.tokens.mint({ room, identity, role: 'participant', kind: 'call' });
    peers.push(await joinCallPeer(cluster.url, room, identity, f, { token }));
  }
  await until(everyoneHearsEveryone, 20_000, 'every participant to hear the others');
  const holders = new Set(peers.map((p) => cluster.nodeOf(p.client.peerId)?.nodeId));
  expect(holders.size).toBe(1);
  const holder = cluster.nodes.find((n) => holders.has(n.nodeId))!;
  const before = peers.map((p) => p.client.peerId);

  await holder.kill('SIGKILL');
  // New sessions on the node that is left, the same clients: republished and heard again.
  await until(() => peers.every((p, i) => p.client.state === 'joined' && p.client.peerId !== before[i]), 30_000, 'every participant to rejoin');
  await until(everyoneHearsEveryone, 30_000, 'every participant to hear the others again');
  const survivor = cluster.nodes.find((n) => n !== holder)!;
  for (const p of peers) expect(cluster.nodeOf(p.client.peerId)?.nodeId).toBe(survivor.nodeId);
  for (const p of peers) expect(p.client.participants.size).toBe(2);
}, 120_000);
