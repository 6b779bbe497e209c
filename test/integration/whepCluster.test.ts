/**
 * WHEP in a cluster: a player whose POST reaches a node that does not hold the broadcast is a
 * listener there like any other. The node pulls the broadcast over the cascade, and the player's
 * router (numbered as its offer) is fed from that pulled copy.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { startRedis, type RedisServer } from '../support/redisServer.js';
import { startTestNodes, tokenFor, toneBroadcaster, until, type ToneBroadcaster } from '../support/testNode.js';
import { postWhep, whepPlayer, type WhepPlayer } from '../support/whepPlayer.js';

let redis: RedisServer;
let nodes: ChorusNode[] = [];
const closers: Array<() => unknown> = [];

beforeAll(async () => {
  redis = await startRedis();
  nodes = await startTestNodes(['whep-a', 'whep-b'], { REDIS_URL: redis.url });
}, 60_000);

afterAll(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  for (const node of nodes) await node.close();
  await redis?.stop();
});

test('a WHEP player on the node that does not hold the broadcast hears it over the cascade', async () => {
  const [a, b] = nodes as [ChorusNode, ChorusNode];
  const room = 'whep-cascade';
  const speaker: ToneBroadcaster = await toneBroadcaster(a, room, 622);
  closers.push(() => speaker.stop());
  const player: WhepPlayer = await whepPlayer();
  closers.push(() => player.close());
  const response = await postWhep(b.url, room, await tokenFor(b, room, 'listener'), player.offer);
  expect(response.status).toBe(201);
  const answer = await response.text();
  expect(answer.match(/^m=\w+ \d+/gm)).toEqual(['m=audio 9', 'm=video 0']);
  await player.pc.setRemoteDescription({ type: 'answer', sdp: answer } as never);
  await until(() => (player.heard.probe?.rms ?? 0) > 0.05 && Math.abs((player.heard.probe?.frequency ?? 0) - 622) < 62, 15_000, 'the player on the other node to hear 622 Hz');
  // It is b's listener, fed by b's pull of the broadcast; a holds the speaker only.
  expect([...b.rooms.get(room)!.peers.values()].map((p) => p.role)).toEqual(['listener']);
  expect([...a.rooms.get(room)!.peers.values()].map((p) => p.role)).toEqual(['broadcaster']);
}, 45_000);
