/**
 * A Chorus node as a separate process for a benchmark: what `npm start` runs (`node
 * dist/server/main.js`, compiled first if stale), with the orphan guard preloaded, loopback RTC,
 * and per-IP abuse limits lifted (every client here is 127.0.0.1). Its data directory (embedded
 * records database, HLS) is its own, fresh: runs do not share a database with each other or with
 * a developer's server, and each starts from the same state. stop() leaves no mediasoup worker
 * behind and removes that directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../test/support/ports.js';
import { allStats, tree } from './procstat.js';
import { builtServerArgs } from './serverBuild.js';

const libDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(libDir, '../..');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface BenchNode {
  url: string;
  proc: ChildProcess;
  /** Every pid seen in the node's tree so far (node + mediasoup workers). */
  readonly pids: Set<number>;
  /** Samples the tree now, so workers born since are known to stop(). */
  rememberTree(): void;
  /** SIGTERM, then SIGKILL; then kills any worker left. Returns how many had to be killed. */
  stop(): Promise<number>;
}

export async function startBenchNode(env: Record<string, string>, log: (line: string) => void): Promise<BenchNode> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'chorus-bench-data-'));
  // BENCH_NODE_ARGS: extra flags for the node process only (`--cpu-prof --cpu-prof-dir=DIR` to
  // profile it; node refuses --cpu-prof in NODE_OPTIONS, which would reach every process anyway).
  const extraArgs = (process.env['BENCH_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
  const proc = spawn(process.execPath, [...extraArgs, ...builtServerArgs(log)], {
    cwd: repoRoot,
    env: {
      ...process.env,
      CHORUS_HOST: '127.0.0.1',
      CHORUS_PORT: String(port),
      LOG_LEVEL: 'warn',
      RTC_LISTEN_IP: '127.0.0.1',
      RTC_ANNOUNCED_ADDRESS: '127.0.0.1',
      CHORUS_LIMIT_CONNECTIONS_PER_IP: '1000000',
      CHORUS_LIMIT_MESSAGES_PER_IP_PER_SECOND: '1000000',
      CHORUS_LIMIT_HTTP_PER_IP_PER_MINUTE: '1000000',
      CHORUS_DATA_DIR: dataDir,
      ...env,
    },
    // stdin: the orphan guard's pipe (bench/lib/orphanGuard.mjs); nothing is written to it.
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  for (const stream of [proc.stdout, proc.stderr]) {
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) if (line.trim()) process.stderr.write(`[node] ${line}\n`);
    });
  }
  const pids = new Set<number>();
  const rememberTree = (): void => {
    if (proc.pid) for (const s of tree(proc.pid)) pids.add(s.pid);
  };
  const running = (): boolean => proc.exitCode === null && proc.signalCode === null;
  const stop = async (): Promise<number> => {
    if (running()) {
      rememberTree();
      log('stopping the node (SIGTERM)');
      proc.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
      if (running()) {
        log('node did not stop in 10 s: SIGKILL');
        proc.kill('SIGKILL');
        await Promise.race([exited, sleep(2000)]);
      }
    }
    // Workers leave when their node's channel closes; give them a moment, then kill any left.
    let alive = allStats();
    for (let waited = 0; waited < 5000 && [...pids].some((pid) => alive.has(pid)); waited += 100) {
      await sleep(100);
      alive = allStats();
    }
    const left = [...pids].filter((pid) => alive.has(pid));
    for (const pid of left) {
      log(`killing leftover ${alive.get(pid)?.comm} ${pid}`);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    log(left.length === 0 ? 'clean shutdown: node and its workers are gone' : `had to kill ${left.length} leftover process(es)`);
    rmSync(dataDir, { recursive: true, force: true });
    return left.length;
  };

  // A node listening elsewhere (the host end of a veth pair, for clients in a namespace) is reached there.
  const url = `http://${env['CHORUS_HOST'] ?? '127.0.0.1'}:${port}`;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (!running()) throw new Error(`the node exited during start (code ${proc.exitCode})`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) {
        rememberTree();
        return { url, proc, pids, rememberTree, stop };
      }
    } catch {
      /* not listening yet */
    }
    await sleep(200);
  }
  await stop();
  throw new Error('the node was not ready within 30 s');
}
