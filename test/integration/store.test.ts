/**
 * One contract for every StateStore: the memory store (one node), the Redis store on a real
 * redis-server (several nodes = several connections), and the same on a real three-shard Redis
 * Cluster (where every multi-key script must stay inside one hash slot, or Redis refuses it with
 * CROSSSLOT). Then what only Redis has: leases that let a dead node's peers drop out, no key
 * without a TTL, and the breaker while Redis is down.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { ChorusError } from '../../src/protocol/errors.js';
import type { Role } from '../../src/protocol/messages.js';
import { MemoryStateStore } from '../../src/store/memoryStore.js';
import { parseRedisUrl, RedisStateStore, type RedisStateStoreOptions } from '../../src/store/redisStore.js';
import type { StateStore } from '../../src/store/stateStore.js';
import { scanKeys, startRedisCluster, type RedisCluster } from '../support/redisCluster.js';
import { startRedis, type RedisServer } from '../support/redisServer.js';

/** Polls `probe` until it returns something truthy; fails with `what` after `ms`. */
async function waitFor<T>(what: string, probe: () => Promise<T> | T, ms = 10_000, everyMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Checks `probe` keeps returning true for `ms` (a lease that must not lapse). */
async function holdsFor(what: string, probe: () => Promise<boolean>, ms: number, everyMs = 50): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!(await probe())) throw new Error(`${what} stopped holding`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

const peer = (roomId: string, id: string, role: Role, nodeId = 'n1') => ({ id, roomId, identity: `id-${id}`, role, nodeId, joinedAt: 1 });
const room = (id: string, nodeId = 'n1') => ({ id, kind: 'broadcast' as const, nodeId, createdAt: 1, keyId: 'k' });

interface Backend {
  name: string;
  /** `n` views of one shared state, as `n` nodes would have (memory: one node, the same store). */
  nodes(n: number): Promise<StateStore[]>;
  /** Keys the backend holds for the room, and keys anywhere that would never expire. */
  inspect?(roomId: string): Promise<{ roomKeys: string[]; withoutTtl: string[] }>;
}

let redis: RedisServer;
let admin: Redis;
let cluster: RedisCluster;
const opened: StateStore[] = [];

beforeAll(async () => {
  [redis, cluster] = await Promise.all([startRedis(), startRedisCluster({ masters: 3, replicas: 0 })]);
  admin = new Redis(redis.url);
}, 60_000);

afterEach(async () => {
  await Promise.all(opened.splice(0).map((store) => store.close()));
  await admin.flushall();
  await cluster.flushAll();
});

afterAll(async () => {
  admin?.disconnect();
  await redis?.stop();
  await cluster?.stop();
});

async function openRedis(options: Partial<RedisStateStoreOptions> = {}, url = redis.url): Promise<RedisStateStore> {
  const store = new RedisStateStore({ url, refreshIntervalMs: 0, ...options });
  opened.push(store);
  await store.ready();
  return store;
}

const backends: Backend[] = [
  {
    name: 'memory',
    async nodes(n) {
      const store = new MemoryStateStore();
      opened.push(store);
      return Array.from({ length: n }, () => store);
    },
  },
  {
    name: 'redis',
    async nodes(n) {
      return Promise.all(Array.from({ length: n }, () => openRedis()));
    },
    async inspect(roomId) {
      const all = await scanKeys(admin, 'chorus:*');
      const ttls = await Promise.all(all.map((key) => admin.pttl(key)));
      return { roomKeys: all.filter((key) => key.includes(`{${roomId}}`)), withoutTtl: all.filter((_, i) => ttls[i]! < 0) };
    },
  },
  {
    name: 'redis cluster',
    async nodes(n) {
      return Promise.all(Array.from({ length: n }, () => openRedis({}, cluster.url)));
    },
    async inspect(roomId) {
      const all = await cluster.keys('chorus:*');
      const ttls = await Promise.all(all.map((key) => cluster.pttl(key)));
      return { roomKeys: all.filter((key) => key.includes(`{${roomId}}`)), withoutTtl: all.filter((_, i) => ttls[i]! < 0) };
    },
  },
];

describe.each(backends)('state store contract: $name', (backend) => {
  test('20 racing claims: exactly one wins; only the holder frees the seat', async () => {
    const nodes = await backend.nodes(4);
    const claims = Array.from({ length: 20 }, (_, i) => nodes[i % nodes.length]!.claimSeat('r', 'broadcaster', `p${i}`));
    const results = await Promise.all(claims);
    expect(results.filter(Boolean)).toHaveLength(1);
    const winner = `p${results.indexOf(true)}`;
    const [a, b] = nodes as [StateStore, StateStore];
    expect(await b.seatHolder('r', 'broadcaster')).toBe(winner);
    // The holder claiming again (a retry whose reply was lost) still holds it.
    expect(await a.claimSeat('r', 'broadcaster', winner)).toBe(true);

    const loser = winner === 'p0' ? 'p1' : 'p0';
    await b.releaseSeat('r', 'broadcaster', loser);
    expect(await a.seatHolder('r', 'broadcaster')).toBe(winner);
    expect(await b.claimSeat('r', 'broadcaster', loser)).toBe(false);

    await a.releaseSeat('r', 'broadcaster', winner);
    expect(await b.seatHolder('r', 'broadcaster')).toBeUndefined();
    expect(await b.claimSeat('r', 'broadcaster', loser)).toBe(true);
    // Seats are per room.
    expect(await a.claimSeat('other', 'broadcaster', 'p99')).toBe(true);
    expect(await a.seatHolder('r', 'broadcaster')).toBe(loser);
  });

  test('peers: add, remove, count by role, across nodes', async () => {
    const [a, b] = (await backend.nodes(2)) as [StateStore, StateStore];
    await a.addPeer(peer('r', 'bc', 'broadcaster'));
    await a.addPeer(peer('r', 'l1', 'listener'));
    await b.addPeer(peer('r', 'l2', 'listener', 'n2'));
    await b.addPeer(peer('r', 'l3', 'listener', 'n2'));
    await b.addPeer(peer('other', 'x', 'listener', 'n2'));
    expect(await a.countPeers('r')).toBe(4);
    expect(await b.countPeers('r', 'listener')).toBe(3);
    expect(await b.countPeers('r', 'broadcaster')).toBe(1);
    expect(await a.countPeers('r', 'host')).toBe(0);
    expect(await a.countPeers('nowhere')).toBe(0);

    // Adding the same peer again changes nothing; removing works from any node.
    await a.addPeer(peer('r', 'l1', 'listener'));
    expect(await b.countPeers('r', 'listener')).toBe(3);
    await a.removePeer('r', 'l2');
    await b.removePeer('r', 'l1');
    await b.removePeer('r', 'not-there');
    expect(await a.countPeers('r', 'listener')).toBe(1);
    expect(await a.countPeers('r')).toBe(2);
    expect(await a.countPeers('other')).toBe(1);
  });

  test('deleteRoom removes everything of the room and nothing else; no key is left without a TTL', async () => {
    const [a, b] = (await backend.nodes(2)) as [StateStore, StateStore];
    for (const id of ['r', 'keep']) {
      await a.putRoom(room(id));
      await a.addPeer(peer(id, `${id}-bc`, 'broadcaster'));
      await b.addPeer(peer(id, `${id}-l`, 'listener', 'n2'));
      expect(await a.claimSeat(id, 'broadcaster', `${id}-bc`)).toBe(true);
    }
    await a.setMark('ended\0r', 5, 60);
    expect(await a.useOnce('jti\0t1', 60)).toBe(true);
    expect(await b.getRoom('r')).toEqual(room('r'));
    if (backend.inspect) {
      const live = await backend.inspect('r');
      expect(live.roomKeys.length).toBeGreaterThan(0);
      expect(live.withoutTtl).toEqual([]);
    }

    await b.deleteRoom('r');
    expect(await a.getRoom('r')).toBeUndefined();
    expect(await a.countPeers('r')).toBe(0);
    expect(await a.seatHolder('r', 'broadcaster')).toBeUndefined();
    expect(await a.claimSeat('r', 'broadcaster', 'new')).toBe(true);
    await a.releaseSeat('r', 'broadcaster', 'new');
    // The other room, the marks and the single-use ids are not the room's to delete.
    expect(await b.getRoom('keep')).toEqual(room('keep'));
    expect(await b.countPeers('keep')).toBe(2);
    expect(await b.seatHolder('keep', 'broadcaster')).toBe('keep-bc');
    expect(await b.getMark('ended\0r')).toBe(5);
    expect(await b.useOnce('jti\0t1', 60)).toBe(false);
    if (backend.inspect) {
      const left = await backend.inspect('r');
      expect(left.roomKeys).toEqual([]);
      expect(left.withoutTtl).toEqual([]);
    }
    // Deleting a room twice, or one that never existed, is harmless.
    await a.deleteRoom('r');
    await a.deleteRoom('never');
  });

  test('useOnce: first caller only (also when racing), then free again after its TTL', async () => {
    const nodes = await backend.nodes(3);
    const racing = await Promise.all(Array.from({ length: 10 }, (_, i) => nodes[i % nodes.length]!.useOnce('jti\0race', 60)));
    expect(racing.filter(Boolean)).toHaveLength(1);

    const [a, b] = nodes as [StateStore, StateStore];
    const start = Date.now();
    expect(await a.useOnce('jti\0short', 1)).toBe(true);
    expect(await b.useOnce('jti\0short', 1)).toBe(false);
    expect(await a.useOnce('jti\0other', 1)).toBe(true);
    await waitFor('the 1 s single-use record to expire', () => b.useOnce('jti\0short', 1), 5000);
    expect(Date.now() - start).toBeGreaterThanOrEqual(990);
  });

  test('marks: read back, overwritten, gone after their TTL', async () => {
    const [a, b] = (await backend.nodes(2)) as [StateStore, StateStore];
    expect(await a.getMark('kick\0r\0alice')).toBeUndefined();
    const start = Date.now();
    await a.setMark('kick\0r\0alice', 1_700_000_000_000, 1);
    await a.setMark('kick\0r\0bob', 7, 60);
    expect(await b.getMark('kick\0r\0alice')).toBe(1_700_000_000_000);
    await b.setMark('kick\0r\0bob', 8, 60);
    expect(await a.getMark('kick\0r\0bob')).toBe(8);
    await waitFor('the 1 s mark to expire', async () => (await b.getMark('kick\0r\0alice')) === undefined, 5000);
    expect(Date.now() - start).toBeGreaterThanOrEqual(990);
    expect(await a.getMark('kick\0r\0bob')).toBe(8);
  });

  test('values: compare-and-set writes only over what the caller read; peers are listed across nodes', async () => {
    const [a, b] = (await backend.nodes(2)) as [StateStore, StateStore];
    expect(await a.swapValue('watch:r', 'stale', 'v1', 60)).toBe(false);
    expect(await a.getValue('watch:r')).toBeUndefined();
    expect(await a.swapValue('watch:r', undefined, 'v1', 60)).toBe(true);
    expect(await b.swapValue('watch:r', undefined, 'v1-b', 60)).toBe(false);
    expect(await b.swapValue('watch:r', 'v1', 'v2', 60)).toBe(true);
    expect(await a.swapValue('watch:r', 'v1', 'v3', 60)).toBe(false); // a lost the race: v2 stays
    expect(await a.getValue('watch:r')).toBe('v2');
    expect(await a.swapValue('watch:r', 'v2', 'v2', 60)).toBe(true); // same value: a lease renewal
    expect(await b.swapValue('watch:r', 'v1', undefined, 60)).toBe(false);
    expect(await b.swapValue('watch:r', 'v2', undefined, 60)).toBe(true);
    expect(await a.getValue('watch:r')).toBeUndefined();

    await a.addPeer(peer('r', 'p1', 'host', 'n1'));
    await b.addPeer(peer('r', 'p2', 'listener', 'n2'));
    expect((await b.listPeers('r')).map((p) => p.id).sort()).toEqual(['p1', 'p2']);
    await a.removePeer('r', 'p1');
    expect((await b.listPeers('r')).map((p) => p.id)).toEqual(['p2']);
    expect(await a.listPeers('nobody-here')).toEqual([]);
  });

  test('values: owner-checked delete; node registry: listed while announced, gone after its TTL', async () => {
    const [a, b] = (await backend.nodes(2)) as [StateStore, StateStore];
    await a.setValue('broadcast\0r', 'from-a', 60);
    await b.deleteValue('broadcast\0r', 'from-b');
    expect(await b.getValue('broadcast\0r')).toBe('from-a');
    await b.deleteValue('broadcast\0r', 'from-a');
    expect(await a.getValue('broadcast\0r')).toBeUndefined();

    const node = (id: string) => ({ id, url: `http://${id}`, load: 1, rooms: 0, peers: 0, draining: false });
    const start = Date.now();
    await a.putNode(node('short'), 1);
    await b.putNode(node('long'), 60);
    expect((await a.listNodes()).map((n) => n.id).sort()).toEqual(['long', 'short']);
    await waitFor('the 1 s node to drop out', async () => !(await b.listNodes()).some((n) => n.id === 'short'), 5000);
    expect(Date.now() - start).toBeGreaterThanOrEqual(990);
    await a.removeNode('long');
    expect(await b.listNodes()).toEqual([]);
  });

  test('claimValue: 12 racing claims, one wins and all learn who; free again once deleted or expired', async () => {
    const nodes = await backend.nodes(3);
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => nodes[i % 3]!.claimValue('origin\0r', `n${i}`, 60)));
    expect(new Set(answers).size).toBe(1);
    const winner = answers[0]!;
    expect(await nodes[1]!.getValue('origin\0r')).toBe(winner);
    await nodes[2]!.deleteValue('origin\0r', winner);
    expect(await nodes[0]!.claimValue('origin\0r', 'next', 1)).toBe('next');
    await waitFor('the 1 s claim to expire', async () => (await nodes[1]!.getValue('origin\0r')) === undefined, 5000);
    expect(await nodes[1]!.claimValue('origin\0r', 'after', 60)).toBe('after');
  });
});

