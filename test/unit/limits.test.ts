import { describe, expect, test } from 'vitest';
import { Limits, type LimitSettings } from '../../src/limits/limits.js';
import type { AuditEvent } from '../../src/observability/audit.js';
import { ChorusError } from '../../src/protocol/errors.js';

const settings = (overrides: Partial<LimitSettings>): LimitSettings => ({
  httpPerIpPerMinute: 100,
  messagesPerConnectionPerSecond: 5,
  chatPerMinute: 20,
  messageBurstPerConnection: 10,
  messagesPerIpPerSecond: 1000,
  joinsPerIdentityPerMinute: 10,
  joinsPerSharedLinkPerMinute: 10,
  joinsPerRoomPerSecond: 10,
  trackControlsPerSecond: 3,
  trackControlBurst: 4,
  p2pSignalsPerSecond: 20,
  muteRequestsPerMinute: 6,
  connectionsPerIp: 10,
  tcpConnectionsPerAddress: 10,
  handshakeTimeoutMs: 1000,
  logIntervalMs: 1000,
  tokensPerKeyPerMinute: 10,
  roomsPerApiKey: 10,
  ...overrides,
});

async function outcomes(limits: Limits, name: 'messagesPerConnection' | 'trackControls', key: string, n: number): Promise<string[]> {
  const results: string[] = [];
  for (let i = 0; i < n; i++) {
    results.push(
      await limits.take(name, key).then(
        () => 'ok',
        (error: unknown) => (error instanceof ChorusError ? error.code : String(error)),
      ),
    );
  }
  return results;
}

describe('per-session limits: a steady rate and a burst beyond it', () => {
  test('a joiner may send its burst at once; past steady + burst it is refused with a retry delay, and audited once', async () => {
    const audit: AuditEvent[] = [];
    const limits = new Limits(settings({}), { record: (e) => audit.push(e) });
    const results = await outcomes(limits, 'messagesPerConnection', 'session-a', 25);
    // 5 a second plus 10 more once per 10 s.
    expect(results.filter((r) => r === 'ok')).toHaveLength(15);
    expect(results.slice(15)).toEqual(Array(10).fill('LIMIT_REACHED'));
    expect(audit.filter((e) => e.type === 'limit.exceeded')).toEqual([{ type: 'limit.exceeded', limit: 'messagesPerConnection', key: 'session-a' }]);
    const refusal = await limits.take('messagesPerConnection', 'session-a').catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(ChorusError);
    expect((refusal as ChorusError).retryAfterMs).toBeGreaterThan(0);
    expect((refusal as ChorusError).retryAfterMs).toBeLessThanOrEqual(1000);
    // Another session has its own allowance.
    expect(await outcomes(limits, 'messagesPerConnection', 'session-b', 15)).toEqual(Array(15).fill('ok'));
  });

  test('track controls have their own steady rate and burst', async () => {
    const limits = new Limits(settings({}), { record: () => undefined });
    const results = await outcomes(limits, 'trackControls', 'session-a', 9);
    expect(results).toEqual([...Array(7).fill('ok'), 'LIMIT_REACHED', 'LIMIT_REACHED']);
  });

  test('with no burst, the steady rate alone applies, and its first refusal is audited', async () => {
    const audit: AuditEvent[] = [];
    const limits = new Limits(settings({ messageBurstPerConnection: 0 }), { record: (e) => audit.push(e) });
    expect(await outcomes(limits, 'messagesPerConnection', 'session-a', 8)).toEqual([...Array(5).fill('ok'), 'LIMIT_REACHED', 'LIMIT_REACHED', 'LIMIT_REACHED']);
    expect(audit.filter((e) => e.type === 'limit.exceeded')).toHaveLength(1);
  });
});
