/**
 * Readiness from the node's dependencies, each either required (its outage makes the node
 * unready, so the balancer sends new work elsewhere) or optional (its outage only marks the node
 * degraded: say, the records database, whose writes spill to a file meanwhile). Which is which is
 * configuration (CHORUS_READY_OPTIONAL); parts register their own check, so the records module
 * can add `database` without touching this file.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface DependencyStatus {
  up: boolean;
  /** Free-form detail shown in /readyz (a breaker state, a last error). */
  detail?: string | undefined;
}

export interface DependencyReport extends DependencyStatus {
  required: boolean;
}

export interface Readiness {
  ready: boolean;
  /** ok: everything up; degraded: an optional dependency is down; unready: not taking work. */
  status: 'ok' | 'degraded' | 'unready';
  dependencies: Record<string, DependencyReport>;
}

export class HealthChecks {
  readonly #checks = new Map<string, () => DependencyStatus>();
  readonly #optional: ReadonlySet<string>;

  constructor(optional: readonly string[]) {
    this.#optional = new Set(optional);
  }

  /** Adds (or replaces) the check for `name`. */
  register(name: string, check: () => DependencyStatus): void {
    this.#checks.set(name, check);
  }

  /** `accepting` is the node's own state: workers alive, not draining, not closing. */
  evaluate(accepting: boolean): Readiness {
    const dependencies: Record<string, DependencyReport> = {};
    let requiredDown = false;
    let optionalDown = false;
    for (const [name, check] of this.#checks) {
      let status: DependencyStatus;
      try {
        status = check();
      } catch (error) {
        status = { up: false, detail: error instanceof Error ? error.message : String(error) };
      }
      const required = !this.#optional.has(name);
      dependencies[name] = { ...status, required };
      if (!status.up) {
        if (required) requiredDown = true;
        else optionalDown = true;
      }
    }
    const ready = accepting && !requiredDown;
    return { ready, status: !ready ? 'unready' : optionalDown ? 'degraded' : 'ok', dependencies };
  }
}

/** package.json's version, found above this file (src/observability or dist/server/observability). */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'chorus' && pkg.version) return pkg.version;
    }
    dir = dirname(dir);
  }
  return 'unknown';
}