describe('redis state store only', () => {
  test('a node that stops refreshing loses its peers after the lease; a refreshing one keeps them', async () => {
    const leaseMs = 1000;
    const living = await openRedis({ leaseMs, refreshIntervalMs: 200 });
    const dying = await openRedis({ leaseMs, refreshIntervalMs: 200 });
    await living.putRoom(room('r', 'living'));
    await living.addPeer(peer('r', 'bc', 'broadcaster', 'living'));
    expect(await living.claimSeat('r', 'broadcaster', 'bc')).toBe(true);
    await living.addPeer(peer('r', 'l1', 'listener', 'living'));
    await dying.addPeer(peer('r', 'l2', 'listener', 'dying'));
    await dying.addPeer(peer('r', 'l3', 'listener', 'dying'));
    expect(await living.countPeers('r', 'listener')).toBe(3);

    // Well past the lease, both nodes refreshing: nothing lapses.
    await holdsFor('4 peers while both nodes refresh', async () => (await living.countPeers('r')) === 4, 2.5 * leaseMs);

    // The dying node stops (as if it crashed: its entries are not removed).
    await dying.close();
    await waitFor("the dead node's peers to drop out of the counts", async () => (await living.countPeers('r', 'listener')) === 1, 5000);
    expect(await living.countPeers('r')).toBe(2);
    expect(await living.seatHolder('r', 'broadcaster')).toBe('bc');
    expect(await living.getRoom('r')).toEqual(room('r', 'living'));
    // Their stale records are pruned by the next write to the room.
    await living.addPeer(peer('r', 'l4', 'listener', 'living'));
    expect((await admin.hkeys('chorus:{r}:peers')).sort()).toEqual(['bc', 'l1', 'l4']);

    // Nobody refreshing: the whole room expires on its own.
    await living.close();
    await waitFor('every key of the abandoned room to expire', async () => (await scanKeys(admin, 'chorus:*')).length === 0, 5000);
  });

  test('a refresh re-asserts what the node holds, without resurrecting removed peers or released seats', async () => {
    const store = await openRedis();
    await store.putRoom(room('r'));
    await store.addPeer(peer('r', 'bc', 'broadcaster'));
    await store.addPeer(peer('r', 'l1', 'listener'));
    await store.addPeer(peer('r', 'l2', 'listener'));
    expect(await store.claimSeat('r', 'broadcaster', 'bc')).toBe(true);
    await store.removePeer('r', 'l2');
    await store.putRoom(room('gone'));
    await store.deleteRoom('gone');

    await admin.flushall(); // Redis lost its data (a restart without persistence)
    await store.refresh();
    expect(await store.getRoom('r')).toEqual(room('r'));
    expect(await store.countPeers('r', 'listener')).toBe(1);
    expect(await store.countPeers('r', 'broadcaster')).toBe(1);
    expect(await store.seatHolder('r', 'broadcaster')).toBe('bc');
    expect(await store.getRoom('gone')).toBeUndefined();

    // A seat someone else took meanwhile is reported lost, not stolen back.
    await store.releaseSeat('r', 'broadcaster', 'bc');
    expect(await store.claimSeat('r', 'broadcaster', 'bc')).toBe(true);
    await admin.set('chorus:{r}:seat:broadcaster', 'usurper', 'PX', 60_000);
    const lost: unknown[] = [];
    store.on('seatLost', (loss) => lost.push(loss));
    await store.refresh();
    expect(lost).toEqual([{ roomId: 'r', seat: 'broadcaster', peerId: 'bc' }]);
    expect(await store.seatHolder('r', 'broadcaster')).toBe('usurper');
    const keys = await scanKeys(admin, 'chorus:*');
    expect((await Promise.all(keys.map((k) => admin.pttl(k)))).every((ttl) => ttl > 0)).toBe(true);
  });

  test('REDIS_URL parsing: single node, Sentinel, Cluster, and clear refusals', () => {
    expect(parseRedisUrl('redis://127.0.0.1:6380/2')).toEqual({ mode: 'standalone', url: 'redis://127.0.0.1:6380/2' });
    expect(parseRedisUrl('rediss://u:p@redis.example:6380')).toMatchObject({ mode: 'standalone' });
    expect(parseRedisUrl('redis+sentinel://:s3cret@s1:26380,s2,[::1]:26381/mymaster/3?sentinelPassword=sp')).toEqual({
      mode: 'sentinel',
      name: 'mymaster',
      sentinels: [
        { host: 's1', port: 26380 },
        { host: 's2', port: 26379 },
        { host: '::1', port: 26381 },
      ],
      db: 3,
      password: 's3cret',
      sentinelPassword: 'sp',
    });
    expect(parseRedisUrl('redis+sentinel://user:pw@s1/m')).toMatchObject({ username: 'user', password: 'pw', db: 0 });
    expect(() => parseRedisUrl('redis+sentinel://s1,s2')).toThrow(/master/);
    expect(parseRedisUrl('redis+cluster://:pw@a:7000,b,[::1]:7002')).toEqual({
      mode: 'cluster',
      tls: false,
      password: 'pw',
      nodes: [
        { host: 'a', port: 7000 },
        { host: 'b', port: 6379 },
        { host: '::1', port: 7002 },
      ],
    });
    expect(parseRedisUrl('rediss+cluster://user:pw@a:7000/')).toMatchObject({ mode: 'cluster', tls: true, username: 'user', password: 'pw' });
    expect(() => parseRedisUrl('redis+cluster://a:7000/2')).toThrow(/no database/);
    expect(() => parseRedisUrl('redis+cluster://a:x')).toThrow(/bad cluster node address/);
    expect(() => parseRedisUrl('memcached://x')).toThrow(/unsupported/);
  });
});

