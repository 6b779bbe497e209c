/**
 * The node's stats reads on real rooms (one-worker pool): past its budget the poller takes turns
 * across every room of the node, each read is one worker request that serves both the quality
 * records and the per-room gauges, and a quality sample records the time it covers (so layer time
 * summed from the samples stays right).
 */
import type { types } from 'mediasoup';
import pino from 'pino';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { MediaStatsSampler } from '../../src/observability/mediaStats.js';
import type { RoomMediaSample } from '../../src/observability/metrics.js';
import { STATS_BURST, StatsPoller, targetsOf, type StatsReading } from '../../src/observability/statsPoller.js';
import type { NewRecord } from '../../src/records/nodeRecorder.js';
import { QualitySampler } from '../../src/records/qualitySampler.js';
import type { Room } from '../../src/rooms/room.js';
import { deviceCaps, type Harness, joined, publish, startHarness } from '../support/roomHarness.js';

const silent = pino({ level: 'silent' });
let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

/** A class with a teacher's microphone and `students` consumers of it; their ids. */
async function classWith(students: number): Promise<{ room: Room; consumers: types.Consumer[] }> {
  const { room } = await h.room('class');
  const teacher = await joined(room, 'teacher');
  const mic = await publish(room, teacher, 'microphone');
  const consumers: types.Consumer[] = [];
  for (let i = 0; i < students; i++) {
    const student = await joined(room, 'student');
    consumers.push(await room.consume(student.peer, student.recv.id, mic.id, deviceCaps(room), false));
  }
  return { room, consumers };
}

/** Counts the stats requests each object is asked, whoever asks. */
function countRequests(objects: (types.Consumer | types.Producer)[]): Map<string, number> {
  const asked = new Map<string, number>();
  for (const object of objects) {
    const getStats = object.getStats.bind(object) as () => Promise<never>;
    object.getStats = () => {
      asked.set(object.id, (asked.get(object.id) ?? 0) + 1);
      return getStats();
    };
  }
  return asked;
}

test('past its budget the poller takes turns over every room of the node; one request per read serves the quality records and the room gauges', async () => {
  const samples: RoomMediaSample[][] = [];
  // Made before the rooms, as the node does: it learns of their objects from the worker's observers.
  const poller = new StatsPoller(() => targetsOf(rooms.map((r) => r.room)), { intervalMs: 0, budget: 4 }, silent);
  const gauges = new MediaStatsSampler(h.pool, { transportFailure: () => undefined, setRoomSamples: (s) => samples.push([...s]) }, { maxRooms: 10, intervalMs: 3_600_000 }, silent, poller);
  const rooms = [await classWith(3), await classWith(2)];
  const records: NewRecord[] = [];
  const quality = new QualitySampler({ subscribe: (s) => poller.subscribe(s), intervalMs: 60_000 }, { record: (r) => records.push(r) }, 'n1');
  const readings: StatsReading[] = [];
  poller.subscribe((r) => readings.push(r));
  const consumers = rooms.flatMap((r) => r.consumers);
  const asked = countRequests(consumers);
  try {
    // Before any read the gauges count listeners and know nothing of their streams.
    gauges.sample();
    expect(samples.at(-1)!.map((s) => [s.listeners, s.egressLoss])).toEqual([
      [3, undefined],
      [2, undefined],
    ]);
    // Seven objects (two producers, five consumers) in two rooms, four a pass, across both rooms.
    await poller.pass();
    expect(readings.length).toBeLessThanOrEqual(4);
    const first = readings.length;
    await poller.pass();
    expect(readings.length - first).toBeLessThanOrEqual(4);
    expect(new Set(readings.map((r) => r.room))).toEqual(new Set(rooms.map((r) => r.room.id)));
    // Every consumer of both rooms within two passes, each asked once per read and no more:
    // the gauges and the records took the same answer.
    const read = readings.flatMap((r) => ('consumer' in r ? [r.consumer.id] : []));
    expect(new Set(read)).toEqual(new Set(consumers.map((c) => c.id)));
    for (const c of consumers) expect(asked.get(c.id)).toBe(read.filter((id) => id === c.id).length);
    // The gauges now come from those reads (no media flows here: nothing lost, nothing sent).
    gauges.sample();
    expect(samples.at(-1)!.map((s) => [s.listeners, s.egressLoss, s.egressBitrateBps])).toEqual([
      [3, 0, 0],
      [2, 0, 0],
    ]);
    // A quality record for every consumer read; one read twice (a third pass starts the turns
    // again) covers the time between its reads, its first read the interval.
    await poller.pass();
    const readAll = readings.flatMap((r) => ('consumer' in r ? [r.consumer.id] : []));
    const tracks = records.map((r) => (r as { track: string }).track);
    expect(tracks).toEqual(readAll);
    const twice = consumers.find((c) => tracks.filter((t) => t === c.id).length === 2)!;
    const covered = records.filter((r) => (r as { track: string }).track === twice.id).map((r) => (r as { intervalMs?: number }).intervalMs);
    expect(covered[0]).toBe(60_000);
    expect(covered[1]).toBeLessThan(60_000);
  } finally {
    quality.stop();
    gauges.close();
    poller.stop();
  }
});

test('a subscriber that throws does not stop the others, and a stopped poller reads nothing', async () => {
  const { room } = await classWith(1);
  const poller = new StatsPoller(() => targetsOf([room]), { intervalMs: 0, budget: 10 }, silent);
  const seen: string[] = [];
  poller.subscribe(() => {
    throw new Error('a broken subscriber');
  });
  poller.subscribe((r) => seen.push('consumer' in r ? r.consumer.id : r.producer.id));
  await poller.pass();
  expect(seen.length).toBeGreaterThan(0);
  poller.stop();
  await poller.pass();
  expect(seen.length).toBeLessThanOrEqual(2);
});

test('a pass sends its reads in bursts: up to STATS_BURST in flight together, the next burst after their answers', async () => {
  // One microphone and STATS_BURST + 2 consumers of it: a full burst, then the rest.
  const { room, consumers } = await classWith(STATS_BURST + 2);
  const objects: (types.Consumer | types.Producer)[] = [...consumers, ...[...room.peers.values()].flatMap((p) => [...p.producers.values()])];
  let inFlight = 0;
  const bursts: number[] = [];
  for (const object of objects) {
    const getStats = object.getStats.bind(object) as () => Promise<never>;
    object.getStats = async () => {
      // A read asked while none is out starts a burst.
      if (inFlight === 0) bursts.push(0);
      inFlight++;
      bursts[bursts.length - 1]!++;
      try {
        return await getStats();
      } finally {
        inFlight--;
      }
    };
  }
  const poller = new StatsPoller(() => targetsOf([room]), { intervalMs: 0, budget: 100 }, silent);
  const read: string[] = [];
  poller.subscribe((r) => read.push('consumer' in r ? r.consumer.id : r.producer.id));
  try {
    await poller.pass();
    expect(read.length).toBe(objects.length);
    expect(bursts).toEqual([STATS_BURST, objects.length - STATS_BURST]);
  } finally {
    poller.stop();
  }
});
