import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { RtpHeader } from 'werift';
import { fastRtpHeaderParse } from '../../bench/lib/weriftFastRtp.js';

const original = RtpHeader.deSerialize.bind(RtpHeader);
const fast = fastRtpHeaderParse(original);

describe('the benchmark listeners\' RTP header parse', () => {
  test('gives what werift\'s own parser gives, for any header', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 12, maxLength: 120 }), fc.boolean(), (bytes, plain) => {
        const raw = Buffer.from(bytes);
        // Half the cases without CSRCs and extensions, the path the fast parse takes itself.
        if (plain) raw[0] = raw[0]! & 0xe0;
        let expected: RtpHeader | Error;
        try {
          expected = original(raw);
        } catch (error) {
          expected = error as Error;
        }
        if (expected instanceof Error) expect(() => fast(raw)).toThrow();
        else expect(fast(raw)).toEqual(expected);
      }),
      { numRuns: 2000 },
    );
  });

  test('reads the fields of a real header', () => {
    const raw = Buffer.from([0x80, 0xe4, 0x12, 0x34, 0, 0, 0x03, 0xe8, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]);
    expect(fast(raw)).toMatchObject({ version: 2, padding: false, marker: true, payloadType: 100, sequenceNumber: 0x1234, timestamp: 1000, ssrc: 0xdeadbeef, payloadOffset: 12 });
  });
});
