/**
 * Redis over TLS (`rediss://`), as managed Redis services require: a real redis-server serving
 * TLS only, with a self-signed certificate that nodes trust through REDIS_TLS_CA. The store, the
 * node bus and the Socket.IO adapter all run over it: a broadcast cascades from one node to
 * another and the cluster-wide listener count reaches clients on both.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { RedisStateStore } from '../../src/store/redisStore.js';
import { joinListener } from '../support/listener.js';
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
  const speaker = await toneBroadcaster(origin, 'tls-room', 770);
  const broadcaster = speaker.client;
  try {
    const listeners = [await joinListener(edge, 'tls-room'), await joinListener(origin, 'tls-room')];
    try {
      await Promise.all(listeners.map((l) => l.hears(770)));
      // The edge pulled the stream from the origin (a request over the bus, through Redis).
      expect(edge.rooms.get('tls-room')?.localBroadcast).toBeUndefined();
      await until(() => broadcaster.audience === 2 && listeners.every((l) => l.client.audience === 2), 10_000, 'the cluster-wide count on both nodes');
    } finally {
      await Promise.all(listeners.map((l) => l.close()));
    }
  } finally {
    await speaker.stop();
  }
});
