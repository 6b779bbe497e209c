/**
 * HLS in a cluster: ffmpeg runs only on the node holding the broadcast (the origin); a request
 * reaching another node is checked there and proxied to the origin, so a player behind a load
 * balancer gets one continuous playlist whichever node answers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { analyse, decodeSegment, fetchPlaylist, pollPlaylist, rawGet } from '../support/hls.js';
import { toneTrack } from '../support/nodePeer.js';
import { startRedis, type RedisServer } from '../support/redisServer.js';
import { nodeClient, startTestNodes, tokenFor, toneBroadcaster, until } from '../support/testNode.js';

let redis: RedisServer;
let origin: ChorusNode;
let edge: ChorusNode;
let dir: string;
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'chorus-hls-cluster-'));
  redis = await startRedis();
  // The broadcaster stays on the node it connects to (no rendezvous redirect), so the test knows
  // which node is the origin.
  const shared = { REDIS_URL: redis.url, CHORUS_HLS_DIR: dir, CHORUS_ORIGIN_PLACEMENT: 'local' };
  [origin, edge] = (await startTestNodes(['origin', 'edge'], shared)) as [ChorusNode, ChorusNode];
});
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});
afterAll(async () => {
  await edge?.close();
  await origin?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('a player asking any node gets the origin\'s HLS, checked at the node it asked', async () => {
  const listener = await tokenFor(edge, 'hall', 'listener');
  const nothing = await rawGet(edge.url, `/hls/hall/index.m3u8?token=${listener}`);
  expect(nothing.error?.code).toBe('NOTHING_TO_CONSUME');

  const tone = toneTrack(1000);
  cleanup.push(() => tone.stop());
  const broadcaster = nodeClient(origin, 'hall', await tokenFor(origin, 'hall', 'broadcaster', 'speaker'));
  cleanup.push(() => broadcaster.close());
  await broadcaster.join();
  await broadcaster.publish(tone.track);
  // The edge learns where the broadcast is from the shared state.
  await until(async () => (await rawGet(edge.url, `/hls/hall/index.m3u8?token=${listener}`)).status === 200, 20_000, 'HLS through the edge');

  const { playlist } = await fetchPlaylist(edge.url, `/hls/hall/index.m3u8?token=${listener}`);
  expect(playlist.segments.length).toBeGreaterThan(0);
  const segment = await rawGet(edge.url, `/hls/hall/${playlist.segments.at(-1)!.uri}`);
  expect(segment.status).toBe(200);
  expect(segment.headers['content-type']).toBe('video/mp2t');
  const { rms, frequency } = analyse(await decodeSegment(segment.body));
  expect(rms).toBeGreaterThan(0.05);
  expect(Math.abs(frequency - 1000)).toBeLessThan(60);
  // One ffmpeg, on the origin; the edge only relays.
  expect(origin.hls!.session('hall')).toBeDefined();
  expect(edge.hls!.session('hall')).toBeUndefined();

  // The edge refuses bad tokens itself, without asking the origin.
  const wrong = await rawGet(edge.url, `/hls/hall/index.m3u8?token=${await tokenFor(edge, 'other', 'listener')}`);
  expect(wrong.error?.code).toBe('TOKEN_WRONG_ROOM');
  // A header naming a proxied request is never proxied again (no loops between nodes).
  const looped = await rawGet(edge.url, `/hls/hall/index.m3u8?token=${listener}`, { 'x-chorus-hls-proxied': '1' });
  expect(looped.error?.code).toBe('NOTHING_TO_CONSUME');
});

test('players asking another node are counted where the HLS runs, and every node\'s listeners see them in the count', async () => {
  const speaker = await toneBroadcaster(origin, 'counted-hall', 800);
  cleanup.push(() => speaker.stop());
  const broadcaster = speaker.client;
  const onEdge = nodeClient(edge, 'counted-hall', await tokenFor(edge, 'counted-hall', 'listener'));
  cleanup.push(() => onEdge.close());
  await onEdge.join();
  await until(() => onEdge.audience === 1 && broadcaster.audience === 1, 10_000, 'the session to be counted');

  // Three players behind one reusable link from two addresses, two of them through the edge:
  // the edge proxies to the origin, which tells players apart by the address the edge saw.
  const link = await edge.tokens.mint({ room: 'counted-hall', identity: 'public-link', role: 'listener', grants: { reusable: true } });
  const path = `/hls/counted-hall/index.m3u8?token=${link}`;
  const players = [
    pollPlaylist(edge.url, path, { localAddress: '127.0.0.2' }),
    pollPlaylist(edge.url, path, { localAddress: '127.0.0.3' }),
    pollPlaylist(origin.url, path, { localAddress: '127.0.0.3' }),
  ];
  cleanup.push(() => Promise.all(players.map((p) => p.stop())));
  await until(() => onEdge.audience === 3 && broadcaster.audience === 3, 20_000, 'both players in the count on both nodes');
  expect(origin.hls!.viewers('counted-hall')).toBe(2);
  expect(edge.hls!.viewers('counted-hall')).toBe(0);
});
