import { describe, expect, test } from 'vitest';
import { MemoryStateStore } from '../../src/store/memoryStore.js';

describe('memory state store', () => {
  test('a seat has one holder; only the holder frees it', async () => {
    const store = new MemoryStateStore();
    expect(await store.claimSeat('r', 'broadcaster', 'p1')).toBe(true);
    expect(await store.claimSeat('r', 'broadcaster', 'p2')).toBe(false);
    await store.releaseSeat('r', 'broadcaster', 'p2');
    expect(await store.seatHolder('r', 'broadcaster')).toBe('p1');
    await store.releaseSeat('r', 'broadcaster', 'p1');
    expect(await store.claimSeat('r', 'broadcaster', 'p2')).toBe(true);
    expect(await store.claimSeat('other', 'broadcaster', 'p3')).toBe(true);
  });

  test('swaps started at once from the same value: exactly one wins', async () => {
    const store = new MemoryStateStore();
    await store.swapValue('k', undefined, 'v0', 60);
    const results = await Promise.all(['a', 'b', 'c'].map((v) => store.swapValue('k', 'v0', v, 60)));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await store.getValue('k')).toBe(['a', 'b', 'c'][results.indexOf(true)]);
  });

  test('counts peers by role and forgets a deleted room entirely', async () => {
    const store = new MemoryStateStore();
    const peer = (id: string, role: 'broadcaster' | 'listener') =>
      store.addPeer({ id, roomId: 'r', identity: id, role, nodeId: 'n', joinedAt: 0 });
    await peer('a', 'broadcaster');
    await peer('b', 'listener');
    await peer('c', 'listener');
    expect(await store.countPeers('r')).toBe(3);
    expect(await store.countPeers('r', 'listener')).toBe(2);
    await store.removePeer('r', 'b');
    expect(await store.countPeers('r', 'listener')).toBe(1);
    await store.claimSeat('r', 'broadcaster', 'a');
    await store.putRoom({ id: 'r', kind: 'broadcast', nodeId: 'n', createdAt: 0, keyId: 'k' });
    await store.deleteRoom('r');
    expect(await store.getRoom('r')).toBeUndefined();
    expect(await store.countPeers('r')).toBe(0);
    expect(await store.seatHolder('r', 'broadcaster')).toBeUndefined();
  });
});
