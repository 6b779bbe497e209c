/**
 * One ffmpeg child process fed RTP on loopback (the HLS fallback's runs, class recordings): how it
 * ended, its last stderr lines for the log, and stopping it the way that lets it finish its files
 * (SIGINT: it closes the open segment and ends the playlist), killed if it does not in time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import type { Logger } from '../observability/logger.js';

export interface FfmpegExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** `n` UDP ports free on loopback right now (bound together, then released for ffmpeg). */
export async function freeUdpPorts(n: number): Promise<number[]> {
  const sockets = Array.from({ length: n }, () => createSocket('udp4'));
  try {
    await Promise.all(sockets.map(async (socket) => {
      socket.bind(0, '127.0.0.1');
      await once(socket, 'listening');
    }));
    return sockets.map((s) => s.address().port);
  } finally {
    for (const socket of sockets) socket.close();
  }
}

export class FfmpegProcess {
  #exit: FfmpegExit | undefined;
  readonly #exited: Promise<void>;
  readonly #stderr: string[] = [];
  readonly #child: ChildProcess;

  /** Starts `ffmpeg args` in `cwd` (where it reads and writes); `log` gets its stderr at debug. */
  constructor(ffmpeg: string, args: string[], cwd: string, log: Logger) {
    const child = spawn(ffmpeg, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        resolve();
      });
      child.once('error', (error) => {
        log.error({ err: error, ffmpeg }, 'ffmpeg could not be started');
        this.#exit ??= { code: -1, signal: null };
        resolve();
      });
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) {
        if (!line.trim()) continue;
        this.#stderr.push(line.trim());
        if (this.#stderr.length > 20) this.#stderr.shift();
        log.debug({ ffmpeg: line.trim() }, 'ffmpeg');
      }
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Resolves when ffmpeg has ended, however. */
  get exited(): Promise<void> {
    return this.#exited;
  }

  /** How ffmpeg ended, once it has. */
  get exit(): FfmpegExit | undefined {
    return this.#exit;
  }

  /** ffmpeg's last stderr lines, for the log when a run fails. */
  get stderrTail(): string[] {
    return [...this.#stderr];
  }

  /** Asks ffmpeg to finish (SIGINT); kills it if it has not within `graceMs`. */
  async stop(graceMs: number): Promise<void> {
    if (this.#exit) return;
    this.#child.kill('SIGINT');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }

  async kill(): Promise<void> {
    if (this.#exit) return;
    this.#child.kill('SIGKILL');
    await this.#exited;
  }
}
