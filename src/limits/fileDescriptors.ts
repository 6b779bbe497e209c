/**
 * The per-address connection cap only protects a node if one address reaching it still leaves
 * descriptors for everyone else. The process' open-file limit (`ulimit -n`) is often far lower
 * than the cap's default: Debian's login shells give 1,024, so a cap of 1,000 would let one
 * address take the whole node, /healthz included. Containers and systemd units usually allow
 * far more, and then the configured cap stands.
 */
import { readFileSync } from 'node:fs';

/** This process' soft limit on open files, where the OS says (Linux: /proc/self/limits). */
export function openFileLimit(read: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number | undefined {
  try {
    const soft = /^Max open files\s+(\d+|unlimited)\s/m.exec(read())?.[1];
    return soft === undefined || soft === 'unlimited' ? undefined : Number(soft);
  } catch {
    return undefined;
  }
}

/** At most a quarter of the descriptors to one address: the rest stay for every other client and the node itself. */
export function addressCapWithin(configured: number, fileLimit: number | undefined): number {
  if (fileLimit === undefined) return configured;
  return Math.max(1, Math.min(configured, Math.floor(fileLimit / 4)));
}
