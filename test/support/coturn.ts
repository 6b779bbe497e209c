/**
 * A real coturn `turnserver` for one test file: its own temp dir, a free port on 127.0.0.1, the
 * TURN REST shared secret (`use-auth-secret`) Chorus mints credentials with, and a small relay
 * port range of its own so a test can tell a relayed path from a direct one. Plus a wrapper
 * around `turnutils_uclient` to ask coturn for an allocation with a given credential.
 *
 * Nothing here is skipped when coturn is missing: `scripts/setup.sh --test` installs it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface Coturn {
  /** `turn:127.0.0.1:<port>?transport=udp`, ready for TURN_URLS. */
  url: string;
  host: string;
  port: number;
  /** The static-auth-secret, ready for TURN_SECRET. */
  secret: string;
  realm: string;
  /** Ports coturn allocates relayed addresses from (inclusive). */
  relayPorts: { min: number; max: number };
  /** Everything coturn logged so far. */
  log(): string;
  /** Resolves with the first log line matching `pattern` (already logged or still to come). */
  waitForLog(pattern: RegExp, ms?: number): Promise<string>;
  /**
   * Freezes coturn (SIGSTOP): relayed media stops as on a network that drops everything, and
   * its allocations stay; thaw() (SIGCONT) lets it carry on where it was.
   */
  freeze(): void;
  thaw(): void;
  /** Kills coturn and removes its temp dir. */
  stop(): Promise<void>;
}

const MISSING = 'coturn is not installed (no `turnserver` / `turnutils_uclient` on PATH): run `scripts/setup.sh --test`';

/** Absolute path of an executable on PATH (plus the sbin dirs Debian sometimes uses), or throws. */
export function findExecutable(name: string): string {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs.filter(Boolean)) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(`${MISSING} (looked for ${name})`);
}

/** A port free for both TCP and UDP on 127.0.0.1 (coturn listens on both), found by binding port 0. */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    const udp = createSocket('udp4');
    const udpFree = await new Promise<boolean>((resolve) => {
      udp.once('error', () => resolve(false));
      udp.bind(port, '127.0.0.1', () => resolve(true));
    });
    udp.close();
    server.close();
    await once(server, 'close');
    if (udpFree) return port;
  }
  throw new Error('no port free for both TCP and UDP on 127.0.0.1');
}

/** A STUN Binding request (RFC 5389): type 0x0001, length 0, magic cookie, transaction id. */
function bindingRequest(): { packet: Buffer; transactionId: Buffer } {
  const transactionId = randomBytes(12);
  const packet = Buffer.alloc(20);
  packet.writeUInt16BE(0x0001, 0);
  packet.writeUInt16BE(0, 2);
  packet.writeUInt32BE(0x2112a442, 4);
  transactionId.copy(packet, 8);
  return { packet, transactionId };
}

/**
 * Resolves once coturn answers a STUN Binding request on its UDP port: the definite sign it is
 * serving. The request is retransmitted (as STUN itself does over UDP) until the answer, the
 * process exiting, or the deadline.
 */
async function probeStun(host: string, port: number, exited: Promise<unknown>, ms: number): Promise<void> {
  const socket = createSocket('udp4');
  const { packet, transactionId } = bindingRequest();
  let timer: ReturnType<typeof setInterval> | undefined;
  let deadline: ReturnType<typeof setTimeout> | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      socket.on('message', (message) => {
        // Binding success response (0x0101) for our transaction.
        if (message.length >= 20 && message.readUInt16BE(0) === 0x0101 && message.subarray(8, 20).equals(transactionId)) resolve();
      });
      socket.on('error', () => {
        // ICMP port unreachable before coturn binds: keep retransmitting.
      });
      const send = (): void => socket.send(packet, port, host);
      socket.bind(0, '127.0.0.1', send);
      timer = setInterval(send, 100);
      deadline = setTimeout(() => reject(new Error(`coturn did not answer STUN on ${host}:${port} within ${ms} ms`)), ms);
      exited.then((code) => reject(new Error(`turnserver exited (code ${code}) before it was ready`)), reject);
    });
  } finally {
    clearInterval(timer);
    clearTimeout(deadline);
    socket.close();
  }
}

export interface CoturnOptions {
  realm?: string;
  /** How long to wait for coturn to serve. */
  readyMs?: number;
}

