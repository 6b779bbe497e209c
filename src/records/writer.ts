/**
 * Gets records from the node into the database without ever making the caller wait: records
 * are queued in memory and written in batches on an interval (or as soon as a batch is full).
 * Writes go through retries with backoff and a circuit breaker. When a write fails, what is
 * queued is appended to the spill file (and while the database is slow, whatever goes beyond
 * the memory bound), oldest first, so the file always holds older records than memory. When the database is back
 * the spill file drains first, then memory, which keeps the original order; the file is
 * truncated only after all of it was committed. Records are idempotent (see recordStore.ts),
 * so anything delivered twice on the way (a commit whose answer was lost, a close racing a
 * flush) is applied once.
 */
import { EventEmitter } from 'node:events';
import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  ExponentialBackoff,
  circuitBreaker,
  handleWhen,
  retry,
  wrap,
  type CircuitBreakerPolicy,
  type IPolicy,
} from 'cockatiel';
import type { Logger } from '../observability/logger.js';
import type { RecordStore } from './recordStore.js';
import { SpillFile } from './spill.js';
import type { ChorusRecord } from './types.js';
import { repeatOnGrid, type GridTimer } from '../time/gridTimer.js';

export interface WriterOptions {
  /** How often queued records are written. */
  flushMs: number;
  /** Records kept in memory while the database is unavailable; the rest go to the spill file. */
  queueMax: number;
  /** Records per transaction. Default min(500, queueMax). */
  batchSize?: number;
  /** How long the open breaker refuses writes before one probe. Default 5 × flushMs, 1-30 s. */
  halfOpenAfterMs?: number;
  spillPath: string;
  /** Where records the database refuses as invalid (never transient) are kept for a human. */
  rejectedPath: string;
  /** Told how long each write to the database took and whether it committed (metrics). */
  observeWrite?: ((seconds: number, ok: boolean) => void) | undefined;
}

export type BreakerState = 'closed' | 'open' | 'half-open' | 'isolated';

export interface WriterStatus {
  /** Records waiting in memory. */
  queued: number;
  /** Bytes in the spill file not yet removed (0: nothing spilled). */
  spilledBytes: number;
  breaker: BreakerState;
  /** Records committed since start. */
  written: number;
  /** Records ever appended to the spill file since start. */
  spilled: number;
  /** Records the database refused as invalid (kept in the rejected file). */
  rejected: number;
  lastError: string | undefined;
}

export interface WriterEvents {
  /** A batch was committed. */
  committed: [count: number];
  /** Records were appended to the spill file. */
  spilled: [count: number];
}

const breakerStates: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'isolated',
};

/** Invalid data (SQLSTATE class 22) or a violated constraint (23): retrying cannot help. */
export function isPermanentDbError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22|23)/.test(code);
}

export class RecordWriter extends EventEmitter<WriterEvents> {
  readonly #store: RecordStore;
  readonly #log: Logger;
  readonly #options: Required<Omit<WriterOptions, 'observeWrite'>> & Pick<WriterOptions, 'observeWrite'>;
  readonly #spill: SpillFile;
  readonly #rejected: SpillFile;
  readonly #breaker: CircuitBreakerPolicy;
  readonly #policy: IPolicy;
  readonly #timer: GridTimer;
  #memory: ChorusRecord[] = [];
  /** How far into the spill file records have been committed. */
  #spillOffset = 0;
  #running: Promise<void> | undefined;
  #healthy = true;
  /** Set by close() past its deadline: an in-flight pass must not touch the queue any more. */
  #abandoned = false;
  #closed = false;
  #written = 0;
  #spilled = 0;
  #rejectedCount = 0;
  #lastError: string | undefined;

