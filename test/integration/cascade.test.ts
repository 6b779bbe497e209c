/**
 * A broadcast cascading across nodes: the broadcaster's node is the origin; listeners on other
 * nodes are served by their own node, which pulls the stream once from the origin over an SRTP
 * PipeTransport pair and fans it out locally.
 */
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { gatedHandlerFactory, toneTrack, type ToneSource } from '../support/nodePeer.js';
import type { ChorusClient } from '../../src/client/chorusClient.js';
import { joinListener, type TestListener } from '../support/listener.js';
import { startRedis, type RedisServer } from '../support/redisServer.js';
import { signalingRelay } from '../support/signalingRelay.js';
import { nodeClient, startTestNodes, tokenFor, toneBroadcaster, until } from '../support/testNode.js';

let redis: RedisServer;
let origin: ChorusNode;
let edge: ChorusNode;
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  redis = await startRedis();
  // The broadcaster stays where it connects, so these tests choose the origin; rendezvous
  // placement has its own test (placement.test.ts).
  const shared = { REDIS_URL: redis.url, CHORUS_ORIGIN_PLACEMENT: 'local' };
  [origin, edge] = (await startTestNodes(['origin', 'edge'], shared)) as [ChorusNode, ChorusNode];
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
  const { client: broadcaster, tone } = await toneBroadcaster(origin, 'city', 1000, 'muezzin');
  cleanup.push(() => tone.stop(), () => broadcaster.close());

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
  const edgeDump = await edgeRoom.requireMedia().origin.router.dump();
  expect(edgeDump.mapProducerIdConsumerIds).toHaveLength(1);
  expect(edgeDump.mapProducerIdConsumerIds[0]!.values).toHaveLength(3);
  expect(edgeDump.transportIds).toHaveLength(4); // 3 listener transports + 1 pipe from the origin
  const originRouter = origin.rooms.get('city')!.requireMedia().origin.router;
  const originDump = await originRouter.dump();
  expect(originDump.transportIds).toHaveLength(3); // broadcaster, local listener, one pipe to the edge
  // Operators see the same on /metrics: one pipe in on the edge, one out on the origin, and how
  // long the edge's pull took.
  const metric = async (node: ChorusNode, pattern: RegExp): Promise<number> => Number(pattern.exec(await (await fetch(`${node.url}/metrics`)).text())?.[1]);
  expect(await metric(edge, /^chorus_cascade_pipes\{direction="in",node="[^"]+"\} (\d+)$/m)).toBe(1);
  expect(await metric(edge, /^chorus_cascade_pipes\{direction="out",node="[^"]+"\} (\d+)$/m)).toBe(0);
  expect(await metric(origin, /^chorus_cascade_pipes\{direction="out",node="[^"]+"\} (\d+)$/m)).toBe(1);
  expect(await metric(edge, /^chorus_cascade_pull_duration_seconds_count\{node="[^"]+",outcome="ok"\} (\d+)$/m)).toBeGreaterThanOrEqual(1);

  // Stop and start: the edge drops the old pipe and pulls the new producer.
  await broadcaster.unpublish();
  await until(() => there.every((l) => !l.client.broadcast.live), 10_000, 'edge listeners to be told');
  await until(async () => (await edgeRoom.requireMedia().origin.router.dump()).mapProducerIdConsumerIds.length === 0, 10_000, 'edge pipe producer to close');
  await broadcaster.publish(tone.track);
  await Promise.all(there.map((l) => l.hears(1000)));
});

test('a broadcaster that moves to another node (origin change) is heard again by listeners everywhere', async () => {
  const { client: first, tone } = await toneBroadcaster(origin, 'moving', 1000, 'imam');
  cleanup.push(() => tone.stop(), () => first.close());
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

test('the admin API of any node sees the room on every node and acts where each session is', async () => {
  const auth = `Basic ${Buffer.from(`test:${'t'.repeat(40)}`).toString('base64')}`;
  const api = async (node: ChorusNode, method: string, path: string): Promise<{ status: number; json: any }> => {
    const response = await fetch(`${node.url}${path}`, { method, headers: { authorization: auth } });
    return { status: response.status, json: await response.json() };
  };
  const { client: broadcaster, tone } = await toneBroadcaster(origin, 'admin-city', 700, 'imam');
  cleanup.push(() => tone.stop(), () => broadcaster.close());
  const far = [await joinListener(edge, 'admin-city'), await joinListener(edge, 'admin-city')];
  cleanup.push(() => Promise.all(far.map((l) => l.close())));
  await Promise.all(far.map((l) => l.hears(700)));

  // Asked on the origin, the answer includes the edge's share (once the registry has seen it).
  let room: any;
  await until(async () => {
    room = (await api(origin, 'GET', '/api/admin/rooms/admin-city')).json;
    return room.nodes?.length === 2;
  }, 10_000, 'both nodes in the admin view');
  expect(room.peers).toBe(3);
  expect(room.broadcasting).toBe(true);
  expect(room.nodes).toEqual(expect.arrayContaining([
    { node: 'origin', peers: 1, byRole: { broadcaster: 1 }, hlsViewers: 0 },
    { node: 'edge', peers: 2, byRole: { listener: 2 }, hlsViewers: 0 },
  ]));
  expect(room.participants.filter((p: { node: string }) => p.node === 'edge')).toHaveLength(2);

  // Removing, asked on the origin, happens on the edge where that session is.
  const kicked: string[] = [];
  far[0]!.client.on('error', (e) => kicked.push(e.code));
  expect((await api(origin, 'DELETE', `/api/admin/rooms/admin-city/participants/${far[0]!.client.peerId}`)).status).toBe(200);
  await until(() => kicked.includes('KICKED'), 5000, 'the edge listener to be removed');
  expect(edge.rooms.get('admin-city')!.peers.size).toBe(1);

  // Closing, asked on the edge, ends the room on both nodes.
  const ended: string[] = [];
  for (const c of [broadcaster, far[1]!.client]) c.on('error', (e) => ended.push(e.code));
  const closed = await api(edge, 'DELETE', '/api/admin/rooms/admin-city');
  expect(closed.status).toBe(200);
  expect(closed.json.nodes.sort()).toEqual(['edge', 'origin']);
  await until(() => ended.filter((c) => c === 'ROOM_ENDED').length === 2, 5000, 'everyone to be told the room ended');
  await until(() => !origin.rooms.get('admin-city') && !edge.rooms.get('admin-city'), 5000, 'the room to close on both nodes');
});

test('an edge that loses its pipe while the broadcast goes on: its listeners consume again and hear', async () => {
  const { client: broadcaster, tone } = await toneBroadcaster(origin, 'lost-pipe', 880, 'muezzin');
  cleanup.push(() => tone.stop(), () => broadcaster.close());
  const there = await joinListener(edge, 'lost-pipe');
  cleanup.push(() => there.close());
  await there.hears(880);

  // The notice an origin sends when the piped producer closed, for the current producer: the
  // edge drops its pipe and its listeners' consumers, while the broadcast itself goes on (no
  // broadcast:started will come). This is what an edge does to a stale pipe it replaces.
  const { Redis } = await import('ioredis');
  const pub = new Redis(redis.url);
  cleanup.push(() => pub.disconnect());
  const producerId = there.client.broadcast.producerId!;
  const notice = { id: 'lost-pipe-notice', from: origin.config.nodeId, method: 'pipe.closed', params: { roomId: 'lost-pipe', producerId } };
  expect(await pub.publish(`chorus:node:${edge.config.nodeId}`, JSON.stringify(notice))).toBe(1);
  await until(() => there.events.includes('trackended'), 10_000, 'the edge listener to lose its consumer');
  await there.hears(880, 15_000);
  expect(there.client.broadcast.live).toBe(true);
});

/** The broadcaster stops and publishes again (a new producer); resolves once `listener` was told. */
async function republish(broadcaster: ChorusClient, tone: ToneSource, listener: TestListener): Promise<void> {
  const before = listener.client.broadcast.producerId;
  await broadcaster.unpublish();
  await broadcaster.publish(tone.track);
  await until(() => listener.client.broadcast.live && listener.client.broadcast.producerId !== before, 10_000, 'the listener to hear of the new broadcast');
}

test('a consume answered with a stream the listener has since been told is over: it consumes again and hears the new one', async () => {
  // After an origin dies, an edge whose registry still counts it alive can hand a joining
  // listener the old, silent pipe while the new origin's broadcast:started is on its way. Here
  // the order is forced: a relay holds the edge's consume answer until the broadcast has been
  // replaced and the listener told.
  const { client: broadcaster, tone } = await toneBroadcaster(origin, 'stale-answer', 660, 'muezzin');
  cleanup.push(() => tone.stop(), () => broadcaster.close());
  const relay = await signalingRelay(edge.url);
  cleanup.push(() => relay.close());
  const held = relay.holdNextReply('consume');
  const late = await joinListener(edge, 'stale-answer', { url: relay.url });
  cleanup.push(() => late.close());
  const answer = await held;
  const first = late.client.broadcast.producerId!;
  expect(answer.reply).toMatchObject({ ok: true, data: { producerId: first } });

  await republish(broadcaster, tone, late);
  answer.release();
  await late.hears(660);
  expect(late.client.consumer?.producerId).toBe(late.client.broadcast.producerId);
});

test('a stream that ends while its consumer is being set up is dropped for the new one', async () => {
  // The same race one step later: the answer named the current stream, and the news that it
  // was replaced lands during the SDP round that sets up its consumer.
  const { client: broadcaster, tone } = await toneBroadcaster(origin, 'stale-setup', 550, 'muezzin');
  cleanup.push(() => tone.stop(), () => broadcaster.close());
  const gated = gatedHandlerFactory();
  const late = await joinListener(edge, 'stale-setup', { handlerFactory: gated.factory });
  cleanup.push(() => late.close());
  await gated.entered;

  await republish(broadcaster, tone, late);
  gated.open();
  await late.hears(550);
  expect(late.client.consumer?.producerId).toBe(late.client.broadcast.producerId);
});
