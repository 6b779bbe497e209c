/**
 * The call kind's rules, driven on Room directly (real one-worker pool, recording channel):
 * who may publish what, who receives what, snapshots and gapless deltas, simulcast layers by
 * rendered size, mute rules, and the participant cap.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { RoomChange } from '../../src/protocol/room.js';
import { deviceCaps, errorCode, grantFor, type Harness, joined, publish, rtpFor, startHarness } from '../support/roomHarness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});


describe('call rooms: publications and subscriptions', () => {
  test('a joining participant gets a snapshot of everyone and their tracks; later changes come as gapless deltas', async () => {
    const { room, channel } = await h.room('call');
    const a = await joined(room, 'participant');
    const mic = await publish(room, a, 'microphone');
    const cam = await publish(room, a, 'camera');
    const b = await joined(room, 'participant');

    const snap = room.snapshot(b.peer);
    expect(snap.participants.map((p) => p.peerId)).toEqual([a.peer.id, b.peer.id]);
    const aTracks = snap.participants[0]!.tracks;
    expect(aTracks.map((t) => [t.source, t.kind, t.trackId])).toEqual([
      ['microphone', 'audio', mic.id],
      ['camera', 'video', cam.id],
    ]);
    expect(aTracks[1]).toMatchObject({ layers: 3, muted: false, mutedByModerator: false, width: 1280, height: 720 });

    const before = snap.version;
    const screen = await publish(room, b, 'screen', { simulcast: false });
    await room.leave(a.peer, 'left');
    const after = channel.deltas().filter((d) => d.version > before);
    // Every delta moves the version by its number of changes: no gap, no repeat.
    let version = before;
    for (const delta of after) {
      expect(delta.version - delta.changes.length).toBe(version);
      version = delta.version;
    }
    expect(after.flatMap((d) => d.changes)).toEqual<RoomChange[]>([
      { type: 'published', peerId: b.peer.id, track: expect.objectContaining({ trackId: screen.id, source: 'screen', layers: 1 }) },
      { type: 'unpublished', peerId: a.peer.id, trackId: mic.id },
      { type: 'unpublished', peerId: a.peer.id, trackId: cam.id },
      { type: 'left', peerId: a.peer.id },
    ]);
    // Nothing of a's is left to show: the snapshot now has b alone.
    expect(room.snapshot(b.peer).participants.map((p) => p.peerId)).toEqual([b.peer.id]);
    expect(room.snapshot().version).toBe(version);
  });

  test('everyone receives everyone else, never their own track; one track per source', async () => {
    const { room } = await h.room('call');
    const a = await joined(room, 'participant');
    const b = await joined(room, 'moderator');
    const mic = await publish(room, a, 'microphone');
    const consumer = await room.consume(b.peer, b.recv.id, mic.id, deviceCaps(room), false);
    expect(consumer.producerId).toBe(mic.id);
    expect(consumer.paused).toBe(false);

    expect(await errorCode(room.consume(a.peer, a.recv.id, mic.id, deviceCaps(room)))).toBe('BAD_REQUEST');
    expect(await errorCode(publish(room, a, 'microphone'))).toBe('MEDIA_REJECTED');
    // A source carries one kind: a "camera" of audio is a bad request.
    expect(await errorCode(room.produce(a.peer, a.send!.id, 'audio', rtpFor('microphone'), 'camera'))).toBe('BAD_REQUEST');
    // Without a producer id there is no "the broadcast" in a call.
    expect(await errorCode(room.consume(b.peer, b.recv.id, undefined, deviceCaps(room)))).toBe('NOTHING_TO_CONSUME');
    // Sessions stay usable after each refusal.
    const cam = await publish(room, a, 'camera');
    expect((await room.consume(b.peer, b.recv.id, cam.id, deviceCaps(room))).type).toBe('simulcast');
  });

  test("another room's track is simply not found", async () => {
    const one = await h.room('call');
    const two = await h.room('call');
    const a = await joined(one.room, 'participant');
    const mic = await publish(one.room, a, 'microphone');
    const b = await joined(two.room, 'participant');
    expect(await errorCode(two.room.consume(b.peer, b.recv.id, mic.id, deviceCaps(two.room)))).toBe('PRODUCER_NOT_FOUND');
    expect(await errorCode(two.room.resumeConsumer(b.peer, 'nope'))).toBe('CONSUMER_NOT_FOUND');
  });

  test('the token grants sources: a microphone-only token cannot publish a camera', async () => {
    const { room } = await h.room('call');
    const a = await joined(room, 'participant', { grants: { publish: ['microphone'] } });
    expect(await errorCode(publish(room, a, 'camera'))).toBe('FORBIDDEN_ROLE');
    await publish(room, a, 'microphone');
    const v = await joined(room, 'participant', { grants: { publish: ['video'] } });
    await publish(room, v, 'screen', { simulcast: false });
    expect(await errorCode(publish(room, v, 'microphone'))).toBe('FORBIDDEN_ROLE');
  });

  test('roles other than participant and moderator are refused; the cap answers LIMIT_REACHED', async () => {
    const { room } = await h.room('call', { maxCallParticipants: 3 });
    await room.join(grantFor(room, 'participant'), crypto.randomUUID());
    expect(await errorCode(room.join(grantFor(room, 'listener'), crypto.randomUUID()))).toBe('FORBIDDEN_ROLE');
    expect(await errorCode(room.join(grantFor(room, 'broadcaster'), crypto.randomUUID()))).toBe('FORBIDDEN_ROLE');
    for (let i = 0; i < 2; i++) await room.join(grantFor(room, 'participant'), crypto.randomUUID());
    expect(await errorCode(room.join(grantFor(room, 'participant'), crypto.randomUUID()))).toBe('LIMIT_REACHED');
    expect(room.peers.size).toBe(3);
  });
});

describe('call rooms: simulcast and views', () => {
  test('video consumers start paused on a middle layer; the rendered size picks the layer; hidden pauses', async () => {
    const { room } = await h.room('call');
    const a = await joined(room, 'participant');
    const b = await joined(room, 'participant');
    const cam = await publish(room, a, 'camera');
    // Asking for video flowing at once is not honoured: the first keyframe must not be lost.
    const consumer = await room.consume(b.peer, b.recv.id, cam.id, deviceCaps(room), false);
    expect(consumer.paused).toBe(true);
    expect(consumer.preferredLayers?.spatialLayer).toBe(1);

    // A thumbnail: the 180p layer. The consumer stays paused until the client says it is ready.
    expect(await room.viewTrack(b.peer, { consumerId: consumer.id, visible: true, width: 320, height: 180 })).toEqual({ paused: true, spatialLayer: 0 });
    expect(consumer.preferredLayers?.spatialLayer).toBe(0);
    await room.resumeConsumer(b.peer, consumer.id);
    expect(consumer.paused).toBe(false);

    // Enlarged to a speaker tile: the top layer.
    expect(await room.viewTrack(b.peer, { consumerId: consumer.id, visible: true, width: 1280, height: 720 })).toEqual({ paused: false, spatialLayer: 2 });
    expect(consumer.preferredLayers?.spatialLayer).toBe(2);
    expect(await room.viewTrack(b.peer, { consumerId: consumer.id, visible: true, width: 640, height: 360 })).toEqual({ paused: false, spatialLayer: 1 });

    // Scrolled away: nothing is sent; shown again, it resumes on the layer that fits.
    expect(await room.viewTrack(b.peer, { consumerId: consumer.id, visible: false, width: 640, height: 360 })).toEqual({ paused: true });
    expect(consumer.paused).toBe(true);
    // resumeConsumer does not override a hidden tile.
    await room.resumeConsumer(b.peer, consumer.id);
    expect(consumer.paused).toBe(true);
    expect(await room.viewTrack(b.peer, { consumerId: consumer.id, visible: true, width: 320, height: 180 })).toEqual({ paused: false, spatialLayer: 0 });
  });

  test('views sent back to back apply in order: hidden then shown at once leaves the video flowing', async () => {
    const { room } = await h.room('call');
    const a = await joined(room, 'participant');
    const b = await joined(room, 'participant');
    const cam = await publish(room, a, 'camera');
    const consumer = await room.consume(b.peer, b.recv.id, cam.id, deviceCaps(room));
    await room.resumeConsumer(b.peer, consumer.id);
    for (let round = 0; round < 5; round++) {
      // A tile scrolled away and back within one report interval: neither request is awaited
      // before the next is sent, as a socket delivers them.
      const hidden = room.viewTrack(b.peer, { consumerId: consumer.id, visible: false, width: 640, height: 360 });
      const shown = room.viewTrack(b.peer, { consumerId: consumer.id, visible: true, width: 1280, height: 720 });
      expect(await hidden).toEqual({ paused: true });
      expect(await shown).toEqual({ paused: false, spatialLayer: 2 });
      expect(consumer.paused).toBe(false);
      // And the other way round: shown then hidden ends hidden.
      const shownAgain = room.viewTrack(b.peer, { consumerId: consumer.id, visible: true, width: 320, height: 180 });
      const hiddenAgain = room.viewTrack(b.peer, { consumerId: consumer.id, visible: false, width: 320, height: 180 });
      await Promise.all([shownAgain, hiddenAgain]);
      expect(consumer.paused).toBe(true);
      // A resume racing a hidden report does not override it.
      const hiddenThird = room.viewTrack(b.peer, { consumerId: consumer.id, visible: false, width: 320, height: 180 });
      await Promise.all([hiddenThird, room.resumeConsumer(b.peer, consumer.id)]);
      expect(consumer.paused).toBe(true);
      await room.viewTrack(b.peer, { consumerId: consumer.id, visible: true, width: 320, height: 180 });
      expect(consumer.paused).toBe(false);
    }
  });

  test('layers out of range, and views of audio, are bad requests that change nothing', async () => {
    const { room } = await h.room('call');
    const a = await joined(room, 'participant');
    const b = await joined(room, 'participant');
    const cam = await publish(room, a, 'camera');
    const screen = await publish(room, a, 'screen', { simulcast: false });
    const mic = await publish(room, a, 'microphone');
    const c = await room.consume(b.peer, b.recv.id, cam.id, deviceCaps(room));
    const s = await room.consume(b.peer, b.recv.id, screen.id, deviceCaps(room));
    const m = await room.consume(b.peer, b.recv.id, mic.id, deviceCaps(room));
    expect(await errorCode(room.setPreferredLayers(b.peer, c.id, 3))).toBe('BAD_REQUEST');
    expect(await errorCode(room.setPreferredLayers(b.peer, c.id, 0, 3))).toBe('BAD_REQUEST');
    expect(await errorCode(room.setPreferredLayers(b.peer, s.id, 1))).toBe('BAD_REQUEST');
    expect(await errorCode(room.viewTrack(b.peer, { consumerId: m.id, visible: true, width: 10, height: 10 }))).toBe('BAD_REQUEST');
    expect(c.preferredLayers?.spatialLayer).toBe(1);
    await room.setPreferredLayers(b.peer, c.id, 2, 1);
    expect(c.preferredLayers).toEqual({ spatialLayer: 2, temporalLayer: 1 });
    // The screen share is sent as it is: one spatial layer, full resolution.
    expect(room.snapshot(b.peer).participants[0]!.tracks.find((t) => t.source === 'screen')?.layers).toBe(1);
  });
});

test('a track that ends while its subscriber resumes, views or re-layers it is CONSUMER_NOT_FOUND, not a worker error', async () => {
  const { room } = await h.room('call');
  const b = await joined(room, 'participant');
  const requests = [
    (id: string) => room.resumeConsumer(b.peer, id),
    (id: string) => room.viewTrack(b.peer, { consumerId: id, visible: true, width: 1280, height: 720 }),
    (id: string) => room.setPreferredLayers(b.peer, id, 2),
  ];
  for (const request of requests) {
    const a = await joined(room, 'participant');
    const cam = await publish(room, a, 'camera');
    const consumer = await room.consume(b.peer, b.recv.id, cam.id, deviceCaps(room));
    // The publisher leaves: its camera closes in the worker before this node hears of it.
    const leaving = room.leave(a.peer, 'left');
    expect(await errorCode(request(consumer.id))).toBe('CONSUMER_NOT_FOUND');
    await leaving;
  }
  // b stays, its session usable.
  expect(room.snapshot().participants.map((p) => p.peerId)).toEqual([b.peer.id]);
  const a = await joined(room, 'participant');
  const mic = await publish(room, a, 'microphone');
  await room.resumeConsumer(b.peer, (await room.consume(b.peer, b.recv.id, mic.id, deviceCaps(room))).id);
});

describe('call rooms: mute', () => {
  test('self mute shows as muted at once; a moderator mute cannot be undone by its publisher', async () => {
    const { room, channel } = await h.room('call');
    const a = await joined(room, 'participant');
    const mod = await joined(room, 'moderator');
    const mic = await publish(room, a, 'microphone');
    const cam = await publish(room, a, 'camera');

    await room.setProducerPaused(a.peer, mic.id, true);
    expect(channel.changes().at(-1)).toEqual({ type: 'muted', peerId: a.peer.id, trackId: mic.id, muted: true, mutedByModerator: false });
    await room.setProducerPaused(a.peer, mic.id, false);
    expect(channel.changes().at(-1)).toMatchObject({ trackId: mic.id, muted: false });

    await room.moderate(mod.peer, 'mute', a.peer.id, 'camera');
    expect(cam.paused).toBe(true);
    expect(mic.paused).toBe(false);
    expect(channel.changes().at(-1)).toEqual({ type: 'muted', peerId: a.peer.id, trackId: cam.id, muted: true, mutedByModerator: true });
    expect(channel.to(a.peer.id, 'session:muted')).toEqual([{ muted: true, source: 'camera' }]);
    expect(await errorCode(room.setProducerPaused(a.peer, cam.id, false))).toBe('MUTED');
    expect(cam.paused).toBe(true);

    // It asks; the moderator hears it. Asking about something not muted is a bad request.
    expect(await errorCode(() => room.requestUnmute(a.peer, 'microphone'))).toBe('BAD_REQUEST');
    await room.requestUnmute(a.peer, 'camera');
    expect(channel.to(mod.peer.id, 'mute:requested')).toEqual([{ peerId: a.peer.id, identity: a.peer.identity, source: 'camera' }]);
    // Only moderators moderate.
    expect(await errorCode(room.moderate(a.peer, 'unmute', a.peer.id, 'camera'))).toBe('FORBIDDEN_ROLE');

    await room.moderate(mod.peer, 'unmute', a.peer.id, 'camera');
    expect(channel.changes().at(-1)).toEqual({ type: 'muted', peerId: a.peer.id, trackId: cam.id, muted: true, mutedByModerator: false });
    // Unmuting lifts the ban only: the participant turns the camera back on itself.
    expect(cam.paused).toBe(true);
    await room.setProducerPaused(a.peer, cam.id, false);
    expect(cam.paused).toBe(false);
  });

  test('a moderator mute of every source also stops new publications of them', async () => {
    const { room } = await h.room('call');
    const a = await joined(room, 'participant');
    const mod = await joined(room, 'moderator');
    await room.moderate(mod.peer, 'mute', a.peer.id);
    expect(await errorCode(publish(room, a, 'microphone'))).toBe('MUTED');
    expect(await errorCode(publish(room, a, 'screen', { simulcast: false }))).toBe('MUTED');
    await room.moderate(mod.peer, 'unmute', a.peer.id);
    await publish(room, a, 'microphone');
  });
});

describe('broadcast rooms on the same core', () => {
  test('listeners are counted, not announced; the broadcaster and its microphone are', async () => {
    const { room, channel } = await h.room('broadcast');
    const l = await joined(room, 'listener');
    expect(channel.deltas()).toEqual([]);
    const b = await joined(room, 'broadcaster');
    const mic = await publish(room, b, 'microphone');
    expect(channel.changes()).toEqual([
      { type: 'joined', participant: expect.objectContaining({ peerId: b.peer.id, role: 'broadcaster', tracks: [] }) },
      { type: 'published', peerId: b.peer.id, track: expect.objectContaining({ trackId: mic.id, source: 'microphone' }) },
    ]);
    expect(room.snapshot(l.peer).participants.map((p) => p.role)).toEqual(['listener', 'broadcaster']);
    expect(room.snapshot().participants.map((p) => p.role)).toEqual(['broadcaster']);
    // The listener consumes "the broadcast" without naming it.
    expect((await room.consume(l.peer, l.recv.id, undefined, deviceCaps(room))).producerId).toBe(mic.id);
    expect(channel.to('room', 'broadcast:started')).toEqual([{ producerId: mic.id }]);
  });

  test('a broadcaster publishes its microphone only', async () => {
    const { room } = await h.room('broadcast');
    const b = await joined(room, 'broadcaster');
    expect(await errorCode(room.produce(b.peer, b.send!.id, 'video', rtpFor('camera')))).toBe('MEDIA_REJECTED');
    expect(await errorCode(publish(room, b, 'screen-audio'))).toBe('FORBIDDEN_ROLE');
    expect(await errorCode(room.createTransport((await joined(room, 'listener')).peer, 'send', false))).toBe('FORBIDDEN_ROLE');
  });
});
