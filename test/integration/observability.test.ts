import { readdirSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import * as mediasoup from 'mediasoup';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { joinListener, type TestListener } from '../support/listener.js';
import { startRedis, type RedisServer } from '../support/redisServer.js';
import { RawSocket } from '../support/rawSocket.js';
import { nodeClient, startTestNode, tokenFor, toneBroadcaster, until } from '../support/testNode.js';

/** `name{a="b",c="d"} value` lines of the Prometheus text format, as (name, labels, value). */
function parse(text: string): Array<{ name: string; labels: Record<string, string>; value: number }> {
  const series = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    series.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return series;
}

async function scrape(node: ChorusNode, headers: Record<string, string> = {}): Promise<ReturnType<typeof parse>> {
  const response = await fetch(`${node.url}/metrics`, { headers });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
  return parse(await response.text());
}

/** The value of the one series named `name` whose labels include `labels` (undefined if none). */
function value(series: ReturnType<typeof parse>, name: string, labels: Record<string, string> = {}): number | undefined {
  return series.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

let node: ChorusNode;
const cleanup: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  node = await startTestNode({ CHORUS_NODE_ID: 'metrics-node', CHORUS_METRICS_SAMPLE_INTERVAL_MS: '500', CHORUS_QUALITY_SAMPLE_MS: '500' });
});
afterAll(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
  await node?.close();
});

