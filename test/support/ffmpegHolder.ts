/**
 * A stand-in for a node that runs ffmpeg: starts one endless ffmpeg through FfmpegProcess, prints
 * its pid, and waits to be killed. test/integration/ffmpegLifetime.test.ts SIGKILLs it.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { FfmpegProcess } from '../../src/media/ffmpegProcess.js';

const dir = mkdtempSync(join(tmpdir(), 'chorus-ffmpeg-holder-'));
// Silence at its own pace: it never ends and costs next to nothing. Quiet on stderr, like the
// node's runs: an ffmpeg that writes there would die of SIGPIPE with its parent anyway.
const ffmpeg = new FfmpegProcess('ffmpeg', ['-nostdin', '-nostats', '-loglevel', 'warning', '-re', '-f', 'lavfi', '-i', 'anullsrc=r=8000:cl=mono', '-f', 'null', '-'], dir, pino({ level: 'silent' }));
process.stdout.write(`${JSON.stringify({ pid: ffmpeg.pid, dir })}\n`);
setInterval(() => undefined, 60_000);
