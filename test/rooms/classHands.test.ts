/**
 * A class's raised hands, driven on Room directly (real one-worker pool, recording channel,
 * memory store): raise → invite → accept (the student may publish) → remove (its tracks close
 * at once); versioned transitions so two assistants acting at once cannot both win; the stage
 * limit; every refusal changes nothing.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { HandQueue } from '../../src/protocol/room.js';
import { errorCode, grantFor, type Harness, joined, publish, startHarness } from '../support/roomHarness.js';
import { until } from '../support/testNode.js';
import { Hands } from '../../src/rooms/hands.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});


const states = (queue: HandQueue): string[] => queue.hands.map((hand) => `${hand.identity}:${hand.state}`);

describe('raised hands', () => {
  test('raise, invite, accept: the student publishes and everyone gets it; remove closes its tracks at once; it may raise again', async () => {
    const { room, channel, audit } = await h.room('class');
    const teacher = await joined(room, 'teacher');
    const student = await joined(room, 'student');
    const other = await joined(room, 'student');

    const raised = await room.hand(student.peer, 'raise');
    expect(states(raised)).toEqual([`${student.peer.identity}:raised`]);
    expect(channel.to(teacher.peer.id, 'hand:queue').at(-1)).toEqual({ queue: raised });
    expect(channel.to(student.peer.id, 'hand:state').at(-1)).toMatchObject({ hand: { state: 'raised' }, version: raised.version });
    // The other student is told nothing of it.
    expect(channel.to(other.peer.id, 'hand:queue')).toEqual([]);
    // Not on stage yet: no send path.
    expect(await errorCode(room.createTransport(student.peer, 'send', false))).toBe('FORBIDDEN_ROLE');

    const invited = await room.hand(teacher.peer, 'invite', student.peer.id, raised.version);
    expect(states(invited)).toEqual([`${student.peer.identity}:invited`]);
    const onStage = await room.hand(student.peer, 'accept');
    expect(states(onStage)).toEqual([`${student.peer.identity}:onstage`]);

    // On stage: a send transport and its microphone and camera, no screen; everyone is told.
    const send = await room.createTransport(student.peer, 'send', false);
    const mic = await publish(room, { peer: student.peer, send }, 'microphone');
    await publish(room, { peer: student.peer, send }, 'camera');
    expect(await errorCode(publish(room, { peer: student.peer, send }, 'screen'))).toBe('FORBIDDEN_ROLE');
    expect(channel.changes().some((c) => c.type === 'joined' && c.participant.peerId === student.peer.id)).toBe(true);
    expect(room.snapshot(other.peer).participants.map((p) => p.peerId)).toContain(student.peer.id);
    const heard = await room.consume(other.peer, other.recv.id, mic.id, room.requireMedia().rtpCapabilities);
    expect(heard.closed).toBe(false);

    // Removed: its tracks and its send transport close now, and the other student's consumer with them.
    const back = await room.hand(teacher.peer, 'remove', student.peer.id, onStage.version);
    expect(states(back)).toEqual([`${student.peer.identity}:back`]);
    expect([student.peer.publications.size, student.peer.transports.size, mic.closed]).toEqual([0, 1, true]);
    await until(() => heard.closed, 5000, "the other student's consumer of it to close");
    expect(channel.changes().at(-1)).toEqual({ type: 'left', peerId: student.peer.id });
    expect(await errorCode(room.createTransport(student.peer, 'send', false))).toBe('FORBIDDEN_ROLE');
    expect(channel.to(student.peer.id, 'hand:state').at(-1)).toMatchObject({ hand: { state: 'back' } });

    // It may raise its hand again; every move was audited.
    expect(states(await room.hand(student.peer, 'raise'))).toEqual([`${student.peer.identity}:raised`]);
    expect(audit.filter((e) => e.type === 'hand').map((e) => (e.type === 'hand' ? `${e.action}:${e.from}>${e.to}` : ''))).toEqual([
      'raise:null>raised',
      'invite:raised>invited',
      'accept:invited>onstage',
      'remove:onstage>back',
      'raise:back>raised',
    ]);
  });

  test('two assistants moving one queue at once: exactly one wins, the other is told its version is stale', async () => {
    const { room } = await h.room('class');
    const [a1, a2] = [await joined(room, 'assistant'), await joined(room, 'assistant')];
    const [s1, s2] = [await joined(room, 'student'), await joined(room, 'student')];
    await room.hand(s1.peer, 'raise');
    const queue = await room.hand(s2.peer, 'raise');
    const results = await Promise.all([
      errorCode(room.hand(a1.peer, 'invite', s1.peer.id, queue.version)),
      errorCode(room.hand(a2.peer, 'invite', s2.peer.id, queue.version)),
    ]);
    expect(results.sort()).toEqual(['OK', 'STALE_VERSION']);
    const after = await room.handQueue(a1.peer);
    expect(after.version).toBe(queue.version + 1);
    expect(after.hands.filter((hand) => hand.state === 'invited')).toHaveLength(1);
  });

  test('refusals change nothing: wrong actor, wrong state, a full stage, a stale version, a teacher without a hand', async () => {
    const { room } = await h.room('class', { maxClassStage: 1 });
    const teacher = await joined(room, 'teacher');
    const [s1, s2, s3] = [await joined(room, 'student'), await joined(room, 'student'), await joined(room, 'student')];
    await room.hand(s1.peer, 'raise');
    await room.hand(s2.peer, 'raise');
    let queue = await room.handQueue(teacher.peer);
    queue = await room.hand(teacher.peer, 'invite', s1.peer.id, queue.version);
    const before = await room.handQueue(teacher.peer);
    expect(await errorCode(room.hand(teacher.peer, 'invite', s2.peer.id, queue.version))).toBe('STAGE_FULL');
    expect(await errorCode(room.hand(s3.peer, 'invite', s2.peer.id, queue.version))).toBe('FORBIDDEN_ROLE');
    expect(await errorCode(room.hand(s2.peer, 'accept'))).toBe('BAD_TRANSITION');
    expect(await errorCode(room.hand(s3.peer, 'lower'))).toBe('BAD_TRANSITION');
    expect(await errorCode(room.hand(teacher.peer, 'remove', s2.peer.id, queue.version))).toBe('BAD_TRANSITION');
    expect(await errorCode(room.hand(teacher.peer, 'lower', s2.peer.id, queue.version - 1))).toBe('STALE_VERSION');
    expect(await errorCode(room.hand(teacher.peer, 'raise'))).toBe('BAD_TRANSITION');
    expect(await errorCode(room.hand(teacher.peer, 'invite', 'no-such-peer', queue.version))).toBe('NOT_FOUND');
    expect(await errorCode(room.handQueue(s1.peer))).toBe('FORBIDDEN_ROLE');
    expect(await room.handQueue(teacher.peer)).toEqual(before);

    // A student who leaves takes its hand along, and the staff are told.
    await room.leave(s2.peer, 'left');
    const left = await room.handQueue(teacher.peer);
    expect(left.hands.map((hand) => hand.peerId)).toEqual([s1.peer.id]);
    expect(left.version).toBe(before.version + 1);
  });

  test('when the class is over everywhere its queue goes, even a hand nobody took along', async () => {
    const { room, store } = await h.room('class');
    const teacher = await joined(room, 'teacher');
    const student = await joined(room, 'student');
    await room.hand(student.peer, 'raise');
    // A hand left behind by a node that died: its student never leaves from here.
    const hands = new Hands(store, room.id, 6);
    await hands.apply('raise', { peerId: 'gone-with-its-node', identity: 'ghost' }, { peerId: 'gone-with-its-node', staff: false });
    expect((await hands.read()).hands).toHaveLength(2);
    await room.leave(student.peer, 'left');
    expect((await hands.read()).hands.map((hand) => hand.identity)).toEqual(['ghost']);
    await room.leave(teacher.peer, 'left');
    await until(() => room.closed, 5000, 'the empty class to close');
    await until(async () => (await hands.read()).hands.length === 0, 5000, 'the queue to be cleared');
    expect(await hands.read()).toEqual({ version: 0, hands: [] });
  });

  test('a student whose connection dropped keeps its place on stage when it comes back naming the old session; one who left does not', async () => {
    const { room, channel, audit } = await h.room('class', { handGraceMs: 60_000 });
    const teacher = await joined(room, 'teacher');
    const student = await joined(room, 'student', { identity: 'returning' });
    const leaver = await joined(room, 'student', { identity: 'leaver' });
    for (const s of [student, leaver]) {
      const raised = await room.hand(s.peer, 'raise');
      await room.hand(teacher.peer, 'invite', s.peer.id, raised.version);
      await room.hand(s.peer, 'accept');
    }
    await room.leave(leaver.peer, 'left');
    await room.leave(student.peer, 'dropped');
    // The one who left is gone from the queue; the dropped one is still on stage, waiting.
    expect(states(await room.handQueue(teacher.peer))).toEqual(['returning:onstage']);

    // Someone else naming that session gets nothing of it.
    const impostor = await room.join(grantFor(room, 'student', { identity: 'impostor' }), crypto.randomUUID());
    await room.resumeHand(impostor, student.peer.id);
    expect(channel.to(impostor.id, 'hand:state')).toEqual([]);
    expect(await errorCode(room.createTransport(impostor, 'send', false))).toBe('FORBIDDEN_ROLE');

    const back = await room.join(grantFor(room, 'student', { identity: 'returning' }), crypto.randomUUID(), student.peer.id);
    await room.resumeHand(back, student.peer.id);
    expect(channel.to(back.id, 'hand:state').at(-1)).toMatchObject({ hand: { state: 'onstage', peerId: back.id } });
    const queue = await room.handQueue(teacher.peer);
    expect(queue.hands.map((hand) => [hand.peerId, hand.state])).toEqual([[back.id, 'onstage']]);
    expect(channel.to(teacher.peer.id, 'hand:queue').at(-1)).toEqual({ queue });
    // On stage again without a new invitation: it publishes.
    const send = await room.createTransport(back, 'send', false);
    expect((await publish(room, { peer: back, send }, 'microphone')).closed).toBe(false);
    expect(audit.some((e) => e.type === 'hand' && e.action === 'resumed' && e.peer === back.id)).toBe(true);
  });

  test('a student dropped while its node closes keeps its hand, for its rejoin on the node it moves to', async () => {
    const { room, store } = await h.room('class', { handGraceMs: 60_000 });
    const teacher = await joined(room, 'teacher');
    const student = await joined(room, 'student', { identity: 'moving' });
    const raised = await room.hand(student.peer, 'raise');
    await room.hand(teacher.peer, 'invite', student.peer.id, raised.version);
    await room.hand(student.peer, 'accept');
    // The class goes on elsewhere: another node serves one of its students.
    await store.addPeer({ id: 'on-the-other-node', roomId: room.id, identity: 'elsewhere', role: 'student', nodeId: 'other-node', joinedAt: Date.now() });
    // The drain's deadline passed: the node closes while the student's connection drops.
    const dropping = room.leave(student.peer, 'dropped');
    const closing = room.close();
    await Promise.all([dropping, closing]);
    const hands = await new Hands(store, room.id, 6).read();
    expect(hands.hands.map((hand) => [hand.peerId, hand.state])).toEqual([[student.peer.id, 'onstage']]);
  });

  test('a dropped student that does not come back loses its hand when the grace runs out', async () => {
    const { room } = await h.room('class', { handGraceMs: 200 });
    const teacher = await joined(room, 'teacher');
    const student = await joined(room, 'student');
    await room.hand(student.peer, 'raise');
    await room.leave(student.peer, 'dropped');
    expect((await room.handQueue(teacher.peer)).hands).toHaveLength(1);
    await until(async () => (await room.handQueue(teacher.peer)).hands.length === 0, 5000, 'the hand to go after the grace');
  });

  test('a student on stage muted by the teacher without naming a source is muted in what it publishes; unmuted, every ban goes; a student naming another\'s hand is refused before its version is looked at', async () => {
    const { room } = await h.room('class');
    const teacher = await joined(room, 'teacher');
    const student = await joined(room, 'student');
    const other = await joined(room, 'student');
    const raised = await room.hand(student.peer, 'raise');
    // Refused for who it is, stale version or not; staff must name one.
    expect(await errorCode(room.hand(other.peer, 'lower', student.peer.id, raised.version - 1))).toBe('FORBIDDEN_ROLE');
    expect(await errorCode(room.hand(teacher.peer, 'invite', student.peer.id))).toBe('BAD_REQUEST');
    expect((await room.handQueue(teacher.peer)).version).toBe(raised.version);
    await room.hand(teacher.peer, 'invite', student.peer.id, raised.version);
    await room.hand(student.peer, 'accept');
    const send = await room.createTransport(student.peer, 'send', false);
    const mic = await publish(room, { peer: student.peer, send }, 'microphone');

    await room.moderate(teacher.peer, 'mute', student.peer.id);
    expect(mic.paused).toBe(true);
    expect([...student.peer.moderatorMuted].sort()).toEqual(['camera', 'microphone']);
    expect(await errorCode(room.setProducerPaused(student.peer, mic.id, false))).toBe('MUTED');
    await room.moderate(teacher.peer, 'unmute', student.peer.id);
    expect(student.peer.moderatorMuted.size).toBe(0);
    await room.setProducerPaused(student.peer, mic.id, false);
    expect(mic.paused).toBe(false);
  });
});
