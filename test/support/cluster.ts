/**
 * A real Chorus cluster for one test or benchmark: its own redis-server, K nodes as child
 * processes (`node --import tsx src/main.ts`, so a test can SIGKILL or SIGTERM them like an
 * orchestrator would), and a real nginx in front of them running deploy/nginx.conf itself, with
 * only the upstream servers, the listen address and the log/temp paths substituted.
 *
 * Which node a client landed on is read from the nodes' own JSON log lines ("peer joined" /
 * "peer left" carry the peer id, and every line the node id), so placement through the balancer
 * can be asserted without reaching into the processes.
 *
 * Nothing is left behind: stop() (and the process' exit hook) end nginx, every node and redis;
 * each node's process tree (mediasoup workers, tsx's esbuild) is recorded once it is ready and
 * checked for survivors after every kill and at stop; survivors are SIGKILLed and reported.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import { ApiKeyring } from '../../src/auth/apiKeys.js';
import { TokenService } from '../../src/auth/tokens.js';
import type { ChorusNode } from '../../src/app.js';
import type { Role } from '../../src/protocol/messages.js';
import { allStats, tree } from '../../bench/lib/procstat.js';
import { freePort } from './ports.js';
import { startRedisCluster, type RedisCluster } from './redisCluster.js';
import { startRedis, type RedisServer } from './redisServer.js';

const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const NGINX = '/usr/sbin/nginx';
const NGINX_TEMPLATE = join(repoRoot, 'deploy/nginx.conf');
const ORPHAN_GUARD = pathToFileURL(join(repoRoot, 'bench/lib/orphanGuard.mjs')).href;

export interface ClusterOptions {
  /** Number of Chorus nodes (default 3). */
  nodes?: number;
  /** A Redis Cluster (three masters, no replicas) instead of one redis-server. */
  redisCluster?: boolean;
  /** First RTC port; node i gets [base + i*span, base + (i+1)*span - 1]. Default 10000 (below the ephemeral range, apart from the other tests' 20000-29999). */
  rtcPortBase?: number;
  rtcPortSpan?: number;
  /** CHORUS_DRAIN_DEADLINE_MS of every node (default 5000). */
  drainDeadlineMs?: number;
  /** LOG_LEVEL of the nodes; placement tracking needs `info` or lower (default info). */
  logLevel?: string;
  /** Extra environment for every node. */
  env?: Record<string, string>;
  /** Echo node and nginx output to stderr (also: CLUSTER_LOG=1). */
  echo?: boolean;
  /** How long a node may take to answer /readyz 200 (default 45 s: tsx compiles on start). */
  readyMs?: number;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ClusterNode {
  readonly index: number;
  readonly nodeId: string;
  readonly port: number;
  /** Direct URL of the node, bypassing nginx. */
  readonly url: string;
  readonly rtcPorts: { min: number; max: number };
  /** The current process (a new one after restart()). */
  readonly process: ChildProcess;
  readonly alive: boolean;
  /** Resolves when the current process exits. */
  readonly exited: Promise<ExitStatus>;
  /** Every line the node printed (all its processes, oldest first). */
  output(): string;
  /** Sends `signal`, waits for the exit and for the node's children (workers) to be gone. */
  kill(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ExitStatus>;
  /** Starts the node again (same id, port and RTC ports) and waits for /readyz. */
  restart(): Promise<void>;
  /** GET /readyz: status and body, or undefined when unreachable. */
  readyz(): Promise<{ status: number; body: Record<string, unknown> } | undefined>;
}

export interface Cluster {
  /** nginx, in front of every node: what clients use. */
  readonly url: string;
  readonly nginxPort: number;
  /** The redis-server (undefined with `redisCluster`). */
  readonly redis: RedisServer | undefined;
  /** The Redis Cluster (with `redisCluster`). */
  readonly redisCluster: RedisCluster | undefined;
  readonly nodes: readonly ClusterNode[];
  readonly tokens: TokenService;
  /** `CHORUS_API_KEYS` every node shares. */
  readonly apiKeys: string;
  /** A join token signed with the shared key. */
  mint(room: string, role: Role, identity?: string): Promise<string>;
  /**
   * Just what test/support's nodeClient/joinListener use of a node (url, tokens), pointing at
   * `url` (nginx by default, or one node's direct url).
   */
  entry(url?: string): ChorusNode;
  /** The node a session (peer id) is on, from the nodes' logs; undefined if not (or no longer) known. */
  nodeOf(peerId: string | undefined): ClusterNode | undefined;
  /** Peers currently on each node (by node index), from the logs. */
  peersPerNode(): number[];
  /** Resolves once `predicate` over the logs holds (checked on every new log line), or rejects after `ms`. */
  waitForLog(predicate: (line: LogLine, node: ClusterNode) => boolean, ms: number, what: string): Promise<LogLine>;
  /** nginx's error log so far. */
  nginxErrors(): string;
  /** Pids of node process trees that survived their node (after kills), killed by the harness. */
  readonly orphans: number[];
  stop(): Promise<void>;
}

export interface LogLine {
  msg?: string;
  node?: string;
  peer?: string;
  room?: string;
  level?: number;
  time?: string;
  [key: string]: unknown;
}

const live = new Set<ChildProcess>();
let exitHook = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
}

