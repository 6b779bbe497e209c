/**
 * The records schema and batch writes against both backends: a real PostgreSQL started for
 * this file and PGlite in a temp dir. Same migrations, same statements, same answers.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { migrate } from '../../src/records/migrate.js';
import { migrations } from '../../src/records/migrations.js';
import { stamp } from '../../src/records/nodeRecorder.js';
import { SqlRecordStore } from '../../src/records/recordStore.js';
import type { ChorusRecord } from '../../src/records/types.js';
import { openPglite, openPostgres, type SqlDatabase } from '../../src/records/sql.js';
import { RecordWriter } from '../../src/records/writer.js';
import { startPostgres, type PostgresServer } from '../support/postgresServer.js';

const log = createLogger('silent', 'test');
let server: PostgresServer;
const open: SqlDatabase[] = [];
let pgliteDir: string;
let databases = 0;

beforeAll(async () => {
  server = await startPostgres();
  pgliteDir = mkdtempSync(join(tmpdir(), 'chorus-pglite-'));
});
afterAll(async () => {
  for (const db of open.splice(0)) await db.close().catch(() => undefined);
  await server?.stop();
});

/** A fresh PostgreSQL database, or the file's one PGlite (PGlite costs seconds to create). */
async function database(kind: 'postgres' | 'pglite'): Promise<SqlDatabase> {
  if (kind === 'pglite') {
    // One PGlite at a time may own a directory: close the previous handle first.
    for (const db of open.splice(0).filter((d) => d.kind === 'pglite')) await db.close();
    const db = await openPglite(pgliteDir);
    open.push(db);
    return db;
  }
  const db = openPostgres(await server.createDatabase(`t${++databases}`), log);
  open.push(db);
  return db;
}

async function count(db: SqlDatabase, sql: string, params: unknown[] = []): Promise<number> {
  const [row] = await db.query<{ n: string | number }>(`SELECT count(*) AS n FROM ${sql}`, params);
  return Number(row!.n);
}

