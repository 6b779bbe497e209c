import { describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.js';

describe('config', () => {
  test('embedded defaults need no environment and generate a secret with demo minting on', () => {
    const config = loadConfig({});
    expect(config.tokens.generated).toBe(true);
    expect(config.tokens.demo).toBe(true);
    expect(config.tokens.secret.length).toBe(32);
    expect(config.media.maxConsumersPerWorker).toBe(500);
    expect(config.media.enableUdp && config.media.enableTcp).toBe(true);
  });

  test('a configured secret turns demo minting off unless asked for', () => {
    const secret = 'k'.repeat(40);
    expect(loadConfig({ CHORUS_TOKEN_SECRET: secret }).tokens.demo).toBe(false);
    expect(loadConfig({ CHORUS_TOKEN_SECRET: secret, CHORUS_DEMO: 'true' }).tokens.demo).toBe(true);
  });

  test('bad values fail with every problem named', () => {
    expect(() => loadConfig({ CHORUS_TOKEN_SECRET: 'short', RTC_MIN_PORT: '50000', RTC_MAX_PORT: '40000' })).toThrow(ConfigError);
    expect(() => loadConfig({ CHORUS_PORT: 'eighty' })).toThrow(/CHORUS_PORT/);
    expect(() => loadConfig({ RTC_MIN_PORT: '50000', RTC_MAX_PORT: '40000' })).toThrow(/RTC_MIN_PORT/);
    expect(() => loadConfig({ CHORUS_OPUS_BITRATE: '64000' })).toThrow(/CHORUS_OPUS_BITRATE/);
  });
});