function alivePid(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Resolves when `check` holds, re-checking every `stepMs`, false after `ms`. */
async function poll(check: () => boolean | Promise<boolean>, ms: number, stepMs = 50): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/**
 * deploy/nginx.conf made runnable here: the upstream's example servers become `servers` (with
 * the same parameters), `listen 80` becomes 127.0.0.1:<port>, and a main context with temp and
 * log paths inside `dir` wraps it (the file itself is meant for nginx's http context).
 */
export function nginxConfig(template: string, servers: string[], port: number, dir: string): string {
  const upstream = /upstream\s+chorus\s*\{([\s\S]*?)\n\}/.exec(template);
  if (!upstream) throw new Error('deploy/nginx.conf: no `upstream chorus { ... }` block');
  const serverLine = /^(\s*)server\s+\S+:\d+([^;]*);\s*$/gm;
  const example = [...upstream[1]!.matchAll(serverLine)];
  if (example.length === 0) throw new Error('deploy/nginx.conf: no server lines in the upstream');
  const [indent, params] = [example[0]![1]!, example[0]![2]!];
  let first = true;
  const body = upstream[1]!.replace(serverLine, () => {
    if (!first) return '';
    first = false;
    return servers.map((s) => `${indent}server ${s}${params};`).join('\n');
  });
  let conf = template.replace(upstream[1]!, body);
  if (!/^\s*listen 80;\s*$/m.test(conf)) throw new Error('deploy/nginx.conf: no `listen 80;` to substitute');
  conf = conf.replace(/^(\s*)listen 80;\s*$/m, `$1listen 127.0.0.1:${port};`).replace(/^\s*listen \[::\]:80;\s*$/m, '');
  return [
    '# Generated by test/support/cluster.ts from deploy/nginx.conf',
    'worker_processes 1;',
    `error_log ${dir}/error.log info;`,
    'events { worker_connections 4096; }',
    'http {',
    `  access_log ${dir}/access.log;`,
    `  client_body_temp_path ${dir}/body;`,
    `  proxy_temp_path ${dir}/proxy;`,
    `  fastcgi_temp_path ${dir}/fastcgi;`,
    `  uwsgi_temp_path ${dir}/uwsgi;`,
    `  scgi_temp_path ${dir}/scgi;`,
    conf,
    '}',
    '',
  ].join('\n');
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const count = options.nodes ?? 3;
  const rtcBase = options.rtcPortBase ?? 10_000;
  const rtcSpan = options.rtcPortSpan ?? 1000;
  const echo = options.echo ?? process.env['CLUSTER_LOG'] === '1';
  const readyMs = options.readyMs ?? 45_000;
  const dir = mkdtempSync(join(tmpdir(), 'chorus-cluster-'));
  const runId = randomBytes(3).toString('hex');
  const secret = `cluster-${randomBytes(24).toString('hex')}`;
  const apiKeys = `cluster:${secret}`;
  const tokens = new TokenService(ApiKeyring.parse(apiKeys), 600, 7 * 24 * 3600);

  const placement = new Map<string, number>();
  const logWaiters = new Set<{ predicate: (line: LogLine, node: ClusterNode) => boolean; resolve(line: LogLine): void }>();
  const orphans: number[] = [];
  const nodes: NodeHandle[] = [];
  let redis: RedisServer | undefined;
  let redisCluster: RedisCluster | undefined;
  let nginx: ChildProcess | undefined;
  let nginxExited: Promise<unknown> = Promise.resolve();
  let stopped = false;

  class NodeHandle implements ClusterNode {
    process!: ChildProcess;
    exited!: Promise<ExitStatus>;
    #output: string[] = [];
    #outputChars = 0;
    /** Every pid seen in this node's process trees, checked for survivors after each exit. */
    readonly #pids = new Set<number>();
    #partial = '';

    constructor(
      readonly index: number,
      readonly nodeId: string,
      readonly port: number,
      readonly rtcPorts: { min: number; max: number },
      private readonly env: NodeJS.ProcessEnv,
    ) {}

    get url(): string {
      return `http://127.0.0.1:${this.port}`;
    }

    get alive(): boolean {
      return this.process !== undefined && this.process.exitCode === null && this.process.signalCode === null;
    }

    output(): string {
      return this.#output.join('');
    }

    #collect(chunk: string, stream: 'out' | 'err'): void {
      this.#output.push(chunk);
      this.#outputChars += chunk.length;
      // Keep memory bounded in long benchmarks: the oldest output goes first.
      while (this.#outputChars > 8_000_000 && this.#output.length > 1) this.#outputChars -= this.#output.shift()!.length;
      if (echo) process.stderr.write(chunk.replace(/^(?=.)/gm, `[${this.nodeId}${stream === 'err' ? '!' : ''}] `));
      if (stream !== 'out') return;
      const text = this.#partial + chunk;
      const lines = text.split('\n');
      this.#partial = lines.pop() ?? '';
      for (const raw of lines) {
        if (!raw.startsWith('{')) continue;
        let line: LogLine;
        try {
          line = JSON.parse(raw) as LogLine;
        } catch {
          continue;
        }
        if (line.msg === 'peer joined' && line.peer) placement.set(line.peer, this.index);
        if (line.msg === 'peer left' && line.peer && placement.get(line.peer) === this.index) placement.delete(line.peer);
        for (const waiter of [...logWaiters]) {
          if (waiter.predicate(line, this)) {
            logWaiters.delete(waiter);
            waiter.resolve(line);
          }
        }
      }
    }

    async start(): Promise<void> {
      const child = spawn(process.execPath, ['--import', 'tsx', '--import', ORPHAN_GUARD, 'src/main.ts'], {
        cwd: repoRoot,
        env: this.env,
        // stdin: the orphan guard's pipe (bench/lib/orphanGuard.mjs); nothing is written to it.
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      track(child);
      this.process = child;
      this.#partial = '';
      this.exited = new Promise<ExitStatus>((resolveExit) => child.once('exit', (code, signal) => resolveExit({ code, signal })));
      child.stdout!.setEncoding('utf8');
      child.stderr!.setEncoding('utf8');
      child.stdout!.on('data', (chunk: string) => this.#collect(chunk, 'out'));
      child.stderr!.on('data', (chunk: string) => this.#collect(chunk, 'err'));
      child.once('exit', () => {
        // Sessions on a dead node are gone, whatever its last log lines said.
        for (const [peer, index] of placement) if (index === this.index) placement.delete(peer);
      });
      const ready = await poll(async () => {
        if (!this.alive) return true;
        return (await this.readyz())?.status === 200;
      }, readyMs, 100);
      if (!this.alive) throw new Error(`node ${this.nodeId} exited while starting (code ${child.exitCode}, signal ${child.signalCode})\n${this.output().slice(-4000)}`);
      if (!ready) throw new Error(`node ${this.nodeId} was not ready within ${readyMs} ms\n${this.output().slice(-4000)}`);
      this.#remember();
    }

    /** Records the node's process tree (node, mediasoup workers, esbuild). */
    #remember(): void {
      if (this.process.pid) for (const s of tree(this.process.pid)) this.#pids.add(s.pid);
    }

    async readyz(): Promise<{ status: number; body: Record<string, unknown> } | undefined> {
      try {
        const res = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2000) });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      } catch {
        return undefined;
      }
    }

    async kill(signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 30_000): Promise<ExitStatus> {
      if (this.alive) {
        this.#remember();
        this.process.kill(signal);
        const status = await Promise.race([this.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), timeoutMs).unref())]);
        if (!status) {
          this.process.kill('SIGKILL');
          await this.exited;
          throw new Error(`node ${this.nodeId} did not exit within ${timeoutMs} ms of ${signal}; killed`);
        }
      }
      await this.#reap();
      return this.exited;
    }

    /** Waits for the node's children to go (workers notice their channel closed), then kills survivors. */
    async #reap(): Promise<void> {
      const pids = [...this.#pids];
      await poll(() => pids.every((pid) => !alivePid(pid)), 5000, 50);
      const stats = allStats();
      for (const pid of pids) {
        if (!alivePid(pid)) continue;
        const s = stats.get(pid);
        // A pid reused by something else is not ours (its parent chain would not be).
        if (s && !/mediasoup|node|esbuild/.test(s.comm)) continue;
        orphans.push(pid);
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      this.#pids.clear();
    }

    async restart(): Promise<void> {
      if (this.alive) throw new Error(`node ${this.nodeId} is still running`);
      await this.start();
    }
  }

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (nginx && nginx.exitCode === null && nginx.signalCode === null) {
      nginx.kill('SIGTERM'); // fast shutdown; the master takes its worker with it
      const done = await Promise.race([nginxExited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000).unref())]);
      if (!done) {
        nginx.kill('SIGKILL');
        await nginxExited;
      }
    }
    // Nodes close their workers themselves on SIGINT (fast close, no drain wait).
    await Promise.all(nodes.map((n) => n.kill('SIGINT', 15_000).catch(() => n.kill('SIGKILL'))));
    await redis?.stop();
    await redisCluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    if (options.redisCluster) redisCluster = await startRedisCluster({ masters: 3, replicas: 0 });
    else redis = await startRedis();
    const redisUrl = redisCluster?.url ?? redis!.url;
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      const nodeId = `n${i + 1}-${runId}`;
      const rtcPorts = { min: rtcBase + i * rtcSpan, max: rtcBase + (i + 1) * rtcSpan - 1 };
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        CHORUS_HOST: '127.0.0.1',
        CHORUS_PORT: String(port),
        CHORUS_NODE_ID: nodeId,
        LOG_LEVEL: options.logLevel ?? 'info',
        MEDIASOUP_WORKERS: '1',
        RTC_LISTEN_IP: '127.0.0.1',
        RTC_ANNOUNCED_ADDRESS: '127.0.0.1',
        RTC_MIN_PORT: String(rtcPorts.min),
        RTC_MAX_PORT: String(rtcPorts.max),
        CHORUS_API_KEYS: apiKeys,
        CHORUS_DEMO: 'false',
        CHORUS_DATA_DIR: join(dir, `data-${i}`),
        // Records (a PGlite per node) are tested on their own; here they would only cost memory.
        CHORUS_RECORDS: 'false',
        CHORUS_WEB_DIR: '/nonexistent',
        REDIS_URL: redisUrl,
        CHORUS_TRUST_PROXY: 'true',
        CHORUS_DRAIN_DEADLINE_MS: String(options.drainDeadlineMs ?? 5000),
        CHORUS_COUNT_INTERVAL_MS: '500',
        // Every client here is 127.0.0.1 and reconnects come in storms: rate limits would
        // measure themselves, not the cluster.
        CHORUS_LIMIT_HTTP_PER_IP_PER_MINUTE: '1000000',
        CHORUS_LIMIT_MESSAGES_PER_CONNECTION_PER_SECOND: '10000',
        CHORUS_LIMIT_MESSAGES_PER_IP_PER_SECOND: '1000000',
        CHORUS_LIMIT_CONNECTIONS_PER_IP: '1000000',
        CHORUS_LIMIT_JOINS_PER_IDENTITY_PER_MINUTE: '10000',
        CHORUS_LIMIT_JOINS_PER_ROOM_PER_SECOND: '10000',
        CHORUS_LIMIT_TOKENS_PER_KEY_PER_MINUTE: '1000000',
        CHORUS_LIMIT_ROOMS_PER_API_KEY: '100000',
        ...options.env,
      };
      delete env['NODE_OPTIONS']; // vitest's worker hooks must not load into the nodes
      nodes.push(new NodeHandle(i, nodeId, port, rtcPorts, env));
    }
    // Start one after another: tsx compiling the server on two busy cores is the slow part,
    // and concurrent starts only make every node late.
    for (const node of nodes) await node.start();

    // nginx, from the production file. A free port can be taken before nginx binds it: retry.
    const template = readFileSync(NGINX_TEMPLATE, 'utf8');
    let nginxPort = 0;
    let nginxLog = '';
    for (let attempt = 1; ; attempt++) {
      nginxPort = await freePort();
      writeFileSync(join(dir, 'nginx.conf'), nginxConfig(template, nodes.map((n) => `127.0.0.1:${n.port}`), nginxPort, dir));
      const child = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', `daemon off; pid ${dir}/nginx.pid;`], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      track(child);
      nginx = child;
      nginxExited = once(child, 'exit').catch(() => undefined);
      nginxLog = '';
      for (const stream of [child.stdout!, child.stderr!]) {
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => {
          nginxLog += chunk;
          if (echo) process.stderr.write(`[nginx] ${chunk}`);
        });
      }
      const up = await poll(async () => {
        if (child.exitCode !== null || child.signalCode !== null) return true;
        try {
          return (await fetch(`http://127.0.0.1:${nginxPort}/nginx-health`, { signal: AbortSignal.timeout(1000) })).ok;
        } catch {
          return false;
        }
      }, 15_000, 50);
      if (up && child.exitCode === null && child.signalCode === null) break;
      child.kill('SIGKILL');
      await nginxExited;
      const errors = nginxLog + readErrorLog(dir);
      if (!/Address already in use/.test(errors) || attempt >= 5) throw new Error(`nginx did not start\n${errors}`);
    }

    const cluster: Cluster = {
      url: `http://127.0.0.1:${nginxPort}`,
      nginxPort,
      redis,
      redisCluster,
      nodes,
      tokens,
      apiKeys,
      orphans,
      mint: (room, role, identity = `${role}-${randomBytes(4).toString('hex')}`) => tokens.mint({ room, identity, role }),
      entry(url = cluster.url) {
        return { url, tokens } as unknown as ChorusNode;
      },
      nodeOf(peerId) {
        const index = peerId === undefined ? undefined : placement.get(peerId);
        return index === undefined ? undefined : nodes[index];
      },
      peersPerNode() {
        const counts = nodes.map(() => 0);
        for (const index of placement.values()) counts[index]!++;
        return counts;
      },
      waitForLog(predicate, ms, what) {
        return new Promise<LogLine>((resolveLine, reject) => {
          const waiter = {
            predicate,
            resolve: (line: LogLine) => {
              clearTimeout(timer);
              resolveLine(line);
            },
          };
          const timer = setTimeout(() => {
            logWaiters.delete(waiter);
            reject(new Error(`timed out after ${ms} ms waiting for a log line: ${what}`));
          }, ms);
          logWaiters.add(waiter);
        });
      },
      nginxErrors: () => nginxLog + readErrorLog(dir),
      stop,
    };
    return cluster;
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}

function readErrorLog(dir: string): string {
  try {
    return readFileSync(join(dir, 'error.log'), 'utf8');
  } catch {
    return '';
  }
}
