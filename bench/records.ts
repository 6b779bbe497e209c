/**
 * How fast the records store writes, on each database a node can have: the embedded PGlite (its
 * own process, reached over a Unix socket) and a PostgreSQL started for the run (Debian's
 * binaries, `test/support/postgresServer.ts`). Writes sessions' records as the node makes them
 * (per session: joined, join.accepted, two quality samples, left, participant.left) through the
 * store's `write`, one batch at a time as the records writer does, for each batch size.
 *
 *   npm run bench:records -- [--records embedded,postgres] [--batches 10,100,500] [--sessions N] [--out DIR]
 *
 * Reports per database and batch size: records a second, batch time p50/p95, and CPU per 1,000
 * records of this process (what the node spends: the `pg` client, or PGlite itself when it ran
 * in-process) and of the database's processes. Prints one JSON line per pair; appends each to
 * <out>/records.jsonl and rewrites <out>/records.html.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { migrate } from '../src/records/migrate.js';
import { stamp, type NewRecord } from '../src/records/nodeRecorder.js';
import { SqlRecordStore } from '../src/records/recordStore.js';
import { openPglite, openPostgres, type SqlDatabase } from '../src/records/sql.js';
import { createLogger } from '../src/observability/logger.js';
import { startPostgres, type PostgresServer } from '../test/support/postgresServer.js';
import { gitCommit } from './lib/gitCommit.js';
import { allStats, clkTck, round, tree } from './lib/procstat.js';
import { cli } from './lib/cli.js';
import { lineChart } from './lib/report.js';
import { recordRun } from './lib/runLog.js';

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: 'embedded,postgres' },
    batches: { type: 'string', default: '10,100,500' },
    sessions: { type: 'string', default: '500' },
    out: { type: 'string', default: 'bench/results' },
    note: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});
const usageText = 'usage: npm run bench:records -- [--records embedded,postgres] [--batches 10,100,500] [--sessions N] [--out DIR] [--note TEXT]';
const { fail, whole } = cli(usageText, args.help);
const backends = args.records.split(',').map((b) => (b === 'embedded' || b === 'postgres' ? b : fail(`--records: embedded and/or postgres, not ${b}`)));
const batches = args.batches.split(',').map((b) => whole('batches', b, 1, 5000));
const sessions = whole('sessions', args.sessions, 1, 100_000);
const log = (line: string): void => void process.stderr.write(`[records] ${line}\n`);
const silent = createLogger('silent', 'bench');

export interface RecordsRun {
  ts: string;
  commit: string | undefined;
  command: string;
  note?: string;
  machine: { cpus: number; model: string; node: string };
  records: 'embedded' | 'postgres';
  batch: number;
  written: number;
  recordsPerSec: number;
  batchMs: { p50: number; p95: number; max: number };
  /** CPU of this process (the node's side of each write) per 1,000 records, ms. */
  clientCpuMsPerK: number;
  /** CPU of the database's own processes per 1,000 records, ms (0 when it ran inside this one). */
  databaseCpuMsPerK: number;
}

