import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.js';

describe('config', () => {
  test('embedded defaults need no environment: development key, demo minting on, short join tokens', () => {
    const config = loadConfig({});
    expect(config.tokens.keys).toBeUndefined();
    expect(config.tokens.demo).toBe(true);
    expect(config.tokens.ttlSeconds).toBe(600);
    expect(config.media.maxConsumersPerWorker).toBe(500);
    expect(config.media.enableUdp && config.media.enableTcp).toBe(true);
  });

  test('a floor under the bandwidth estimate: none unless set, and a bad one is refused by name', () => {
    expect(loadConfig({}).media.minOutgoingBitrate).toBe(0);
    expect(loadConfig({ RTC_MIN_BITRATE: '1500000' }).media.minOutgoingBitrate).toBe(1_500_000);
    expect(() => loadConfig({ RTC_MIN_BITRATE: '-1' })).toThrow(/RTC_MIN_BITRATE/);
    expect(() => loadConfig({ RTC_MIN_BITRATE: 'fast' })).toThrow(/RTC_MIN_BITRATE/);
  });

  test('configured keys turn demo minting off unless asked for', () => {
    const secret = 'k'.repeat(40);
    expect(loadConfig({ CHORUS_TOKEN_SECRET: secret }).tokens.demo).toBe(false);
    expect(loadConfig({ CHORUS_TOKEN_SECRET: secret, CHORUS_DEMO: 'true' }).tokens.demo).toBe(true);
    const keys = loadConfig({ CHORUS_API_KEYS: `new:${'n'.repeat(32)}, old:${'o'.repeat(32)}` }).tokens.keys!;
    expect(keys.ids).toEqual(['new', 'old']);
    expect(keys.primary.id).toBe('new');
  });

  test('webhook URLs must be absolute http(s); a list is split and trimmed', () => {
    expect(loadConfig({ CHORUS_WEBHOOK_URLS: ' https://a.example/h , http://b.example:8080/x' }).webhooks.urls).toEqual(['https://a.example/h', 'http://b.example:8080/x']);
    expect(loadConfig({}).webhooks.urls).toEqual([]);
    expect(() => loadConfig({ CHORUS_WEBHOOK_URLS: 'not a url' })).toThrow(/CHORUS_WEBHOOK_URLS/);
    expect(() => loadConfig({ CHORUS_WEBHOOK_URLS: 'file:///etc/passwd' })).toThrow(/http or https/);
  });

  test('malformed API key lists are refused', () => {
    expect(() => loadConfig({ CHORUS_API_KEYS: 'nocolon' })).toThrow(ConfigError);
    expect(() => loadConfig({ CHORUS_API_KEYS: 'k:short' })).toThrow(/32/);
    expect(() => loadConfig({ CHORUS_API_KEYS: `a:${'x'.repeat(32)},a:${'y'.repeat(32)}` })).toThrow(/twice/);
  });

  test('bad values fail with every problem named', () => {
    expect(() => loadConfig({ CHORUS_TOKEN_SECRET: 'short', RTC_MIN_PORT: '50000', RTC_MAX_PORT: '40000' })).toThrow(ConfigError);
    expect(() => loadConfig({ CHORUS_PORT: 'eighty' })).toThrow(/CHORUS_PORT/);
    expect(() => loadConfig({ RTC_MIN_PORT: '50000', RTC_MAX_PORT: '40000' })).toThrow(/RTC_MIN_PORT/);
    expect(() => loadConfig({ CHORUS_OPUS_BITRATE: '64000' })).toThrow(/CHORUS_OPUS_BITRATE/);
  });

  test('a broadcaster\'s packet length: 60 ms by default, one of the Opus frame sizes libwebrtc encodes', () => {
    expect(loadConfig({}).media.broadcastFrameMs).toBe(60);
    expect(loadConfig({ CHORUS_BROADCAST_FRAME_MS: '20' }).media.broadcastFrameMs).toBe(20);
    for (const bad of ['30', '120', '0', 'long']) expect(() => loadConfig({ CHORUS_BROADCAST_FRAME_MS: bad })).toThrow(/CHORUS_BROADCAST_FRAME_MS/);
  });

  test('observability settings: optional dependencies as a list, a metrics token long enough, bounded per-room metrics and stats reads', () => {
    expect(loadConfig({}).observability).toEqual({
      metricsToken: undefined,
      metricsRooms: 20,
      sampleIntervalMs: 5000,
      stats: { intervalMs: 10_000, budget: 50 },
      optionalDependencies: [],
    });
    // Stats reads do not depend on records being kept: the per-room gauges read them too.
    expect(loadConfig({ CHORUS_RECORDS: 'false', CHORUS_QUALITY_SAMPLE_MS: '0', CHORUS_QUALITY_SAMPLE_BUDGET: '7' }).observability.stats).toEqual({ intervalMs: 0, budget: 7 });
    expect(() => loadConfig({ CHORUS_QUALITY_SAMPLE_BUDGET: '0' })).toThrow(/CHORUS_QUALITY_SAMPLE_BUDGET/);
    expect(loadConfig({ CHORUS_READY_OPTIONAL: ' database, redis ,' }).observability.optionalDependencies).toEqual(['database', 'redis']);
    expect(() => loadConfig({ CHORUS_METRICS_TOKEN: 'short' })).toThrow(/CHORUS_METRICS_TOKEN/);
    expect(() => loadConfig({ CHORUS_METRICS_SAMPLE_INTERVAL_MS: '10' })).toThrow(/CHORUS_METRICS_SAMPLE_INTERVAL_MS/);
    expect(loadConfig({ CHORUS_METRICS_ROOMS: '0' }).observability.metricsRooms).toBe(0);
  });

  test('records: PGlite by default, PostgreSQL with DATABASE_URL, off on request', () => {
    expect(loadConfig({}).records).toEqual({ databaseUrl: undefined, flushMs: 1000, queueMax: 10_000 });
    const url = 'postgresql://chorus:pw@db:5432/chorus';
    expect(loadConfig({ DATABASE_URL: url, CHORUS_RECORDS_FLUSH_MS: '250' }).records).toMatchObject({ databaseUrl: url, flushMs: 250 });
    expect(loadConfig({ CHORUS_RECORDS: 'false' }).records).toBeUndefined();
    expect(() => loadConfig({ DATABASE_URL: 'postgres://' })).toThrow(/DATABASE_URL/);
  });

  test('REDIS_URL: every deployment shape is accepted, a wrong one refused at startup', () => {
    for (const url of ['redis://r:6379', 'rediss://u:p@r:6380/2', 'redis+sentinel://s1,s2:26380/mymaster', 'redis+cluster://c1:7000,c2:7001']) {
      expect(loadConfig({ REDIS_URL: url }).redis?.url).toBe(url);
    }
    expect(() => loadConfig({ REDIS_URL: 'memcached://m' })).toThrow(/REDIS_URL: unsupported/);
    expect(() => loadConfig({ REDIS_URL: 'redis+cluster://c1:7000/3' })).toThrow(/REDIS_URL: .*no database/);
    expect(() => loadConfig({ CHORUS_RECORDS_QUEUE_MAX: '1' })).toThrow(/CHORUS_RECORDS_QUEUE_MAX/);
  });

  test('REDIS_TLS_CA: a file that exists, and only with a TLS REDIS_URL', () => {
    const ca = fileURLToPath(import.meta.url); // any readable file: the PEM is read at startup
    expect(loadConfig({ REDIS_URL: 'rediss://r:6380', REDIS_TLS_CA: ca }).redis?.tlsCaPath).toBe(ca);
    expect(loadConfig({ REDIS_URL: 'rediss+cluster://c1:7000,c2:7001', REDIS_TLS_CA: ca }).redis?.tlsCaPath).toBe(ca);
    expect(() => loadConfig({ REDIS_URL: 'rediss://r:6380', REDIS_TLS_CA: '/nonexistent/ca.pem' })).toThrow(/REDIS_TLS_CA: no such file/);
    expect(() => loadConfig({ REDIS_URL: 'redis://r:6379', REDIS_TLS_CA: ca })).toThrow(/REDIS_TLS_CA is for TLS connections/);
    expect(() => loadConfig({ REDIS_TLS_CA: ca })).toThrow(/REDIS_TLS_CA is for TLS connections/);
  });
});
