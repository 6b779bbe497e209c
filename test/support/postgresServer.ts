/**
 * A real PostgreSQL for one test, from Debian's binaries (/usr/lib/postgresql/<version>/bin,
 * the newest found): initdb in a fresh temp dir, `postgres` in the foreground on a free port of
 * 127.0.0.1 with trust auth, so the test owns the process. The data stays across `kill()` and
 * `restart()` (a crash and a recovery, like a real server); `stop()` ends it for good.
 *
 * PostgreSQL refuses to run as root, and these machines run tests as root: then initdb and
 * postgres run as the `postgres` system user (the Debian package creates it) through
 * `setpriv`, which execs in place so signals reach postgres itself.
 *
 * Nothing here is skipped when PostgreSQL is missing: `scripts/setup.sh --test` installs it.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './ports.js';

export interface PostgresServer {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`. */
  url: string;
  port: number;
  /** The postmaster's pid (its backends are its children), for measuring what it costs. */
  readonly pid: number | undefined;
  /** Creates a database and returns its URL (one per test keeps tests apart). */
  createDatabase(name: string): Promise<string>;
  log(): string;
  /** Immediate shutdown (SIGQUIT: no checkpoint, crash recovery on the next start); data kept. */
  kill(): Promise<void>;
  /** Starts postgres again on the same port and data, and waits until it takes connections. */
  restart(): Promise<void>;
  /** Fast shutdown and removal of the temp dir. Idempotent. */
  stop(): Promise<void>;
}

const MISSING = 'PostgreSQL is not installed (no /usr/lib/postgresql/<version>/bin/postgres): run `scripts/setup.sh --test`';
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function findBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'postgres')) && existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) throw new Error(MISSING);
  return join(root, versions[0]!, 'bin');
}

/** As root: run as the `postgres` user; otherwise as ourselves. */
function asDbUser(): { wrap: (binary: string, args: string[]) => [string, string[]]; uid?: number; gid?: number } {
  if (process.getuid?.() !== 0) return { wrap: (binary, args) => [binary, args] };
  let uid: number;
  let gid: number;
  try {
    uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  } catch {
    throw new Error(`running as root and there is no "postgres" user to run PostgreSQL as. ${MISSING}`);
  }
  return {
    uid,
    gid,
    wrap: (binary, args) => ['setpriv', ['--reuid', String(uid), '--regid', String(gid), '--clear-groups', '--', binary, ...args]],
  };
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
  output: () => string;
}

function spawnPostgres(binDir: string, user: ReturnType<typeof asDbUser>, dir: string, port: number): Running {
  const [command, args] = user.wrap(join(binDir, 'postgres'), [
    '-D', join(dir, 'data'),
    '-p', String(port),
    '-k', dir,
    '-c', 'listen_addresses=127.0.0.1',
    '-c', 'fsync=off',
    '-c', 'shared_buffers=16MB',
    '-c', 'max_connections=40',
    '-c', 'logging_collector=off',
  ]);
  const child = spawn(command, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let output = '';
  const collect = (chunk: Buffer): void => {
    output += chunk.toString();
    if (process.env['POSTGRES_LOG']) process.stderr.write(chunk);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<void>((resolve, reject) => {
    child.once('exit', () => {
      live.delete(child);
      resolve();
    });
    child.once('error', (error) => {
      live.delete(child);
      reject(error);
    });
  });
  exited.catch(() => undefined);
  return { child, exited, output: () => output };
}

async function waitReady(running: Running, url: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (running.child.exitCode !== null || running.child.signalCode !== null) {
      throw new Error(`postgres exited (code ${running.child.exitCode}) before it took connections`);
    }
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return;
    } catch {
      await client.end().catch(() => undefined);
      // Not up yet (refused, or "the database system is starting up"): the process' own
      // progress is the wait.
      await Promise.race([running.exited.catch(() => undefined), new Promise((r) => setTimeout(r, 50))]);
    }
  }
  throw new Error(`postgres did not take connections at ${url} within ${ms} ms`);
}

async function terminate(running: Running, signal: NodeJS.Signals): Promise<void> {
  const { child } = running;
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await running.exited.catch(() => undefined);
  clearTimeout(killer);
}

export async function startPostgres(options: { readyMs?: number } = {}): Promise<PostgresServer> {
  const binDir = findBinDir();
  const user = asDbUser();
  const readyMs = options.readyMs ?? 30_000;
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const child of live) child.kill('SIGKILL');
    });
  }
  const dir = mkdtempSync(join(tmpdir(), 'chorus-postgres-'));
  if (user.uid !== undefined) chownSync(dir, user.uid, user.gid!);
  const [initCommand, initArgs] = user.wrap(join(binDir, 'initdb'), ['-D', join(dir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
  try {
    execFileSync(initCommand, initArgs, { cwd: dir, stdio: 'pipe' });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    const e = error as { stderr?: Buffer; message: string };
    throw new Error(`initdb failed: ${e.stderr?.toString() || e.message}`);
  }

  let port = 0;
  let running: Running | undefined;
  // The free port can be taken before postgres binds it: try another.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    running = spawnPostgres(binDir, user, dir, port);
    try {
      await waitReady(running, `postgres://postgres@127.0.0.1:${port}/postgres`, readyMs);
      break;
    } catch (error) {
      await terminate(running, 'SIGKILL');
      if (!/could not bind|Address already in use/i.test(running.output()) || attempt >= 5) {
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`${(error as Error).message}\n--- postgres output ---\n${running.output()}`);
      }
    }
  }

  let current: Running = running;
  let stopped = false;
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    get pid() {
      return current.child.pid;
    },
    log: () => current.output(),
    async createDatabase(name) {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name.replaceAll('"', '')}"`);
      } finally {
        await client.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(name)}`;
    },
    async kill() {
      await terminate(current, 'SIGQUIT');
    },
    async restart() {
      if (stopped) throw new Error('postgres was stopped; start a new one');
      await terminate(current, 'SIGQUIT');
      current = spawnPostgres(binDir, user, dir, port);
      try {
        await waitReady(current, url, readyMs);
      } catch (error) {
        await terminate(current, 'SIGKILL');
        throw new Error(`${(error as Error).message} (restart)\n--- postgres output ---\n${current.output()}`);
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate(current, 'SIGINT');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
