import { describe, expect, test } from 'vitest';
import { broadcastPolicy, policyFor } from '../../src/rooms/policy.js';
import { tuneOpusForSpeech } from '../../src/media/codecs.js';

describe('broadcast policy', () => {
  test('only the broadcaster sends, and only audio', () => {
    expect(broadcastPolicy.canSend('broadcaster')).toBe(true);
    expect(broadcastPolicy.canSend('listener')).toBe(false);
    expect(broadcastPolicy.sendableKinds('broadcaster')).toEqual(['audio']);
    expect(broadcastPolicy.sendableKinds('listener')).toEqual([]);
  });

  test('the broadcaster holds an exclusive seat; listeners are the audience', () => {
    expect(broadcastPolicy.exclusiveSeat('broadcaster')).toBe('broadcaster');
    expect(broadcastPolicy.exclusiveSeat('listener')).toBeUndefined();
    expect(broadcastPolicy.isAudience('listener')).toBe(true);
    expect(broadcastPolicy.isAudience('broadcaster')).toBe(false);
  });

  test('policies are looked up by room kind', () => {
    expect(policyFor('broadcast')).toBe(broadcastPolicy);
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
