import { describe, expect, test } from 'vitest';
import { broadcastPolicy, callPolicy, canSend, policyFor, sendableKinds, watchPolicy } from '../../src/rooms/policy.js';
import { tuneOpusForSpeech } from '../../src/media/codecs.js';

describe('broadcast policy', () => {
  test('only the broadcaster sends, and only audio', () => {
    expect(canSend(broadcastPolicy, 'broadcaster')).toBe(true);
    expect(canSend(broadcastPolicy, 'listener')).toBe(false);
    expect(sendableKinds(broadcastPolicy, 'broadcaster')).toEqual(['audio']);
    expect(sendableKinds(broadcastPolicy, 'listener')).toEqual([]);
    expect(broadcastPolicy.publishable('broadcaster')).toEqual(['microphone']);
    expect(broadcastPolicy.isPrimary('broadcaster', 'microphone')).toBe(true);
    expect(broadcastPolicy.mayReceive('listener', 'broadcaster', 'microphone')).toBe(true);
    expect(broadcastPolicy.mayReceive('broadcaster', 'broadcaster', 'microphone')).toBe(false);
  });

  test('the broadcaster holds an exclusive seat; listeners are the audience', () => {
    expect(broadcastPolicy.exclusiveSeat('broadcaster')).toBe('broadcaster');
    expect(broadcastPolicy.exclusiveSeat('listener')).toBeUndefined();
    expect(broadcastPolicy.isAudience('listener')).toBe(true);
    expect(broadcastPolicy.isAudience('broadcaster')).toBe(false);
  });

  test('only the broadcaster is announced; listeners are counted', () => {
    expect(broadcastPolicy.announced('broadcaster')).toBe(true);
    expect(broadcastPolicy.announced('listener')).toBe(false);
    expect(broadcastPolicy.announced('moderator')).toBe(false);
  });

  test('policies are looked up by room kind', () => {
    expect(policyFor('broadcast')).toBe(broadcastPolicy);
    expect(policyFor('watch')).toBe(watchPolicy);
    expect(policyFor('call')).toBe(callPolicy);
  });
});

describe('call policy', () => {
  test('participants and moderators publish every source and receive everyone', () => {
    for (const role of ['participant', 'moderator'] as const) {
      expect(callPolicy.publishable(role)).toEqual(['microphone', 'camera', 'screen', 'screen-audio']);
      expect(callPolicy.mayReceive(role, 'participant', 'camera')).toBe(true);
      expect(callPolicy.announced(role)).toBe(true);
    }
    expect(callPolicy.roles).not.toContain('listener');
    expect(sendableKinds(callPolicy, 'participant').sort()).toEqual(['audio', 'video']);
  });

  test('a call admits at most its participant cap, with LIMIT_REACHED beyond it', () => {
    const caps = { maxPeers: 10_000, maxCallParticipants: 50, maxClassStudents: 1000 };
    expect(callPolicy.capacity(caps, 'participant')).toMatchObject({ max: 50, code: 'LIMIT_REACHED' });
    expect(callPolicy.capacity({ ...caps, maxPeers: 20 }, 'moderator')).toMatchObject({ max: 20, code: 'LIMIT_REACHED' });
    expect(callPolicy.capacity(caps, 'participant').counts('moderator')).toBe(true);
    expect(broadcastPolicy.capacity(caps, 'listener')).toMatchObject({ max: 10_000, code: 'ROOM_FULL' });
  });

  test('a call has no primary track, seat or idle end, and detects speakers', () => {
    expect(callPolicy.isPrimary('participant', 'microphone')).toBe(false);
    expect(callPolicy.exclusiveSeat('participant')).toBeUndefined();
    expect(callPolicy.endsWhenIdle).toBe(false);
    expect(callPolicy.detectsSpeakers).toBe(true);
    expect(callPolicy.onOrigin('participant')).toBe(true);
  });
});

describe('opus speech tuning', () => {
  test('forces mono, DTX, FEC and the bitrate cap on opus only', () => {
    const tuned = tuneOpusForSpeech(
      {
        codecs: [
          { mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: { stereo: 1, usedtx: 0, minptime: 10 } },
          { mimeType: 'audio/telephone-event', payloadType: 126, clockRate: 8000 },
        ],
      },
      24000,
    );
    expect(tuned.codecs[0]!.parameters).toEqual({
      stereo: 0,
      'sprop-stereo': 0,
      usedtx: 1,
      useinbandfec: 1,
      maxaveragebitrate: 24000,
      minptime: 10,
    });
    expect(tuned.codecs[1]!.parameters).toBeUndefined();
  });
});
