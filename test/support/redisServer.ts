/**
 * A real `redis-server` for one test: a free port on 127.0.0.1, a fresh temp dir, no persistence
 * (`--save ''`, no AOF), in the foreground so the test owns the process. `kill()` and `restart()`
 * (same port, empty data, like a Redis without persistence coming back) are for chaos tests.
 *
 * Nothing here is skipped when redis-server is missing: `scripts/setup.sh --test` installs it.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort } from './ports.js';

export interface RedisServer {
  /** `redis://127.0.0.1:<port>` (`rediss://` with `tls`), ready for REDIS_URL. */
  url: string;
  port: number;
  /** With `tls`: the PEM file of the self-signed certificate the server presents (REDIS_TLS_CA). */
  caPath?: string;
  /** Everything the current process logged so far. */
  log(): string;
  /** SIGTERM, waits for the exit, removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL (a crash), and waits for the exit. The temp dir stays for `restart()`. */
  kill(): Promise<void>;
  /** Starts redis-server again on the same port (empty: no persistence) and waits for PING. */
  restart(): Promise<void>;
}

const MISSING = 'redis-server is not installed (no `redis-server` on PATH): run `scripts/setup.sh --test`';

/** Every server started in this process, killed if the test process exits without stopping it. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function findRedisServer(): string {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin'];
  for (const dir of dirs.filter(Boolean)) {
    const candidate = join(dir, 'redis-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(MISSING);
}

/** One PING over a raw socket (TLS trusting `ca` when given): true on `+PONG`, false on any error or within `ms`. */
function ping(port: number, ms: number, ca?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = ca ? tlsConnect({ port, host: '127.0.0.1', ca }) : connect(port, '127.0.0.1');
    let reply = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), ms);
    socket.on(ca ? 'secureConnect' : 'connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.on('error', () => done(false));
  });
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
  output: () => string;
}

function spawnRedis(binary: string, port: number, dir: string, extra: RedisOptions, tls: TlsFiles | undefined): Running {
  const args = [
    // A config file, when given, must come first (Sentinel rewrites it, so it lives in `dir`).
    ...(extra.config !== undefined ? [join(dir, 'redis.conf')] : []),
    // TLS only: the plain port is closed, so nothing can reach this server without TLS.
    ...(tls
      ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.certFile, '--tls-key-file', tls.keyFile, '--tls-ca-cert-file', tls.certFile, '--tls-auth-clients', 'no']
      : ['--port', String(port)]),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    '--appendonly', 'no',
    '--daemonize', 'no',
    '--logfile', '', // stdout
    ...(extra.args ?? []),
  ];
  if (extra.config !== undefined && !existsSync(join(dir, 'redis.conf'))) writeFileSync(join(dir, 'redis.conf'), extra.config);
  const child = spawn(binary, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let output = '';
  const collect = (chunk: Buffer): void => {
    output += chunk.toString();
    if (process.env['REDIS_LOG']) process.stderr.write(chunk);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<void>((resolve, reject) => {
    child.once('exit', () => {
      live.delete(child);
      resolve();
    });
    child.once('error', (error: NodeJS.ErrnoException) => {
      live.delete(child);
      reject(error.code === 'ENOENT' ? new Error(MISSING) : error);
    });
  });
  exited.catch(() => undefined);
  return { child, exited, output: () => output };
}

/** Resolves once the server answers PING; rejects if it exits first or after `ms`. */
async function waitReady(running: Running, port: number, ms: number, ca?: string): Promise<void> {
  const deadline = Date.now() + ms;
  let exited = false;
  running.exited.then(
    () => (exited = true),
    () => (exited = true),
  );
  while (Date.now() < deadline) {
    if (exited || running.child.exitCode !== null) {
      await running.exited; // rethrows ENOENT as the MISSING message
      throw new Error(`redis-server exited (code ${running.child.exitCode}) before it answered PING`);
    }
    if (await ping(port, 500, ca)) return;
    // Not listening yet: the next connect attempt is the wait (refused connects return at once,
    // so pace them on the process' own progress instead of spinning).
    await Promise.race([running.exited.catch(() => undefined), new Promise((r) => setTimeout(r, 20))]);
  }
  throw new Error(`redis-server did not answer PING on 127.0.0.1:${port} within ${ms} ms`);
}

async function terminate(running: Running, signal: NodeJS.Signals): Promise<void> {
  const { child } = running;
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  const killer = signal === 'SIGKILL' ? undefined : setTimeout(() => child.kill('SIGKILL'), 5000);
  await running.exited.catch(() => undefined);
  clearTimeout(killer);
}

export interface RedisOptions {
  readyMs?: number;
  /** More command-line arguments (`--replicaof host port`, `--sentinel`). */
  args?: string[];
  /** A config file's text (Sentinel needs one it can rewrite). */
  config?: string;
  /**
   * Serve TLS only: `true` with a self-signed certificate for 127.0.0.1 made by openssl here, or
   * with the given one (servers that must trust each other, as a TLS Redis Cluster's nodes do).
   */
  tls?: boolean | TlsFiles;
}

/** A certificate and its key (PEM files); the certificate doubles as the CA that trusts it. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

/** A self-signed certificate for 127.0.0.1, made by openssl in `dir`. */
export function makeTlsFiles(dir: string): TlsFiles {
  const files = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') };
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', files.keyFile, '-out', files.certFile, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return files;
}

export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const binary = findRedisServer();
  const readyMs = options.readyMs ?? 15_000;
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const child of live) child.kill('SIGKILL');
    });
  }
  const dir = mkdtempSync(join(tmpdir(), 'chorus-redis-'));
  const tls = options.tls === true ? makeTlsFiles(dir) : options.tls || undefined;
  const ca = tls && readFileSync(tls.certFile, 'utf8');
  let port = 0;
  let running: Running | undefined;
  // The port found free can be taken by someone else before redis binds it: try another.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    running = spawnRedis(binary, port, dir, options, tls);
    try {
      await waitReady(running, port, readyMs, ca);
      break;
    } catch (error) {
      await terminate(running, 'SIGKILL');
      const bindFailed = /Address already in use|Could not create server TCP/i.test(running.output());
      if (!bindFailed || attempt >= 5) {
        rmSync(dir, { recursive: true, force: true });
        throw new Error(`${(error as Error).message}\n--- redis-server output ---\n${running.output()}`);
      }
    }
  }

  let current: Running = running;
  let stopped = false;
  return {
    url: `${options.tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    port,
    ...(tls ? { caPath: tls.certFile } : {}),
    log: () => current.output(),
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate(current, 'SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
    async kill() {
      await terminate(current, 'SIGKILL');
    },
    async restart() {
      if (stopped) throw new Error('redis-server was stopped; start a new one');
      await terminate(current, 'SIGKILL');
      current = spawnRedis(binary, port, dir, options, tls);
      try {
        await waitReady(current, port, readyMs, ca);
      } catch (error) {
        await terminate(current, 'SIGKILL');
        throw new Error(`${(error as Error).message} (restart on the same port)\n--- redis-server output ---\n${current.output()}`);
      }
    },
  };
}
