import { describe, expect, test } from 'vitest';
import { OriginPlacement, pickWeighted, rendezvousPick, weightOf } from '../../src/cluster/placement.js';
import { createLogger } from '../../src/observability/logger.js';
import { MemoryStateStore } from '../../src/store/memoryStore.js';

const nodes = (ids: string[], load = 0) => ids.map((id) => ({ id, load }));
const rooms = Array.from({ length: 3000 }, (_, i) => `room-${i}`);

describe('weighted rendezvous placement', () => {
  test('every node computes the same owner, whatever the order it lists the nodes in', () => {
    const a = nodes(['n1', 'n2', 'n3', 'n4']);
    const b = [...a].reverse();
    for (const room of rooms.slice(0, 200)) expect(rendezvousPick(room, a)!.id).toBe(rendezvousPick(room, b)!.id);
    expect(rendezvousPick('x', [])).toBeUndefined();
  });

  test('equal nodes get about equal shares of the rooms', () => {
    const counts = new Map<string, number>();
    for (const room of rooms) {
      const id = rendezvousPick(room, nodes(['n1', 'n2', 'n3']))!.id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (const n of ['n1', 'n2', 'n3']) expect(Math.abs(counts.get(n)! - 1000)).toBeLessThan(150);
  });

  test('a loaded node gets fewer new rooms, in proportion to its weight', () => {
    const busy = { id: 'busy', load: 1500 }; // weight 1/4
    const idle = { id: 'idle', load: 0 };
    expect(weightOf(busy)).toBeCloseTo(0.25);
    const toBusy = rooms.filter((room) => rendezvousPick(room, [busy, idle])!.id === 'busy').length / rooms.length;
    // Weighted rendezvous gives w/(w1+w2) = 0.2 of the keys to the busy node.
    expect(toBusy).toBeGreaterThan(0.15);
    expect(toBusy).toBeLessThan(0.25);
  });

  test('a node leaving moves only its own rooms; a node joining takes rooms only for itself', () => {
    const four = nodes(['n1', 'n2', 'n3', 'n4']);
    const three = four.filter((n) => n.id !== 'n4');
    let moved = 0;
    for (const room of rooms) {
      const before = rendezvousPick(room, four)!.id;
      const after = rendezvousPick(room, three)!.id;
      if (before !== 'n4') expect(after).toBe(before);
      else moved++;
    }
    expect(moved).toBeGreaterThan(0);
    for (const room of rooms) {
      const before = rendezvousPick(room, three)!.id;
      const after = rendezvousPick(room, four)!.id;
      expect(after === before || after === 'n4').toBe(true);
    }
  });
});

describe('origin claims', () => {
  const node = (id: string, draining = false) => ({ id, url: `http://${id}`, load: 0, rooms: 0, peers: 0, draining });
  const quiet = createLogger('silent', 'test');

  test('the first asker claims the rendezvous pick; later askers get the same owner', async () => {
    const store = new MemoryStateStore();
    const nodes = [node('n1'), node('n2'), node('n3')];
    const a = new OriginPlacement(store, async () => nodes, 'n1', quiet);
    const b = new OriginPlacement(store, async () => [...nodes].reverse(), 'n2', quiet);
    const owner = (await a.originFor('room-x'))!.id;
    expect(owner).toBe(rendezvousPick('room-x', nodes)!.id);
    expect((await b.originFor('room-x'))!.id).toBe(owner);
  });

  test('a claim held by a node that stopped listening, or is draining, is placed again among the others', async () => {
    const store = new MemoryStateStore();
    const nodes = [node('n1'), node('n2'), node('n3')];
    const room = rooms.find((r) => rendezvousPick(r, nodes)!.id === 'n3')!;
    await store.setValue(`origin\0${room}`, 'n3', 60);
    const listening = new Set(['n1', 'n2']);
    const placement = new OriginPlacement(store, async () => nodes, 'n1', quiet, 15, async (id) => listening.has(id));
    const moved = (await placement.originFor(room))!.id;
    expect(moved).not.toBe('n3');
    expect(await store.getValue(`origin\0${room}`)).toBe(moved);

    // Now its new owner drains (and n3 is still gone): the one node left gets it.
    const drainingOwner = nodes.map((n) => ({ ...n, draining: n.id === moved || n.id === 'n3' }));
    const again = new OriginPlacement(store, async () => drainingOwner, 'n1', quiet, 15, async (id) => listening.has(id));
    const next = (await again.originFor(room))!.id;
    expect([moved, 'n3']).not.toContain(next);
  });
});

describe('spreading a draining node\'s clients', () => {
  test('every staying node gets clients, in proportion to its weight; none when nobody stays', () => {
    const nodes = [
      { id: 'idle', load: 0 },
      { id: 'busy', load: 500 }, // weighs half
      { id: 'busier', load: 1500 }, // weighs a quarter
    ];
    // A fixed sequence spread evenly over [0, 1): the outcome is exact, not a sample.
    const n = 7000;
    const counts: Record<string, number> = { idle: 0, busy: 0, busier: 0 };
    for (let i = 0; i < n; i++) counts[pickWeighted(nodes, () => (i + 0.5) / n)!.id]!++;
    expect(counts).toEqual({ idle: 4000, busy: 2000, busier: 1000 });
    expect(pickWeighted([], () => 0.5)).toBeUndefined();
    expect(pickWeighted([{ id: 'only', load: 9999 }], () => 0.999)?.id).toBe('only');
  });
});
