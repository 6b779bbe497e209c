/**
 * Class benchmark: one teacher publishing a tone and a camera in three VP8 simulcast layers
 * (pre-encoded, bench/lib/lightMedia.ts), N students receiving it receive-only, each viewing the
 * camera large so the node's layer policy may give it the top layer if its estimate allows.
 * Teacher and students are the call benchmark's light participants (bench/callLight.ts) with a
 * class role; servers, IPC and sampling are the call benchmark's (bench/lib/callHarness.ts).
 *
 *   npm run bench:class -- --students N [--nodes K] [--constrained C] [--constrained-kbit R]
 *       [--procs P] [--duration S] [--settle S] [--out DIR]
 *
 * `--constrained C`: C of the students each run in a network namespace of their own whose
 * downlink is limited to R kbit/s (tc tbf on the host end of its veth pair; needs root and
 * iproute2), one load-generator process each, so the layer distribution shows what the node
 * gives a student its estimate cannot carry the top layer to. One node only: the node listens
 * on the first pair's host address, which every namespace routes to; a cluster's nginx and
 * nodes listen on 127.0.0.1, which a namespace cannot reach.
 *
 * Prints one JSON line (progress on stderr), appends it to <out>/class.jsonl and rewrites
 * <out>/class.html.
 */
import { execFile, fork, spawn, type ChildProcess } from 'node:child_process';
import { cpus, setPriority, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import * as hdr from 'hdr-histogram-js';
import { createNetns, type Netns } from '../test/support/netns.js';
import { broadcast, cli, fromHistogram, layerChanges, percentile, startSampling, startServers, starvation, waitFor, type Servers } from './lib/callHarness.js';
import type { ParticipantsConfig, ToParent } from './lib/callMessages.js';
import { gitCommit } from './lib/gitCommit.js';
import { prepareLightMedia } from './lib/lightMedia.js';
import { round } from './lib/procstat.js';
import { lineChart } from './lib/report.js';
import { recordRun } from './lib/runLog.js';

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(benchDir, '..');
const run = promisify(execFile);

const { values: args } = parseArgs({
  options: {
    students: { type: 'string' },
    nodes: { type: 'string', default: '1' },
    constrained: { type: 'string', default: '0' },
    'constrained-kbit': { type: 'string', default: '350' },
    procs: { type: 'string' },
    duration: { type: 'string', default: '15' },
    settle: { type: 'string', default: '8' },
    out: { type: 'string', default: 'bench/results' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
const usageText = 'usage: npm run bench:class -- --students N [--nodes K] [--constrained C] [--constrained-kbit R] [--procs P] [--duration S] [--settle S] [--out DIR]';
const { int, fail, help } = cli(usageText);
if (args.help || !args.students) help(args.help);
const N = int('students', args.students, 1);
const NODES = int('nodes', args.nodes, 1);
const CONSTRAINED = int('constrained', args.constrained, 0);
const KBIT = int('constrained-kbit', args['constrained-kbit'], 50);
if (CONSTRAINED > N) fail('--constrained must be at most --students');
if (CONSTRAINED > 0 && NODES > 1) fail("--constrained needs --nodes 1: a cluster's nginx and nodes listen on 127.0.0.1, out of a namespace's reach");
const FREE = N - CONSTRAINED;
// A student receives the tone and the camera's top layer, ~85 packets/s; a light process
// receives ~9000/s per core (werift's SRTP in JavaScript): ~60 students keep one under 60 %.
const K = Math.min(Math.max(FREE, 1), args.procs ? int('procs', args.procs, 1) : Math.max(1, Math.ceil(FREE / 60)));
const durationS = int('duration', args.duration, 1);
const settleS = int('settle', args.settle, 0);
const [width, height, fps] = [640, 360, 15];
const outDir = resolve(repoRoot, args.out);
const room = 'bench-class';
const log = (line: string): void => void process.stderr.write(`[bench:class] ${line}\n`);

/** Namespaces made so far: removed on every way out (the end, an error, Ctrl-C). */
const namespaces: Netns[] = [];
const children: ChildProcess[] = [];
let servers: Servers | undefined;
let sampling: ReturnType<typeof startSampling> | undefined;
let cleaning: Promise<void> | undefined;
const cleanup = (): Promise<void> =>
  (cleaning ??= (async () => {
    sampling?.stop();
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await servers?.stop().catch((error: unknown) => log(`stopping the servers: ${String(error)}`));
    for (const ns of namespaces.splice(0)) await ns.close();
  })());
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

/**
 * C namespaces with distinct /30s, each with a route to the first's host end (where the node
 * listens) through its own. Only that route: with a default route werift's lookup of its built-in
 * STUN server (it uses one even when given none) waits 5 s for a DNS answer that never comes.
 */
async function makeNamespaces(count: number): Promise<void> {
  for (let attempts = 0; namespaces.length < count; attempts++) {
    if (attempts >= count + 10) throw new Error(`could not make ${count} namespaces with distinct addresses`);
    const ns = await createNetns();
    if (namespaces.some((other) => other.hostIp.split('.').slice(0, 3).join('.') === ns.hostIp.split('.').slice(0, 3).join('.'))) {
      await ns.close();
      continue;
    }
    namespaces.push(ns);
    if (namespaces.length > 1) await run('ip', ['netns', 'exec', ns.name, 'ip', 'route', 'add', `${namespaces[0]!.hostIp}/32`, 'via', ns.hostIp]);
    await ns.limit(KBIT);
  }
}

function startProcess(config: ParticipantsConfig, ns?: Netns): ChildProcess {
  const script = join(benchDir, 'callLight.ts');
  // `ip netns exec` execs node in place: same pid (sampled as the others), and the IPC channel's
  // descriptor and NODE_CHANNEL_FD pass through the exec.
  const child = ns
    ? spawn('ip', ['netns', 'exec', ns.name, process.execPath, '--import', 'tsx', script, JSON.stringify(config)], { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    : fork(script, [JSON.stringify(config)], { cwd: repoRoot, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(child);
  return child;
}

type Measured = Extract<ToParent, { type: 'measured' }>;
const sum = (ms: Measured[], f: (m: Measured) => number): number => ms.reduce((n, m) => n + f(m), 0);
function merge(ms: Measured[], key: 'spatialLayers' | 'keyframeWidths'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of ms) for (const [k, v] of Object.entries(m[key] ?? {})) out[k] = (out[k] ?? 0) + v;
  return out;
}
/** Loss, freezes and layers of one group of students over the window. */
function students(ms: Measured[], count: number, windowS: number, joins: Array<Extract<ToParent, { type: 'joined' }>>) {
  const joinMs = joins.flatMap((j) => (j.error || j.allMediaMs === null ? [] : [j.allMediaMs]));
  const received = sum(ms, (m) => m.packetsReceived);
  const lost = sum(ms, (m) => m.packetsLost);
  return {
    students: count,
    joinP50Ms: round(percentile(joinMs, 50) ?? 0),
    joinP95Ms: round(percentile(joinMs, 95) ?? 0),
    loss: received + lost > 0 ? round(lost / (received + lost), 5) : null,
    freezes: sum(ms, (m) => m.freezes),
    frozenStudents: sum(ms, (m) => m.frozenParticipants ?? 0),
    // At the end of the window: the layer the node says it forwards, and the width of the last
    // keyframe received (160 / 320 / 640: spatial layer 0 / 1 / 2).
    spatialLayers: merge(ms, 'spatialLayers'),
    keyframeWidths: merge(ms, 'keyframeWidths'),
    kbpsPerStudent: count > 0 ? round((sum(ms, (m) => m.bytesReceived) * 8) / windowS / 1000 / count, 1) : null,
  };
}

async function main(): Promise<void> {
  try {
    if (CONSTRAINED > 0) {
      log(`making ${CONSTRAINED} network namespaces at ${KBIT} kbit/s`);
      await makeNamespaces(CONSTRAINED);
    }
    servers = await startServers({ nodes: NODES, kind: 'class', env: { MEDIASOUP_WORKERS: '2' }, log, host: namespaces[0]?.hostIp });
    const node = servers;
    const media = await prepareLightMedia(join(tmpdir(), 'chorus-bench-media'), { width, height, fps, seconds: 10 });
    const base = { url: node.url, secret: '', video: true, width, height, fps, media };
    // Students view the camera at its full size: the view allows the top layer, the estimate decides.
    const large = { width, height };
    const teacher = startProcess({ ...base, role: 'teacher', participants: [{ room, identity: 'teacher', token: await node.mint(room, 'teacher', 'teacher') }], tile: large, speaker: large });
    // The source must not starve with its audience: it gets the CPU first.
    setPriority(teacher.pid!, -5);
    const specs = await Promise.all(Array.from({ length: N }, async (_, i) => ({ room, identity: `s${i}`, token: await node.mint(room, `s${i}`, 'student') })));
    const constrainedProcs = namespaces.map((ns, i) => startProcess({ ...base, role: 'student', participants: [specs[i]!], tile: large, speaker: large }, ns));
    const free = specs.slice(CONSTRAINED);
    const constrainedIds = new Set(specs.slice(0, CONSTRAINED).map((s) => s.identity));
    const freeProcs = Array.from({ length: Math.min(K, free.length) }, (_, k) => startProcess({ ...base, role: 'student', participants: free.filter((_, i) => i % K === k), tile: large, speaker: large }));
    const studentProcs = [...constrainedProcs, ...freeProcs];
    sampling = startSampling(node, () => children);

    const teacherJoin = waitFor([teacher], 'joined', 1, 60_000);
    broadcast([teacher], { type: 'join' });
    const [teacherJoined] = await teacherJoin;
    if (teacherJoined?.error) throw new Error(`the teacher could not join: ${teacherJoined.error}`);
    log(`teacher joined in ${round(teacherJoined!.joinMs)} ms; ${N} students joining over ${studentProcs.length} processes`);
    const joining = waitFor(studentProcs, 'joined', N, 60_000 + 2000 * Math.ceil(FREE / Math.max(1, freeProcs.length)));
    broadcast(studentProcs, { type: 'join' });
    const joins = await joining;
    // Joined = heard and seen: the first packet of the teacher's microphone and camera.
    const failed = joins.filter((j) => j.error || j.allMediaMs === null);
    log(`${N - failed.length}/${N} students joined; settling ${settleS} s`);
    await new Promise((r) => setTimeout(r, settleS * 1000));

    // Asked per group, so each report is known to be the teacher's, constrained or free students'.
    const measure = (procs: ChildProcess[]): Promise<Measured[]> => waitFor(procs, 'measured', procs.length, (durationS + 60) * 1000);
    const measuring = Promise.all([measure(constrainedProcs), measure(freeProcs), measure([teacher])]);
    const changesBefore = await layerChanges(node, 'class');
    const from = performance.now();
    broadcast(children, { type: 'measure-start' });
    await new Promise((r) => setTimeout(r, durationS * 1000));
    broadcast(children, { type: 'measure-stop' });
    const [constrainedReports, freeReports, teacherReports] = await measuring;
    const measured = [...constrainedReports, ...freeReports];
    const to = performance.now();
    const { server, ...load } = sampling.figures(from, to);
    const changesAfter = await layerChanges(node, 'class');
    const windowS = Math.max(...measured.map((m) => m.windowMs)) / 1000;
    const latency = { audio: hdr.build(), video: hdr.build() };
    for (const m of measured) {
      if (!m.latencyHistograms) continue;
      latency.audio.add(hdr.decodeFromCompressedBase64(m.latencyHistograms.audio));
      latency.video.add(hdr.decodeFromCompressedBase64(m.latencyHistograms.video));
    }
    const joinMs = joins.flatMap((j) => (j.error || j.allMediaMs === null ? [] : [j.allMediaMs]));
    const signaledMs = joins.filter((j) => !j.error).map((j) => j.joinMs);
    const record = {
      bench: 'class',
      ts: new Date().toISOString(),
      commit: gitCommit(),
      machine: { cpus: cpus().length, model: cpus()[0]?.model },
      students: N,
      nodes: NODES,
      constrained: CONSTRAINED > 0 ? { students: CONSTRAINED, kbit: KBIT } : false,
      procs: studentProcs.length,
      video: { width, height, fps, layers: 3 },
      durationS: round(windowS, 1),
      // From just before the join request to the first packet of the teacher's microphone and
      // camera; `signaledMs`: to the receive transport connected.
      joins: { ok: joinMs.length, failed: failed.length, p50Ms: round(percentile(joinMs, 50) ?? 0), p95Ms: round(percentile(joinMs, 95) ?? 0), max: round(Math.max(0, ...joinMs)) },
      signaledMs: { p50: round(percentile(signaledMs, 50) ?? 0), p95: round(percentile(signaledMs, 95) ?? 0) },
      ...(failed.length > 0 ? { failedExamples: failed.slice(0, 3).map((j) => `${j.identity}: ${j.error ?? 'no media within 10 s'}`) } : {}),
      latencyMs: { audio: fromHistogram(latency.audio), video: fromHistogram(latency.video) },
      streams: { expected: 2 * N, subscribed: sum(measured, (m) => m.streams) },
      freeStudents: students(freeReports, FREE, windowS, joins.filter((j) => !constrainedIds.has(j.identity))),
      ...(CONSTRAINED > 0 ? { constrainedStudents: students(constrainedReports, CONSTRAINED, windowS, joins.filter((j) => constrainedIds.has(j.identity))) } : {}),
      // RTP bytes (headers included; not SRTP's tag, UDP or IP) the students received.
      egressMbps: round((sum(measured, (m) => m.bytesReceived) * 8) / windowS / 1e6, 2),
      teacherReceivedStreams: sum(teacherReports, (m) => m.streams),
      // Per simulcast layer (low to high): payload kbit/s the teacher sent, and the keyframe
      // requests it got, in the window (each answered with a keyframe: switches cost bitrate).
      teacherSent: teacherReports[0]?.sentLayers ?? null,
      // The node's chorus_consumer_layer_changes_total: from the first join, and within the window.
      layerChanges: { total: changesAfter, inWindow: { up: changesAfter.up - changesBefore.up, down: changesAfter.down - changesBefore.down } },
      server: {
        ...server,
        cpuPctPerStudent: round(server.cpuPct / N, 3),
        workerRssMiBPerStudent: round(server.workerRssGrowthMiB / N, 3),
        workerRssGrowthMiB: round(server.workerRssGrowthMiB, 1),
      },
      ...load,
    };
    const problems = starvation(record, record.streams, failed.length);
    const targets = {
      failedJoins: { target: 0, value: failed.length, met: failed.length === 0 },
      joinP95Ms: { target: '< 500', value: record.joins.p95Ms, met: record.joins.p95Ms < 500 },
      serverCpuPctPerStudent: { target: '<= 0.3', value: record.server.cpuPctPerStudent, met: record.server.cpuPctPerStudent <= 0.3 },
    };
    Object.assign(record, { targets, valid: problems.length === 0, problems });
    process.stdout.write(`${JSON.stringify(record)}\n`);
    const written = recordRun(outDir, 'class', record, chart);
    log(`wrote ${written.jsonl} and ${written.html}`);
    const closing = waitFor(children, 'closed', children.length, 30_000).catch(() => []);
    broadcast(children, { type: 'close' });
    await closing;
  } finally {
    await cleanup();
  }
}

type ClassRun = { students: number; nodes: number; constrained: unknown; valid?: boolean; joins: { p95Ms: number }; server: { cpuPctPerStudent: number } };

/** Join p95 and server CPU per student against N, one series per node count; every run's line below. */
function chart(runs: ClassRun[]): string {
  const groups = [...new Set(runs.map((r) => r.nodes))].sort();
  const series = (f: (r: ClassRun) => number) =>
    groups.map((nodes) => ({ name: `${nodes} node${nodes > 1 ? 's' : ''}`, points: runs.filter((r) => r.nodes === nodes).map((r) => [r.students, f(r)] as [number, number]), line: false }));
  return `<!doctype html><meta charset="utf-8"><title>bench:class</title>
<h1>bench:class</h1>
<p>One teacher (VP8 simulcast 640×360, 3 layers, and Opus), N receive-only students. Targets: 0 failed joins, join p95 &lt; 500 ms, server CPU per student ≤ 0.3 % of a core.</p>
${lineChart({ title: 'Join p95 (to first audio and video packet)', xLabel: 'students', yLabel: 'ms', series: series((r) => r.joins.p95Ms) })}
${lineChart({ title: 'Server CPU per student', xLabel: 'students', yLabel: '% of a core', series: series((r) => r.server.cpuPctPerStudent) })}
<pre>${runs.map((r) => JSON.stringify(r).replace(/&/g, '&amp;').replace(/</g, '&lt;')).join('\n')}</pre>`;
}

main().catch((error: unknown) => {
  log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exitCode = 1;
});
