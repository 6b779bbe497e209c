/**
 * An ffmpeg run lives no longer than the node that started it: a node killed without a chance to
 * stop its children (SIGKILL, the OOM killer) must not leave ffmpeg holding its ports and CPU.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, expect, test } from 'vitest';
import { FfmpegProcess } from '../../src/media/ffmpegProcess.js';
import { captureLogs } from '../support/logCapture.js';
import { until } from '../support/testNode.js';

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const step of cleanup.splice(0).reverse()) step();
});

/** The process's state letter from /proc (Z: a zombie, dead but not yet reaped), or undefined once gone. */
function state(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
  } catch {
    return undefined;
  }
}

function comm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

test('a node killed with SIGKILL takes its ffmpeg with it', async () => {
  const holder = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '../support/ffmpegHolder.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanup.push(() => holder.kill('SIGKILL'));
  const first = await new Promise<string>((resolve, reject) => {
    createInterface({ input: holder.stdout! }).once('line', resolve);
    holder.once('exit', (code) => reject(new Error(`holder exited (${code}) before starting ffmpeg`)));
  });
  const { pid, dir } = JSON.parse(first) as { pid: number; dir: string };
  cleanup.push(() => {
    if (state(pid) !== undefined && comm(pid) === 'ffmpeg') process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  await until(() => comm(pid) === 'ffmpeg', 10_000, 'the holder to exec ffmpeg');
  expect(state(pid)).toMatch(/^[RSD]$/);

  holder.kill('SIGKILL');
  // Gone, a zombie not yet reaped, or (should the pid be reused) no longer our ffmpeg.
  await until(() => {
    const s = state(pid);
    return s === undefined || s === 'Z' || comm(pid) !== 'ffmpeg';
  }, 5000, `ffmpeg ${pid} to end with its parent`);
});

test('an ffmpeg that is not there ends the run at once, logged as not started', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'chorus-ffmpeg-missing-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const { log, lines } = captureLogs('debug');
  const run = new FfmpegProcess(join(dir, 'no-such-ffmpeg'), ['-version'], dir, log);
  await run.exited;
  expect(run.exit?.code).not.toBe(0);
  expect(lines.filter((line) => line.msg === 'ffmpeg could not be started')).toHaveLength(1);
});
