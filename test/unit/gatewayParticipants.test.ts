import { pino } from 'pino';
import { afterEach, expect, test } from 'vitest';
import { GatewayParticipants, type GatewayEvent } from '../../src/gateway/participants.js';

const registries: GatewayParticipants[] = [];
afterEach(() => {
  for (const r of registries.splice(0)) r.close();
});

function participant(): ReturnType<GatewayParticipants['create']> {
  const registry = new GatewayParticipants(60_000, pino({ level: 'silent' }));
  registries.push(registry);
  return registry.create('127.0.0.1', 'key', 'tenant');
}

test('the event log keeps the last 512: a resume inside it gets exactly what followed, outside it a gap', () => {
  const p = participant();
  for (let i = 1; i <= 600; i++) p.push('speaker:changed', { n: i });
  expect(p.since(null)!.map((e) => e.id)).toEqual(Array.from({ length: 512 }, (_, i) => 89 + i));
  expect(p.since(100)!.map((e) => e.id)).toEqual(Array.from({ length: 500 }, (_, i) => 101 + i));
  // The first kept is 89: resuming after 88 misses nothing, after 87 it would miss 88.
  expect(p.since(88)).toHaveLength(512);
  expect(p.since(87)).toBeUndefined();
  expect(p.since(600)).toEqual([]);
  // An id never given (another participant's, or from before a restart) proves nothing.
  expect(p.since(601)).toBeUndefined();
});

test('a stream gets each event once, in order; an ended participant ends its streams and takes no more events', () => {
  const p = participant();
  const got: GatewayEvent[] = [];
  let ended = 0;
  const unsubscribe = p.subscribe({ event: (e) => got.push(e), end: () => ended++ });
  expect(p.streams).toBe(1);
  p.push('room:delta', { a: 1 });
  p.push('room:delta', { a: 2 });
  expect(got.map((e) => [e.id, e.data])).toEqual([[1, { a: 1 }], [2, { a: 2 }]]);
  unsubscribe();
  expect(p.streams).toBe(0);
  p.subscribe({ event: (e) => got.push(e), end: () => ended++ });
  p.end();
  expect(ended).toBe(1);
  expect(p.isConnected()).toBe(false);
  p.push('room:delta', { a: 3 });
  expect(got).toHaveLength(2);
});
