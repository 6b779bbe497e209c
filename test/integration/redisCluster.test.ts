/**
 * Chorus on a Redis Cluster, as a large deployment runs it: three shards, each a master with a
 * replica (six real redis-server processes joined by `redis-cli --cluster create`), three Chorus
 * nodes given only `redis+cluster://…`. The room is picked so that its keys and its origin
 * node's bus channel hash to the same shard; that shard's master is killed mid-broadcast. The
 * audio never stops, the replica is promoted, and everything that needs that shard works again:
 * a listener on a third node joins (room keys on the promoted replica) and pulls the broadcast
 * from the origin (a node-bus request over sharded pub/sub to a channel that changed hands).
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { ChorusClient } from '../../src/client/chorusClient.js';
import { joinListener, type TestListener } from '../support/listener.js';
import { toneTrack, type ToneSource } from '../support/nodePeer.js';
import { roomOwnedBy } from '../support/placement.js';
import { startRedisCluster, type RedisCluster } from '../support/redisCluster.js';
import { nodeClient, startTestNodes, tokenFor, until } from '../support/testNode.js';

const ids = ['rc-a', 'rc-b', 'rc-c'];
let cluster: RedisCluster;
const nodes: Record<string, ChorusNode> = {};
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3, replicas: 1, nodeTimeoutMs: 1000 });
  for (const node of await startTestNodes(ids, { REDIS_URL: cluster.url })) nodes[node.config.nodeId] = node;
  await until(async () => (await nodes['rc-a']!.store.listNodes()).length === 3, 10_000, 'all three nodes registered');
}, 90_000);

afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn();
  for (const node of Object.values(nodes)) await node.close();
  await cluster?.stop();
});

test('a shard\'s master dies mid-broadcast: audio never stops, its replica takes over, joins and node-to-node pulls work again', async () => {
  // rc-a's bus channel and the room's keys on one shard: killing its master hits both.
  const shard = await cluster.ownerOf('chorus:node:rc-a');
  const room = await roomOwnedBy('rc-a', ids, 'shard', async (r) => (await cluster.ownerOf(`chorus:{${r}}:room`)) === shard);
  const [replica] = await cluster.replicasOf(shard);
  expect(replica).toBeDefined();

  const tone: ToneSource = toneTrack(740);
  cleanup.push(() => tone.stop());
  // Connects to rc-b: placement (a claim in the cluster, a liveness probe over sharded pub/sub)
  // sends it to rc-a, the room's node.
  const broadcaster: ChorusClient = nodeClient(nodes['rc-b']!, room, await tokenFor(nodes['rc-b']!, room, 'broadcaster', 'muezzin'));
  cleanup.push(() => broadcaster.close());
  await broadcaster.join();
  await broadcaster.publish(tone.track);
  expect(nodes['rc-a']!.rooms.get(room)?.localBroadcast).toBeDefined();
  const edge: TestListener = await joinListener(nodes['rc-b']!, room);
  cleanup.push(() => edge.close());
  await edge.hears(740);
  // The room's entries really live on the shard about to die.
  expect((await cluster.keys(`chorus:{${room}}:*`)).length).toBeGreaterThan(0);

  await shard.kill();
  // Media already flowing does not wait for Redis.
  await edge.hears(740);
  await cluster.whole(30_000);
  expect(await cluster.ownerOf(`chorus:{${room}}:room`)).toBe(replica);
  await until(async () => (await Promise.all(ids.map((id) => fetch(`${nodes[id]!.url}/readyz`)))).every((r) => r.status === 200), 20_000, 'every node ready again');

  // rc-c has no part of the room yet: its join writes to the promoted replica and its pipe
  // request reaches rc-a on the channel's new shard.
  const late = await joinListener(nodes['rc-c']!, room);
  cleanup.push(() => late.close());
  await late.hears(740, 15_000);
  await until(() => broadcaster.audience === 2, 10_000, 'the broadcaster to see both listeners');
  expect(nodes['rc-a']!.rooms.get(room)?.localBroadcast).toBeDefined();
  await edge.hears(740);

  // Room events cross nodes through the Socket.IO streams adapter on the cluster: a pause on the
  // origin reaches the listeners on both other nodes.
  await broadcaster.setPaused(true);
  await until(() => [edge, late].every((l) => l.events.includes('paused')), 10_000, 'both listeners to hear of the pause');
  await broadcaster.setPaused(false);
  await until(() => [edge, late].every((l) => l.events.lastIndexOf('live') > l.events.lastIndexOf('paused')), 10_000, 'both listeners to hear it is live again');
  await Promise.all([edge, late].map((l) => l.hears(740)));
}, 120_000);