describe.each(['postgres', 'pglite'] as const)('records store on %s', (kind) => {
  test('migrations apply on first start, are recorded, and running them again changes nothing', async () => {
    const db = await database(kind);
    await db.exec('DROP TABLE IF EXISTS schema_migrations, rooms, sessions, session_peers, events, quality_samples, applied_records, tracks, recordings');
    expect(await migrate(db)).toEqual({ applied: migrations.map((m) => m.version) });
    expect(await migrate(db)).toEqual({ applied: [] });
    const tables = (await db.query<{ table_name: string }>(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`)).map((r) => r.table_name);
    expect(tables).toEqual(['applied_records', 'events', 'quality_samples', 'recordings', 'rooms', 'schema_migrations', 'session_peers', 'sessions', 'tracks']);
    expect(await count(db, 'schema_migrations')).toBe(migrations.length);
  });

  test('a batch delivered twice is applied once; a resumed session stays one row; a move to another node is a failover event', async () => {
    const db = await database(kind);
    await migrate(db);
    const store = new SqlRecordStore(db);
    const room = `r-${kind}`;
    const t = 1_700_000_000_000;
    const joinedP = stamp({ kind: 'session.joined', peer: 'P', room, identity: 'amina', role: 'listener', node: 'A' }, t + 1);
    const first = [
      stamp({ kind: 'room.opened', room, roomKind: 'broadcast', node: 'A' }, t),
      joinedP,
      stamp({ kind: 'event', type: 'join.accepted', room, identity: 'amina', node: 'A', data: { peer: 'P', ip: '10.0.0.1' } }, t + 2),
      stamp({ kind: 'quality', peer: 'P', room, node: 'A', direction: 'recv', track: 'c1', packetLoss: 0.01, packetsLost: 3, jitterMs: null, rttMs: 12.5, bitrate: 24_100 }, t + 3),
    ];
    await store.write(first);
    await store.write(first);
    // Node A died; the client resumes on node B naming its old connection. A's late notice
    // that P dropped must not end the session Q now carries.
    const second = [
      stamp({ kind: 'room.opened', room, roomKind: 'broadcast', node: 'B' }, t + 10),
      stamp({ kind: 'session.joined', peer: 'Q', previousPeer: 'P', room, identity: 'amina', role: 'listener', node: 'B' }, t + 11),
      stamp({ kind: 'session.left', peer: 'P', room, reason: 'dropped', layerChanges: 3 }, t + 12),
      // Someone else naming P as their previous connection does not take the session over.
      stamp({ kind: 'session.joined', peer: 'R', previousPeer: 'P', room, identity: 'mallory', role: 'listener', node: 'B' }, t + 13),
    ];
    await store.write(second);
    await store.write([...first, ...second]);
    const open = await db.query<{ id: string; node: string; peer_id: string; resumes: number; left_at: Date | null }>(
      'SELECT id, node, peer_id, resumes, left_at FROM sessions ORDER BY id',
    );
    expect(open).toEqual([
      { id: 'P', node: 'B', peer_id: 'Q', resumes: 1, left_at: null },
      { id: 'R', node: 'B', peer_id: 'R', resumes: 0, left_at: null },
    ]);
    const third = [
      stamp({ kind: 'session.left', peer: 'Q', room, reason: 'left', layerChanges: 2 }, t + 20),
      stamp({ kind: 'session.left', peer: 'R', room, reason: 'kicked' }, t + 21),
      stamp({ kind: 'room.closed', room, node: 'B' }, t + 22),
    ];
    await store.write(third);
    await store.write(third);

    const sessions = await db.query<{ id: string; end_reason: string; left_ms: number; joined_ms: number }>(
      `SELECT id, end_reason, extract(epoch FROM left_at) * 1000 AS left_ms, extract(epoch FROM joined_at) * 1000 AS joined_ms FROM sessions ORDER BY id`,
    );
    expect(sessions.map((s) => [s.id, s.end_reason, Math.round(Number(s.left_ms)), Math.round(Number(s.joined_ms))])).toEqual([
      ['P', 'left', t + 20, t + 1],
      ['R', 'kicked', t + 21, t + 13],
    ]);
    // The layer changes of both its connections, each counted once however often delivered.
    expect(await db.query('SELECT id, layer_changes FROM sessions ORDER BY id')).toEqual([
      { id: 'P', layer_changes: 5 },
      { id: 'R', layer_changes: 0 },
    ]);
    expect(await db.query('SELECT peer_id, session_id FROM session_peers ORDER BY peer_id')).toEqual([
      { peer_id: 'P', session_id: 'P' },
      { peer_id: 'Q', session_id: 'P' },
      { peer_id: 'R', session_id: 'R' },
    ]);
    const events = await db.query<{ type: string; data: Record<string, unknown> }>('SELECT type, data FROM events ORDER BY at');
    expect(events).toEqual([
      { type: 'join.accepted', data: { peer: 'P', ip: '10.0.0.1' } },
      { type: 'session.failover', data: { session: 'P', peer: 'Q', previousPeer: 'P', fromNode: 'A', toNode: 'B' } },
    ]);
    const [sample] = await db.query<{ session_id: string; packet_loss: number; packets_lost: string | number; rtt_ms: number; bitrate: string | number }>(
      'SELECT session_id, packet_loss, packets_lost, rtt_ms, bitrate FROM quality_samples',
    );
    expect(await count(db, 'quality_samples')).toBe(1);
    expect({ ...sample, packets_lost: Number(sample!.packets_lost), bitrate: Number(sample!.bitrate) }).toEqual({
      session_id: 'P',
      packet_loss: expect.closeTo(0.01, 5),
      packets_lost: 3,
      rtt_ms: 12.5,
      bitrate: 24_100,
    });
    expect(await db.query('SELECT status, last_node FROM rooms WHERE id = $1', [room])).toEqual([{ status: 'ended', last_node: 'B' }]);
    expect(await count(db, 'applied_records')).toBe([...first, ...second, ...third].filter((r) => r.kind !== 'event' && r.kind !== 'quality').length);
  });

  test('a room is archived, never deleted, and opens again when its name is used again', async () => {
    const db = await database(kind);
    await migrate(db);
    const store = new SqlRecordStore(db);
    const room = `arch-${kind}`;
    await store.write([stamp({ kind: 'room.opened', room, roomKind: 'broadcast', node: 'A' }), stamp({ kind: 'room.closed', room, node: 'A' })]);
    expect(await store.archiveRoom(room)).toBe(true);
    expect(await store.archiveRoom('no-such-room')).toBe(false);
    const [archived] = await db.query<{ status: string; archived: boolean; ended: boolean }>(
      'SELECT status, archived_at IS NOT NULL AS archived, ended_at IS NOT NULL AS ended FROM rooms WHERE id = $1',
      [room],
    );
    expect(archived).toEqual({ status: 'archived', archived: true, ended: true });
    await store.write([stamp({ kind: 'room.opened', room, roomKind: 'broadcast', node: 'B' })]);
    expect(await db.query('SELECT status, archived_at FROM rooms WHERE id = $1', [room])).toEqual([{ status: 'open', archived_at: null }]);
  });

  test('text PostgreSQL cannot hold (NUL, unpaired surrogates) is stored, not rejected: it reads back with U+FFFD', async () => {
    const db = await database(kind);
    await migrate(db);
    const dir = mkdtempSync(join(tmpdir(), 'chorus-writer-'));
    const writer = new RecordWriter(new SqlRecordStore(db), { flushMs: 60_000, queueMax: 100, spillPath: join(dir, 'spill.jsonl'), rejectedPath: join(dir, 'rejected.jsonl') }, log);
    const room = `nul-${kind}`;
    const odd = 'a\u0000b\ud800c\udfffd';
    const peer = `${room}-p`;
    const records = [
      stamp({ kind: 'room.opened', room, roomKind: 'broadcast', node: 'A' }),
      stamp({ kind: 'session.joined', peer, room, identity: odd, role: 'listener', node: 'A' }),
      stamp({ kind: 'event', type: 'limit.exceeded', room, identity: odd, node: 'A', data: { key: `${room}\u0000${odd}`, [`k\u0000${'\ud83c'}`]: [odd, { deep: odd }], fine: '🎤 أمينة' } }),
      stamp({ kind: 'session.left', peer, room, reason: `left\u0000${'\udc00'}` }),
    ];
    for (const record of records) writer.enqueue(record);
    expect(await writer.flush()).toBe(true);
    await writer.close(1000);
    expect(writer.status()).toMatchObject({ written: records.length, rejected: 0 });
    expect(existsSync(join(dir, 'rejected.jsonl')) ? 'rejected file written' : 'no rejected file').toBe('no rejected file');
    const stored = 'a\uFFFDb\uFFFDc\uFFFDd';
    expect(await db.query('SELECT identity, end_reason FROM sessions WHERE id = $1', [peer])).toEqual([{ identity: stored, end_reason: 'left\uFFFD\uFFFD' }]);
    expect(await db.query('SELECT identity, data FROM events WHERE room = $1', [room])).toEqual([
      { identity: stored, data: { key: `${room}\uFFFD${stored}`, 'k\uFFFD\uFFFD': [stored, { deep: stored }], fine: '🎤 أمينة' } },
    ]);
  });

  test('a room still in use on another node stays open when one node closes it', async () => {
    const db = await database(kind);
    await migrate(db);
    const store = new SqlRecordStore(db);
    const room = `shared-${kind}`;
    await store.write([
      stamp({ kind: 'room.opened', room, roomKind: 'broadcast', node: 'A' }),
      stamp({ kind: 'room.opened', room, roomKind: 'broadcast', node: 'B' }),
      stamp({ kind: 'session.joined', peer: `${room}-b1`, room, identity: 'x', role: 'listener', node: 'B' }),
      stamp({ kind: 'room.closed', room, node: 'A' }),
    ]);
    expect(await db.query('SELECT status FROM rooms WHERE id = $1', [room])).toEqual([{ status: 'open' }]);
    await store.write([stamp({ kind: 'session.left', peer: `${room}-b1`, room, reason: 'left' }), stamp({ kind: 'room.closed', room, node: 'B' })]);
    expect(await db.query('SELECT status FROM rooms WHERE id = $1', [room])).toEqual([{ status: 'ended' }]);
  });
});

test('two nodes migrating a fresh PostgreSQL at the same moment: one applies, the other finds it done', async () => {
  const url = await server.createDatabase('concurrent');
  const a = openPostgres(url, log);
  const b = openPostgres(url, log);
  open.push(a, b);
  const results = await Promise.all([migrate(a), migrate(b)]);
  expect(results.map((r) => r.applied).sort()).toEqual([[], migrations.map((m) => m.version)]);
  expect(await count(a, 'schema_migrations')).toBe(migrations.length);
});

test('a PGlite database keeps its rows when reopened from the same directory', async () => {
  const db = await database('pglite');
  await migrate(db);
  await new SqlRecordStore(db).write([stamp({ kind: 'event', type: 'persisted', node: 'n', data: {} })]);
  const reopened = await database('pglite');
  expect(await migrate(reopened)).toEqual({ applied: [] });
  expect(await count(reopened, "events WHERE type = 'persisted'")).toBe(1);
});

test('a PGlite directory another process has open is refused with a clear error, and opens once it is closed', async () => {
  const db = await database('pglite');
  // A second handle on the same directory would see only its own writes and lose rows on close.
  await expect(openPglite(pgliteDir, undefined, 0)).rejects.toThrow(/in use by another Chorus process: give each node its own CHORUS_DATA_DIR/);
  // The first handle is untouched by the attempt.
  await migrate(db);
  await new SqlRecordStore(db).write([stamp({ kind: 'event', type: 'kept-open', node: 'n', data: {} })]);
  expect(await count(db, "events WHERE type = 'kept-open'")).toBe(1);
  const reopened = await database('pglite');
  expect(await count(reopened, "events WHERE type = 'kept-open'")).toBe(1);
});

describe.each(['postgres', 'pglite'] as const)('track records on %s', (kind) => {
  test('a track delivered twice is one row; its summary comes from its samples: loss, layers, freezes', async () => {
    // Peer ids of their own: the file's other tests share this database.
    const db = await database(kind);
    await migrate(db);
    const store = new SqlRecordStore(db);
    const room = `tr-${kind}`;
    const t = 1_700_000_000_000;
    const opened = stamp({ kind: 'room.opened', room, roomKind: 'call', node: 'A' }, t);
    const joined = stamp({ kind: 'session.joined', peer: 'TP', room, identity: 'amina', role: 'participant', node: 'A' }, t + 1);
    const joined2 = stamp({ kind: 'session.joined', peer: 'TQ', room, identity: 'bilal', role: 'participant', node: 'A' }, t + 2);
    const published = stamp({ kind: 'track.published', track: 'cam', peer: 'TP', room, identity: 'amina', source: 'camera', trackKind: 'video', node: 'A' }, t + 3);
    const sample = (at: number, over: Partial<Extract<ChorusRecord, { kind: 'quality' }>>): ChorusRecord =>
      stamp({ kind: 'quality', peer: 'TQ', room, node: 'A', direction: 'recv', track: 'consumer-1', packetLoss: 0, packetsLost: 0, jitterMs: null, rttMs: 20, bitrate: 300_000, producer: 'cam', intervalMs: 1000, ...over }, at);
    const samples = [
      stamp({ kind: 'quality', peer: 'TP', room, node: 'A', direction: 'send', track: 'cam', packetLoss: 0.02, packetsLost: 3, jitterMs: 4, rttMs: null, bitrate: 900_000 }, t + 4),
      sample(t + 5, { spatialLayer: 0, frozen: false }),
      sample(t + 6, { spatialLayer: 2, frozen: false }),
      sample(t + 7, { spatialLayer: 2, frozen: true }),
    ];
    const unpublished = stamp({ kind: 'track.unpublished', track: 'cam', room }, t + 8);
    const batch = [opened, joined, joined2, published, ...samples, unpublished];
    await store.write(batch);
    await store.write(batch);
    const rows = await db.query<Record<string, unknown>>(
      'SELECT id, session_id, source, kind, unpublished_at IS NOT NULL AS closed, packet_loss, jitter_ms, bitrate::int AS bitrate, rtt_ms, layer_ms, freezes FROM tracks',
    );
    expect(rows).toEqual([
      { id: 'cam', session_id: 'TP', source: 'camera', kind: 'video', closed: true, packet_loss: expect.closeTo(0.02, 5), jitter_ms: 4, bitrate: 900_000, rtt_ms: 20, layer_ms: { '0': 1000, '2': 2000 }, freezes: 1 },
    ]);
    expect(await db.query('SELECT peak_participants FROM rooms WHERE id = $1', [room])).toEqual([{ peak_participants: 2 }]);
  });
});

describe.each(['postgres', 'pglite'] as const)('a room\'s peak on %s', (kind) => {
  test('is the most sessions open at once, counted once per run of joins in a batch', async () => {
    const db = await database(kind);
    await migrate(db);
    // The same database, counting the statements that count the room's open sessions.
    let counts = 0;
    const counting: SqlDatabase = {
      ...db,
      transaction: (fn) =>
        db.transaction((tx) =>
          fn({
            query: (text, params) => {
              if (text.includes('peak_participants')) counts++;
              return tx.query(text, params);
            },
            exec: (text) => tx.exec(text),
          }),
        ),
    };
    const store = new SqlRecordStore(counting);
    const room = `peak-${kind}`;
    const peak = async (): Promise<number> => Number((await db.query<{ p: number }>('SELECT peak_participants AS p FROM rooms WHERE id = $1', [room]))[0]!.p);
    const t = 1_700_000_000_000;
    let at = t;
    const join = (peer: string): ChorusRecord => stamp({ kind: 'session.joined', peer, room, identity: peer, role: 'listener', node: 'A' }, ++at);
    const leave = (peer: string): ChorusRecord => stamp({ kind: 'session.left', peer, room, reason: 'left' }, ++at);
    await store.write([stamp({ kind: 'room.opened', room, roomKind: 'broadcast', node: 'A' }, t)]);

    // A ramp: fifty joins in one batch are one count.
    await store.write(Array.from({ length: 50 }, (_, i) => join(`r${i}`)));
    expect(await peak()).toBe(50);
    expect(counts).toBe(1);

    // The peak inside a batch is kept although the batch ends lower: three more join, all leave.
    counts = 0;
    await store.write([join('a'), join('b'), join('c'), ...Array.from({ length: 50 }, (_, i) => leave(`r${i}`)), leave('a'), join('d'), leave('b')]);
    expect(await peak()).toBe(53);
    expect(counts).toBe(2);
    expect(await db.query<{ n: string }>('SELECT count(*)::int AS n FROM sessions WHERE room = $1 AND left_at IS NULL', [room])).toEqual([{ n: 2 }]);
  });
});

describe.each(['postgres', 'pglite'] as const)('recording records on %s', (kind) => {
  test('a recording delivered twice is one row, listed for its tenant only, the newest first, ended once', async () => {
    const db = await database(kind);
    await migrate(db);
    const store = new SqlRecordStore(db);
    const t = 1_700_000_000_000;
    const first = stamp({ kind: 'recording.started', recording: `rec-1-${kind}`, tenant: `school-${kind}`, room: 'maths', node: 'A', by: 'teacher' }, t);
    const second = stamp({ kind: 'recording.started', recording: `rec-2-${kind}`, tenant: `school-${kind}`, room: 'physics', node: 'B', by: 'always' }, t + 10_000);
    const foreign = stamp({ kind: 'recording.started', recording: `rec-3-${kind}`, tenant: `other-${kind}`, room: 'maths', node: 'A', by: 'teacher' }, t + 20_000);
    const stopped = stamp({ kind: 'recording.stopped', recording: `rec-1-${kind}`, by: 'teacher' }, t + 5_000);
    // A second stop (a late duplicate from another path) does not move its end.
    const stoppedAgain = stamp({ kind: 'recording.stopped', recording: `rec-1-${kind}`, by: 'node closing' }, t + 9_000);
    const batch = [first, second, foreign, stopped, stoppedAgain];
    await store.write(batch);
    await store.write(batch);
    expect(await store.recordings(`school-${kind}`, 10)).toEqual([
      { id: `rec-2-${kind}`, roomId: 'physics', node: 'B', startedAt: t + 10_000, by: 'always' },
      { id: `rec-1-${kind}`, roomId: 'maths', node: 'A', startedAt: t, endedAt: t + 5_000, by: 'teacher' },
    ]);
    expect(await store.recordings(`school-${kind}`, 1)).toHaveLength(1);
    expect(await db.query('SELECT stopped_by FROM recordings WHERE id = $1', [`rec-1-${kind}`])).toEqual([{ stopped_by: 'teacher' }]);
  });
});
