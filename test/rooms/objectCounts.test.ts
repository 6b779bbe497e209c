/**
 * The per-worker object gauges count what mediasoup holds: checked against the routers' own dumps
 * while a call room makes transports, producers and consumers, and back to zero once it closes.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { deviceCaps, joined, publish, startHarness, type Harness } from '../support/roomHarness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

test('routers, transports, producers and consumers are counted as mediasoup makes and closes them', async () => {
  const objects = h.pool.slots[0]!.objects;
  const before = { ...objects };
  const { room } = await h.room('call');
  const a = await joined(room, 'participant');
  const b = await joined(room, 'participant');
  const mic = await publish(room, a, 'microphone');
  const cam = await publish(room, a, 'camera');
  await room.consume(b.peer, b.recv.id, mic.id, deviceCaps(room));
  await room.consume(b.peer, b.recv.id, cam.id, deviceCaps(room));
  const dump = await room.requireMedia().dump();
  expect({
    routers: objects.routers - before.routers,
    transports: objects.transports - before.transports,
    producers: objects.producers - before.producers,
    consumers: objects.consumers - before.consumers,
  }).toEqual({ routers: dump.routers, transports: dump.transports, producers: dump.producers, consumers: dump.consumers });
  expect(dump).toMatchObject({ routers: 1, transports: 4, producers: 2, consumers: 2 });

  await room.leave(b.peer, 'left');
  expect(objects.consumers - before.consumers).toBe(0);
  expect(objects.transports - before.transports).toBe(2);
  await room.close();
  expect({ ...objects }).toEqual(before);
});
