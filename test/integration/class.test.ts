/**
 * A class with the real SDK on Node WebRTC: a teacher publishes a tone and a coloured camera,
 * students join receive-only and decode both; a student's client is refused when it tries to
 * publish; students see the staff, never each other, and are counted.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { Role } from '../../src/protocol/messages.js';
import { hears, joinCallPeer, videoOf, type CallPeer } from '../support/callPeer.js';
import { mediaCounts } from '../support/mediaCounts.js';
import { toneTrack } from '../support/nodePeer.js';
import { colourMatches, palette } from '../support/nodeVideo.js';
import { startTestNode, until } from '../support/testNode.js';
import { TcpProxy } from '../support/tcpProxy.js';

let node: ChorusNode;
const peers: CallPeer[] = [];

beforeAll(async () => {
  node = await startTestNode();
});
afterAll(async () => {
  for (const p of peers) await p.close();
  await node?.close();
});

const classToken = (room: string, identity: string, role: Role): Promise<string> => node.tokens.mint({ room, identity, role, kind: 'class', name: identity });

test('students receive the teacher receive-only, cannot publish, see only the staff, and are counted', async () => {
  const room = 'class-basics';
  const teacher = await joinCallPeer(node, room, 'teacher', 400, {
    token: await classToken(room, 'teacher', 'teacher'),
    camera: { colour: palette.red, width: 320, height: 180 },
  });
  peers.push(teacher);
  const students: CallPeer[] = [];
  for (const name of ['s1', 's2']) {
    const student = await joinCallPeer(node, room, name, 0, { token: await classToken(room, name, 'student'), receiveOnly: true });
    peers.push(student);
    students.push(student);
  }
  await until(() => students.every((s) => hears(s, teacher) && videoOf(s, teacher) !== undefined && colourMatches(videoOf(s, teacher)!, palette.red)), 20_000, 'both students to hear and see the teacher');

  // Receive-only on the node too: one transport per student and no producer of theirs.
  const counts = await mediaCounts(node);
  expect(counts).toMatchObject({ producers: 2, transports: 2 + students.length });
  // Their client refuses to publish, and the node would refuse it anyway (room tests).
  const tone = toneTrack(500);
  try {
    await expect(students[0]!.client.publish(tone.track, 'microphone')).rejects.toMatchObject({ code: 'FORBIDDEN_ROLE' });
  } finally {
    tone.stop();
  }
  // Students see the teacher, never each other; the teacher sees no student.
  for (const s of students) expect([...s.client.participants.values()].map((p) => p.identity)).toEqual(['teacher']);
  expect(teacher.client.participants.size).toBe(0);
  expect(await node.rooms.get(room)!.audienceCount()).toBe(2);
});

test('chat: the class gets a message, the staff alone a question; a flood is refused past the limit and delivers nothing', async () => {
  const room = 'class-chat';
  const teacher = await joinCallPeer(node, room, 'teacher', 400, { token: await classToken(room, 'teacher', 'teacher') });
  const asker = await joinCallPeer(node, room, 'asker', 0, { token: await classToken(room, 'asker', 'student'), receiveOnly: true });
  const other = await joinCallPeer(node, room, 'other', 0, { token: await classToken(room, 'other', 'student'), receiveOnly: true });
  peers.push(teacher, asker, other);
  const got = new Map<CallPeer, string[]>([teacher, asker, other].map((p) => [p, []]));
  for (const [p, texts] of got) p.client.on('chat', (m) => texts.push(`${m.from.identity}>${m.to}:${m.text}`));

  await teacher.client.sendChat('Open page 12');
  await asker.client.sendChat('What does "ratio" mean?', 'staff');
  await until(() => got.get(teacher)!.length === 2 && got.get(asker)!.length === 2 && got.get(other)!.length === 1, 5000, 'the messages to arrive');
  expect(got.get(other)).toEqual(['teacher>class:Open page 12']);
  expect(got.get(teacher)).toEqual(['teacher>class:Open page 12', 'asker>staff:What does "ratio" mean?']);

  // CHORUS_LIMIT_CHAT_PER_MINUTE (20) per session: the 19 more pass, then LIMIT_REACHED.
  for (let i = 1; i <= 19; i++) await asker.client.sendChat(`q${i}`, 'staff');
  await expect(asker.client.sendChat('one too many', 'staff')).rejects.toMatchObject({ code: 'LIMIT_REACHED' });
  await until(() => got.get(teacher)!.length === 21, 5000, 'the 19 to arrive');
  expect(got.get(teacher)!.some((t) => t.endsWith('one too many'))).toBe(false);
});

test('a student raises a hand, is invited and accepts: everyone hears it; removed, its tracks stop at once', async () => {
  const room = 'class-stage';
  const teacher = await joinCallPeer(node, room, 'teacher', 400, { token: await classToken(room, 'teacher', 'teacher') });
  peers.push(teacher);
  const student = await joinCallPeer(node, room, 'asker', 0, { token: await classToken(room, 'asker', 'student'), receiveOnly: true });
  const listener = await joinCallPeer(node, room, 'quiet', 0, { token: await classToken(room, 'quiet', 'student'), receiveOnly: true });
  peers.push(student, listener);
  const queues: number[] = [];
  teacher.client.on('handqueue', (q) => queues.push(q.version));
  const states: string[] = [];
  student.client.on('hand', (hand) => states.push(hand?.state ?? 'none'));

  const raised = await student.client.moveHand('raise');
  // A student is shown only its own hand.
  expect(raised.hands.map((h) => h.identity)).toEqual(['asker']);
  await until(() => queues.includes(raised.version), 5000, 'the teacher to be told of the raised hand');
  const queue = await teacher.client.handQueue();
  expect(queue.hands.map((h) => `${h.identity}:${h.state}`)).toEqual(['asker:raised']);
  await teacher.client.moveHand('invite', { peerId: student.client.peerId!, version: queue.version });
  await until(() => student.client.hand?.state === 'invited', 5000, 'the student to be invited');
  await student.client.moveHand('accept');
  // On stage: the SDK opened a send transport by itself; the student's tone reaches everyone.
  const voice = toneTrack(700);
  try {
    await student.client.publish(voice.track, 'microphone');
    const asker = { ...student, frequency: 700 };
    await until(() => hears(listener, asker) && hears(teacher, asker), 20_000, 'the other student and the teacher to hear the student on stage');

    const onStage = await teacher.client.handQueue();
    await teacher.client.moveHand('remove', { peerId: student.client.peerId!, version: onStage.version });
    // The node closed its track whatever the client does: gone from the others' view.
    await until(() => ![...listener.client.participants.values()].some((p) => p.identity === 'asker') && !listener.heard.has(student.client.peerId!), 5000, 'the student off stage to be gone for the others');
    const published = [...node.rooms.get(room)!.peers.values()].map((p) => `${p.identity}:${p.publications.size}`);
    expect(published.sort()).toEqual(['asker:0', 'quiet:0', 'teacher:1']);
    expect(states).toEqual(['raised', 'invited', 'onstage', 'back']);
    // Back in the audience: publishing is refused again.
    await student.client.unpublish('microphone');
    await expect(student.client.publish(voice.track, 'microphone')).rejects.toMatchObject({ code: 'FORBIDDEN_ROLE' });
  } finally {
    voice.stop();
  }
});

test('a student on stage whose connection drops comes back on stage by itself: heard again, no new invitation', async () => {
  const room = 'class-stage-drop';
  const proxy = await TcpProxy.start(Number(new URL(node.url).port));
  const teacher = await joinCallPeer(node, room, 'teacher', 400, { token: await classToken(room, 'teacher', 'teacher') });
  peers.push(teacher);
  const student = await joinCallPeer(proxy.url, room, 'speaker', 0, { token: await classToken(room, 'speaker', 'student'), receiveOnly: true });
  const listener = await joinCallPeer(node, room, 'ear', 0, { token: await classToken(room, 'ear', 'student'), receiveOnly: true });
  peers.push(student, listener);
  const voice = toneTrack(900);
  try {
    const raised = await student.client.moveHand('raise');
    await teacher.client.moveHand('invite', { peerId: student.client.peerId!, version: (await teacher.client.handQueue()).version });
    expect(raised.hands).toHaveLength(1);
    await until(() => student.client.hand?.state === 'invited', 5000, 'the student to be invited');
    await student.client.moveHand('accept');
    await student.client.publish(voice.track, 'microphone');
    const speaker = { ...student, frequency: 900 };
    await until(() => hears(listener, speaker), 20_000, 'the other student to hear the one on stage');
    const firstPeer = student.client.peerId;

    expect(proxy.cut()).toBeGreaterThan(0);
    await until(() => student.client.state === 'joined' && student.client.peerId !== firstPeer, 15_000, 'the student to rejoin on a new connection');
    // Its hand followed it: on stage under the new session, its microphone published again by the SDK.
    await until(() => student.client.hand?.state === 'onstage' && student.client.hand.peerId === student.client.peerId, 5000, 'the stage to follow the student');
    await until(() => hears(listener, speaker), 20_000, 'the other student to hear it again');
    const queue = await teacher.client.handQueue();
    expect(queue.hands.map((h) => `${h.identity}:${h.state}:${h.peerId === student.client.peerId}`)).toEqual(['speaker:onstage:true']);
  } finally {
    voice.stop();
    await proxy.close();
  }
});