/** The records one session leaves: what a listener joining and leaving makes. */
function sessionRecords(room: string, n: number): NewRecord[] {
  const peer = `peer-${n}`;
  const identity = `listener-${n}`;
  const quality = (direction: 'recv' | 'send'): NewRecord => ({
    kind: 'quality',
    peer,
    room,
    node: 'bench',
    direction,
    track: 'track-1',
    packetLoss: 0,
    packetsLost: 0,
    jitterMs: 1.5,
    rttMs: 2,
    bitrate: 24_000,
  });
  return [
    { kind: 'session.joined', peer, room, identity, role: 'listener', node: 'bench' },
    { kind: 'event', type: 'join.accepted', room, identity, node: 'bench', data: { peer, ip: '10.0.0.1' } },
    quality('recv'),
    quality('recv'),
    { kind: 'session.left', peer, room, reason: 'left' },
    { kind: 'event', type: 'participant.left', room, identity, node: 'bench', data: { peer, reason: 'left' } },
  ];
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** CPU ticks of the processes serving the database (outside this process), now. */
function databaseTicks(db: SqlDatabase, postgres: PostgresServer | undefined): number {
  const stats = allStats();
  const root = postgres ? postgres.pid : db.server?.pid;
  const roots = root === undefined ? [] : [root];
  return roots.flatMap((pid) => tree(pid, stats)).reduce((sum, s) => sum + s.ticks, 0);
}

async function open(backend: 'embedded' | 'postgres'): Promise<{ db: SqlDatabase; postgres?: PostgresServer; done: () => Promise<void> }> {
  if (backend === 'postgres') {
    const postgres = await startPostgres();
    const db = openPostgres(await postgres.createDatabase('bench'), silent);
    return { db, postgres, done: async () => (await db.close(), await postgres.stop()) };
  }
  const parent = mkdtempSync(join(tmpdir(), 'chorus-bench-records-'));
  const db = await openPglite(join(parent, 'pglite'), silent);
  return { db, done: async () => (await db.close(), rmSync(parent, { recursive: true, force: true })) };
}

function render(runs: RecordsRun[]): string {
  const series = (records: RecordsRun['records'], value: (r: RecordsRun) => number) => ({
    name: records,
    points: runs.filter((r) => r.records === records).map((r) => [r.batch, value(r)] as [number, number]),
  });
  return `<!doctype html><meta charset="utf-8"><title>Chorus: records writes</title>
<body style="font-family:sans-serif">
<h1>Records writes, every run</h1>
${lineChart({ title: 'Records written a second', xLabel: 'records per batch', yLabel: 'records / s', series: [series('embedded', (r) => r.recordsPerSec), series('postgres', (r) => r.recordsPerSec)] })}
${lineChart({ title: "The writer's process: CPU per 1,000 records", xLabel: 'records per batch', yLabel: 'ms', series: [series('embedded', (r) => r.clientCpuMsPerK), series('postgres', (r) => r.clientCpuMsPerK)] })}
<table border="1" cellpadding="4"><tr><th>when</th><th>commit</th><th>note</th><th>records</th><th>batch</th><th>records/s</th><th>batch p50/p95 ms</th><th>writer CPU ms/1k</th><th>database CPU ms/1k</th></tr>
${runs.map((r) => `<tr><td>${r.ts}</td><td>${r.commit ?? ''}</td><td>${r.note ?? ''}</td><td>${r.records}</td><td>${r.batch}</td><td>${r.recordsPerSec}</td><td>${r.batchMs.p50} / ${r.batchMs.p95}</td><td>${r.clientCpuMsPerK}</td><td>${r.databaseCpuMsPerK}</td></tr>`).join('\n')}
</table></body>`;
}

const tickMs = 1000 / clkTck();
for (const backend of backends) {
  log(`opening ${backend}`);
  const { db, postgres, done } = await open(backend);
  try {
    await migrate(db);
    const store = new SqlRecordStore(db);
    for (const batch of batches) {
      const room = `room-${backend}-${batch}`;
      await store.write([stamp({ kind: 'room.opened', room, roomKind: 'broadcast', node: 'bench' })]);
      // Every session's records, stamped as the node would, in the order it makes them.
      const all = Array.from({ length: sessions }, (_, i) => sessionRecords(room, i)).flatMap((rs) => rs.map((r) => stamp(r)));
      const times: number[] = [];
      const cpuBefore = process.cpuUsage();
      const dbBefore = databaseTicks(db, postgres);
      const started = performance.now();
      for (let i = 0; i < all.length; i += batch) {
        const t = performance.now();
        await store.write(all.slice(i, i + batch));
        times.push(performance.now() - t);
      }
      const elapsed = performance.now() - started;
      const cpu = process.cpuUsage(cpuBefore);
      const dbMs = (databaseTicks(db, postgres) - dbBefore) * tickMs;
      times.sort((a, b) => a - b);
      const run: RecordsRun = {
        ts: new Date().toISOString(),
        commit: gitCommit(),
        command: `npm run bench:records -- ${process.argv.slice(2).join(' ')}`.trim(),
        ...(args.note ? { note: args.note } : {}),
        machine: { cpus: cpus().length, model: cpus()[0]?.model ?? 'unknown', node: process.version },
        records: backend,
        batch,
        written: all.length,
        recordsPerSec: Math.round((all.length / elapsed) * 1000),
        batchMs: { p50: round(percentile(times, 50), 2), p95: round(percentile(times, 95), 2), max: round(times.at(-1) ?? 0, 2) },
        clientCpuMsPerK: round(((cpu.user + cpu.system) / 1000 / all.length) * 1000, 1),
        databaseCpuMsPerK: round((dbMs / all.length) * 1000, 1),
      };
      const written = recordRun(args.out, 'records', run, render);
      process.stdout.write(`${JSON.stringify(run)}\n`);
      log(`${backend}, batches of ${batch}: ${run.recordsPerSec} records/s; chart ${written.html}`);
    }
  } finally {
    await done();
  }
}
