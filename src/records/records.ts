/**
 * The node's records: opens the database (PostgreSQL at DATABASE_URL, else PGlite in the data
 * directory), brings its schema up to date, and queues what the node reports for the writer.
 */
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { Logger } from '../observability/logger.js';
import type { RecordingInfo } from '../protocol/room.js';
import { migrate } from './migrate.js';
import { stamp, type NewRecord, type RecordSink } from './nodeRecorder.js';
import { SqlRecordStore, type RecordStore } from './recordStore.js';
import { openPglite, openPostgres, type SqlDatabase } from './sql.js';
import type { ChorusRecord } from './types.js';
import { RecordWriter, type WriterStatus } from './writer.js';

export interface RecordsSettings {
  /** postgres:// URL; unset means PGlite in `<dataDir>/pglite`. */
  databaseUrl: string | undefined;
  flushMs: number;
  queueMax: number;
}

export interface RecordsStatus extends WriterStatus {
  backend: 'postgres' | 'pglite';
  where: string;
  /** The embedded database's own process: its pid, and how often it was started again. */
  server?: { pid: number | undefined; restarts: number };
}

export class RecordsError extends Error {
  override readonly name = 'RecordsError';
}

export class Records extends EventEmitter<{ queued: [record: ChorusRecord] }> implements RecordSink {
  #closed = false;

  constructor(
    readonly store: RecordStore,
    readonly writer: RecordWriter,
  ) {
    super();
  }

  record(record: NewRecord, at?: number): void {
    const stamped = stamp(record, at);
    this.emit('queued', stamped);
    this.writer.enqueue(stamped);
  }

  /** Writes everything queued or spilled now; true when nothing is left behind. */
  flush(): Promise<boolean> {
    return this.writer.flush();
  }

  archiveRoom(roomId: string): Promise<boolean> {
    return this.store.archiveRoom(roomId);
  }

  recordings(tenant: string, limit: number): Promise<RecordingInfo[]> {
    return this.store.recordings(tenant, limit);
  }

  status(): RecordsStatus {
    const server = this.store.server;
    return { backend: this.store.kind, where: this.store.where, ...(server && { server: { pid: server.pid, restarts: server.restarts } }), ...this.writer.status() };
  }

  /** The short form for /readyz: records never make a node unready, but show degradation. */
  health(): Pick<RecordsStatus, 'backend' | 'breaker' | 'queued' | 'spilledBytes' | 'server'> {
    const { backend, breaker, queued, spilledBytes, server } = this.status();
    return { backend, breaker, queued, spilledBytes, ...(server && { server }) };
  }

  /** Flushes within `deadlineMs` (spilling the rest for the next start), then disconnects. */
  async close(deadlineMs = 5000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.writer.close(deadlineMs);
    // A connection stuck on a dead server must not hold the node's shutdown.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.store.close().catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, 2000)))]);
    clearTimeout(timer);
  }
}

function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return error.errors.map(describe).join('; ');
  if (error instanceof Error) return error.message || String((error as { code?: unknown }).code ?? error.name);
  return String(error);
}

/** Opens and migrates the records database; throws a RecordsError saying where and why not. */
export async function startRecords(
  settings: RecordsSettings,
  dataDir: string,
  log: Logger,
  observeWrite?: (seconds: number, ok: boolean) => void,
): Promise<Records> {
  let db: SqlDatabase | undefined;
  const where = settings.databaseUrl ? 'DATABASE_URL' : `PGlite in ${join(dataDir, 'pglite')}`;
  try {
    db = settings.databaseUrl ? openPostgres(settings.databaseUrl, log) : await openPglite(join(dataDir, 'pglite'), log);
    const { applied } = await migrate(db);
    log.info({ records: db.where, migrationsApplied: applied }, 'records database ready');
  } catch (error) {
    await db?.close().catch(() => undefined);
    throw new RecordsError(`cannot open the records database (${db?.where ?? where}): ${describe(error)}`, { cause: error });
  }
  const store = new SqlRecordStore(db);
  const writer = new RecordWriter(
    store,
    {
      flushMs: settings.flushMs,
      queueMax: settings.queueMax,
      spillPath: join(dataDir, 'records', 'spill.jsonl'),
      rejectedPath: join(dataDir, 'records', 'rejected.jsonl'),
      observeWrite,
    },
    log,
  );
  return new Records(store, writer);
}
