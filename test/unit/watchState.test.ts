import { describe, expect, test } from 'vitest';
import { ClockEstimate, clockSample } from '../../src/client/clock.js';
import { isAllowedVideoUrl, watchControl, watchReport, type WatchState } from '../../src/protocol/watch.js';
import { applyControl, initialState, measureDrift, nextHost, positionAt, takesHostOnJoin, withHost } from '../../src/watch/state.js';
import { parseWatchState } from '../../src/watch/stored.js';

const host = { peerId: 'p-host', identity: 'amina', role: 'host', nodeId: 'a' };
const playing = (over: Partial<WatchState> = {}): WatchState => ({ url: '/v.webm', position: 10, updatedAt: 1_000_000, playing: true, rate: 1, host, version: 5, ...over });

describe('position at server time', () => {
  test('moves with wall time at the playback rate while playing, stands while paused', () => {
    expect(positionAt(playing(), 1_000_000)).toBe(10);
    expect(positionAt(playing(), 1_002_500)).toBeCloseTo(12.5, 9);
    expect(positionAt(playing({ rate: 2 }), 1_002_500)).toBeCloseTo(15, 9);
    expect(positionAt(playing({ rate: 0.5 }), 1_004_000)).toBeCloseTo(12, 9);
    expect(positionAt(playing({ playing: false }), 1_060_000)).toBe(10);
  });

  test('a reader whose clock is behind the anchor does not go backwards', () => {
    expect(positionAt(playing(), 999_000)).toBe(10);
  });
});

describe('controls', () => {
  test('each control re-anchors at now and bumps the version', () => {
    const s = playing();
    const paused = applyControl(s, { action: 'pause' }, 1_003_000);
    expect(paused).toMatchObject({ playing: false, position: 13, updatedAt: 1_003_000, version: 6 });
    expect(positionAt(paused, 1_100_000)).toBe(13);
    const resumed = applyControl(paused, { action: 'play' }, 1_010_000);
    expect(resumed).toMatchObject({ playing: true, position: 13, version: 7 });
    expect(positionAt(resumed, 1_011_000)).toBeCloseTo(14, 9);
    expect(applyControl(s, { action: 'seek', position: 42 }, 1_001_000)).toMatchObject({ position: 42, playing: true, version: 6 });
    expect(applyControl(s, { action: 'pause', position: 7.25 }, 1_001_000)).toMatchObject({ position: 7.25, playing: false });
    const faster = applyControl(s, { action: 'rate', rate: 2 }, 1_002_000);
    expect(faster).toMatchObject({ position: 12, rate: 2 });
    expect(positionAt(faster, 1_003_000)).toBeCloseTo(14, 9);
    expect(applyControl(s, { action: 'load', url: 'https://cdn.example/x.webm' }, 1_001_000)).toMatchObject({ url: 'https://cdn.example/x.webm', position: 0, playing: false });
    expect(applyControl(s, { action: 'load', url: '/y.webm', position: 3, playing: true }, 1_001_000)).toMatchObject({ position: 3, playing: true });
    expect(s).toEqual(playing()); // never mutated
  });

  test('a new state is paused at zero with nothing loaded', () => {
    expect(initialState(host, 5)).toEqual({ url: '', position: 0, updatedAt: 5, playing: false, rate: 1, host, version: 1 });
  });
});

describe('drift', () => {
  const s = playing();
  test('reported minus expected at the sampling time; beyond the threshold means resync', () => {
    expect(measureDrift(s, { position: 12.1, playing: true, version: 5 }, 1_002_000, 300)).toEqual({ driftMs: 100, resync: false });
    expect(measureDrift(s, { position: 11.6, playing: true, version: 5 }, 1_002_000, 300)).toEqual({ driftMs: -400, resync: true });
    expect(measureDrift(s, { position: 12.35, playing: true, version: 5 }, 1_002_000, 300)).toEqual({ driftMs: 350, resync: true });
    expect(measureDrift(s, { position: 12.35, playing: true, version: 5 }, 1_002_000, 500)).toEqual({ driftMs: 350, resync: false });
  });
  test('a paused player in a playing room, or an older version, resyncs', () => {
    expect(measureDrift(s, { position: 12, playing: false, version: 5 }, 1_002_000, 300).resync).toBe(true);
    expect(measureDrift(s, { position: 12, playing: true, version: 4 }, 1_002_000, 300)).toEqual({ driftMs: null, resync: true });
  });
  test('a player stopped at the end of its media is not drifting', () => {
    expect(measureDrift(s, { position: 11, playing: false, version: 5, ended: true }, 1_060_000, 300)).toEqual({ driftMs: null, resync: false });
  });
});

