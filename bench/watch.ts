/**
 * npm run bench:watch — state-change fan-out of watch rooms.
 *
 *   npm run bench:watch -- [--rooms 100] [--members 10] [--nodes 1] [--rates 50,100,200,400,800]
 *                          [--step 6] [--out bench/results]
 *
 * Starts a real redis-server and N Chorus node processes sharing it (so every change goes through
 * the Redis store's compare-and-set and the Socket.IO Redis streams adapter), joins rooms × members
 * plain socket.io-client connections (no WebRTC: a watch room carries state only), member 0 of each
 * room hosts. Members heartbeat (position reports every 2 s) like the SDK does. Then, for each rate
 * in --rates, the hosts together send that many seeks per second for --step seconds; every seek
 * carries a unique position, so each member's receipt of it is matched to its send time (one
 * process, one clock). Member j of a room connects to node j mod N, hosts to node 0.
 *
 * Prints one JSON line: per step the offered and delivered state messages per second, delivery
 * ratio, latency p50/p95/p99/max (host send → member receipt), and server CPU; `sustainedMsgsPerSec`
 * is the highest delivered rate of a step with ≥ 99 % delivered and p95 ≤ 200 ms. Appends it to
 * <out>/watch.jsonl and writes <out>/watch.html (inline SVG).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { io, type Socket } from 'socket.io-client';
import { TokenService } from '../src/auth/tokens.js';
import { positionAt, type WatchState } from '../src/protocol/watch.js';
import { startRedis, type RedisServer } from '../test/support/redisServer.js';
import { freePort } from '../test/support/ports.js';
import { TreeSampler, usage, round } from './lib/procstat.js';
import { lineChart } from './lib/report.js';
import { recordRun } from './lib/runLog.js';
import { builtServerArgs } from './lib/serverBuild.js';

const { values: args } = parseArgs({
  options: {
    rooms: { type: 'string', default: '100' },
    members: { type: 'string', default: '10' },
    nodes: { type: 'string', default: '1' },
    rates: { type: 'string', default: '50,100,200,400,800' },
    step: { type: 'string', default: '6' },
    out: { type: 'string', default: 'bench/results' },
  },
});
const ROOMS = Number(args.rooms);
const MEMBERS = Number(args.members);
const NODES = Number(args.nodes);
const RATES = args.rates.split(',').map(Number);
const STEP_S = Number(args.step);
const OUT = resolve(args.out);
const REPORT_MS = 2000;
const root = fileURLToPath(new URL('..', import.meta.url));

interface Step {
  offeredChangesPerSec: number;
  offeredMsgsPerSec: number;
  sent: number;
  deliveredMsgsPerSec: number;
  deliveredPct: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  serverCpuPct: number;
  errors: number;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function startServer(redis: RedisServer, secret: string, id: number): Promise<{ proc: ChildProcess; url: string }> {
  const port = await freePort();
  const proc = spawn(process.execPath, builtServerArgs((line) => process.stderr.write(`${line}\n`)), {
    cwd: root,
    // stdin: the orphan guard's pipe (bench/lib/orphanGuard.mjs); nothing is written to it.
    stdio: ['pipe', 'ignore', 'inherit'],
    env: {
      ...process.env,
      CHORUS_HOST: '127.0.0.1',
      CHORUS_PORT: String(port),
      CHORUS_NODE_ID: `watch-bench-${id}`,
      CHORUS_TOKEN_SECRET: secret,
      REDIS_URL: redis.url,
      LOG_LEVEL: 'warn',
      MEDIASOUP_WORKERS: '1',
      RTC_LISTEN_IP: '127.0.0.1',
      RTC_ANNOUNCED_ADDRESS: '127.0.0.1',
      RTC_MIN_PORT: String(40000 + id * 1000),
      RTC_MAX_PORT: String(40999 + id * 1000),
      CHORUS_WEB_DIR: '/nonexistent',
      CHORUS_WATCH_REPORT_INTERVAL_MS: String(REPORT_MS),
      // Every client here is 127.0.0.1: lift the per-address abuse limits, and per-connection
      // ones so a host can send its share of the highest rate.
      CHORUS_LIMIT_CONNECTIONS_PER_IP: '100000',
      CHORUS_LIMIT_MESSAGES_PER_IP_PER_SECOND: '1000000',
      CHORUS_LIMIT_MESSAGES_PER_CONNECTION_PER_SECOND: '1000',
      CHORUS_LIMIT_JOINS_PER_ROOM_PER_SECOND: '1000',
    },
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`node ${id} exited (${proc.exitCode})`);
    const ok = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
    if (ok) return { proc, url };
    if (Date.now() > deadline) throw new Error(`node ${id} not ready`);
    await sleep(200);
  }
}

interface Member {
  socket: Socket;
  room: string;
  host: boolean;
  state: WatchState | undefined;
}

async function joinMember(url: string, room: string, token: string, host: boolean, onState: (m: Member, s: WatchState, at: number) => void): Promise<Member> {
  const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
  await new Promise<void>((ok, fail) => {
    socket.once('connect', ok);
    socket.once('connect_error', fail);
  });
  const m: Member = { socket, room, host, state: undefined };
  socket.on('watch:state', ({ state }: { state: WatchState }) => {
    const at = Date.now();
    if (!m.state || state.version > m.state.version) m.state = state;
    onState(m, state, at);
  });
  socket.on('watch:resync', ({ state }: { state: WatchState }) => {
    if (!m.state || state.version >= m.state.version) m.state = state;
  });
  type JoinReply = { ok: boolean; data?: { watch?: { state: WatchState } }; error?: { code: string; retryable: boolean; retryAfterMs?: number } };
  let reply: JoinReply;
  // A busy node or Redis answers joins with retryable refusals; try again as the SDK would.
  for (let attempt = 1; ; attempt++) {
    reply = (await socket.timeout(20_000).emitWithAck('join', { roomId: room, token })) as JoinReply;
    if (reply.ok || !reply.error?.retryable || attempt >= 5) break;
    await sleep(Math.max(reply.error.retryAfterMs ?? 0, 200 * attempt));
  }
  if (!reply.ok) throw new Error(`join failed: ${reply.error?.code}`);
  m.state = reply.data?.watch?.state;
  return m;
}

async function main(): Promise<void> {
  const secret = randomBytes(32).toString('base64url');
  const tokens = new TokenService(new TextEncoder().encode(secret), 3600);
  const redis = await startRedis();
  const servers: Array<{ proc: ChildProcess; url: string }> = [];
  const members: Member[] = [];
  const cleanup = async (): Promise<void> => {
    for (const m of members) m.socket.disconnect();
    for (const s of servers) s.proc.kill('SIGTERM');
    await Promise.all(servers.map((s) => new Promise((r) => (s.proc.exitCode !== null ? r(null) : s.proc.once('exit', r)))));
    await redis.stop();
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    for (let i = 0; i < NODES; i++) servers.push(await startServer(redis, secret, i));
    const sampler = new TreeSampler(() => new Map(servers.map((s, i) => [`node-${i}`, s.proc.pid!])));

    // seq → send time; receipts per seq.
    const sentAt = new Map<number, number>();
    const latencies: number[] = [];
    let received = 0;
    const onState = (_m: Member, s: WatchState, at: number): void => {
      const sent = sentAt.get(s.position);
      if (sent === undefined) return;
      received++;
      latencies.push(at - sent);
    };

    // Heartbeats from the start (joining everyone takes longer than two intervals): every member reports where the room is, as a perfectly synced player would.
    const heartbeat = setInterval(() => {
      for (const m of members) {
        if (!m.state) continue;
        const now = Date.now();
        m.socket.emit('watch.report', { position: positionAt(m.state, now), playing: m.state.playing, version: m.state.version, sampledAt: now }, () => undefined);
      }
    }, REPORT_MS);

    const joinStart = Date.now();
    const rooms = Array.from({ length: ROOMS }, (_, r) => `bench-${r}`);
    for (let j = 0; j < MEMBERS; j++) {
      // Hosts first (member 0), so each room's first member hosts it.
      // 25 joins in flight at a time: the point is fan-out, not a join storm.
      for (let r = 0; r < rooms.length; r += 25) {
        const batch = await Promise.all(
          rooms.slice(r, r + 25).map(async (room) => {
            const role = j === 0 ? ('host' as const) : ('participant' as const);
            const token = await tokens.mint({ room, identity: `${room}-m${j}`, role, kind: 'watch' });
            return joinMember(servers[j % NODES]!.url, room, token, j === 0, onState);
          }),
        );
        members.push(...batch);
      }
    }
    const joinSeconds = (Date.now() - joinStart) / 1000;
    const hosts = members.filter((m) => m.host);

    let seq = 1;
    const steps: Step[] = [];
    for (const rate of RATES) {
      received = 0;
      latencies.length = 0;
      let sent = 0;
      let errors = 0;
      let credit = 0;
      let next = 0;
      const from = performance.now();
      sampler.sample();
      const stepEnd = Date.now() + STEP_S * 1000;
      const tickMs = 10;
      await new Promise<void>((done) => {
        const timer = setInterval(() => {
          if (Date.now() >= stepEnd) {
            clearInterval(timer);
            done();
            return;
          }
          credit += (rate * tickMs) / 1000;
          while (credit >= 1) {
            credit--;
            const host = hosts[next++ % hosts.length]!;
            const position = seq++;
            sentAt.set(position, Date.now());
            sent++;
            host.socket.timeout(10_000).emit('watch.control', { action: 'seek', position }, (err: unknown, reply: { ok: boolean } | undefined) => {
              if (err || !reply?.ok) errors++;
            });
          }
        }, tickMs);
      });
      sampler.sample();
      const to = performance.now();
      await sleep(1500); // let what is in flight arrive
      const cpu = [...servers.keys()].reduce((sum, i) => sum + usage(sampler.window(from, to), `node-${i}`).cpuPct, 0);
      const sorted = [...latencies].sort((a, b) => a - b);
      const expected = sent * MEMBERS;
      steps.push({
        offeredChangesPerSec: rate,
        offeredMsgsPerSec: rate * MEMBERS,
        sent,
        deliveredMsgsPerSec: round(received / STEP_S, 0),
        deliveredPct: round((received / expected) * 100, 2),
        latencyMs: { p50: pct(sorted, 50), p95: pct(sorted, 95), p99: pct(sorted, 99), max: sorted[sorted.length - 1] ?? Number.NaN },
        serverCpuPct: round(cpu, 1),
        errors,
      });
      process.stderr.write(`step ${rate} changes/s: ${JSON.stringify(steps.at(-1))}\n`);
    }
    clearInterval(heartbeat);

    const ok = steps.filter((s) => s.deliveredPct >= 99 && s.latencyMs.p95 <= 200 && s.errors === 0);
    const best = ok.sort((a, b) => b.deliveredMsgsPerSec - a.deliveredMsgsPerSec)[0];
    const record = {
      bench: 'watch',
      ts: new Date().toISOString(),
      rooms: ROOMS,
      membersPerRoom: MEMBERS,
      members: ROOMS * MEMBERS,
      nodes: NODES,
      redis: true,
      joinSeconds: round(joinSeconds, 1),
      stepSeconds: STEP_S,
      steps,
      sustainedMsgsPerSec: best?.deliveredMsgsPerSec ?? 0,
      p95AtSustainedMs: best?.latencyMs.p95 ?? null,
      machine: { cpus: cpus().length, model: cpus()[0]?.model ?? '?', node: process.version },
      command: `npm run bench:watch -- ${process.argv.slice(2).join(' ')}`.trim(),
    };
    console.log(JSON.stringify(record));
    recordRun<RunRecord>(OUT, 'watch', record, renderHtml);
  } finally {
    await cleanup();
  }
}

type RunRecord = { ts: string; nodes: number; members: number; steps: Step[]; sustainedMsgsPerSec: number; command: string };

function renderHtml(runs: RunRecord[]): string {
  const label = (r: RunRecord): string => `${r.ts.slice(0, 16)} ${r.nodes} node(s)`;
  const delivered = lineChart({
    title: 'State messages delivered per second',
    xLabel: 'offered messages/s (changes/s × members per room)',
    yLabel: 'delivered/s',
    series: runs.map((r) => ({ name: label(r), points: r.steps.map((s) => [s.offeredMsgsPerSec, s.deliveredMsgsPerSec] as [number, number]) })),
  });
  const latency = lineChart({
    title: 'Delivery latency p95 (host send → member receipt)',
    xLabel: 'offered messages/s',
    yLabel: 'ms',
    series: runs.map((r) => ({ name: label(r), points: r.steps.map((s) => [s.offeredMsgsPerSec, s.latencyMs.p95] as [number, number]) })),
  });
  const last = runs.at(-1);
  const rows = (last?.steps ?? [])
    .map((s) => `<tr><td>${s.offeredMsgsPerSec}</td><td>${s.deliveredMsgsPerSec}</td><td>${s.deliveredPct}</td><td>${s.latencyMs.p50}</td><td>${s.latencyMs.p95}</td><td>${s.latencyMs.p99}</td><td>${s.serverCpuPct}</td></tr>`)
    .join('');
  return `<!doctype html><html><head><meta charset="utf-8"><title>bench:watch</title></head><body style="font-family:sans-serif">
<h1>Watch rooms: state-change fan-out</h1>
<p>Last run: <code>${last?.command ?? ''}</code>, ${last?.members ?? 0} members, ${last?.nodes ?? 0} node(s); sustained ${last?.sustainedMsgsPerSec ?? 0} messages/s.</p>
${delivered}${latency}
<table border="1" cellpadding="4" style="border-collapse:collapse"><tr><th>offered/s</th><th>delivered/s</th><th>delivered %</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>server CPU %</th></tr>${rows}</table>
</body></html>`;
}

await main();
