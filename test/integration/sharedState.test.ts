/**
 * Two nodes sharing one real Redis: the state that must be cluster-wide already is. (Media
 * crossing nodes — edges pulling a broadcast from its origin — is the cluster issue's next step.)
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { RoomChannel } from '../../src/rooms/channel.js';
import { RawSocket } from '../support/rawSocket.js';
import { startRedis, type RedisServer } from '../support/redisServer.js';
import { startTestNode, startTestNodes, tokenFor, until } from '../support/testNode.js';

let redis: RedisServer;
let a: ChorusNode;
let b: ChorusNode;
const sockets: RawSocket[] = [];

beforeAll(async () => {
  redis = await startRedis();
  // Publishers stay on the node they connect to (no rendezvous redirect), so what is tested here
  // is the shared state's own guarantee: one seat per room even when two nodes are asked at once.
  const shared = { REDIS_URL: redis.url, CHORUS_ORIGIN_PLACEMENT: 'local' };
  [a, b] = (await startTestNodes(['node-a', 'node-b'], shared)) as [ChorusNode, ChorusNode];
});
afterAll(async () => {
  for (const s of sockets) s.close();
  await a?.close();
  await b?.close();
  await redis?.stop();
});

async function on(node: ChorusNode): Promise<RawSocket> {
  const s = await RawSocket.connect(node);
  sockets.push(s);
  return s;
}

test('the broadcaster seat is one per room across nodes', async () => {
  const first = await on(a);
  await first.ok('join', { roomId: 'seat', token: await tokenFor(a, 'seat', 'broadcaster', 'one') });
  const second = await on(b);
  expect(await second.code('join', { roomId: 'seat', token: await tokenFor(b, 'seat', 'broadcaster', 'two') })).toBe('BROADCASTER_PRESENT');
  first.close();
  // The seat frees when its holder leaves, whichever node it was on.
  await until(async () => (await a.store.seatHolder('seat', 'broadcaster')) === undefined, 10_000, 'seat to free');
  const third = await on(b);
  await third.ok('join', { roomId: 'seat', token: await tokenFor(b, 'seat', 'broadcaster', 'three') });
});

test('a join token used on one node is spent on every node; kicks and room ends hold cluster-wide', async () => {
  const token = await tokenFor(a, 'replay', 'listener', 'yusuf');
  await (await on(a)).ok('join', { roomId: 'replay', token });
  expect(await (await on(b)).code('join', { roomId: 'replay', token })).toBe('TOKEN_USED');

  const preKick = await tokenFor(a, 'replay', 'listener', 'troll');
  const troll = await on(a);
  const trollPeer = (await troll.ok('join', { roomId: 'replay', token: await tokenFor(a, 'replay', 'listener', 'troll') }))['peerId'];
  const mod = await on(a);
  await mod.ok('join', { roomId: 'replay', token: await tokenFor(a, 'replay', 'moderator', 'mod') });
  await mod.ok('moderate', { action: 'kick', peerId: trollPeer });
  expect(await (await on(b)).code('join', { roomId: 'replay', token: preKick })).toBe('KICKED');
});

test('room events reach clients on other nodes through the Redis streams adapter', async () => {
  const listenerOnB = await on(b);
  await listenerOnB.ok('join', { roomId: 'events', token: await tokenFor(b, 'events', 'listener') });
  const broadcasterOnA = await on(a);
  await broadcasterOnA.ok('join', { roomId: 'events', token: await tokenFor(a, 'events', 'broadcaster') });
  const moderatorOnA = await on(a);
  await moderatorOnA.ok('join', { roomId: 'events', token: await tokenFor(a, 'events', 'moderator') });
  await moderatorOnA.ok('moderate', { action: 'end' });
  await until(() => listenerOnB.events.some((e) => e.event === 'room:ended'), 10_000, 'room:ended on node b');
});

test('a broadcaster returning on another node (same identity) takes its seat over; the stale session is told', async () => {
  const before = await on(a);
  await before.ok('join', { roomId: 'takeover', token: await tokenFor(a, 'takeover', 'broadcaster', 'imam') });
  const intruder = await on(b);
  expect(await intruder.code('join', { roomId: 'takeover', token: await tokenFor(b, 'takeover', 'broadcaster', 'someone-else') })).toBe('BROADCASTER_PRESENT');
  const after = await on(b);
  const joined = await after.ok('join', { roomId: 'takeover', token: await tokenFor(b, 'takeover', 'broadcaster', 'imam') });
  expect(await b.store.seatHolder('takeover', 'broadcaster')).toBe(joined['peerId']);
  // Node a finds out at its next lease refresh and lets the old session go.
  await until(() => before.events.some((e) => e.event === 'session:kicked'), 20_000, 'the old session to be told');
  await until(() => a.rooms.get('takeover') === undefined, 10_000, 'node a to let the room go');
});

test('join limits are shared through Redis: a client spreading joins over two nodes meets one limit', async () => {
  const { Limits } = await import('../../src/limits/limits.js');
  const settings = { ...a.limits.settings, joinsPerRoomPerSecond: 3 };
  const { Redis } = await import('ioredis');
  const client = new Redis(redis.url);
  await client.ping(); // ready: before that the limiters fall back to per-node memory counters
  const audit = { record: () => undefined };
  const onA = new Limits(settings, audit, { client, prefix: 'limits-test:' });
  const onB = new Limits(settings, audit, { client, prefix: 'limits-test:' });
  const outcomes: string[] = [];
  for (const limits of [onA, onB, onA, onB]) {
    outcomes.push(await limits.take('joinsPerRoom', 'shared-room').then(() => 'ok', (e: { code: string }) => e.code));
  }
  expect(outcomes).toEqual(['ok', 'ok', 'ok', 'LIMIT_REACHED']);
  client.disconnect();
});

test('the node registry: every node sees the others; a node that stops drops out within seconds', async () => {
  await until(async () => {
    const info = (await (await fetch(`${a.url}/readyz`)).json()) as { cluster?: Array<{ id: string }> };
    return (info.cluster ?? []).map((n) => n.id).sort().join(',') === 'node-a,node-b';
  }, 10_000, 'node a to see both nodes');
  const c = await startTestNode({ REDIS_URL: redis.url, CHORUS_NODE_ID: 'node-c', RTC_MIN_PORT: '30000', RTC_MAX_PORT: '30999' });
  await until(async () => (await a.store.listNodes()).some((n) => n.id === 'node-c'), 10_000, 'node c to register');
  await c.close();
  await until(async () => !(await a.store.listNodes()).some((n) => n.id === 'node-c'), 10_000, 'node c to leave');
});

// Last: it kills and restarts Redis, which the tests above should not have to recover from.
test('readiness reports the Redis breaker; with Redis gone joins get a retryable UNAVAILABLE, and recover; room events cross nodes again', async () => {
  expect((await (await fetch(`${a.url}/readyz`)).json()) as object).toMatchObject({ ready: true, redis: 'closed' });
  // A client on b, listening for room events published on a, before and after the outage.
  const far = await on(b);
  await far.ok('join', { roomId: 'events-after', token: await tokenFor(b, 'events-after', 'listener') });
  const room = (n: number): void => (a.rooms as unknown as { deps: { channel: RoomChannel } }).deps.channel.toRoom('events-after', 'broadcast:paused', { producerId: `p${n}` });
  const heard = (): string[] => far.events.filter((e) => e.event === 'broadcast:paused').map((e) => (e.payload as { producerId: string }).producerId);
  room(0);
  await until(() => heard().includes('p0'), 5000, 'an event across nodes before the outage');
  await redis.kill();
  const s = await on(a);
  const reply = await s.call('join', { roomId: 'outage', token: await tokenFor(a, 'outage', 'listener') });
  expect(reply.error).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
  await until(async () => (await fetch(`${a.url}/readyz`)).status === 503, 10_000, 'readyz to report the outage');
  await redis.restart();
  await until(async () => (await fetch(`${a.url}/readyz`)).status === 200, 15_000, 'readyz to recover');
  await s.ok('join', { roomId: 'outage', token: await tokenFor(a, 'outage', 'listener') });
  // Redis came back empty; the streams adapter must read the new stream on every node (a read in
  // flight when Redis died used to hang forever, leaving b deaf to the cluster's room events).
  let n = 1;
  await until(() => {
    room(n++);
    return heard().length > 1;
  }, 20_000, 'room events across nodes after Redis restarted empty');
});

test('the node bus handles a request delivered twice once: one handler run, one answer', async () => {
  const { NodeBus } = await import('../../src/cluster/bus.js');
  const { RedisStateStore } = await import('../../src/store/redisStore.js');
  const { createLogger } = await import('../../src/observability/logger.js');
  const { Redis } = await import('ioredis');
  const store = new RedisStateStore({ url: redis.url, prefix: 'bus-test:', refreshIntervalMs: 0 });
  await store.ready();
  const bus = await NodeBus.start(store, 'receiver', 'bus-test:', createLogger('silent', 'receiver'));
  const runs: string[] = [];
  bus.handle('pipe.open', async (params) => {
    runs.push((params as { n: string }).n);
    return 'opened';
  });
  // The sender's side, raw: its channel collects the answers.
  const sub = new Redis(redis.url);
  const pub = new Redis(redis.url);
  const answers: string[] = [];
  await sub.subscribe('bus-test:node:sender');
  sub.on('message', (_channel: string, raw: string) => answers.push((JSON.parse(raw) as { id: string }).id));
  const send = (id: string, n: string): Promise<number> => pub.publish('bus-test:node:receiver', JSON.stringify({ id, from: 'sender', method: 'pipe.open', params: { n } }));
  try {
    await send('req-1', 'first');
    await send('req-1', 'first again');
    await send('req-2', 'second');
    // Delivered in order: once req-2 is answered, the duplicate has been seen too.
    await until(() => answers.includes('req-2'), 5000, 'the answer to req-2');
    expect(runs).toEqual(['first', 'second']);
    expect(answers).toEqual(['req-1', 'req-2']);
  } finally {
    sub.disconnect();
    pub.disconnect();
    bus.close();
    await store.close();
  }
});
