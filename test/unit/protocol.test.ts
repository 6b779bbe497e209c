import { describe, expect, test } from 'vitest';
import { ChorusError, ErrorCodes, isErrorCode } from '../../src/protocol/errors.js';
import { requests, roomId } from '../../src/protocol/messages.js';

describe('wire protocol schemas', () => {
  test('a well-formed join passes and keeps its fields', () => {
    const parsed = requests.join.parse({ roomId: 'masjid-1', token: 'a.b.c' });
    expect(parsed).toEqual({ roomId: 'masjid-1', token: 'a.b.c' });
  });

  test('unknown fields are refused, not dropped', () => {
    expect(requests.join.safeParse({ roomId: 'r', token: 't', admin: true }).success).toBe(false);
    expect(requests.leave.safeParse({ extra: 1 }).success).toBe(false);
  });

  test('room ids keep to a safe alphabet and length', () => {
    expect(roomId.safeParse('ok_Room-9').success).toBe(true);
    for (const bad of ['', '../etc', 'a b', 'x'.repeat(65), 'room/1', 'é']) {
      expect(roomId.safeParse(bad).success, bad).toBe(false);
    }
  });

  test('oversized and malformed media blobs are refused before reaching mediasoup', () => {
    const base = { transportId: 't1', kind: 'audio' };
    expect(requests.produce.safeParse({ ...base, rtpParameters: { codecs: [] } }).success).toBe(false);
    expect(requests.produce.safeParse({ ...base, rtpParameters: 'sdp' }).success).toBe(false);
    const many = Array.from({ length: 100 }, () => ({ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000 }));
    expect(requests.produce.safeParse({ ...base, rtpParameters: { codecs: many } }).success).toBe(false);
    expect(
      requests.produce.safeParse({
        ...base,
        rtpParameters: { codecs: [{ mimeType: 'audio/opus', payloadType: 300, clockRate: 48000 }] },
      }).success,
    ).toBe(false);
    expect(
      requests.produce.safeParse({
        ...base,
        rtpParameters: { codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2 }], encodings: [{ ssrc: 1 }] },
      }).success,
    ).toBe(true);
  });

  test('dtls parameters need at least one known fingerprint algorithm', () => {
    const ok = { transportId: 't', dtlsParameters: { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: 'AB:CD' }] } };
    expect(requests.connectTransport.safeParse(ok).success).toBe(true);
    expect(requests.connectTransport.safeParse({ ...ok, dtlsParameters: { fingerprints: [] } }).success).toBe(false);
    expect(
      requests.connectTransport.safeParse({ ...ok, dtlsParameters: { fingerprints: [{ algorithm: 'md5', value: 'x' }] } }).success,
    ).toBe(false);
  });

  test('create transport only knows send and recv', () => {
    expect(requests.createTransport.safeParse({ direction: 'send' }).success).toBe(true);
    expect(requests.createTransport.safeParse({ direction: 'both' }).success).toBe(false);
  });
});

describe('errors', () => {
  test('every code maps to an HTTP status and a retryable flag on the wire', () => {
    for (const code of Object.keys(ErrorCodes)) {
      expect(isErrorCode(code)).toBe(true);
      const wire = new ChorusError(code as keyof typeof ErrorCodes, 'm').toWire();
      expect(wire).toEqual({ code, message: 'm', retryable: ErrorCodes[code as keyof typeof ErrorCodes].retryable });
    }
    expect(isErrorCode('toString')).toBe(false);
    expect(new ChorusError('BROADCASTER_PRESENT', 'x').status).toBe(409);
  });
});
