/**
 * Which mediasoup worker a process runs: scripts/setup-worker.sh writes build.json beside every
 * worker it installs (built from source with Chorus's patch series, or mediasoup's prebuilt
 * release without it). Features that need a patch ask here instead of assuming, so a node started
 * on an operator's own worker (MEDIASOUP_WORKER_BIN) degrades and says why.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';

const manifest = z.object({
  mediasoup: z.string(),
  build: z.enum(['source', 'prebuilt']),
  patches: z.array(z.string()),
  srtpCrypto: z.enum(['openssl', 'nss']),
  /** Sends go through io_uring, submitted once per event-loop turn (liburing linked). */
  liburing: z.boolean().default(false),
});

export type WorkerBuild = z.infer<typeof manifest> | { build: 'unknown'; patches: string[]; binary?: string };

/** Reads the build of the binary a running worker executes (Linux: /proc/<pid>/exe). */
export function workerBuild(pid: number): WorkerBuild {
  let binary: string | undefined;
  try {
    binary = realpathSync(`/proc/${pid}/exe`);
    const parsed = manifest.safeParse(JSON.parse(readFileSync(join(dirname(binary), 'build.json'), 'utf8')));
    if (parsed.success) return parsed.data;
  } catch {
    // No /proc, or a binary that setup-worker.sh did not install: nothing is known of it.
  }
  return { build: 'unknown', patches: [], ...(binary ? { binary } : {}) };
}

/** True when the worker carries the named patch of scripts/mediasoup/patches (number-name). */
export function hasPatch(build: WorkerBuild, name: string): boolean {
  return build.patches.some((p) => p === name || p.replace(/^\d+[+-]/, '') === name);
}
