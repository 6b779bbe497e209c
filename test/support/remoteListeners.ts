/**
 * Audio listeners run in a network namespace (test/support/listenersProcess.ts inside it), read
 * from here: the link they listen over is the namespace's, which a test or bench can make lossy
 * or narrow while they listen.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { AudioCounters, ListenersProcessConfig } from './audioCounters.js';
import type { Netns } from './netns.js';
import { stopChild } from './stopChild.js';

export interface RemoteListeners {
  /** Every listener's counters now, in the order of their tokens. */
  sample(): Promise<AudioCounters[]>;
  /** Closes them (their clients leave the room) and waits for the process to end. */
  close(): Promise<void>;
}

const script = fileURLToPath(new URL('./listenersProcess.ts', import.meta.url));

export async function startRemoteListeners(netns: Netns, config: ListenersProcessConfig): Promise<RemoteListeners> {
  const proc: ChildProcess = netns.spawn(process.execPath, ['--import', 'tsx', script, JSON.stringify(config)]);
  proc.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  const lines: string[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const input = createInterface({ input: proc.stdout! });
  input.on('line', (line) => {
    lines.push(line);
    wake?.();
  });
  input.on('close', () => {
    ended = true;
    wake?.();
  });
  const next = async (what: string, timeoutMs: number): Promise<Record<string, unknown>> => {
    const deadline = Date.now() + timeoutMs;
    while (lines.length === 0) {
      if (ended) throw new Error(`the listeners' process ended before its ${what}`);
      if (Date.now() > deadline) throw new Error(`no ${what} from the listeners' process within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 200);
      });
    }
    return JSON.parse(lines.shift()!) as Record<string, unknown>;
  };
  const close = (): Promise<void> => stopChild(proc, () => proc.stdin?.end());
  try {
    await next('ready line', 60_000);
  } catch (error) {
    await close();
    throw error;
  }
  return {
    async sample() {
      proc.stdin!.write('sample\n');
      return (await next('sample', 10_000))['listeners'] as AudioCounters[];
    },
    close,
  };
}