describe('redis state store while Redis is down', () => {
  let chaos: RedisServer;
  beforeAll(async () => {
    chaos = await startRedis();
  });
  afterAll(async () => {
    await chaos?.stop();
  });

  test('fails fast with a retryable UNAVAILABLE, opens the breaker, recovers after a restart and restores its entries', async () => {
    const store = new RedisStateStore({ url: chaos.url, refreshIntervalMs: 0, halfOpenAfterMs: 2000 });
    opened.push(store);
    const health: boolean[] = [];
    store.on('health', (healthy) => health.push(healthy));
    await store.ready();
    await waitFor('the store to report healthy', () => store.healthy, 5000);
    await store.putRoom(room('r'));
    await store.addPeer(peer('r', 'bc', 'broadcaster'));
    await store.addPeer(peer('r', 'l1', 'listener'));
    expect(await store.claimSeat('r', 'broadcaster', 'bc')).toBe(true);

    await chaos.kill();
    const start = Date.now();
    const error = await store.addPeer(peer('r', 'l2', 'listener')).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(Date.now() - start).toBeLessThan(2000);
    expect(error).toBeInstanceOf(ChorusError);
    expect((error as ChorusError).code).toBe('UNAVAILABLE');
    expect((error as ChorusError).toWire().retryable).toBe(true);

    // Failures keep coming until the breaker opens; from then on calls are refused at once.
    await waitFor(
      'the breaker to open',
      async () => {
        await store.countPeers('r').catch(() => undefined);
        return store.breakerState === 'open';
      },
      5000,
    );
    expect(store.healthy).toBe(false);
    expect(health).toContain(false);
    const refused = Date.now();
    const fast = await store.getRoom('r').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(Date.now() - refused).toBeLessThan(500);
    expect(fast).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/circuit open/) });

    await chaos.restart();
    await waitFor(
      'calls to succeed again after the restart',
      () => store.getRoom('r').then(
        () => true,
        () => false,
      ),
      20_000,
      100,
    );
    await waitFor('the store to report healthy again', () => store.healthy, 5000);
    expect(store.breakerState).toBe('closed');
    expect(health.at(-1)).toBe(true);

    // The restarted Redis is empty; the node's next refresh puts back what it holds.
    expect(await store.getRoom('r')).toBeUndefined();
    await store.refresh();
    expect(await store.getRoom('r')).toEqual(room('r'));
    expect(await store.countPeers('r')).toBe(2);
    expect(await store.seatHolder('r', 'broadcaster')).toBe('bc');
  });
});