describe('host succession', () => {
  const c = (peerId: string, role: 'host' | 'participant' | 'listener' | 'moderator', joinedAt: number) => ({ peerId, identity: `id-${peerId}`, role, nodeId: 'n', joinedAt });
  test('longest present first; host tokens, then moderators, come before anyone', () => {
    expect(nextHost([c('b', 'participant', 20), c('a', 'listener', 10), c('c', 'participant', 30)])?.peerId).toBe('a');
    expect(nextHost([c('a', 'listener', 10), c('m', 'moderator', 50)])?.peerId).toBe('m');
    expect(nextHost([c('m', 'moderator', 10), c('h', 'host', 90)])?.peerId).toBe('h');
  });
  test('the leaving peer is never picked; ties break on id so every node agrees; nobody left is null', () => {
    expect(nextHost([c('a', 'listener', 10), c('b', 'listener', 20)], 'a')?.peerId).toBe('b');
    expect(nextHost([c('z', 'listener', 10), c('y', 'listener', 10)])?.peerId).toBe('y');
    expect(nextHost([c('a', 'listener', 10)], 'a')).toBeNull();
    expect(nextHost([])).toBeNull();
  });
  test('a host arriving takes over from a stand-in, not from another host; an empty seat goes to anyone', () => {
    expect(takesHostOnJoin(null, 'listener')).toBe(true);
    expect(takesHostOnJoin({ ...host, role: 'participant' }, 'host')).toBe(true);
    expect(takesHostOnJoin(host, 'host')).toBe(false);
    expect(takesHostOnJoin({ ...host, role: 'participant' }, 'listener')).toBe(false);
  });
  test('with nobody to host the room pauses where it is', () => {
    const next = withHost(playing(), null, 1_004_000);
    expect(next).toMatchObject({ host: null, playing: false, position: 14, version: 6 });
    expect(withHost(playing(), { ...host, peerId: 'x' }, 1_004_000)).toMatchObject({ playing: true, position: 14 });
  });
});

describe('validation', () => {
  test('urls: http(s) or a same-origin path, bounded', () => {
    for (const ok of ['/sample.webm', '/media/a%20b.webm?x=1', 'https://cdn.example.org/v.webm', 'http://10.0.0.2:8080/v.mp4']) expect(isAllowedVideoUrl(ok)).toBe(true);
    for (const bad of ['', 'javascript:alert(1)', 'data:video/webm;base64,AA', '//evil.example/x', '/\\evil', 'ftp://x/y', 'file:///etc/passwd', 'https://u:p@x.org/v', 'sample.webm', '/a b', `/${'a'.repeat(2048)}`, 'https://x.org/\nv']) {
      expect(isAllowedVideoUrl(bad), bad).toBe(false);
    }
  });
  test('controls and reports: types, bounds, no unknown fields', () => {
    expect(watchControl.safeParse({ action: 'seek', position: 12.5 }).success).toBe(true);
    expect(watchControl.safeParse({ action: 'seek', position: -1 }).success).toBe(false);
    expect(watchControl.safeParse({ action: 'seek', position: '12' }).success).toBe(false);
    expect(watchControl.safeParse({ action: 'seek' }).success).toBe(false);
    expect(watchControl.safeParse({ action: 'seek', position: Number.NaN }).success).toBe(false);
    expect(watchControl.safeParse({ action: 'rate', rate: 5 }).success).toBe(false);
    expect(watchControl.safeParse({ action: 'rate', rate: 0 }).success).toBe(false);
    expect(watchControl.safeParse({ action: 'load', url: 'javascript:x' }).success).toBe(false);
    expect(watchControl.safeParse({ action: 'play', host: 'me' }).success).toBe(false);
    expect(watchControl.safeParse({ action: 'rewind' }).success).toBe(false);
    expect(watchReport.safeParse({ position: 1, playing: true, version: 1 }).success).toBe(true);
    expect(watchReport.safeParse({ position: 1, playing: 'yes', version: 1 }).success).toBe(false);
    expect(watchReport.safeParse({ position: 1, playing: true, version: 1.5 }).success).toBe(false);
  });
  test('stored state that is not a state reads as none', () => {
    expect(parseWatchState(JSON.stringify(playing()))).toEqual(playing());
    expect(parseWatchState('{')).toBeUndefined();
    expect(parseWatchState(JSON.stringify({ ...playing(), position: -1 }))).toBeUndefined();
  });
});

describe('clock offset (NTP-style)', () => {
  test('offset and round trip from the four timestamps', () => {
    // Server 1000 ms ahead; 20 ms each way; 5 ms of server work.
    expect(clockSample(0, 1020, 1025, 45)).toEqual({ offsetMs: 1000, rttMs: 40, at: 45 });
    // Asymmetric path (30 out, 10 back): the error is half the asymmetry, within rtt/2.
    const s = clockSample(0, 1030, 1030, 40);
    expect(Math.abs(s.offsetMs - 1000)).toBeLessThanOrEqual(s.rttMs / 2);
  });
  test('the sample with the smallest round trip wins; old samples age out', () => {
    const clock = new ClockEstimate(3);
    expect(clock.offsetMs).toBe(0);
    clock.add({ offsetMs: 990, rttMs: 80, at: 1 });
    clock.add({ offsetMs: 1001, rttMs: 4, at: 2 });
    clock.add({ offsetMs: 1020, rttMs: 60, at: 3 });
    expect(clock.offsetMs).toBe(1001);
    clock.add({ offsetMs: 1010, rttMs: 50, at: 4 });
    expect(clock.offsetMs).toBe(1001);
    clock.add({ offsetMs: 1015, rttMs: 55, at: 5 });
    expect(clock.offsetMs).toBe(1010);
  });
});
