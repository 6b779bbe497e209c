/**
 * The quality sampler on a real room (one-worker pool): with more producers and consumers than its
 * budget, passes take turns, every one is sampled within a few passes, and a sample records the
 * time it covers (so layer time summed from the samples stays right).
 */
import pino from 'pino';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { NewRecord } from '../../src/records/nodeRecorder.js';
import { QualitySampler } from '../../src/records/qualitySampler.js';
import type { RoomManager } from '../../src/rooms/roomManager.js';
import { deviceCaps, type Harness, joined, publish, startHarness } from '../support/roomHarness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

test('past its budget the sampler takes turns: each pass asks for at most the budget, every object is sampled within a few passes', async () => {
  const { room } = await h.room('class');
  const teacher = await joined(room, 'teacher');
  const mic = await publish(room, teacher, 'microphone');
  const consumers: string[] = [];
  for (let i = 0; i < 5; i++) {
    const student = await joined(room, 'student');
    consumers.push((await room.consume(student.peer, student.recv.id, mic.id, deviceCaps(room), false)).id);
  }
  const records: NewRecord[] = [];
  // The sampler reads the node's rooms; here, this one room.
  const rooms = { rooms: new Map([[room.id, room]]) } as unknown as RoomManager;
  const sampler = new QualitySampler(rooms, { record: (r) => records.push(r) }, 'n1', 60_000, pino({ level: 'silent' }), 4);
  try {
    const tracks = (): string[] => records.map((r) => (r as { track: string }).track);
    // Six objects (one producer, five consumers), four a pass. (The producer gets no media here,
    // so mediasoup has no stats for it and it records nothing; its turn still counts.)
    await sampler.sample();
    const first = records.length;
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThanOrEqual(4);
    await sampler.sample();
    expect(records.length - first).toBeLessThanOrEqual(4);
    // Every consumer within two passes.
    expect(new Set(tracks().filter((t) => consumers.includes(t)))).toEqual(new Set(consumers));
    // A consumer sampled twice covers the time between its samples; the first sample the interval.
    const twice = consumers.find((id) => tracks().filter((t) => t === id).length === 2);
    const covered = records.filter((r) => (r as { track: string }).track === twice).map((r) => (r as { intervalMs?: number }).intervalMs);
    expect(covered[0]).toBe(60_000);
    expect(covered[1]).toBeLessThan(60_000);
  } finally {
    sampler.stop();
  }
});