  async #timedWrite(batch: ChorusRecord[]): Promise<void> {
    const started = performance.now();
    let ok = false;
    try {
      await this.#store.write(batch);
      ok = true;
    } finally {
      this.#options.observeWrite?.((performance.now() - started) / 1000, ok);
    }
  }

  constructor(store: RecordStore, options: WriterOptions, log: Logger) {
    super();
    this.#store = store;
    this.#log = log.child({ component: 'records' });
    this.#options = {
      batchSize: Math.min(500, options.queueMax),
      halfOpenAfterMs: Math.min(30_000, Math.max(1000, options.flushMs * 5)),
      ...options,
    };
    this.#spill = new SpillFile(options.spillPath);
    this.#rejected = new SpillFile(options.rejectedPath);
    const transient = handleWhen((error) => !(error instanceof BrokenCircuitError) && !isPermanentDbError(error));
    this.#breaker = circuitBreaker(transient, {
      halfOpenAfter: this.#options.halfOpenAfterMs,
      breaker: new ConsecutiveBreaker(3),
    });
    const retries = retry(transient, { maxAttempts: 2, backoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1000 }) });
    this.#policy = wrap(retries, this.#breaker);
    this.#breaker.onBreak(() => this.#log.warn({ halfOpenAfterMs: this.#options.halfOpenAfterMs }, 'records database unavailable: circuit open, records queue and spill'));
    this.#breaker.onReset(() => this.#log.info('records database back: circuit closed'));
    this.#timer = repeatOnGrid(this.#options.flushMs, () => void this.#run());
    // A spill file left by an earlier run (the database was down when it closed) drains first.
    if (this.#spill.bytes > 0) {
      this.#log.info({ bytes: this.#spill.bytes, path: this.#spill.path }, 'records spill file found; draining it');
      void this.#run();
    }
  }

  get spillPath(): string {
    return this.#spill.path;
  }

  status(): WriterStatus {
    return {
      queued: this.#memory.length,
      spilledBytes: this.#spill.bytes,
      breaker: breakerStates[this.#breaker.state],
      written: this.#written,
      spilled: this.#spilled,
      rejected: this.#rejectedCount,
      lastError: this.#lastError,
    };
  }

  /** Queues a record; never blocks and never throws. */
  enqueue(record: ChorusRecord): void {
    if (this.#closed) {
      this.#log.warn({ kind: record.kind }, 'record after close dropped');
      return;
    }
    this.#memory.push(record);
    const { batchSize, queueMax } = this.#options;
    // While the database is away only the timer retries (and spills); memory must not pass its
    // bound meanwhile, so a run starts early when it would.
    if ((this.#healthy && this.#memory.length >= batchSize) || this.#memory.length >= queueMax) void this.#run();
  }

  /** Writes everything queued and spilled; true when nothing is left. */
  async flush(): Promise<boolean> {
    await this.#running;
    await this.#run();
    return this.#memory.length === 0 && this.#spill.bytes === 0;
  }

  /**
   * Flushes within `deadlineMs`; whatever could not be written by then is appended to the
   * spill file, which the next start drains.
   */
  async close(deadlineMs: number): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#timer.stop();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), deadlineMs)));
    const flushed = await Promise.race([this.flush(), deadline]);
    clearTimeout(timer);
    if (flushed) return;
    this.#abandoned = true;
    const rest = this.#memory.splice(0);
    if (rest.length > 0) {
      await this.#spill.append(rest);
      this.#spilled += rest.length;
      this.#log.warn({ records: rest.length, path: this.#spill.path }, 'records not written before close: kept in the spill file for the next start');
    }
  }

  #run(): Promise<void> {
    this.#running ??= this.#drain()
      .then(
        () => {
          this.#healthy = true;
          this.#lastError = undefined;
        },
        async (error: unknown) => {
          this.#healthy = false;
          this.#lastError = error instanceof Error ? error.message : String(error);
          if (!(error instanceof BrokenCircuitError)) this.#log.warn({ error: this.#lastError, queued: this.#memory.length }, 'records write failed; will retry');
          // The database is away: everything queued goes to disk now, so a crash of the node
          // during the outage loses at most what arrives until the next run.
          await this.#spillOverflow(0).catch((spillError: unknown) => this.#log.error({ err: spillError }, 'records spill failed; keeping records in memory'));
        },
      )
      .finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #drain(): Promise<void> {
    while (!this.#abandoned) {
      await this.#spillOverflow();
      if (this.#spillOffset < this.#spill.bytes) {
        const chunk = await this.#spill.read(this.#spillOffset, this.#options.batchSize);
        if (chunk.skipped > 0) this.#log.warn({ skipped: chunk.skipped, path: this.#spill.path }, 'unreadable lines in the records spill file skipped');
        if (chunk.records.length > 0) await this.#commit(chunk.records);
        if (this.#abandoned) return;
        this.#spillOffset = chunk.next;
        continue;
      }
      if (this.#spill.bytes > 0) {
        if (await this.#spill.clear(this.#spillOffset)) {
          this.#spillOffset = 0;
          this.#log.info('records spill file drained');
        }
        continue;
      }
      if (this.#memory.length === 0) return;
      const batch = this.#memory.slice(0, this.#options.batchSize);
      await this.#commit(batch);
      if (this.#abandoned) return;
      this.#memory.splice(0, batch.length);
    }
  }

  /** Moves the oldest records beyond `keep` (the memory bound) to the end of the spill file. */
  async #spillOverflow(keep = this.#options.queueMax): Promise<void> {
    const over = this.#memory.length - keep;
    if (over <= 0) return;
    const oldest = this.#memory.splice(0, over);
    try {
      await this.#spill.append(oldest);
    } catch (error) {
      this.#memory.unshift(...oldest);
      throw error;
    }
    this.#spilled += oldest.length;
    this.emit('spilled', oldest.length);
  }

  async #commit(batch: ChorusRecord[]): Promise<void> {
    try {
      await this.#policy.execute(() => this.#timedWrite(batch));
    } catch (error) {
      if (!isPermanentDbError(error)) throw error;
      // One bad record must not hold up the rest: write one by one, set aside what is refused.
      for (const record of batch) {
        try {
          await this.#policy.execute(() => this.#timedWrite([record]));
        } catch (recordError) {
          if (!isPermanentDbError(recordError)) throw recordError;
          await this.#rejected.append([record]);
          this.#rejectedCount++;
          this.#log.error({ err: recordError, record: record.id, kind: record.kind, path: this.#rejected.path }, 'record refused by the database; kept in the rejected file');
        }
      }
    }
    this.#written += batch.length;
    this.emit('committed', batch.length);
  }
}
