/**
 * The node a benchmark measures is the one `npm start` runs: the compiled `dist/server/main.js`,
 * not the TypeScript sources through tsx's loader (a loader thread with an isolate of its own,
 * more memory, and source maps on every stack). Compiled here first when the build is missing or
 * older than its sources, so a run never measures stale code.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, utimesSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { newestMtime } from '../../test/support/buildWeb.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const entry = join(repoRoot, 'dist/server/main.js');

/** What tsconfig.build.json compiles (src without the client SDK and the web pages), and how. */
function sources(): string[] {
  const src = join(repoRoot, 'src');
  const parts = readdirSync(src).filter((name) => name !== 'client' && name !== 'web').map((name) => join(src, name));
  return [...parts, ...['tsconfig.json', 'tsconfig.build.json', 'package-lock.json'].map((file) => join(repoRoot, file))];
}

function upToDate(): boolean {
  return existsSync(entry) && statSync(entry).mtimeMs >= Math.max(...sources().map(newestMtime));
}

/**
 * Node's arguments to run the built server with the orphan guard preloaded (spawn it with stdin a
 * pipe from the caller: the guard watches it); builds it first if
 * it is stale (`tsc -p tsconfig.build.json`, about 15 s).
 */
export function builtServerArgs(log: (line: string) => void): string[] {
  if (!upToDate()) {
    log('dist/server is missing or older than src/: compiling it (tsc -p tsconfig.build.json)');
    const started = new Date();
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'] });
    // The time the build began: a source edited while it ran still counts as newer next time.
    utimesSync(entry, started, started);
  }
  return ['--import', pathToFileURL(join(repoRoot, 'bench/lib/orphanGuard.mjs')).href, entry];
}
