#!/usr/bin/env node
// Generates the watch-party demo's sample video with ffmpeg (never downloaded): 20 s of ffmpeg's
// test pattern with a seconds counter and a 440 Hz tone, VP8 + Opus in WebM (Debian's Chromium
// has no H.264), a keyframe every second so seeks land fast. Made once into dist/sample/ and
// copied into dist/web/ (the pages) when that exists.
//   node scripts/sample-video.mjs [--force]      (npm run sample-video)
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cached = join(root, 'dist', 'sample', 'sample.webm');
const web = join(root, 'dist', 'web');
const force = process.argv.includes('--force');
const seconds = 20;

if (force || !existsSync(cached)) {
  mkdirSync(dirname(cached), { recursive: true });
  const partial = `${cached}.partial.webm`;
  try {
    execFileSync('ffmpeg', [
      '-hide_banner', '-loglevel', 'error', '-y',
      '-f', 'lavfi', '-i', `testsrc=size=320x180:rate=25:duration=${seconds}`,
      '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000:duration=${seconds}`,
      '-c:v', 'libvpx', '-b:v', '250k', '-g', '25', '-deadline', 'realtime', '-cpu-used', '8',
      '-c:a', 'libopus', '-b:a', '32k',
      '-shortest', partial,
    ], { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (error) {
    console.error(`sample-video: ffmpeg failed or is missing (apt-get install ffmpeg): ${error.message}`);
    process.exit(1);
  }
  renameSync(partial, cached);
  console.log(`sample-video: wrote ${cached} (${Math.round(statSync(cached).size / 1024)} KiB)`);
}
if (existsSync(web)) {
  copyFileSync(cached, join(web, 'sample.webm'));
  console.log(`sample-video: copied into ${join(web, 'sample.webm')}`);
}
