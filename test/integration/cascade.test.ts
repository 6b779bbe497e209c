/**
 * A broadcast cascading across nodes: the broadcaster's node is the origin; listeners on other
 * nodes are served by their own node, which pulls the stream once from the origin over an SRTP
 * PipeTransport pair and fans it out locally.
 */
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { toneTrack } from '../support/nodePeer.js';
import { joinListener, type TestListener } from '../support/listener.js';
import { startRedis, type RedisServer } from '../support/redisServer.js';
import { nodeClient, startTestNode, tokenFor, until } from '../support/testNode.js';

let redis: RedisServer;
let origin: ChorusNode;
let edge: ChorusNode;
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  redis = await startRedis();
  origin = await startTestNode({ REDIS_URL: redis.url, CHORUS_NODE_ID: 'origin', RTC_MIN_PORT: '20000', RTC_MAX_PORT: '24999' });
  edge = await startTestNode({ REDIS_URL: redis.url, CHORUS_NODE_ID: 'edge', RTC_MIN_PORT: '25000', RTC_MAX_PORT: '29999' });
});
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});
afterAll(async () => {
  await edge?.close();
  await origin?.close();
  await redis?.stop();
});

test('listeners on another node hear the broadcast through one pipe, and follow it when it stops and restarts', async () => {
  const tone = toneTrack(1000);
  cleanup.push(() => tone.stop());
  const broadcaster = nodeClient(origin, 'city', await tokenFor(origin, 'city', 'broadcaster', 'muezzin'));
  cleanup.push(() => broadcaster.close());
  await broadcaster.join();
  await broadcaster.publish(tone.track);

  const here = await joinListener(origin, 'city');
  const there: TestListener[] = [];
  for (let i = 0; i < 3; i++) there.push(await joinListener(edge, 'city'));
  cleanup.push(() => Promise.all([here, ...there].map((l) => l.close())));
  await Promise.all([here, ...there].map((l) => l.hears(1000)));
  // The listener count is the whole room's, on every node, and the broadcaster sees it too.
  await until(() => [here, ...there].every((l) => l.client.audience === 4) && broadcaster.audience === 4, 10_000, 'cluster-wide count of 4');

  // The edge holds the broadcast as one piped producer, whatever its number of listeners.
  const edgeRoom = edge.rooms.get('city')!;
  expect(edgeRoom.localBroadcast).toBeUndefined();
  const edgeDump = await edgeRoom.media.origin.router.dump();
  expect(edgeDump.mapProducerIdConsumerIds).toHaveLength(1);
  expect(edgeDump.mapProducerIdConsumerIds[0]!.values).toHaveLength(3);
  expect(edgeDump.transportIds).toHaveLength(4); // 3 listener transports + 1 pipe from the origin
  const originRouter = origin.rooms.get('city')!.media.origin.router;
  const originDump = await originRouter.dump();
  expect(originDump.transportIds).toHaveLength(3); // broadcaster, local listener, one pipe to the edge

  // Stop and start: the edge drops the old pipe and pulls the new producer.
  await broadcaster.unpublish();
  await until(() => there.every((l) => !l.client.broadcast.live), 10_000, 'edge listeners to be told');
  await until(async () => (await edgeRoom.media.origin.router.dump()).mapProducerIdConsumerIds.length === 0, 10_000, 'edge pipe producer to close');
  await broadcaster.publish(tone.track);
  await Promise.all(there.map((l) => l.hears(1000)));
});

test('a broadcaster that moves to another node (origin change) is heard again by listeners everywhere', async () => {
  const tone = toneTrack(1000);
  cleanup.push(() => tone.stop());
  const first = nodeClient(origin, 'moving', await tokenFor(origin, 'moving', 'broadcaster', 'imam'));
  cleanup.push(() => first.close());
  await first.join();
  await first.publish(tone.track);
  const onOrigin = await joinListener(origin, 'moving');
  const onEdge = await joinListener(edge, 'moving');
  cleanup.push(() => Promise.all([onOrigin, onEdge].map((l) => l.close())));
  await onOrigin.hears(1000);
  await onEdge.hears(1000);

  await first.close();
  await until(() => !onOrigin.client.broadcast.live && !onEdge.client.broadcast.live, 10_000, 'listeners told');
  const other = toneTrack(600);
  cleanup.push(() => other.stop());
  const second = nodeClient(edge, 'moving', await tokenFor(edge, 'moving', 'broadcaster', 'imam'));
  cleanup.push(() => second.close());
  await second.join();
  await second.publish(other.track);
  await onEdge.hears(600);
  await onOrigin.hears(600);
});
