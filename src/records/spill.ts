/**
 * The local append-only file records go to while the database cannot take them: one JSON
 * record per line, fsync'd per appended batch. It is read back in order from an offset and
 * truncated only once everything in it has been committed.
 */
import { mkdirSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { chorusRecord, type ChorusRecord } from './types.js';

export interface SpillRead {
  records: ChorusRecord[];
  /** Byte offset to read the next chunk from. */
  next: number;
  /** Lines that were not valid records (a torn last write after a crash), skipped. */
  skipped: number;
}

export class SpillFile {
  #bytes: number;
  /** Appends and truncation take turns, so a truncation never swallows a newer append. */
  #lock: Promise<unknown> = Promise.resolve();

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.#bytes = sizeOf(path);
  }

  /** Bytes in the file (0 when empty or absent). */
  get bytes(): number {
    return this.#bytes;
  }

  append(records: readonly ChorusRecord[]): Promise<void> {
    return this.#exclusive(() => this.#append(records));
  }

  async #append(records: readonly ChorusRecord[]): Promise<void> {
    if (records.length === 0) return;
    const text = records.map((r) => JSON.stringify(r)).join('\n') + '\n';
    const file = await open(this.path, 'a');
    try {
      await file.writeFile(text);
      await file.sync();
    } finally {
      await file.close();
    }
    this.#bytes = sizeOf(this.path);
  }

  /** Up to `max` records from byte `offset` on. Only complete lines are consumed. */
  async read(offset: number, max: number): Promise<SpillRead> {
    const result: SpillRead = { records: [], next: offset, skipped: 0 };
    if (offset >= this.#bytes) return result;
    const file = await open(this.path, 'r');
    try {
      let pending = Buffer.alloc(0);
      let position = offset;
      const chunk = Buffer.alloc(256 * 1024);
      while (result.records.length < max) {
        const { bytesRead } = await file.read(chunk, 0, chunk.length, position);
        if (bytesRead === 0) break;
        position += bytesRead;
        pending = Buffer.concat([pending, chunk.subarray(0, bytesRead)]);
        let newline: number;
        while (result.records.length < max && (newline = pending.indexOf(0x0a)) >= 0) {
          const line = pending.subarray(0, newline).toString('utf8');
          pending = pending.subarray(newline + 1);
          result.next += newline + 1;
          const parsed = parseLine(line);
          if (parsed) result.records.push(parsed);
          else if (line.trim() !== '') result.skipped++;
        }
      }
      // A last line without its newline is a write torn by a crash: nothing after it can follow.
      if (result.records.length < max && pending.length > 0 && position >= this.#bytes) {
        result.skipped++;
        result.next += pending.length;
      }
    } finally {
      await file.close();
    }
    return result;
  }

  /**
   * Empties the file once everything in it was committed: `committedBytes` is how far the
   * caller got; if more was appended meanwhile, nothing is removed (false).
   */
  clear(committedBytes: number): Promise<boolean> {
    return this.#exclusive(async () => {
      if (sizeOf(this.path) !== committedBytes) {
        this.#bytes = sizeOf(this.path);
        return false;
      }
      await this.#truncate();
      return true;
    });
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => undefined);
    return run;
  }

  async #truncate(): Promise<void> {
    const file = await open(this.path, 'a');
    try {
      await file.truncate(0);
      await file.sync();
    } finally {
      await file.close();
    }
    this.#bytes = 0;
  }
}

function parseLine(line: string): ChorusRecord | undefined {
  try {
    const parsed = chorusRecord.safeParse(JSON.parse(line));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
