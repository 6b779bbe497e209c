/**
 * Redis over TLS (`rediss://`, `rediss+cluster://`), as managed Redis services require: real
 * redis-server processes serving TLS only, with a self-signed certificate that nodes trust through
 * REDIS_TLS_CA. The store, the node bus and the Socket.IO adapter all run over it: a broadcast
 * cascades from one node to another and the cluster-wide listener count reaches clients on both.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { RedisStateStore } from '../../src/store/redisStore.js';
import { joinListener } from '../support/listener.js';
import { startRedisCluster } from '../support/redisCluster.js';
import { startRedis, type RedisServer } from '../support/redisServer.js';
import { startTestNodes, toneBroadcaster, until } from '../support/testNode.js';

let redis: RedisServer;
let nodes: ChorusNode[] = [];

beforeAll(async () => {
  redis = await startRedis({ tls: true });
});
afterAll(async () => {
  for (const node of nodes) await node.close();
  await redis?.stop();
});

test('a store that does not trust the certificate does not connect, and says why', async () => {
  expect(redis.url).toMatch(/^rediss:\/\//);
  const untrusting = new RedisStateStore({ url: redis.url, refreshIntervalMs: 0 });
  try {
    await expect(untrusting.ready(3000)).rejects.toThrow(/not reachable within 3000 ms \(last error: .*certificate/);
  } finally {
    await untrusting.close();
  }
});

test('nodes trusting it through REDIS_TLS_CA cascade a broadcast and share the listener count', async () => {
  nodes = await startTestNodes(['tls-origin', 'tls-edge'], { REDIS_URL: redis.url, REDIS_TLS_CA: redis.caPath!, CHORUS_ORIGIN_PLACEMENT: 'local' });
  const [origin, edge] = nodes as [ChorusNode, ChorusNode];
  await cascades(origin, edge, 'tls-room', 770);
});

/** A broadcast on one node, a listener on each: audio on both, and the count crosses nodes. */
async function cascades(origin: ChorusNode, edge: ChorusNode, room: string, frequency: number): Promise<void> {
  const speaker = await toneBroadcaster(origin, room, frequency);
  try {
    const listeners = [await joinListener(edge, room), await joinListener(origin, room)];
    try {
      await Promise.all(listeners.map((l) => l.hears(frequency)));
      // The edge pulled the stream from the origin (a request over the bus, through Redis).
      expect(edge.rooms.get(room)?.localBroadcast).toBeUndefined();
      await until(() => speaker.client.audience === 2 && listeners.every((l) => l.client.audience === 2), 10_000, 'the cluster-wide count on both nodes');
    } finally {
      await Promise.all(listeners.map((l) => l.close()));
    }
  } finally {
    await speaker.stop();
  }
}

test('over a TLS Redis Cluster (rediss+cluster://: clients, cluster bus and replication on TLS) the same holds', async () => {
  const cluster = await startRedisCluster({ masters: 3, replicas: 0, tls: true });
  const pair: ChorusNode[] = [];
  try {
    expect(cluster.url).toMatch(/^rediss\+cluster:\/\//);
    pair.push(...(await startTestNodes(['tls-c1', 'tls-c2'], { REDIS_URL: cluster.url, REDIS_TLS_CA: cluster.caPath!, CHORUS_ORIGIN_PLACEMENT: 'local' })));
    await cascades(pair[0]!, pair[1]!, 'tls-cluster-room', 660);
  } finally {
    for (const node of pair) await node.close();
    await cluster.stop();
  }
});
