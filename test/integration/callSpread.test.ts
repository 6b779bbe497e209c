/**
 * One call spread over two nodes (origin placement off, so participants stay where they connect,
 * as during a drain or after a failover): each node shows the other's participants and pulls
 * their tracks, one pipe pair per room and node pair; mute, unpublish and leave cross over; a
 * node that goes away takes its participants out of the other's view.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { hears, joinCallPeer, type CallPeer } from '../support/callPeer.js';
import { startRedis, type RedisServer } from '../support/redisServer.js';
import { startTestNodes, until } from '../support/testNode.js';

let redis: RedisServer;
let alpha: ChorusNode;
let beta: ChorusNode | undefined;
const peers: CallPeer[] = [];

beforeAll(async () => {
  redis = await startRedis();
  [alpha, beta] = (await startTestNodes(['alpha', 'beta'], { REDIS_URL: redis.url, CHORUS_ORIGIN_PLACEMENT: 'local' })) as [ChorusNode, ChorusNode];
  await until(async () => (await alpha.store.listNodes()).length === 2, 10_000, 'both nodes registered');
});

afterAll(async () => {
  for (const p of peers) await p.close();
  await alpha?.close();
  await beta?.close();
  await redis?.stop();
});

const everyoneHearsEveryone = (): boolean => peers.every((p) => peers.every((q) => q === p || hears(p, q)));

test('participants on two nodes see and hear each other; changes cross over; a node leaving takes its participants along', async () => {
  const room = 'spread-call';
  peers.push(await joinCallPeer(alpha, room, 'a0', 300));
  peers.push(await joinCallPeer(beta!, room, 'b0', 600));
  peers.push(await joinCallPeer(alpha, room, 'a1', 900));
  expect(alpha.rooms.get(room)!.peers.size).toBe(2);
  expect(beta!.rooms.get(room)!.peers.size).toBe(1);
  const speakers = new Set<string>();
  for (const p of peers) p.client.on('activespeaker', (id) => id && speakers.add(`${p.identity}:${id}`));
  await until(everyoneHearsEveryone, 20_000, 'everyone to hear everyone across the two nodes');
  for (const p of peers) expect(p.client.participants.size).toBe(2);
  // Speaker detection on each node covers the microphones pulled from the other: every active
  // speaker reported names a participant of the call, wherever it is.
  const ids = new Set(peers.map((p) => p.client.peerId));
  await until(() => speakers.size > 0, 10_000, 'a speaker to be reported');
  for (const entry of speakers) expect(ids.has(entry.split(':')[1]!)).toBe(true);

  const [a0, b0, a1] = peers as [CallPeer, CallPeer, CallPeer];
  // A mute on beta shows on alpha, and silences there.
  await b0.client.setMuted('microphone', true);
  const b0OnA0 = (): boolean => [...(a0.client.participants.get(b0.client.peerId!)?.tracks.values() ?? [])][0]?.muted === true;
  await until(b0OnA0, 5000, 'alpha to show b0 muted');
  await until(() => (a0.heard.get(b0.client.peerId!)?.rms ?? 1) < 0.01, 5000, 'b0 to fall silent on alpha');
  // Beta's only local microphone is silent: its speaker detection, which also hears the
  // microphones pulled from alpha, names someone on alpha.
  const onAlpha = [a0.client.peerId, a1.client.peerId];
  await until(() => onAlpha.includes(b0.client.activeSpeaker ?? ''), 10_000, 'beta to report a speaker on alpha');
  await b0.client.setMuted('microphone', false);
  await until(() => hears(a0, b0) && hears(a1, b0), 10_000, 'b0 to be heard on alpha again');

  // A moderator on beta mutes a1 on alpha: alpha's node acts, and a1 cannot undo it.
  const mod = await joinCallPeer(beta!, room, 'mod', 1200, { role: 'moderator' });
  await until(() => mod.client.participants.has(a1.client.peerId!), 5000, 'the moderator to see a1');
  await mod.client.moderate({ action: 'mute', peerId: a1.client.peerId!, source: 'microphone' });
  await until(() => [...(a0.client.participants.get(a1.client.peerId!)?.tracks.values() ?? [])][0]?.mutedByModerator === true, 5000, 'a1 to show muted by a moderator');
  await expect(a1.client.setMuted('microphone', false)).rejects.toMatchObject({ code: 'MUTED' });
  // a1 asks to unmute: the only moderator is on beta, and is told.
  const asked: Array<{ peerId: string; source?: string | undefined }> = [];
  mod.client.on('muterequested', (r) => asked.push(r));
  await a1.client.requestUnmute('microphone');
  await until(() => asked.length === 1, 5000, 'the moderator on beta to hear the request');
  expect(asked[0]).toMatchObject({ peerId: a1.client.peerId, source: 'microphone' });
  const modId = mod.client.peerId!;
  await mod.close();
  // No moderator left anywhere: the request says so.
  await until(() => !a1.client.participants.has(modId), 5000, 'alpha to drop the moderator');
  await expect(a1.client.requestUnmute('microphone')).rejects.toMatchObject({ code: 'UNAVAILABLE' });

  // Unpublish on alpha: beta drops the track.
  await a1.client.unpublish('microphone');
  await until(() => b0.client.participants.get(a1.client.peerId!)?.tracks.size === 0, 5000, 'beta to drop a1\'s track');
  expect(b0.heard.has(a1.client.peerId!)).toBe(false);

  // Beta goes away: alpha's participants no longer show b0.
  const gone = b0.client.peerId!;
  await b0.close();
  peers.splice(1, 1);
  await beta!.close();
  beta = undefined;
  await until(() => !a0.client.participants.has(gone) && !a1.client.participants.has(gone), 15_000, 'alpha to drop beta\'s participant');
  expect(hears(a1, a0)).toBe(true);
});
