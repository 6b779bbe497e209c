import { execFileSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The commit a benchmark ran (CHORUS_BENCH_COMMIT when not run from a git checkout), so a recorded line says what it measured. */
export function gitCommit(): string | undefined {
  if (process.env['CHORUS_BENCH_COMMIT']) return process.env['CHORUS_BENCH_COMMIT'];
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}
