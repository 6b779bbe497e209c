import { parse, setOptions, types } from 'hls-parser';
import { describe, expect, test } from 'vitest';
import { RollingPlaylist } from '../../src/hls/playlist.js';
import { parseHlsPath } from '../../src/hls/routes.js';
import { ConfigError, loadConfig } from '../../src/config/config.js';

setOptions({ strictMode: true });
const media = (text: string) => parse(text) as InstanceType<typeof types.MediaPlaylist>;

describe('the rolling playlist', () => {
  test('keeps numbering across runs, marks each later run, and counts discontinuities that rolled off', () => {
    const list = new RollingPlaylist(3, 1);
    const t = 1_000_000;
    list.startRun();
    list.add('seg-1-0.ts', 1, t);
    list.add('seg-1-1.ts', 1, t + 1000);
    list.startRun();
    list.add('seg-2-0.ts', 1.02, t + 5000);
    let p = media(list.render());
    expect(p.mediaSequenceBase).toBe(0);
    expect(p.discontinuitySequenceBase).toBe(0);
    expect(p.segments.map((s) => [s.uri, s.discontinuity ?? false])).toEqual([
      ['seg-1-0.ts', false],
      ['seg-1-1.ts', false],
      ['seg-2-0.ts', true],
    ]);
    // The run's first segment starts a new clock; its successors follow on from it.
    expect(p.segments[1]!.programDateTime!.getTime() - p.segments[0]!.programDateTime!.getTime()).toBe(1000);

    const removed = [...list.add('seg-2-1.ts', 1, t + 6000), ...list.add('seg-2-2.ts', 1, t + 7000), ...list.add('seg-2-3.ts', 1, t + 8000)];
    expect(removed.map((s) => s.uri)).toEqual(['seg-1-0.ts', 'seg-1-1.ts', 'seg-2-0.ts']);
    p = media(list.render('token=abc'));
    expect(p.mediaSequenceBase).toBe(3);
    // The discontinuity before seg-2-0 rolled off: players learn it from the sequence number.
    expect(p.discontinuitySequenceBase).toBe(1);
    expect(p.segments.every((s) => !s.discontinuity)).toBe(true);
    expect(p.segments.map((s) => s.uri)).toEqual(['seg-2-1.ts?token=abc', 'seg-2-2.ts?token=abc', 'seg-2-3.ts?token=abc']);
    expect(p.targetDuration).toBe(1);
    expect(p.endlist).toBe(false);
  });

  test('the first run is not marked, and the target duration only grows', () => {
    const list = new RollingPlaylist(5, 1);
    list.startRun();
    list.add('seg-1-0.ts', 2.4, 0);
    list.add('seg-1-1.ts', 1, 1);
    const p = media(list.render());
    expect(p.segments[0]!.discontinuity ?? false).toBe(false);
    expect(p.targetDuration).toBe(2);
  });
});

describe('HLS paths', () => {
  test('only /hls/<room>/index.m3u8 and /hls/<room>/seg-<run>-<n>.ts pass', () => {
    expect(parseHlsPath('/hls/room_1/index.m3u8?token=x')).toEqual({ roomId: 'room_1', file: 'index.m3u8' });
    expect(parseHlsPath('/hls/r/seg-3-12.ts')).toEqual({ roomId: 'r', file: 'seg-3-12.ts' });
    for (const bad of ['/hls/r/../x.ts', '/hls/r/%2e%2e', '/hls/r%2F..%2Fx/index.m3u8', '/hls//index.m3u8', '/hls/r/seg-1-1.ts/', '/hls/r/SEG-1-1.ts', '/x/r/index.m3u8', '/hls/r/index.m3u8%00']) {
      expect(() => parseHlsPath(bad), bad).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
    }
  });
});

describe('HLS configuration', () => {
  test('defaults: on, 1 s segments, 6 listed, 30 s idle; segments over 2 s are refused', () => {
    const config = loadConfig({ CHORUS_DATA_DIR: '/var/lib/chorus' });
    expect(config.hls).toMatchObject({ dir: '/var/lib/chorus/hls', segmentSeconds: 1, listSize: 6, idleMs: 30_000, always: false, ffmpeg: 'ffmpeg' });
    expect(loadConfig({ CHORUS_HLS: 'false' }).hls).toBeUndefined();
    expect(() => loadConfig({ CHORUS_HLS_SEGMENT_SECONDS: '3' })).toThrow(ConfigError);
    expect(() => loadConfig({ CHORUS_HLS_LIST_SIZE: '1' })).toThrow(ConfigError);
  });
});
