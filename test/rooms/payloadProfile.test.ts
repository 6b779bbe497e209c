/**
 * Receivers that number the codecs themselves (WHEP players): their consumers must send with the
 * player's payload types, from a router of the room whose codecs carry them. Driven on a real
 * class room (one-worker pool, so the profile's router shares the origin's worker).
 */
import type { types } from 'mediasoup';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { payloadProfile } from '../../src/media/payloadProfile.js';
import { trackIdOf } from '../../src/media/roomMedia.js';
import { errorCode, grantFor, type Harness, joined, publish, startHarness } from '../support/roomHarness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

const feedback: types.RtcpFeedback[] = [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }, { type: 'transport-cc' }];

/** What a Chromium player's recvonly offer lists, as `receivingCapabilities` reads it (RTX left out). */
function chromiumOffer(): types.RtpCodecCapability[] {
  return [
    { kind: 'audio', mimeType: 'audio/opus', preferredPayloadType: 111, clockRate: 48000, channels: 2, parameters: { minptime: 10, useinbandfec: 1 }, rtcpFeedback: [{ type: 'transport-cc' }] },
    { kind: 'video', mimeType: 'video/VP8', preferredPayloadType: 96, clockRate: 90000, parameters: {}, rtcpFeedback: feedback },
    // Baseline in packetization mode 1, then Constrained Baseline in mode 0, then the one that matches.
    { kind: 'video', mimeType: 'video/H264', preferredPayloadType: 102, clockRate: 90000, parameters: { 'level-asymmetry-allowed': 1, 'packetization-mode': 1, 'profile-level-id': '42001f' }, rtcpFeedback: feedback },
    { kind: 'video', mimeType: 'video/H264', preferredPayloadType: 104, clockRate: 90000, parameters: { 'level-asymmetry-allowed': 1, 'packetization-mode': 0, 'profile-level-id': '42e01f' }, rtcpFeedback: feedback },
    { kind: 'video', mimeType: 'video/H264', preferredPayloadType: 106, clockRate: 90000, parameters: { 'level-asymmetry-allowed': 1, 'packetization-mode': 1, 'profile-level-id': '42e01f' }, rtcpFeedback: feedback },
  ];
}

describe('payload profiles', () => {
  test('a player numbering the codecs its own way gets a profile with its numbers; one numbering them as the room does gets none', async () => {
    const { room } = await h.room('class');
    const roomCaps = room.requireMedia().rtpCapabilities;
    const profile = payloadProfile(chromiumOffer(), roomCaps)!;
    expect(profile.codecs.map((c) => [c.mimeType, c.preferredPayloadType])).toEqual([
      ['audio/opus', 111],
      ['video/VP8', 96],
      ['video/H264', 106],
    ]);
    // The same numbering is the same profile, so such players share one router.
    expect(payloadProfile(chromiumOffer().reverse(), roomCaps)?.key).toBe(profile.key);
    // A player that numbers as the room's router does needs none.
    const asRoom = (roomCaps.codecs ?? []).filter((c) => c.mimeType.toLowerCase() !== 'video/rtx');
    expect(payloadProfile(asRoom, roomCaps)).toBeUndefined();
    // Nothing in common: none either (the WHEP route refuses such an offer before this).
    expect(payloadProfile([{ kind: 'audio', mimeType: 'audio/PCMU', preferredPayloadType: 0, clockRate: 8000, channels: 1, parameters: {}, rtcpFeedback: [] }], roomCaps)).toBeUndefined();
  });

  test('consumers on a profile\'s router send with the player\'s payload types; the room knows them by its own track ids', async () => {
    const { room } = await h.room('class');
    const teacher = await joined(room, 'teacher');
    const mic = await publish(room, teacher, 'microphone');
    const cam = await publish(room, teacher, 'camera');
    const profile = payloadProfile(chromiumOffer(), room.requireMedia().rtpCapabilities)!;
    const player = await room.join(grantFor(room, 'student'), crypto.randomUUID());
    const recv = await room.createTransport(player, 'recv', false, profile);
    const caps: types.RtpCapabilities = { codecs: chromiumOffer(), headerExtensions: [] };
    const audio = await room.consume(player, recv.id, mic.id, caps, false);
    const video = await room.consume(player, recv.id, cam.id, caps);
    expect(audio.rtpParameters.codecs.map((c) => c.payloadType)).toEqual([111]);
    expect(video.rtpParameters.codecs.map((c) => c.payloadType)).toEqual([96]);
    // No RTX: the router's RTX numbers are not the player's. Losses are resent on the stream.
    expect(video.rtpParameters.encodings?.[0]?.rtx).toBeUndefined();
    expect(video.rtpParameters.codecs[0]?.rtcpFeedback).toContainEqual({ type: 'nack', parameter: '' });
    // A copy of each track under another id (the origin's worker holds the original)...
    expect(audio.producerId).not.toBe(mic.id);
    // ...known to the room by the track's own.
    expect([trackIdOf(audio), trackIdOf(video)]).toEqual([mic.id, cam.id]);
    expect(await errorCode(room.consume(player, recv.id, mic.id, caps, false))).toBe('BAD_REQUEST');
    // A second such player shares the profile's router; a student on the SDK stays on the room's.
    const second = await room.createTransport(await room.join(grantFor(room, 'student'), crypto.randomUUID()), 'recv', false, profile);
    expect(second.appData['routerId']).toBe(recv.appData['routerId']);
    const sdkStudent = await joined(room, 'student');
    expect(sdkStudent.recv.appData['routerId']).toBe(room.requireMedia().origin.router.id);
    expect(room.requireMedia().slots.map((s) => s.profile)).toEqual(['', profile.key]);
    // Closing the track ends its copies.
    const closed = new Promise<void>((resolve) => audio.observer.once('close', () => resolve()));
    room.closeProducer(teacher.peer, mic.id);
    await closed;
  });

  test('a track in a codec the player did not offer is refused to it, and nothing is left half made', async () => {
    const { room } = await h.room('class');
    const teacher = await joined(room, 'teacher');
    const cam = await publish(room, teacher, 'camera');
    const audioOnly = chromiumOffer().filter((c) => c.kind === 'audio');
    const profile = payloadProfile(audioOnly, room.requireMedia().rtpCapabilities)!;
    const player = await room.join(grantFor(room, 'student'), crypto.randomUUID());
    const recv = await room.createTransport(player, 'recv', false, profile);
    expect(await errorCode(room.consume(player, recv.id, cam.id, { codecs: audioOnly, headerExtensions: [] }))).toBe('CANNOT_CONSUME');
    expect(player.consumers.size).toBe(0);
    expect((await room.requireMedia().dump()).consumers).toBe(0);
  });
});
