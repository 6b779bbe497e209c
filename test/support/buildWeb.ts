/**
 * Builds the web pages (vite.config.ts → dist/web) for browser tests, once per process and only
 * when dist/web is missing or older than its sources. Also usable as a vitest globalSetup file.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const webDir = join(repoRoot, 'dist', 'web');

/** Everything that ends up in the pages' bundles. */
const sources = ['src/web', 'src/client', 'src/protocol', 'vite.config.ts', 'scripts/sample-video.mjs'].map((p) => join(repoRoot, p));

/** The newest modification time under `path` (0 when it does not exist). */
export function newestMtime(path: string): number {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((name) => newestMtime(join(path, name))));
}

function upToDate(): boolean {
  const built = join(webDir, 'index.html');
  if (!['index.html', 'broadcast.html', 'listen.html', 'watch.html', 'sample.webm'].every((page) => existsSync(join(webDir, page)))) return false;
  return statSync(built).mtimeMs >= Math.max(...sources.map(newestMtime));
}

let building: Promise<string> | undefined;

/** Resolves to the absolute path of the built pages. */
export function buildWeb(options: { force?: boolean } = {}): Promise<string> {
  building ??= (async () => {
    if (!options.force && upToDate()) return webDir;
    const { build } = await import('vite');
    await build({ configFile: join(repoRoot, 'vite.config.ts'), mode: 'production', logLevel: 'warn' });
    return webDir;
  })();
  return building;
}

/** vitest `globalSetup` entry point. */
export default async function setup(): Promise<void> {
  await buildWeb();
}
