import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A node logger whose lines (parsed) are kept in `lines` instead of written anywhere. */
export function captureLogs(level = 'info', nodeId = 'captured'): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString('utf8').split('\n')) if (text) lines.push(JSON.parse(text) as LogLine);
      done();
    },
  });
  return { log: pino({ level, base: { node: nodeId } }, sink), lines };
}

/** pino's number for `warn`. */
export const WARN = 40;
