/**
 * Webhook signatures: HMAC-SHA256 over `<unix seconds>.<raw body>` with an API key's secret, sent
 * as `chorus-signature: t=<seconds>,v1=<hex>`. The timestamp is inside the MAC so a captured
 * delivery cannot be replayed later than the receiver's tolerance.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'chorus-signature';

export function signWebhook(body: string, secret: string, nowSeconds = Math.floor(Date.now() / 1000)): string {
  const mac = createHmac('sha256', secret).update(`${nowSeconds}.${body}`).digest('hex');
  return `t=${nowSeconds},v1=${mac}`;
}

/** For receivers (and tests): true only for an untampered body signed within `toleranceSeconds`. */
export function verifyWebhook(body: string, header: string | undefined, secret: string, toleranceSeconds = 300, nowSeconds = Math.floor(Date.now() / 1000)): boolean {
  const match = /^t=(\d{1,12}),v1=([0-9a-f]{64})$/.exec(header ?? '');
  if (!match) return false;
  const t = Number(match[1]);
  if (Math.abs(nowSeconds - t) > toleranceSeconds) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(match[2]!, 'hex'));
}
