import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { endPlaylist, recordingArgs, recordingFrame } from '../../src/recording/stageRun.js';

test('the recording frame is the declared capture size, even, under 1080p; 720p when nothing was declared', () => {
  expect(recordingFrame({ width: 320, height: 180 })).toEqual({ width: 320, height: 180 });
  expect(recordingFrame({ width: 641, height: 361 })).toEqual({ width: 640, height: 360 });
  expect(recordingFrame({ width: 3840, height: 2160 })).toEqual({ width: 1920, height: 1080 });
  // A tall phone screen share keeps its shape inside 1080 lines.
  expect(recordingFrame({ width: 1080, height: 2340 })).toEqual({ width: 498, height: 1080 });
  expect(recordingFrame(undefined)).toEqual({ width: 1280, height: 720 });
  expect(recordingFrame({ width: 0, height: 0 })).toEqual({ width: 1280, height: 720 });
});

test('every layer is scaled into that one frame; audio-only runs have no video filter', () => {
  const args = recordingArgs(true, true, 2, false, { width: 320, height: 180 });
  expect(args[args.indexOf('-vf') + 1]).toMatch(/^scale=320:180:.*pad=320:180:/);
  expect(recordingArgs(false, true, 2)).not.toContain('-vf');
});

test('a playlist ffmpeg left open is ended once; a missing one is left alone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'chorus-endlist-'));
  try {
    expect(await endPlaylist(dir)).toBe(false);
    writeFileSync(join(dir, 'index.m3u8'), '#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:2.0,\nseg-00000.ts');
    expect(await endPlaylist(dir)).toBe(true);
    expect(await endPlaylist(dir)).toBe(false);
    expect(readFileSync(join(dir, 'index.m3u8'), 'utf8')).toBe('#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\n#EXTINF:2.0,\nseg-00000.ts\n#EXT-X-ENDLIST\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