export async function startCoturn(options: CoturnOptions = {}): Promise<Coturn> {
  const binary = findExecutable('turnserver');
  findExecutable('turnutils_uclient');
  const dir = mkdtempSync(join(tmpdir(), 'chorus-coturn-'));
  const host = '127.0.0.1';
  const port = await freePort();
  const secret = randomBytes(24).toString('hex');
  const realm = options.realm ?? 'chorus.test';
  // Relay ports above Linux's ephemeral range (32768-60999) and away from the test node's RTC
  // range (20000-29999): a mediasoup tuple whose remote port lands here came through coturn.
  const min = 61000 + randomInt(0, 200) * 20;
  const relayPorts = { min, max: min + 19 };
  const args = [
    '-n', // no config file: /etc/turnserver.conf must not leak into the test
    '--verbose', // logs the listeners and every request with its outcome (401s included)
    `--listening-ip=${host}`,
    `--relay-ip=${host}`,
    `--listening-port=${port}`,
    `--min-port=${relayPorts.min}`,
    `--max-port=${relayPorts.max}`,
    '--use-auth-secret',
    `--static-auth-secret=${secret}`,
    `--realm=${realm}`,
    // The test node's mediasoup listens on 127.0.0.1, so the relay's peer is a loopback
    // address; coturn refuses loopback peers unless told otherwise. Never in production.
    '--allow-loopback-peers',
    '--no-tls',
    '--no-dtls',
    '--no-cli', // the CLI would take port 5766 and clash with any other coturn here
    '--fingerprint',
    '--log-file=stdout',
    '--simple-log',
    `--pidfile=${join(dir, 'turnserver.pid')}`,
    `--userdb=${join(dir, 'turndb.sqlite')}`, // default /var/lib/turn/turndb is shared and may be unwritable
  ];
  const child: ChildProcess = spawn(binary, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const waiters = new Set<() => void>();
  const collect = (chunk: Buffer): void => {
    output += chunk.toString();
    if (process.env['COTURN_LOG']) process.stderr.write(chunk);
    for (const wake of [...waiters]) wake();
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', (error: NodeJS.ErrnoException) => reject(error.code === 'ENOENT' ? new Error(MISSING) : error));
  });
  // Kept from surfacing as unhandled; start-up failures are reported through probeStun.
  exited.catch(() => undefined);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited.catch(() => undefined);
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await probeStun(host, port, exited, options.readyMs ?? 15_000);
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\n--- turnserver output ---\n${output}`);
  }

  return {
    url: `turn:${host}:${port}?transport=udp`,
    host,
    port,
    secret,
    realm,
    relayPorts,
    log: () => output,
    waitForLog(pattern, ms = 10_000) {
      return new Promise<string>((resolve, reject) => {
        const check = (): void => {
          const line = output.split('\n').find((l) => pattern.test(l));
          if (line === undefined) return;
          cleanupWait();
          resolve(line);
        };
        const timer = setTimeout(() => {
          cleanupWait();
          reject(new Error(`timed out after ${ms} ms waiting for coturn to log ${pattern}`));
        }, ms);
        const cleanupWait = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    freeze: () => void child.kill('SIGSTOP'),
    thaw: () => void child.kill('SIGCONT'),
    stop: async () => {
      // A frozen coturn would not see SIGTERM until thawed.
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGCONT');
      await stop();
    },
  };
}

export interface UclientResult {
  /** Exit status (null when killed by the timeout). */
  code: number | null;
  output: string;
  /** Messages that made the round trip through the relays. */
  received: number;
}

/**
 * Asks coturn for relayed allocations with this credential and sends a few messages between
 * two of them (`-y`: client-to-client, so no external peer is needed). turnutils_uclient exits
 * 0 after relaying; on a refused credential it prints "Cannot complete Allocation" and exits
 * non-zero.
 */
export async function uclient(turn: Coturn, username: string, password: string, ms = 30_000): Promise<UclientResult> {
  const binary = findExecutable('turnutils_uclient');
  const child = spawn(binary, ['-y', '-c', '-n', '3', '-p', String(turn.port), '-u', username, '-w', password, turn.host], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  const totals = [...output.matchAll(/tot_recv_msgs=(\d+)/g)].map((m) => Number(m[1]));
  return { code, output, received: totals.length ? Math.max(...totals) : 0 };
}
