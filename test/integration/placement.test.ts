/**
 * Rendezvous placement in a three-node cluster: a broadcaster that connects anywhere is sent to
 * the node the room hashes to, listeners anywhere hear it through their own node, and when that
 * node drains the broadcaster moves to a node that stays, with the listeners following.
 */
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { joinListener, type TestListener } from '../support/listener.js';
import { roomOwnedBy } from '../support/placement.js';
import { startRedis, type RedisServer } from '../support/redisServer.js';
import { startTestNodes, toneBroadcaster, until } from '../support/testNode.js';

let redis: RedisServer;
const nodes: Record<string, ChorusNode> = {};
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  redis = await startRedis();
  const started = await startTestNodes(['alpha', 'beta', 'gamma'], { REDIS_URL: redis.url });
  for (const node of started) nodes[node.config.nodeId] = node;
  await until(async () => (await nodes['alpha']!.store.listNodes()).length === 3, 10_000, 'all three nodes registered');
});
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});
afterAll(async () => {
  for (const node of Object.values(nodes)) await node.close();
  await redis?.stop();
});

test('a broadcaster connecting to any node is sent to the room\'s node; listeners everywhere hear it', async () => {
  const room = await roomOwnedBy('gamma', ['alpha', 'beta', 'gamma'], 'placed');
  // Connects to alpha, which is not the room's node.
  const speaker = await toneBroadcaster(nodes['alpha']!, room, 880, 'muezzin');
  cleanup.push(() => speaker.stop());
  const broadcaster = speaker.client;

  expect(nodes['gamma']!.rooms.get(room)?.localBroadcast).toBeDefined();
  expect(nodes['gamma']!.rooms.get(room)!.peers.has(broadcaster.peerId!)).toBe(true);
  expect(nodes['alpha']!.rooms.get(room)).toBeUndefined();
  expect(await nodes['beta']!.store.getValue(`origin\0${room}`)).toBe('gamma');
  const listeners: TestListener[] = [];
  for (const id of ['alpha', 'beta', 'gamma']) listeners.push(await joinListener(nodes[id]!, room));
  cleanup.push(() => Promise.all(listeners.map((l) => l.close())));
  await Promise.all(listeners.map((l) => l.hears(880)));
});

test('the room\'s node draining sends the broadcaster to a node that stays; listeners hear it again', async () => {
  const room = await roomOwnedBy('beta', ['alpha', 'beta', 'gamma'], 'drained');
  const speaker = await toneBroadcaster(nodes['alpha']!, room, 523, 'imam');
  cleanup.push(() => speaker.stop());
  const broadcaster = speaker.client;
  expect(nodes['beta']!.rooms.get(room)?.localBroadcast).toBeDefined();
  const listeners = [await joinListener(nodes['alpha']!, room), await joinListener(nodes['gamma']!, room)];
  cleanup.push(() => Promise.all(listeners.map((l) => l.close())));
  await Promise.all(listeners.map((l) => l.hears(523)));

  const sessions = listeners.map((l) => l.client.peerId);
  const drained = nodes['beta']!.drain(15_000);
  delete nodes['beta'];
  expect((await drained).remaining).toBe(0);
  // Placed again among the nodes that stay, and heard again by both listeners without a reload.
  await until(() => ['alpha', 'gamma'].some((id) => nodes[id]!.rooms.get(room)?.localBroadcast !== undefined), 15_000, 'the broadcast to resume on a staying node');
  const holder = await nodes['alpha']!.store.getValue(`origin\0${room}`);
  expect(['alpha', 'gamma']).toContain(holder);
  expect(nodes[holder!]!.rooms.get(room)?.localBroadcast).toBeDefined();
  await Promise.all(listeners.map((l) => l.hears(523, 15_000)));
  // Only beta's clients were asked to move: listeners on the other nodes kept their sessions and
  // only switched to the new stream.
  expect(listeners.map((l) => l.client.peerId)).toEqual(sessions);
  for (const l of listeners) expect(l.events).not.toContain('state:reconnecting');
});

test('a draining node sends its clients straight to a node that stays, with no balancer in front', async () => {
  // The listeners know only gamma's own URL: reconnecting there after it drains would find
  // nothing. The drain notice names a node that stays.
  const room = await roomOwnedBy('alpha', ['alpha', 'gamma'], 'direct');
  const speaker = await toneBroadcaster(nodes['alpha']!, room, 587, 'imam');
  cleanup.push(() => speaker.stop());
  const broadcaster = speaker.client;
  const listeners = [await joinListener(nodes['gamma']!, room), await joinListener(nodes['gamma']!, room)];
  cleanup.push(() => Promise.all(listeners.map((l) => l.close())));
  await Promise.all(listeners.map((l) => l.hears(587)));

  const drained = nodes['gamma']!.drain(15_000);
  delete nodes['gamma'];
  expect((await drained).remaining).toBe(0);
  await Promise.all(listeners.map((l) => l.hears(587, 15_000)));
  const alpha = nodes['alpha']!.rooms.get(room)!;
  expect(listeners.every((l) => alpha.peers.has(l.client.peerId!))).toBe(true);
});
