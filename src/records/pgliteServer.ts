/**
 * The embedded records database in a process of its own. PGlite runs PostgreSQL as WebAssembly
 * on the JavaScript thread of whichever process opens it; opened in the node, every records
 * write and its ~150 MB heap shared the event loop that answers signaling and paces media work.
 * Here a child process opens the directory and serves PostgreSQL's wire protocol on a Unix socket
 * (pglite-socket); the node reaches it with the same `pg` client it uses for a real PostgreSQL.
 *
 * The socket lives in a private directory (mode 0700) because pglite-socket asks no password.
 * The child stops with its node (its stdin is a pipe the node never writes to), and the node
 * starts it again, with growing delays, when it exits on its own; meanwhile writes fail and the
 * records writer spills them as it does for an unreachable PostgreSQL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../observability/logger.js';

/** Opening an existing directory takes about a second when idle; a busy machine many times that. */
const READY_TIMEOUT_MS = 120_000;
/** How long a stopping child may take to close the database before it is killed. */
const STOP_TIMEOUT_MS = 10_000;
const RESTART_FIRST_MS = 500;
const RESTART_MAX_MS = 30_000;
/** A child that served this long before it exited is restarted at the first delay again. */
const RESTART_RESET_AFTER_MS = 60_000;
/**
 * V8 compiles PGlite's WebAssembly with its fast baseline compiler first and optimizes only what
 * runs hot, and in a database most of the code a statement walks never counts as hot: measured
 * (`npm run bench:records`), over 3,000 records in batches of 10 the process spent 1.55 ms of CPU
 * per record with the baseline tier and 0.88 ms with every function optimized on first call, and
 * over a fresh start's first 400 records 3.5-5.8 ms against 1.5-2.0 ms. That is the cost a
 * broadcast's first ramp of joins meets. Optimizing on first call adds about 1.2 s to the start
 * (0.9 s of CPU), paid once, while nothing is waiting on records yet.
 */
const RECORDS_V8_FLAGS = ['--no-liftoff'];
/** The file name libpq and `pg` look for in a socket directory for port 5432. */
const SOCKET_NAME = '.s.PGSQL.5432';

// CommonJS, as `node -e` runs it; the packages' CommonJS entries are passed in, resolved from here.
// 'ready' on stdout once it serves; closing the database on stdin's end writes it out whole.
export const SERVER_CHILD_SCRIPT = `
const [pgliteEntry, socketEntry, dir, socketPath, ...settings] = process.argv.slice(1);
// What ps, top and /proc/<pid>/comm show, so the process can be told apart from its node.
process.title = 'chorus-records';
const { PGlite } = require(pgliteEntry);
const { PGLiteSocketServer } = require(socketEntry);
let stopping;
async function main() {
  const db = new PGlite(dir, { startParams: [...PGlite.defaultStartParams, ...settings] });
  await db.waitReady;
  // The node connects once; a second slot lets its reconnect in while a dead socket is detached.
  const server = new PGLiteSocketServer({ db, path: socketPath, maxConnections: 2 });
  const stop = () => (stopping ??= (async () => {
    await server.stop().catch(() => undefined);
    await db.close();
    // The socket's private directory: a node that was killed cannot remove it.
    require('node:fs').rmSync(require('node:path').dirname(socketPath), { recursive: true, force: true });
  })().then(() => process.exit(0), (error) => {
    process.stderr.write(String(error && error.stack || error));
    process.exit(1);
  }));
  process.stdin.on('end', stop).resume();
  process.on('SIGTERM', stop);
  // Ctrl-C at a terminal reaches the whole process group: the node then closes, flushing its
  // records here first, and ends this process itself.
  process.on('SIGINT', () => undefined);
  await server.start();
  process.stdout.write('ready\\n');
}
main().catch((error) => {
  process.stderr.write(String(error && error.stack || error));
  process.exit(1);
});
`;

export interface PgliteServerOptions {
  /** PostgreSQL settings, as `-c name=value` pairs. */
  settings?: string[];
  log?: Logger;
}

/** The last few KB a child wrote to stderr, for the error that says why it stopped. */
function tail(text: string, max = 4096): string {
  return text.length > max ? text.slice(-max) : text;
}

