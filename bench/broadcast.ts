/**
 * Broadcast capacity benchmark: one speaker, N receive-only listeners (real SDK clients on Node
 * WebRTC, or with --peer werift light signaling clients that count RTP without decoding), against
 * a Chorus node running in its own process so its CPU is measured apart from the load generator's.
 *
 *   npm run bench:broadcast -- --listeners N [--procs K] [--duration S] [--out DIR]
 *       [--workers W] [--stagger MS] [--join-timeout MS] [--threshold RMS] [--settle S]
 *       [--keep-sinks] [--max-consumers-per-worker C] [--broadcaster-nice NICE] [--peer wrtc|werift]
 *       [--signaling short|classic] [--werift-stock] [--source tone|speech] [--frame-ms MS]
 *       [--records embedded|postgres]
 *
 * Prints one JSON line to stdout (progress goes to stderr), appends the run to
 * <out>/results.jsonl and rewrites <out>/broadcast.html from every run there.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, setPriority } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { peerImpls, type BroadcasterProcConfig, type ChildToParent, type ListenerProcConfig, type ListenerResult, type JoinPhase, type ParentToChild, type PeerImpl, signalingPaths, type SignalingPath } from './lib/messages.js';
import { renderHtml, type RunRecord } from './lib/report.js';
import { startBenchNode, type BenchNode } from './lib/benchNode.js';
import { startPostgres, type PostgresServer } from '../test/support/postgresServer.js';
import { gitCommit } from './lib/gitCommit.js';
import { loadConfig } from '../src/config/config.js';
import { readRuns } from './lib/runLog.js';
import { fetchGcPauses, fetchRequestTimes, gcPausesBetween } from './lib/serverTimes.js';
import { TreeSampler, busiestThreads, contextSwitches, machineUsagePct, nodeThreadShares, round, threadTicks, usage, workerPids } from './lib/procstat.js';

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(benchDir, '..');

const { values: args } = parseArgs({
  options: {
    listeners: { type: 'string' },
    procs: { type: 'string' },
    duration: { type: 'string', default: '20' },
    out: { type: 'string', default: 'bench/results' },
    workers: { type: 'string', default: '2' },
    stagger: { type: 'string', default: '20' },
    'join-timeout': { type: 'string', default: '30000' },
    threshold: { type: 'string', default: '0.05' },
    settle: { type: 'string', default: '3' },
    'keep-sinks': { type: 'boolean', default: false },
    'max-consumers-per-worker': { type: 'string' },
    'broadcaster-nice': { type: 'string', default: '-5' },
    peer: { type: 'string', default: 'wrtc' },
    signaling: { type: 'string', default: 'short' },
    'werift-stock': { type: 'boolean', default: false },
    source: { type: 'string', default: 'tone' },
    'frame-ms': { type: 'string' },
    records: { type: 'string', default: 'embedded' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

const usageText = 'usage: npm run bench:broadcast -- --listeners N [--procs K] [--duration S] [--out DIR] [--workers W] [--stagger MS] [--join-timeout MS] [--threshold RMS] [--settle S] [--keep-sinks] [--max-consumers-per-worker C] [--broadcaster-nice NICE] [--peer wrtc|werift] [--signaling short|classic] [--werift-stock] [--source tone|speech] [--frame-ms 10|20|40|60] [--records embedded|postgres]';
if (args.help || !args.listeners) {
  process.stderr.write(`${usageText}\n`);
  process.exit(args.help ? 0 : 2);
}

function frameMsSetting(value: string | undefined): number {
  try {
    return loadConfig(value === undefined ? {} : { CHORUS_BROADCAST_FRAME_MS: value }).media.broadcastFrameMs;
  } catch {
    process.stderr.write(`--frame-ms must be 10, 20, 40 or 60\n${usageText}\n`);
    process.exit(2);
  }
}

function int(name: string, value: string | undefined, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`--${name} must be an integer >= ${min}\n${usageText}\n`);
    process.exit(2);
  }
  return n;
}

const N = int('listeners', args.listeners, 1);
const K = Math.min(N, args.procs ? int('procs', args.procs, 1) : Math.max(1, Math.ceil(N / 100)));
const durationS = int('duration', args.duration, 1);
const workers = int('workers', args.workers, 1);
const staggerMs = int('stagger', args.stagger, 0);
const joinTimeoutMs = int('join-timeout', args['join-timeout'], 1000);
const settleS = int('settle', args.settle, 0);
const rmsThreshold = Number(args.threshold);
const broadcasterNice = Number(args['broadcaster-nice']);
const peer = args.peer as PeerImpl;
if (!peerImpls.includes(peer)) {
  process.stderr.write(`--peer must be one of ${peerImpls.join(', ')}\n${usageText}\n`);
  process.exit(2);
}
const signaling = args.signaling as SignalingPath;
if (!signalingPaths.includes(signaling)) {
  process.stderr.write(`--signaling must be one of ${signalingPaths.join(', ')}\n${usageText}\n`);
  process.exit(2);
}
// What the node asks the broadcaster for (CHORUS_BROADCAST_FRAME_MS): the flag, else the
// environment the bench runs in, else the node's default, read through its own settings.
const frameMs = frameMsSetting(args['frame-ms'] ?? process.env['CHORUS_BROADCAST_FRAME_MS']);
const source = args.source as 'tone' | 'speech';
if (source !== 'tone' && source !== 'speech') {
  process.stderr.write(`--source must be tone or speech\n${usageText}\n`);
  process.exit(2);
}
if (source === 'speech' && peer !== 'werift') {
  process.stderr.write(`--source speech needs --peer werift (the SDK listeners count as joined when they hear the tone)\n${usageText}\n`);
  process.exit(2);
}
if (signaling === 'classic' && peer !== 'werift') {
  process.stderr.write(`--signaling classic needs --peer werift (the SDK always takes the short path)\n${usageText}\n`);
  process.exit(2);
}
// Where the node keeps its records: its embedded PGlite (the default a laptop gets), or a
// PostgreSQL of its own (DATABASE_URL, what production is told to use), measured apart.
const records = args.records as 'embedded' | 'postgres';
if (records !== 'embedded' && records !== 'postgres') {
  process.stderr.write(`--records must be embedded or postgres\n${usageText}\n`);
  process.exit(2);
}
const weriftStock = args['werift-stock'];
const outDir = resolve(process.cwd(), args.out);
const argv = process.argv.slice(2).join(' ');
const command = process.env['npm_lifecycle_event'] === 'bench:broadcast' ? `npm run bench:broadcast -- ${argv}` : `tsx bench/broadcast.ts ${argv}`;

const secret = `chorus-bench-${randomBytes(24).toString('hex')}`;
const roomId = `bench-${randomBytes(4).toString('hex')}`;

const log = (message: string): void => {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** A forked load-generator child: messages queued by type, failure if it dies unexpectedly. */
class Child {
  readonly #queues = new Map<string, ChildToParent[]>();
  readonly #waiters = new Map<string, (m: ChildToParent) => void>();
  exitCode: number | null | undefined;
  readonly exited: Promise<void>;
  #expectExit = false;
  #onDeath: ((error: Error) => void) | undefined;

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    onMessage: (m: ChildToParent) => void = () => undefined,
  ) {
    proc.on('message', (m: ChildToParent) => {
      if (m.type === 'log') return log(`${name}: ${m.message}`);
      if (m.type === 'progress') return onMessage(m);
      const waiter = this.#waiters.get(m.type);
      if (waiter) {
        this.#waiters.delete(m.type);
        waiter(m);
      } else {
        const q = this.#queues.get(m.type) ?? [];
        q.push(m);
        this.#queues.set(m.type, q);
      }
    });
    this.exited = new Promise((resolveExit) =>
      proc.once('exit', (code, signal) => {
        this.exitCode = code;
        if (!this.#expectExit) this.#onDeath?.(new Error(`${name} exited unexpectedly (code ${code}, signal ${signal})`));
        resolveExit();
      }),
    );
  }

  get pid(): number {
    return this.proc.pid!;
  }

  send(message: ParentToChild): void {
    if (this.proc.connected) this.proc.send(message);
  }

  next<T extends ChildToParent['type']>(type: T, timeoutMs: number): Promise<Extract<ChildToParent, { type: T }>> {
    const queued = this.#queues.get(type)?.shift();
    if (queued) return Promise.resolve(queued as Extract<ChildToParent, { type: T }>);
    if (this.exitCode !== undefined) return Promise.reject(new Error(`${this.name} has exited`));
    return new Promise((resolveMessage, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(type);
        reject(new Error(`${this.name}: no '${type}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#onDeath = (error) => {
        clearTimeout(timer);
        reject(error);
      };
      this.#waiters.set(type, (m) => {
        clearTimeout(timer);
        this.#onDeath = undefined;
        resolveMessage(m as Extract<ChildToParent, { type: T }>);
      });
    });
  }

  /** Asks the child to close politely, then kills it if it has not gone in time. */
  async stop(graceMs: number): Promise<void> {
    this.#expectExit = true;
    if (this.exitCode !== undefined) return;
    this.send({ type: 'close' });
    await Promise.race([this.exited, sleep(graceMs)]);
    if (this.exitCode === undefined) {
      this.proc.kill('SIGKILL');
      await Promise.race([this.exited, sleep(2000)]);
    }
  }
}

/**
 * Renices every thread of a process (Linux nice is per thread; later threads inherit from the
 * thread that creates them). Best effort: needs root to raise priority.
 */
function renice(pid: number, nice: number): boolean {
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) setPriority(Number(tid), nice);
    return true;
  } catch {
    return false;
  }
}

function forkTs(script: string, config: unknown): ChildProcess {
  return fork(join(benchDir, script), [JSON.stringify(config)], {
    cwd: repoRoot,
    execArgv: ['--import', 'tsx'],
    // Children never write to our stdout: it carries the one JSON line.
    stdio: ['ignore', 2, 2, 'ipc'],
  });
}

// ---- everything we start, so it can all be stopped, even on failure --------------------------

let server: BenchNode | undefined;
let database: PostgresServer | undefined;
let broadcaster: Child | undefined;
const listenerProcs: Child[] = [];
let sampleTimer: ReturnType<typeof setInterval> | undefined;
let cleaning: Promise<void> | undefined;

async function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    clearInterval(sampleTimer);
    await Promise.all([...listenerProcs, ...(broadcaster ? [broadcaster] : [])].map((c) => c.stop(8000)));
    await server?.stop();
    await database?.stop();
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---- the run -----------------------------------------------------------------------------------

async function startServer(): Promise<string> {
  const env: Record<string, string> = { CHORUS_TOKEN_SECRET: secret, MEDIASOUP_WORKERS: String(workers) };
  if (args['max-consumers-per-worker']) env['CHORUS_MAX_CONSUMERS_PER_WORKER'] = args['max-consumers-per-worker'];
  env['CHORUS_BROADCAST_FRAME_MS'] = String(frameMs);
  if (records === 'postgres') {
    database = await startPostgres();
    env['DATABASE_URL'] = await database.createDatabase('chorus_bench');
    log(`records in PostgreSQL (pid ${database.pid}, ${database.url})`);
  }
  server = await startBenchNode(env, log);
  return server.url;
}

async function run(): Promise<void> {
  const cores = cpus().length;
  log(`N=${N} ${peer} listeners over ${K} process(es), ${workers} mediasoup worker(s), stagger ${staggerMs} ms, steady state ${durationS} s`);

  const url = await startServer();
  log(`node ready at ${url} (pid ${server!.proc.pid}, ${server!.pids.size - 1} worker(s))`);

  const sampler = new TreeSampler(() => {
    const roots = new Map<string, number>();
    if (server?.proc.pid) roots.set('server', server.proc.pid);
    if (database?.pid) roots.set('database', database.pid);
    if (broadcaster) roots.set('broadcaster', broadcaster.pid);
    listenerProcs.forEach((c, i) => roots.set(`listeners-${i}`, c.pid));
    return roots;
  });

  const bcConfig: BroadcasterProcConfig = { url, roomId, secret, frequency: 440, source };
  broadcaster = new Child('broadcaster', forkTs('broadcaster.ts', bcConfig));
  await broadcaster.next('publishing', 30_000);
  // The speaker stands for a separate machine: keep our own listeners from starving it.
  const reniced = broadcasterNice !== 0 && renice(broadcaster.pid, broadcasterNice);
  log(`broadcaster publishing in room ${roomId}${reniced ? ` (nice ${broadcasterNice})` : ''}`);
  await sleep(1000);

  let joined = 0;
  let failed = 0;
  const firstErrors: string[] = [];
  const onProgress = (m: ChildToParent): void => {
    if (m.type !== 'progress') return;
    if (m.ok) joined++;
    else {
      failed++;
      if (firstErrors.length < 5 && m.error) firstErrors.push(`#${m.index}: ${m.error}`);
    }
  };
  for (let k = 0; k < K; k++) {
    const indices = Array.from({ length: N }, (_, i) => i).filter((i) => i % K === k);
    const config: ListenerProcConfig = { proc: k, url, roomId, secret, indices, staggerMs, rmsThreshold, joinTimeoutMs, keepSinks: args['keep-sinks'], peer, signaling, weriftStock };
    listenerProcs.push(new Child(`listeners-${k}`, forkTs('listeners.ts', config), onProgress));
  }
  await Promise.all(listenerProcs.map((c) => c.next('ready', 60_000)));
  sampleTimer = setInterval(() => sampler.sample(), 1000);
  sampler.sample();

  const rampStart = performance.now();
  const startAt = Date.now() + 200;
  for (const c of listenerProcs) c.send({ type: 'start', startAt });
  log(`ramping up: ${N} listeners over ~${((N * staggerMs) / 1000).toFixed(1)} s`);
  const progress = setInterval(() => log(`joined ${joined}/${N}${failed ? `, failed ${failed}` : ''}`), 2000);
  try {
    await Promise.all(listenerProcs.map((c) => c.next('ramped', N * staggerMs + joinTimeoutMs + 60_000)));
  } finally {
    clearInterval(progress);
  }
  sampler.sample();
  const rampEnd = performance.now();
  const serverRequestMs = await fetchRequestTimes(url);
  log(`ramp done in ${((rampEnd - rampStart) / 1000).toFixed(1)} s: ${joined} joined, ${failed} failed`);
  for (const e of firstErrors) log(`  failure ${e}`);

  if (settleS > 0) await sleep(settleS * 1000);
  listenerProcs.forEach((c) => c.send({ type: 'baseline' }));
  broadcaster.send({ type: 'baseline' });
  await Promise.all(listenerProcs.map((c) => c.next('baselined', 30_000)));
  const sentBefore = await broadcaster.next('sent', 30_000);
  const gcBefore = await fetchGcPauses(url);
  sampler.sample();
  const windowStart = performance.now();
  const parentCpuBefore = process.cpuUsage();
  const nodePid = server?.proc.pid;
  const threadPids = (): number[] => [...listenerProcs.map((c) => c.pid), ...(nodePid ? [nodePid] : [])];
  const threadsBefore = new Map(threadPids().map((pid) => [pid, threadTicks(pid)]));
  // Wake-ups: on a VM each costs a paravirtualised context switch, which shows in CPU at low load.
  const wakeups = (): { main: number; workers: number } => ({
    main: nodePid ? contextSwitches(nodePid, nodePid) : 0,
    workers: nodePid ? workerPids(nodePid).reduce((sum, pid) => sum + contextSwitches(pid), 0) : 0,
  });
  const wakeupsBefore = wakeups();
  log(`steady state: measuring for ${durationS} s`);
  await sleep(durationS * 1000);
  sampler.sample();
  const windowEnd = performance.now();
  const parentCpu = process.cpuUsage(parentCpuBefore);
  const threadsAfter = new Map(threadPids().map((pid) => [pid, threadTicks(pid)]));
  const wakeupsAfter = wakeups();
  const gcAfter = await fetchGcPauses(url);
  listenerProcs.forEach((c) => c.send({ type: 'finish' }));
  broadcaster.send({ type: 'finish' });
  const sentAfter = await broadcaster.next('sent', 30_000);
  const reports = await Promise.all(listenerProcs.map((c) => c.next('report', 60_000)));
  clearInterval(sampleTimer);
  server?.rememberTree();

  // ---- figures ----
  const results: ListenerResult[] = reports.flatMap((r) => r.results).sort((a, b) => a.index - b.index);
  const ok = results.filter((r) => r.ok);
  const joinTimes = ok.map((r) => r.joinMs!).filter((v) => Number.isFinite(v));
  const dropped = ok.filter((r) => r.dropped).length;
  const withStats = ok.filter((r) => r.packetsReceived !== undefined);
  const received = withStats.reduce((s, r) => s + (r.packetsReceived ?? 0), 0);
  const lost = withStats.reduce((s, r) => s + Math.max(0, r.packetsLost ?? 0), 0);
  const jitters = withStats.map((r) => r.jitterMs ?? 0);

  const win = sampler.window(windowStart - 1, windowEnd + 1);
  const srv = usage(win, 'server');
  const db = database ? usage(win, 'database') : undefined;
  const bc = usage(win, 'broadcaster');
  const lg = listenerProcs.map((_, i) => usage(win, `listeners-${i}`));
  const loadgenCpu = round(bc.cpuPct + lg.reduce((s, u) => s + u.cpuPct, 0), 1);
  const loadgenRss = round(bc.rssMiB + lg.reduce((s, u) => s + u.rssMiB, 0), 1);
  const ramp = sampler.window(rampStart - 1100, rampEnd + 1);
  const rampDbCpu = database ? usage(ramp, 'database').cpuPct : 0;
  const rampLoadgenCpu = round(usage(ramp, 'broadcaster').cpuPct + listenerProcs.reduce((sum, _, i) => sum + usage(ramp, `listeners-${i}`).cpuPct, 0), 1);
  const serverCpuCores = round(srv.cpuPct / 100, 3);
  const windowS = (windowEnd - windowStart) / 1000;
  const parentCpuPct = ((parentCpu.user + parentCpu.system) / 1e6 / windowS) * 100;
  const sent = sentAfter.packetsSent - sentBefore.packetsSent;
  const receivedPps = received / windowS;
  const phase = (p: JoinPhase): number => percentile(ok.map((r) => r.phases[p] ?? 0), 50);

  const summary = {
    listeners: N,
    procs: K,
    workers,
    source,
    frameMs,
    records,
    joined: ok.length,
    failed: N - ok.length + dropped,
    joinMs: { p50: percentile(joinTimes, 50), p95: percentile(joinTimes, 95), p99: percentile(joinTimes, 99), max: percentile(joinTimes, 100) },
    lossPct: received + lost > 0 ? round((lost / (received + lost)) * 100, 3) : 0,
    jitterMs: { p50: round(percentile(jitters, 50), 2), p95: round(percentile(jitters, 95), 2) },
    serverCpuPct: srv.cpuPct,
    serverCpuCores,
    serverRssMiB: srv.rssMiB,
    loadgenCpuPct: loadgenCpu,
    loadgenRssMiB: loadgenRss,
    listenersPerServerCore: serverCpuCores > 0 ? Math.round(ok.length / serverCpuCores) : null,
    // With --records postgres: the database's processes (postmaster and backends), outside the
    // server figure as issue 21 defines it, and listeners per core of the two together.
    ...(db ? { databaseCpuPct: db.cpuPct, databaseRssMiB: db.rssMiB, listenersPerServerAndDatabaseCore: srv.cpuPct + db.cpuPct > 0 ? Math.round(ok.length / ((srv.cpuPct + db.cpuPct) / 100)) : null } : {}),
    cpuPerListenerPctOfCore: ok.length > 0 ? round(srv.cpuPct / ok.length, 3) : null,
    machine: { cpus: cores, model: cpus()[0]?.model ?? 'unknown', node: process.version },
    command,
    /** Listener stack: 'wrtc' = real SDK on libwebrtc, decodes audio; 'werift' = RTP counted, not decoded. */
    peer,
    /** Signaling path the listeners took: 'short' (join brings the transport, consumer flows) or 'classic'. */
    signaling,
    ...(peer === 'werift' ? { weriftStock } : {}),
    // Beyond the asked-for fields: what explains the numbers.
    ts: new Date().toISOString(),
    commit: gitCommit(),
    durationS: round(windowS, 1),
    staggerMs,
    failures: {
      joinFailed: N - ok.length,
      droppedInWindow: dropped,
      examples: results.filter((r) => !r.ok || r.dropped).slice(0, 3).map((r) => `#${r.index}: ${r.error ?? 'dropped during steady state'}`),
    },
    joinPhasesP50Ms: {
      signaledAndTransport: phase('joined'),
      // werift only: ICE + DTLS connected, to tell its own handshake time from signaling.
      ...(peer === 'werift' ? { ice: phase('ice'), connected: phase('connected') } : {}),
      track: phase('track'),
      audible: phase('audible'),
    },
    packets: {
      received,
      lost,
      /** Broadcaster's outbound-rtp packets over the window, per second (50/s for 20 ms Opus). */
      sentPerSec: round(sent / windowS, 1),
      receivedPerListenerPerSec: withStats.length ? round(received / withStats.length / windowS, 1) : 0,
      /** Received by listeners ÷ (sent × listeners): below 100 with no loss means late, not lost. */
      deliveredPct: sent > 0 && withStats.length ? round((received / (sent * withStats.length)) * 100, 1) : 0,
      /** Tone frames the broadcaster's clock had to drop because its process ran too late. */
      sourceFramesSkipped: sentAfter.framesSkipped,
    },
    serverCpuPctPerKpps: receivedPps > 0 ? round(srv.cpuPct / (receivedPps / 1000), 2) : null,
    serverProcs: srv.procs.map((p) => ({ comm: p.comm, cpuPct: p.cpuPct, rssMiB: p.rssMiB })),
    // The node's JavaScript runs on its main thread (tid = pid); its other threads are V8's
    // collector and libuv's pool. Issue 21's "node < 1 %" is about the sum; this says which.
    nodeThreads: nodePid ? nodeThreadShares(threadsBefore.get(nodePid) ?? new Map(), threadsAfter.get(nodePid) ?? new Map(), nodePid, windowS) : undefined,
    // Context switches a second over the window: the node's main thread, and all the workers' threads.
    wakeupsPerSec: { nodeMain: round((wakeupsAfter.main - wakeupsBefore.main) / windowS, 1), workers: round((wakeupsAfter.workers - wakeupsBefore.workers) / windowS, 1) },
    /** The node's garbage-collection pauses in the window, ms by kind (its /metrics, read around it). */
    nodeGcMs: gcPausesBetween(gcBefore, gcAfter),
    loadgenProcsCpuPct: { broadcaster: bc.cpuPct, listeners: lg.map((u) => u.cpuPct) },
    /** Busiest thread of each listener process: one saturated libwebrtc thread caps a process. */
    loadgenBusiestThread: listenerProcs.map((c) => busiestThreads(threadsBefore.get(c.pid) ?? new Map(), threadsAfter.get(c.pid) ?? new Map(), windowS, 1)[0]),
    machineCpuPct: machineUsagePct(win, cores),
    /** This benchmark's own parent process (sampling, IPC), not in either figure above. */
    benchParentCpuPct: round(parentCpuPct, 1),
    /** Machine busy minus server, load generator and parent: other work on a shared machine. */
    otherCpuPct: round(machineUsagePct(win, cores) - srv.cpuPct - (db?.cpuPct ?? 0) - loadgenCpu - parentCpuPct, 1),
    /** Node-side time per signaling request over the ramp (its /metrics histogram): count, mean, bucket holding p95. */
    serverRequestMs,
    ramp: {
      seconds: round((rampEnd - rampStart) / 1000, 1),
      serverCpuPct: usage(ramp, 'server').cpuPct,
      /** The server's processes during the ramp (node, records process, workers), by comm. */
      serverProcs: usage(ramp, 'server').procs.map((p) => ({ comm: p.comm, cpuPct: p.cpuPct })),
      loadgenCpuPct: rampLoadgenCpu,
      machineCpuPct: machineUsagePct(ramp, cores),
      /** Other work during the ramp, when join times are taken (otherCpuPct above is the window's). */
      otherCpuPct: round(machineUsagePct(ramp, cores) - usage(ramp, 'server').cpuPct - rampDbCpu - rampLoadgenCpu, 1),
    },
  };

  process.stdout.write(`${JSON.stringify(summary)}\n`);

  mkdirSync(outDir, { recursive: true });
  const record: RunRecord = { ...summary, joinTimesMs: joinTimes };
  appendFileSync(join(outDir, 'results.jsonl'), `${JSON.stringify(record)}\n`);
  writeFileSync(join(outDir, `run-${summary.ts.replace(/[:.]/g, '-')}-n${N}.json`), `${JSON.stringify({ summary, listeners: results }, null, 1)}\n`);
  const runs = readRuns<RunRecord>(join(outDir, 'results.jsonl'));
  writeFileSync(join(outDir, 'broadcast.html'), renderHtml(runs));
  log(`wrote ${join(outDir, 'results.jsonl')} and ${join(outDir, 'broadcast.html')} (${runs.length} run(s))`);
}

let exitCode = 0;
try {
  await run();
} catch (error) {
  log(`FAILED: ${error instanceof Error ? error.message : String(error)}`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);
