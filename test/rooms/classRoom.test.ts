/**
 * The class kind's rules, driven on Room directly (real one-worker pool, recording channel):
 * teachers and assistants publish, students only receive (enforced here, whatever a client
 * sends), students are counted rather than shown, and students and staff have separate caps.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CLASS_MAX_STAFF } from '../../src/rooms/policy.js';
import { deviceCaps, errorCode, grantFor, type Harness, joined, publish, rtpFor, startHarness } from '../support/roomHarness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});


describe('class rooms', () => {
  test('a teacher publishes and every student receives it; a student can open no send path and publish nothing', async () => {
    const { room } = await h.room('class');
    const teacher = await joined(room, 'teacher');
    const mic = await publish(room, teacher, 'microphone');
    const cam = await publish(room, teacher, 'camera');
    const student = await joined(room, 'student');
    expect(student.send).toBeUndefined();

    for (const track of [mic, cam]) {
      const consumer = await room.consume(student.peer, student.recv.id, track.id, deviceCaps(room));
      expect(consumer.producerId).toBe(track.id);
    }
    // Whatever its client sends: no send transport, no producer on the one it has.
    expect(await errorCode(room.createTransport(student.peer, 'send', false))).toBe('FORBIDDEN_ROLE');
    expect(await errorCode(room.produce(student.peer, student.recv.id, 'audio', rtpFor('microphone'), 'microphone'))).toBe('FORBIDDEN_ROLE');
    expect(student.peer.transports.size).toBe(1);
    expect(student.peer.publications.size).toBe(0);
    // An assistant publishes like the teacher (a second screen, say).
    const assistant = await joined(room, 'assistant');
    expect(await errorCode(publish(room, assistant, 'screen'))).toBe('OK');
  });

  test('students are counted, not shown: they see the staff, nobody sees them, and a student joining sends nobody a delta', async () => {
    const { room, channel } = await h.room('class');
    const teacher = await joined(room, 'teacher');
    const first = await joined(room, 'student');
    const deltasBefore = channel.deltas().length;
    const second = await joined(room, 'student');
    expect(channel.deltas().length).toBe(deltasBefore);
    // A student sees the staff and itself (its own state), never another student.
    expect(room.snapshot(second.peer).participants.map((p) => p.peerId)).toEqual([teacher.peer.id, second.peer.id]);
    expect(room.snapshot(teacher.peer).participants.map((p) => p.peerId)).toEqual([teacher.peer.id]);
    expect(await room.audienceCount()).toBe(2);
    // Staff are shown to everyone as they come.
    const assistant = await joined(room, 'assistant');
    expect(channel.changes().at(-1)).toMatchObject({ type: 'joined', participant: { peerId: assistant.peer.id, role: 'assistant' } });
    await room.leave(first.peer, 'left');
    expect(channel.deltas().length).toBe(deltasBefore + 1);
  });

  test('a full class refuses the next student with ROOM_FULL and still admits its teacher; staff have their own cap', async () => {
    const { room } = await h.room('class', { maxClassStudents: 2 });
    await joined(room, 'student');
    await joined(room, 'student');
    expect(await errorCode(room.join(grantFor(room, 'student'), crypto.randomUUID()))).toBe('ROOM_FULL');
    expect(await errorCode(room.join(grantFor(room, 'teacher'), crypto.randomUUID()))).toBe('OK');
    for (let i = 1; i < CLASS_MAX_STAFF; i++) await room.join(grantFor(room, 'assistant'), crypto.randomUUID());
    expect(await errorCode(room.join(grantFor(room, 'assistant'), crypto.randomUUID()))).toBe('LIMIT_REACHED');
    expect(room.peers.size).toBe(2 + CLASS_MAX_STAFF);
  });

  test('roles: only teacher, assistant and student join; teachers and assistants moderate, students do not', async () => {
    const { room } = await h.room('class');
    const teacher = await joined(room, 'teacher');
    for (const role of ['participant', 'listener', 'broadcaster', 'moderator'] as const) {
      expect(`${role}: ${await errorCode(room.join(grantFor(room, role), crypto.randomUUID()))}`).toBe(`${role}: FORBIDDEN_ROLE`);
    }
    const assistant = await joined(room, 'assistant');
    const student = await joined(room, 'student');
    expect([teacher, assistant, student].map((w) => room.canModerate(w.peer))).toEqual([true, true, false]);
    await publish(room, assistant, 'microphone');
    // The teacher mutes the assistant's microphone.
    await room.setMuted(assistant.peer.id, true, teacher.peer.identity, 'microphone');
    expect(assistant.peer.publications.get('microphone')!.producer.paused).toBe(true);
  });
});

describe('class chat', () => {
  test('a message to the class reaches everyone here; a question to the staff reaches only the staff and its sender; both are recorded', async () => {
    const { room, channel, audit } = await h.room('class');
    const teacher = await joined(room, 'teacher');
    const asker = await joined(room, 'student');
    const other = await joined(room, 'student');
    const received = (who: { peer: { id: string } }): string[] =>
      (channel.to(who.peer.id, 'chat:message') as Array<{ message: { text: string } }>).map((m) => m.message.text);

    const hello = room.chat(teacher.peer, 'Good morning,\nclass', 'class');
    expect(hello).toMatchObject({ from: { peerId: teacher.peer.id, role: 'teacher' }, to: 'class', text: 'Good morning,\nclass' });
    room.chat(asker.peer, 'Is the test on Friday?', 'staff');
    expect(received(teacher)).toEqual(['Good morning,\nclass', 'Is the test on Friday?']);
    expect(received(asker)).toEqual(['Good morning,\nclass', 'Is the test on Friday?']);
    expect(received(other)).toEqual(['Good morning,\nclass']);
    expect(audit.filter((e) => e.type === 'chat').map((e) => (e.type === 'chat' ? `${e.to}:${e.text}` : ''))).toEqual(['class:Good morning,\nclass', 'staff:Is the test on Friday?']);
  });

  test('rooms of other kinds have no chat', async () => {
    const { room } = await h.room('call');
    const a = await joined(room, 'participant');
    expect(await errorCode(() => room.chat(a.peer, 'hi', 'class'))).toBe('BAD_REQUEST');
  });
});