/** How a child ended. Not events.once: that rejects on 'error' (a failed spawn), unhandled here. */
function exitOf(child: ChildProcess): Promise<[number | null, NodeJS.Signals | null]> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve([code, signal])));
}

export class PgliteServer {
  /** The directory holding the socket: `pg`'s `host`. */
  readonly socketDir: string;
  #child: ChildProcess | undefined;
  #closing = false;
  #restartTimer: NodeJS.Timeout | undefined;
  #restartDelay = RESTART_FIRST_MS;
  #restarts = 0;
  readonly #entries: [string, string];

  private constructor(
    readonly dir: string,
    private readonly options: PgliteServerOptions,
  ) {
    this.socketDir = mkdtempSync(join(tmpdir(), 'chorus-records-socket-'));
    const require = createRequire(import.meta.url);
    this.#entries = [require.resolve('@electric-sql/pglite'), require.resolve('@electric-sql/pglite-socket')];
  }

  /** Opens `dir` (already a database) in a child and resolves once it serves. */
  static async start(dir: string, options: PgliteServerOptions = {}): Promise<PgliteServer> {
    const server = new PgliteServer(dir, options);
    try {
      await server.#spawn();
    } catch (error) {
      await server.close();
      throw error;
    }
    return server;
  }

  /** The child's process id while one runs. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Times the child was started again after exiting on its own. */
  get restarts(): number {
    return this.#restarts;
  }

  async #spawn(): Promise<void> {
    const socketPath = join(this.socketDir, SOCKET_NAME);
    // A killed child leaves its socket file, and listening on an existing path fails.
    rmSync(socketPath, { force: true });
    const child = spawn(process.execPath, [...RECORDS_V8_FLAGS, '-e', SERVER_CHILD_SCRIPT, ...this.#entries, this.dir, socketPath, ...(this.options.settings ?? [])], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.#child = child;
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr = tail(stderr + chunk)));
    // The pipe breaking as the child dies must not become an unhandled error in the node.
    child.stdin!.on('error', () => undefined);
    const started = Date.now();
    const exited = exitOf(child);
    let timer: NodeJS.Timeout | undefined;
    const ready = new Promise<void>((resolve, reject) => {
      let stdout = '';
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        stdout = tail(stdout + chunk, 64);
        if (stdout.includes('ready')) resolve();
      });
      child.once('error', reject);
      void exited.then(([code, signal]) => reject(new Error(`the records database process exited (${signal ?? `code ${code}`}) before it served: ${stderr.trim() || 'no output'}`)));
      timer = setTimeout(() => reject(new Error(`the records database process did not serve within ${READY_TIMEOUT_MS / 1000} s`)), READY_TIMEOUT_MS);
    });
    try {
      await ready;
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    } finally {
      clearTimeout(timer);
    }
    void exited.then(([code, signal]) => {
      if (this.#closing || this.#child !== child) return;
      this.#child = undefined;
      if (Date.now() - started >= RESTART_RESET_AFTER_MS) this.#restartDelay = RESTART_FIRST_MS;
      const delayMs = this.#scheduleRestart();
      this.options.log?.error({ code, signal, stderr: stderr.trim() || undefined, restartInMs: delayMs }, 'the records database process exited; records spill to disk until it is back');
    });
  }

  async #restart(): Promise<void> {
    this.#restartTimer = undefined;
    if (this.#closing) return;
    this.#restarts++;
    try {
      await this.#spawn();
      this.options.log?.info({ restarts: this.#restarts }, 'the records database process is back');
    } catch (error) {
      if (this.#closing) return;
      const delayMs = this.#scheduleRestart();
      this.options.log?.error({ err: error, restartInMs: delayMs }, 'the records database process did not start again');
    }
  }

  /** Starts the child again after the current delay, doubling it for next time; answers the delay. */
  #scheduleRestart(): number {
    const delayMs = this.#restartDelay;
    this.#restartDelay = Math.min(delayMs * 2, RESTART_MAX_MS);
    this.#restartTimer = setTimeout(() => void this.#restart(), delayMs);
    return delayMs;
  }

  /** Stops the child, letting it close the database (killed after 10 s), and removes the socket. */
  async close(): Promise<void> {
    this.#closing = true;
    clearTimeout(this.#restartTimer);
    const child = this.#child;
    this.#child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = exitOf(child);
      child.stdin!.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.socketDir, { recursive: true, force: true });
  }
}
