/**
 * The two databases records can live in, behind one small interface: a real PostgreSQL
 * (DATABASE_URL) or PGlite (PostgreSQL compiled to WebAssembly, in a data directory, served by a
 * child process: pgliteServer.ts). The node talks to both through one `pg` pool; both run the
 * same migrations and the same statements.
 */
import { mkdirSync } from 'node:fs';
import pg from 'pg';
import lockfile from 'proper-lockfile';
import type { Logger } from '../observability/logger.js';
import { repeatOnGrid } from '../time/gridTimer.js';
import { ensurePgliteDirectory } from './pgliteCreate.js';
import { PgliteServer } from './pgliteServer.js';

export interface SqlExecutor {
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>;
  /** Several statements, no parameters (migrations). */
  exec(text: string): Promise<void>;
}

export interface SqlDatabase extends SqlExecutor {
  readonly kind: 'postgres' | 'pglite';
  /** Human-readable location, without credentials. */
  readonly where: string;
  /** The process serving the embedded database (PGlite); none for an outside PostgreSQL. */
  readonly server?: { readonly pid: number | undefined; readonly restarts: number };
  /** BEGIN … COMMIT around `fn`; ROLLBACK when it throws. */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** The URL with its password masked, for logs and error messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}

export interface PostgresOptions {
  /** Longest wait for a connection. Default 5 s. */
  connectTimeoutMs?: number;
  /** Longest a statement may run before the client gives up on it. Default 30 s. */
  queryTimeoutMs?: number;
}

export function openPostgres(url: string, log: Logger, options: PostgresOptions = {}): SqlDatabase {
  // Records are written by one flush at a time; a second connection serves reads meanwhile.
  return overPool({ connectionString: url, max: 3 }, 'postgres', redactUrl(url), log, options);
}

/** A `pg` pool as a SqlDatabase: what both backends run on. */
function overPool(config: pg.PoolConfig, kind: SqlDatabase['kind'], where: string, log: Logger | undefined, options: PostgresOptions): SqlDatabase {
  const pool = new pg.Pool({
    ...config,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    query_timeout: options.queryTimeoutMs ?? 30_000,
    idleTimeoutMillis: 30_000,
    application_name: 'chorus-records',
  });
  // An idle client losing its server (a restart) is reported here; without a listener it would
  // crash the node. The next query reconnects.
  pool.on('error', (error) => log?.warn({ error: error.message }, 'records database connection lost'));
  const executor = (client: pg.Pool | pg.PoolClient): SqlExecutor => ({
    async query<R>(text: string, params?: unknown[]) {
      return (await client.query(text, params)).rows as R[];
    },
    async exec(text: string) {
      await client.query(text);
    },
  });
  return {
    kind,
    where,
    ...executor(pool),
    async transaction(fn) {
      const client = await pool.connect();
      let broken: Error | undefined;
      // A checked-out client whose server goes away between two statements emits 'error'
      // outside any query; unheard, that would crash the node. The next statement fails instead.
      const onError = (error: Error): void => {
        broken = error;
      };
      client.on('error', onError);
      try {
        await client.query('BEGIN');
        const result = await fn(executor(client));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch((rollbackError: Error) => (broken = rollbackError));
        throw error;
      } finally {
        // A client whose connection failed is discarded instead of going back to the pool.
        client.off('error', onError);
        client.release(broken);
      }
    },
    async close() {
      await pool.end();
    },
  };
}

/**
 * PGlite has no postmaster to keep a second process out of its directory: two processes on one
 * directory each see only their own writes, and rows are lost when they close (measured: 4000
 * inserts from two, 3815 after reopening). So the directory is locked while open (a lock file
 * kept fresh; a crashed holder's goes stale in 10 s, and a restart waits that long for it).
 */
const LOCK = { stale: 10_000, update: 2_500 };

/**
 * PGlite's shared buffers live in its process's memory, and PostgreSQL's default of 128 MB is
 * sized for a server of its own: measured, an open records database held RSS 307 MB with it and
 * 191 MB with 32 MB. Records are mostly appended; pages past these are read through the
 * operating system's file cache.
 */
const PGLITE_SETTINGS = ['-c', 'shared_buffers=32MB'];

/**
 * PGlite runs PostgreSQL without its autovacuum (measured: 24,832 dead rows left a minute and a
 * quarter after the launcher would have woken, none vacuumed): nothing removes dead rows, sets
 * visibility maps for index-only scans, or gathers the planner's statistics. So the node runs
 * `VACUUM (ANALYZE)` itself on a timer, through the one connection, between two writes. After the
 * first, it skips pages that have not changed.
 */
const PGLITE_VACUUM_EVERY_MS = 10 * 60_000;

export interface PgliteOptions {
  /** How often to vacuum and analyze (default 10 minutes). */
  vacuumEveryMs?: number;
}

export async function openPglite(dir: string, log?: Logger, lockRetries = 6, options: PgliteOptions = {}): Promise<SqlDatabase> {
  mkdirSync(dir, { recursive: true });
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(dir, {
      ...LOCK,
      retries: { retries: lockRetries, minTimeout: 500, maxTimeout: 3000 },
      // Losing the lock (the file removed, or its refresh late past `stale`) is logged: the
      // database stays open, as stopping would lose what is queued.
      onCompromised: (error) => log?.error({ err: error, dir }, 'the records database lock was lost; another process may open this directory'),
    });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOCKED') {
      throw new Error(`the records database in ${dir} is in use by another Chorus process: give each node its own CHORUS_DATA_DIR, or set DATABASE_URL`);
    }
    throw error;
  }
  let server: PgliteServer;
  try {
    const started = performance.now();
    if (await ensurePgliteDirectory(dir)) log?.info({ dir, ms: Math.round(performance.now() - started) }, 'records database created (first start)');
    server = await PgliteServer.start(dir, { settings: PGLITE_SETTINGS, log });
  } catch (error) {
    await release();
    throw error;
  }
  // PGlite is one session: with one connection a transaction holds it and other statements wait
  // their turn in the pool, which is the order PGlite would run them in anyway.
  // A statement waits for the one connection behind whatever holds it (a vacuum, a batch), so
  // the wait is a queue's, not a connect's: bounded like a statement.
  const db = overPool({ host: server.socketDir, user: 'postgres', database: 'postgres', max: 1 }, 'pglite', `pglite:${dir}`, log, { connectTimeoutMs: 30_000 });
  const vacuum = repeatOnGrid(options.vacuumEveryMs ?? PGLITE_VACUUM_EVERY_MS, () => {
    const started = performance.now();
    db.exec('VACUUM (ANALYZE)').then(
      () => log?.debug({ ms: Math.round(performance.now() - started) }, 'records database vacuumed'),
      (error: Error) => log?.warn({ error: error.message }, 'records database vacuum failed; the next one will try again'),
    );
  });
  return {
    ...db,
    server,
    async close() {
      vacuum.stop();
      try {
        await db.close();
        await server.close();
      } finally {
        await release().catch(() => undefined);
      }
    },
  };
}
