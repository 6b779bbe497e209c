/**
 * Redis behind Sentinel, as production runs it: a master, a replica and a Sentinel (all real
 * redis-server processes), two Chorus nodes given only `redis+sentinel://…/mymaster`. The master
 * is killed during a broadcast that cascades across the nodes; Sentinel promotes the replica, the
 * nodes find it through Sentinel, the audio never stops, and the cluster works again on the new
 * master (a listener joins on the other node and hears the broadcast).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { ChorusClient } from '../../src/client/chorusClient.js';
import { joinListener, type TestListener } from '../support/listener.js';
import { toneTrack, type ToneSource } from '../support/nodePeer.js';
import { startRedis, type RedisServer } from '../support/redisServer.js';
import { nodeClient, startTestNodes, tokenFor, until } from '../support/testNode.js';

let master: RedisServer;
let replica: RedisServer;
let sentinel: RedisServer;
let sentinelClient: Redis;
let a: ChorusNode;
let b: ChorusNode;
const cleanup: Array<() => unknown> = [];

const masterPort = async (): Promise<number> => Number(((await sentinelClient.call('SENTINEL', 'get-master-addr-by-name', 'mymaster')) as string[])[1]);

beforeAll(async () => {
  master = await startRedis();
  replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(master.port)] });
  sentinel = await startRedis({
    args: ['--sentinel'],
    config: [
      `sentinel monitor mymaster 127.0.0.1 ${master.port} 1`,
      'sentinel down-after-milliseconds mymaster 1000',
      'sentinel failover-timeout mymaster 5000',
      '',
    ].join('\n'),
  });
  sentinelClient = new Redis({ port: sentinel.port, host: '127.0.0.1', lazyConnect: false });
  // Sentinel learns the replica from the master's INFO (every 10 s at first): a failover before
  // that would have nobody to promote.
  await until(async () => ((await sentinelClient.call('SENTINEL', 'replicas', 'mymaster')) as unknown[]).length === 1, 20_000, 'Sentinel to know the replica');
  const url = `redis+sentinel://127.0.0.1:${sentinel.port}/mymaster`;
  const shared = { REDIS_URL: url, CHORUS_ORIGIN_PLACEMENT: 'local' };
  [a, b] = (await startTestNodes(['sentinel-a', 'sentinel-b'], shared)) as [ChorusNode, ChorusNode];
}, 60_000);

afterAll(async () => {
  for (const fn of cleanup.reverse()) await fn();
  await b?.close();
  await a?.close();
  sentinelClient?.disconnect();
  for (const server of [sentinel, replica, master]) await server?.stop();
});

test('the master dies mid-broadcast: Sentinel promotes the replica, audio never stops, and the cluster works on the new master', async () => {
  const tone: ToneSource = toneTrack(660);
  cleanup.push(() => tone.stop());
  const broadcaster: ChorusClient = nodeClient(a, 'sentinel-city', await tokenFor(a, 'sentinel-city', 'broadcaster', 'muezzin'));
  cleanup.push(() => broadcaster.close());
  await broadcaster.join();
  await broadcaster.publish(tone.track);
  const far: TestListener = await joinListener(b, 'sentinel-city');
  cleanup.push(() => far.close());
  await far.hears(660);
  expect(await masterPort()).toBe(master.port);

  await master.kill();
  // Media already flowing does not wait for Redis.
  await far.hears(660);
  await until(async () => (await masterPort()) === replica.port, 20_000, 'Sentinel to promote the replica');
  await until(async () => (await Promise.all([a, b].map((n) => fetch(`${n.url}/readyz`)))).every((r) => r.status === 200), 20_000, 'both nodes ready on the new master');

  // Shared state on the new master: a new listener on the edge joins, pulls the broadcast and
  // hears it, and the cluster-wide count reaches everyone.
  const late = await joinListener(b, 'sentinel-city');
  cleanup.push(() => late.close());
  await late.hears(660, 15_000);
  await until(() => broadcaster.audience === 2, 10_000, 'the broadcaster to see both listeners');
  const promoted = new Redis({ port: replica.port, host: '127.0.0.1' });
  cleanup.push(() => promoted.disconnect());
  expect(((await promoted.call('ROLE')) as unknown[])[0]).toBe('master');
  expect(await promoted.dbsize()).toBeGreaterThan(0);
}, 90_000);