describe('metrics during a live broadcast', () => {
  let listeners: TestListener[] = [];

  test('before anything happens: no rooms, no peers, no joins, every worker up', async () => {
    const series = await scrape(node);
    expect(value(series, 'chorus_rooms', { kind: 'broadcast' })).toBe(0);
    expect(value(series, 'chorus_peers', { role: 'listener' })).toBe(0);
    expect(value(series, 'chorus_joins_total')).toBeUndefined();
    expect(value(series, 'chorus_worker_up', { worker: '0' })).toBe(1);
    expect(value(series, 'chorus_worker_up', { worker: '1' })).toBe(1);
    // The node label sits on every series, from the node's own registry.
    expect(series.filter((s) => s.name.startsWith('chorus_')).every((s) => s.labels['node'] === 'metrics-node')).toBe(true);
    // Default process metrics are on the private registry too.
    expect(value(series, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(value(series, 'nodejs_eventloop_lag_seconds')).toBeDefined();
  });

  test('rooms, peers, joins and the join histogram move; workers report CPU and memory; egress bitrate is sampled once audio flows', async () => {
    const speaker = await toneBroadcaster(node, 'metrics', 1000, 'imam');
    cleanup.push(() => speaker.stop());
    const joinCalled = performance.now();
    listeners = await Promise.all([joinListener(node, 'metrics'), joinListener(node, 'metrics')]);
    cleanup.push(() => Promise.all(listeners.map((l) => l.close())).then(() => undefined));
    await Promise.all(listeners.map((l) => l.hears(1000)));
    // mediasoup objects per worker, summed over the workers, match what the rooms hold.
    const objects = await scrape(node);
    const total = (name: string): number => objects.filter((s) => s.name === name).reduce((n, s) => n + s.value, 0);
    const dump = await node.rooms.get('metrics')!.requireMedia().dump();
    expect({ routers: total('chorus_mediasoup_routers'), transports: total('chorus_mediasoup_transports'), producers: total('chorus_mediasoup_producers'), consumers: total('chorus_mediasoup_consumers') }).toEqual(dump);
    // Each SDK listener measured its own wait from join() to the first packet and told the node.
    await until(async () => value(await scrape(node), 'chorus_join_to_first_media_seconds_count') === 2, 10_000, 'both listeners to report their first media');
    for (const l of listeners) {
      expect(l.mediaStartedMs()).toBeGreaterThan(0);
      expect(l.mediaStartedMs()).toBeLessThanOrEqual(performance.now() - joinCalled);
    }

    // A join refused: the token is for another room.
    const stray = nodeClient(node, 'metrics', await tokenFor(node, 'elsewhere', 'listener'));
    await expect(stray.join()).rejects.toMatchObject({ code: 'TOKEN_WRONG_ROOM' });
    await stray.close();

    // The sampler runs every 500 ms and mediasoup's bitrate is a moving window, so the first
    // samples after the listeners started can be low: wait for both listeners at speech rate
    // (Opus at 24 kbit/s each, ~20 kbit/s or more each with the tone never silent).
    let series = await scrape(node);
    await until(async () => {
      series = await scrape(node);
      return (value(series, 'chorus_room_egress_bitrate_bps', { room: 'metrics' }) ?? 0) > 2 * 20_000;
    }, 15_000, `egress bitrate of the room to reach two listeners' worth (last ${value(series, 'chorus_room_egress_bitrate_bps', { room: 'metrics' })})`);

    expect(value(series, 'chorus_rooms', { kind: 'broadcast' })).toBe(1);
    expect(value(series, 'chorus_peers', { role: 'listener' })).toBe(2);
    expect(value(series, 'chorus_peers', { role: 'broadcaster' })).toBe(1);
    expect(value(series, 'chorus_joins_total', { role: 'listener' })).toBe(2);
    expect(value(series, 'chorus_joins_total', { role: 'broadcaster' })).toBe(1);
    expect(value(series, 'chorus_join_failures_total', { code: 'TOKEN_WRONG_ROOM' })).toBe(1);
    expect(value(series, 'chorus_join_duration_seconds_count', { outcome: 'ok' })).toBe(3);
    expect(value(series, 'chorus_join_duration_seconds_count', { outcome: 'error' })).toBe(1);
    expect(value(series, 'chorus_join_duration_seconds_sum', { outcome: 'ok' })).toBeGreaterThan(0);
    expect(value(series, 'chorus_signaling_requests_total', { method: 'produce', code: 'ok' })).toBe(1);
    expect(value(series, 'chorus_signaling_requests_total', { method: 'consume', code: 'ok' })).toBeGreaterThanOrEqual(2);
    // Two speech streams, not more: well below 1 Mbit/s.
    const egress = value(series, 'chorus_room_egress_bitrate_bps', { room: 'metrics' })!;
    expect(egress).toBeLessThan(1_000_000);
    expect(value(series, 'chorus_egress_bitrate_bps')).toBe(egress);
    expect(value(series, 'chorus_room_listeners', { room: 'metrics' })).toBe(2);
    const loss = value(series, 'chorus_room_packet_loss_ratio', { room: 'metrics', direction: 'ingress' });
    expect(loss).toBeGreaterThanOrEqual(0);
    expect(loss).toBeLessThanOrEqual(1);
    const jitter = value(series, 'chorus_room_jitter_seconds', { room: 'metrics' });
    expect(jitter).toBeGreaterThanOrEqual(0);
    expect(jitter).toBeLessThan(1);
    expect(value(series, 'chorus_rooms_unlabelled')).toBe(0);
    // Both workers have spent CPU (the room's router lives on one; starting a worker costs some).
    expect(value(series, 'chorus_worker_cpu_seconds', { worker: '0' })).toBeGreaterThan(0);
    expect(value(series, 'chorus_worker_cpu_seconds', { worker: '1' })).toBeGreaterThan(0);
    expect(value(series, 'chorus_worker_memory_bytes', { worker: '0' })).toBeGreaterThan(1024 * 1024);
    expect(value(series, 'chorus_event_loop_delay_seconds', { quantile: '0.99' })).toBeGreaterThanOrEqual(0);
    expect(value(series, 'chorus_transport_failures_total', { stage: 'dtls_failed' })).toBeUndefined();
  });

  test('a stall of the event loop shows in the delay\'s max, and its busy time in the utilization', async () => {
    await scrape(node);
    // Half a second of work that never yields (on this process's loop, which the node shares).
    const until = performance.now() + 500;
    let spins = 0;
    while (performance.now() < until) spins++;
    expect(spins).toBeGreaterThan(0);
    // The sampling timer, overdue, fires in the loop's next timers phase: before the scrape's
    // request can be read, which takes the loop more than one turn.
    const series = await scrape(node);
    // The sampling timer due within the stall fired at its end: at least 500 - 200 ms late.
    expect(value(series, 'chorus_event_loop_delay_seconds', { quantile: 'max' })).toBeGreaterThanOrEqual(0.3);
    const utilization = value(series, 'chorus_event_loop_utilization')!;
    expect(utilization).toBeGreaterThan(0.3);
    expect(utilization).toBeLessThanOrEqual(1);
  });

  test('/health/info names the node, its version and uptime, and counts rooms, peers and workers', async () => {
    const response = await fetch(`${node.url}/health/info`);
    expect(response.status).toBe(200);
    const info = (await response.json()) as Record<string, unknown>;
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(info).toMatchObject({ node: 'metrics-node', version: pkg.version, nodeVersion: process.versions.node, rooms: 1, peers: 3, draining: false });
    expect(info['uptimeSeconds']).toEqual(expect.any(Number));
    expect(info['workers']).toHaveLength(2);
    expect((info['workers'] as Array<{ alive: boolean; pid: number }>).every((w) => w.alive && w.pid > 0)).toBe(true);
  });

  test('/health/info says which worker build runs: the install built it from source with every patch of the series, SRTP on OpenSSL, io_uring on Linux >= 6', async () => {
    const info = (await (await fetch(`${node.url}/health/info`)).json()) as { workers: Array<{ build: Record<string, unknown> }> };
    const series = readdirSync(new URL('../../scripts/mediasoup/patches/', import.meta.url))
      .filter((f) => f.startsWith(`mediasoup+${mediasoup.version}+`) && f.endsWith('.patch'))
      .map((f) => f.slice(`mediasoup+${mediasoup.version}+`.length, -'.patch'.length))
      .sort();
    expect(series.length).toBeGreaterThan(0);
    for (const { build } of info.workers) {
      expect(build).toEqual({ mediasoup: mediasoup.version, build: 'source', patches: series, srtpCrypto: 'openssl', liburing: Number(release().split('.')[0]) >= 6 });
    }
  });

  test('when everyone leaves, the room and peer gauges fall back and the room drops out of the per-room series', async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
    await until(() => node.rooms.rooms.size === 0, 5000, 'the room to close');
    let series = await scrape(node);
    expect(value(series, 'chorus_rooms', { kind: 'broadcast' })).toBe(0);
    expect(value(series, 'chorus_peers', { role: 'listener' })).toBe(0);
    await until(async () => {
      series = await scrape(node);
      return value(series, 'chorus_room_egress_bitrate_bps', { room: 'metrics' }) === undefined;
    }, 5000, 'the closed room to leave the per-room series');
    // Counters keep what happened.
    expect(value(series, 'chorus_joins_total', { role: 'listener' })).toBe(2);
  });

  test('a client\'s join-to-first-media report: once per receiving session, validated, into the histogram', async () => {
    const before = await scrape(node);
    const count0 = value(before, 'chorus_join_to_first_media_seconds_count') ?? 0;
    const sum0 = value(before, 'chorus_join_to_first_media_seconds_sum') ?? 0;
    const raw = await RawSocket.connect(node);
    cleanup.push(() => raw.close());
    expect(await raw.code('media.started', { afterMs: 500 })).toBe('NOT_JOINED');
    await raw.ok('join', { roomId: 'metrics-report', token: await tokenFor(node, 'metrics-report', 'listener') });
    for (const bad of [{}, { afterMs: -1 }, { afterMs: 1.5 }, { afterMs: 600_001 }, { afterMs: '900' }, { afterMs: 900, extra: 1 }]) {
      expect(await raw.code('media.started', bad)).toBe('BAD_REQUEST');
    }
    await raw.ok('media.started', { afterMs: 1250 });
    // A second report from the same session would count one listener twice.
    expect(await raw.code('media.started', { afterMs: 10 })).toBe('BAD_REQUEST');
    const speaker = await RawSocket.connect(node);
    cleanup.push(() => speaker.close());
    await speaker.ok('join', { roomId: 'metrics-report', token: await tokenFor(node, 'metrics-report', 'broadcaster', 'reporter') });
    expect(await speaker.code('media.started', { afterMs: 10 })).toBe('BAD_REQUEST');
    const after = await scrape(node);
    expect(value(after, 'chorus_join_to_first_media_seconds_count')).toBe(count0 + 1);
    expect(value(after, 'chorus_join_to_first_media_seconds_sum')).toBeCloseTo(sum0 + 1.25, 6);
    raw.close();
    speaker.close();
  });
});

describe('HTTP request ids', () => {
  test('every response carries a fresh x-request-id; a well-formed one from the caller is kept, a malformed one replaced', async () => {
    const a = await fetch(`${node.url}/healthz`);
    const b = await fetch(`${node.url}/nope`);
    expect(a.headers.get('x-request-id')).toMatch(/^[0-9a-f]{16}$/);
    expect(b.status).toBe(404);
    expect(b.headers.get('x-request-id')).toMatch(/^[0-9a-f]{16}$/);
    expect(a.headers.get('x-request-id')).not.toBe(b.headers.get('x-request-id'));
    const kept = await fetch(`${node.url}/healthz`, { headers: { 'x-request-id': 'lb-7f3a.42' } });
    expect(kept.headers.get('x-request-id')).toBe('lb-7f3a.42');
    const replaced = await fetch(`${node.url}/healthz`, { headers: { 'x-request-id': 'x'.repeat(300) } });
    expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe('protected metrics and degraded readiness', () => {
  let guarded: ChorusNode;
  const token = 'scrape-token-0123456789';

  beforeAll(async () => {
    guarded = await startTestNode({ MEDIASOUP_WORKERS: '1', CHORUS_METRICS_TOKEN: token, CHORUS_READY_OPTIONAL: 'database' });
  });
  afterAll(async () => {
    await guarded?.close();
  });

  test('/metrics asks for the bearer token when one is configured', async () => {
    const none = await fetch(`${guarded.url}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
    expect((await fetch(`${guarded.url}/metrics`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(401);
    const series = await scrape(guarded, { authorization: `Bearer ${token}` });
    expect(value(series, 'chorus_worker_up', { worker: '0' })).toBe(1);
  });

  test('an optional dependency that is down leaves the node ready but degraded; a required one makes it unready', async () => {
    let databaseUp = true;
    guarded.health.register('database', () => ({ up: databaseUp, detail: databaseUp ? 'connected' : 'connection refused' }));
    const ok = await fetch(`${guarded.url}/readyz`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ ready: true, status: 'ok', dependencies: { database: { up: true, required: false } } });
    databaseUp = false;
    const degraded = await fetch(`${guarded.url}/readyz`);
    expect(degraded.status).toBe(200);
    expect(await degraded.json()).toMatchObject({ ready: true, status: 'degraded', dependencies: { database: { up: false, required: false, detail: 'connection refused' } } });
    guarded.health.register('ledger', () => ({ up: false }));
    const unready = await fetch(`${guarded.url}/readyz`);
    expect(unready.status).toBe(503);
    expect(await unready.json()).toMatchObject({ ready: false, status: 'unready', dependencies: { ledger: { up: false, required: true } } });
  });

  test('the database latency hook feeds its histogram', async () => {
    guarded.metrics.observeDbLatency('insert_events', 0.012);
    guarded.metrics.observeDbLatency('insert_events', 2, false);
    const series = await scrape(guarded, { authorization: `Bearer ${token}` });
    expect(value(series, 'chorus_db_query_duration_seconds_count', { op: 'insert_events', outcome: 'ok' })).toBe(1);
    expect(value(series, 'chorus_db_query_duration_seconds_count', { op: 'insert_events', outcome: 'error' })).toBe(1);
  });
});

describe('Redis latency and circuit breaker', () => {
  let redis: RedisServer;
  let clustered: ChorusNode;

  beforeAll(async () => {
    redis = await startRedis();
    clustered = await startTestNode({ MEDIASOUP_WORKERS: '1', REDIS_URL: redis.url, CHORUS_NODE_ID: 'metrics-redis' });
  });
  afterAll(async () => {
    await clustered?.close();
    await redis?.stop();
  });

  test('Redis calls are timed by operation; the breaker state follows an outage and recovery', async () => {
    // The node registry heartbeats into Redis every 2 s, so putNode calls happen without clients.
    let series = await scrape(clustered);
    await until(async () => {
      series = await scrape(clustered);
      return (value(series, 'chorus_redis_command_duration_seconds_count', { op: 'putNode', outcome: 'ok' }) ?? 0) > 0;
    }, 10_000, 'a timed putNode');
    expect(value(series, 'chorus_circuit_breaker_state', { dependency: 'redis', state: 'closed' })).toBe(1);
    expect(value(series, 'chorus_circuit_breaker_state', { dependency: 'redis', state: 'open' })).toBe(0);

    await redis.kill();
    await until(async () => {
      series = await scrape(clustered);
      return value(series, 'chorus_circuit_breaker_state', { dependency: 'redis', state: 'closed' }) === 0;
    }, 15_000, 'the breaker to leave closed while Redis is down');
    expect((value(series, 'chorus_redis_command_duration_seconds_count', { op: 'putNode', outcome: 'error' }) ?? 0)).toBeGreaterThan(0);
    const ready = await fetch(`${clustered.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'unready', dependencies: { redis: { up: false, required: true } } });

    await redis.restart();
    await until(async () => {
      series = await scrape(clustered);
      return value(series, 'chorus_circuit_breaker_state', { dependency: 'redis', state: 'closed' }) === 1;
    }, 20_000, 'the breaker to close again');
  });
});
