import { describe, expect, test } from 'vitest';
import { signWebhook, verifyWebhook } from '../../src/webhooks/signature.js';

describe('webhook signatures', () => {
  const secret = 's'.repeat(40);
  const body = '{"event":"room_started","room":"a"}';

  test('a signed body verifies with the same secret and no other', () => {
    const header = signWebhook(body, secret, 1_800_000_000);
    expect(header).toMatch(/^t=1800000000,v1=[0-9a-f]{64}$/);
    expect(verifyWebhook(body, header, secret, 300, 1_800_000_000)).toBe(true);
    expect(verifyWebhook(body, header, 'x'.repeat(40), 300, 1_800_000_000)).toBe(false);
  });

  test('a changed body, a changed timestamp, an old delivery and garbage are refused', () => {
    const header = signWebhook(body, secret, 1_800_000_000);
    expect(verifyWebhook(body.replace('"a"', '"b"'), header, secret, 300, 1_800_000_000)).toBe(false);
    expect(verifyWebhook(body, header.replace('t=1800000000', 't=1800000001'), secret, 300, 1_800_000_000)).toBe(false);
    expect(verifyWebhook(body, header, secret, 300, 1_800_000_000 + 301)).toBe(false);
    for (const junk of [undefined, '', 't=1,v1=zz', `v1=${'0'.repeat(64)}`, `t=1800000000,v1=${'0'.repeat(63)}`]) {
      expect(verifyWebhook(body, junk, secret, 300, 1_800_000_000)).toBe(false);
    }
  });
});
