/**
 * A class spread over two nodes (origin placement off, so everyone stays where it connects):
 * the teacher's tracks reach students on the other node, and the hand queue is one, in Redis. Two assistants on different nodes invite at once from the
 * same queue version: exactly one wins. A student on one node is invited, brought on stage and
 * removed by staff on the other; its node acts (its track closes there) and every node's staff
 * see each move.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { Role } from '../../src/protocol/messages.js';
import type { HandQueue } from '../../src/protocol/room.js';
import { hears, joinCallPeer, videoOf, type CallPeer } from '../support/callPeer.js';
import { palette } from '../support/nodeVideo.js';
import { toneTrack } from '../support/nodePeer.js';
import { startRedis, type RedisServer } from '../support/redisServer.js';
import { startTestNodes, until } from '../support/testNode.js';

let redis: RedisServer;
let alpha: ChorusNode;
let beta: ChorusNode;
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

async function member(node: ChorusNode, room: string, identity: string, role: Role): Promise<CallPeer> {
  const token = await node.tokens.mint({ room, identity, role, kind: 'class', name: identity });
  const peer = await joinCallPeer(node, room, identity, 0, { token, receiveOnly: true });
  peers.push(peer);
  return peer;
}

const code = (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => 'OK',
    (error: { code?: string }) => error.code ?? String(error),
  );

test('two assistants on two nodes: one invite wins; a student on one node is brought on stage and removed from the other', async () => {
  const room = 'class-spread';
  const onAlpha = await member(alpha, room, 'assistant-a', 'assistant');
  const onBeta = await member(beta, room, 'assistant-b', 'assistant');
  const sa = await member(alpha, room, 'student-a', 'student');
  const sb = await member(beta, room, 'student-b', 'student');
  const seen = new Map<CallPeer, HandQueue[]>([[onAlpha, []], [onBeta, []]]);
  for (const [staff, queues] of seen) staff.client.on('handqueue', (q) => queues.push(q));

  // The teacher on alpha reaches the student on beta (its tracks pulled over once per node).
  const teacher = await joinCallPeer(alpha, room, 'teacher', 400, {
    token: await alpha.tokens.mint({ room, identity: 'teacher', role: 'teacher', kind: 'class', name: 'teacher' }),
    camera: { colour: palette.blue, width: 640, height: 360 },
  });
  peers.push(teacher);
  await until(() => hears(sb, teacher) && hears(sa, teacher) && videoOf(sb, teacher) !== undefined, 20_000, 'students on both nodes to hear the teacher on alpha');
  // The camera's capture size crossed with it: on beta a 360-high tile is its top layer, as on alpha.
  const cameraId = [...sb.client.participants.values()].flatMap((p) => [...p.tracks.values()]).find((t) => t.source === 'camera')!.trackId;
  const view = async (node: ChorusNode, student: CallPeer): Promise<number | undefined> => {
    const roomThere = node.rooms.get(room)!;
    const peer = roomThere.peers.get(student.client.peerId!)!;
    const consumer = [...peer.consumers.values()].find((c) => c.producerId === cameraId)!;
    return (await roomThere.viewTrack(peer, { consumerId: consumer.id, visible: true, width: 640, height: 360 })).spatialLayer;
  };
  await until(() => videoOf(sa, teacher) !== undefined, 10_000, 'the student on alpha to subscribe to the camera');
  expect(await view(beta, sb)).toBe(await view(alpha, sa));
  expect(await view(beta, sb)).toBe(2);

  // Chat crosses nodes: a question from beta reaches the staff on alpha, not the student there.
  const chats = new Map<CallPeer, string[]>([onAlpha, sa].map((p) => [p, []]));
  for (const [p, texts] of chats) p.client.on('chat', (m) => texts.push(m.text));
  await sb.client.sendChat('question from beta', 'staff');
  await onBeta.client.sendChat('hello from beta');
  await until(() => chats.get(onAlpha)!.length === 2 && chats.get(sa)!.length === 1, 5000, 'the messages to reach alpha');
  expect(chats.get(sa)).toEqual(['hello from beta']);

  await sa.client.moveHand('raise');
  const raised = await sb.client.moveHand('raise');
  // Each node's staff are told of both hands, whichever node they were raised on.
  const latest = (staff: CallPeer): HandQueue | undefined => seen.get(staff)!.at(-1);
  await until(() => [onAlpha, onBeta].every((s) => latest(s)?.version === raised.version && latest(s)!.hands.length === 2), 5000, 'both assistants to see both hands');

  const results = await Promise.all([
    code(onAlpha.client.moveHand('invite', { peerId: sb.client.peerId!, version: raised.version })),
    code(onBeta.client.moveHand('invite', { peerId: sa.client.peerId!, version: raised.version })),
  ]);
  expect(results.sort()).toEqual(['OK', 'STALE_VERSION']);
  const queue = await onAlpha.client.handQueue();
  expect(queue.version).toBe(raised.version + 1);
  const invited = queue.hands.filter((h) => h.state === 'invited');
  expect(invited).toHaveLength(1);

  // Whoever won, student-b (on beta) is brought on stage and taken off by staff on alpha: if
  // student-a's invite won, it is withdrawn first.
  if (invited[0]!.peerId !== sb.client.peerId) {
    await onAlpha.client.moveHand('remove', { peerId: sa.client.peerId!, version: (await onAlpha.client.handQueue()).version });
    await onAlpha.client.moveHand('invite', { peerId: sb.client.peerId!, version: (await onAlpha.client.handQueue()).version });
  }
  await until(() => sb.client.hand?.state === 'invited', 5000, 'student-b on beta to be told it is invited');
  await sb.client.moveHand('accept');
  const voice = toneTrack(700);
  try {
    await sb.client.publish(voice.track, 'microphone');
    await until(() => beta.rooms.get(room)!.peers.get(sb.client.peerId!)!.publications.size === 1, 5000, 'student-b to publish on beta');
    await onAlpha.client.moveHand('remove', { peerId: sb.client.peerId!, version: (await onAlpha.client.handQueue()).version });
    // Beta closed its track, though the removal was made on alpha.
    await until(() => beta.rooms.get(room)!.peers.get(sb.client.peerId!)!.publications.size === 0, 5000, 'beta to close the removed student\'s track');
    await until(() => sb.client.hand?.state === 'back', 5000, 'student-b to be told it is back');
    await until(() => latest(onBeta)?.hands.find((h) => h.peerId === sb.client.peerId)?.state === 'back', 5000, 'the assistant on beta to see it');
  } finally {
    voice.stop();
  }
});
