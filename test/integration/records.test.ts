/**
 * Records from a live node: a real broadcast (mediasoup, Node WebRTC peers) writing rooms,
 * sessions, audit events and quality samples to a real PostgreSQL and to PGlite, and PostgreSQL
 * dying in the middle of it.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { migrate } from '../../src/records/migrate.js';
import { migrations } from '../../src/records/migrations.js';
import type { Records } from '../../src/records/records.js';
import { openPglite } from '../../src/records/sql.js';
import type { ChorusRecord } from '../../src/records/types.js';
import { hears, joinCallPeer, type CallPeer } from '../support/callPeer.js';
import { palette } from '../support/nodeVideo.js';
import { joinListener, type TestListener } from '../support/listener.js';
import { toneTrack } from '../support/nodePeer.js';
import { freePort } from '../support/ports.js';
import { RawSocket } from '../support/rawSocket.js';
import { startPostgres, type PostgresServer } from '../support/postgresServer.js';
import { nodeClient, startTestNode, tokenFor, until } from '../support/testNode.js';

let server: PostgresServer;
/** Clients and the like, undone after each test before its nodes close. */
const cleanup: Array<() => Promise<unknown> | unknown> = [];
const nodes: ChorusNode[] = [];

beforeAll(async () => {
  server = await startPostgres();
});
afterEach(async () => {
  await undo();
  for (const node of nodes.splice(0)) await node.close();
});

async function undo(): Promise<void> {
  for (const fn of cleanup.splice(0).reverse()) await fn();
}
afterAll(async () => {
  await server?.stop();
});

interface RecordedNode {
  node: ChorusNode;
  records: Records;
  dataDir: string;
  /** Every record the node queued, in order. */
  queued: ChorusRecord[];
}

let pgliteTemplate: string | undefined;

/**
 * A data dir for a node. A fresh PGlite runs initdb in WebAssembly (seconds to tens of seconds
 * on a busy machine), so PGlite nodes start from a copy of one made once for this file.
 */
async function freshDataDir(pglite: boolean): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'chorus-records-'));
  if (!pglite) return dir;
  if (!pgliteTemplate) {
    const template = mkdtempSync(join(tmpdir(), 'chorus-pglite-template-'));
    const db = await openPglite(join(template, 'pglite'));
    await migrate(db);
    await db.close();
    pgliteTemplate = template;
  }
  cpSync(join(pgliteTemplate, 'pglite'), join(dir, 'pglite'), { recursive: true });
  return dir;
}

async function recordingNode(env: Record<string, string>, existingDataDir?: string): Promise<RecordedNode> {
  const dataDir = existingDataDir ?? (await freshDataDir(env['DATABASE_URL'] === undefined));
  const node = await startTestNode({
    CHORUS_RECORDS: 'true',
    CHORUS_DATA_DIR: dataDir,
    CHORUS_RECORDS_FLUSH_MS: '100',
    CHORUS_QUALITY_SAMPLE_MS: '250',
    ...env,
  });
  nodes.push(node);
  const records = node.records!;
  const queued: ChorusRecord[] = [];
  records.on('queued', (r) => queued.push(r));
  return { node, records, dataDir, queued };
}

async function broadcaster(node: ChorusNode, roomId: string): Promise<() => Promise<void>> {
  const tone = toneTrack(1000);
  const client = nodeClient(node, roomId, await tokenFor(node, roomId, 'broadcaster', `imam-${roomId}`));
  await client.join();
  await client.publish(tone.track);
  const stop = async (): Promise<void> => {
    await client.close();
    tone.stop();
  };
  cleanup.push(stop);
  return stop;
}

async function listener(node: ChorusNode, roomId: string): Promise<TestListener> {
  const l = await joinListener(node, roomId);
  cleanup.push(() => l.close());
  return l;
}

function ofKind<K extends ChorusRecord['kind']>(records: ChorusRecord[], kind: K): Array<Extract<ChorusRecord, { kind: K }>> {
  return records.filter((r): r is Extract<ChorusRecord, { kind: K }> => r.kind === kind);
}

/** Every queued record is in the database exactly once, with the session states they imply. */
async function expectExactlyOnce(records: Records, queued: ChorusRecord[]): Promise<void> {
  const q = <R>(sql: string, params?: unknown[]) => records.store.query<R>(sql, params);
  const eventIds = ofKind(queued, 'event').map((r) => r.id);
  const storedEvents = (await q<{ id: string }>(`SELECT id FROM events WHERE type <> 'session.failover'`)).map((r) => r.id);
  expect(storedEvents.length).toBe(eventIds.length);
  expect(new Set(storedEvents)).toEqual(new Set(eventIds));

  const joined = ofKind(queued, 'session.joined');
  const left = new Map(ofKind(queued, 'session.left').map((r) => [r.peer, r.reason]));
  const sessions = await q<{ id: string; identity: string; end_reason: string | null; ended: boolean }>(
    'SELECT id, identity, end_reason, left_at IS NOT NULL AS ended FROM sessions',
  );
  expect(sessions.length).toBe(joined.length);
  expect(new Map(sessions.map((s) => [s.id, { identity: s.identity, reason: s.end_reason, ended: s.ended }]))).toEqual(
    new Map(joined.map((j) => [j.peer, { identity: j.identity, reason: left.get(j.peer) ?? null, ended: left.has(j.peer) }])),
  );
  const [{ n: peers } = { n: 0 }] = await q<{ n: string }>('SELECT count(*) AS n FROM session_peers');
  expect(Number(peers)).toBe(joined.length);

  const samples = ofKind(queued, 'quality').map((r) => r.id);
  const storedSamples = (await q<{ id: string }>('SELECT id FROM quality_samples')).map((r) => r.id);
  expect(storedSamples.length).toBe(samples.length);
  expect(new Set(storedSamples)).toEqual(new Set(samples));
}

describe.each(['postgres', 'pglite'] as const)('a live broadcast recorded in %s', (kind) => {
  test('joins and leaves write rooms, sessions and events; quality samples appear for broadcaster and listeners', async () => {
    const env: Record<string, string> = kind === 'postgres' ? { DATABASE_URL: await server.createDatabase(`live_${Date.now()}`) } : {};
    const { node, records, queued } = await recordingNode(env);
    expect(records.status().backend).toBe(kind);
    const room = `live-${kind}`;
    const stopBroadcast = await broadcaster(node, room);
    const [a, b, c] = await Promise.all([listener(node, room), listener(node, room), listener(node, room)]);
    await Promise.all([a!, b!, c!].map((l) => l.hears(1000)));
    await c!.close();
    // A few sampling rounds with audio flowing.
    await until(async () => {
      await records.flush();
      const rows = await records.store.query<{ direction: string }>(`SELECT direction FROM quality_samples WHERE bitrate > 0 GROUP BY direction`);
      return rows.length === 2;
    }, 15_000, 'quality samples with a bitrate for both directions');
    await Promise.all([a!.close(), b!.close()]);
    await stopBroadcast();
    await until(() => node.rooms.rooms.size === 0, 5000, 'the room to close');
    expect(await records.flush()).toBe(true);

    const q = <R>(sql: string, params?: unknown[]) => records.store.query<R>(sql, params);
    expect(await q('SELECT kind, status, ended_at IS NOT NULL AS ended FROM rooms WHERE id = $1', [room])).toEqual([{ kind: 'broadcast', status: 'ended', ended: true }]);
    const sessions = await q<{ identity: string; role: string; end_reason: string; node: string }>('SELECT identity, role, end_reason, node FROM sessions WHERE room = $1', [room]);
    expect(sessions).toHaveLength(4);
    expect(sessions.filter((s) => s.role === 'listener')).toHaveLength(3);
    expect(sessions.find((s) => s.role === 'broadcaster')).toMatchObject({ identity: `imam-${room}` });
    expect(new Set(sessions.map((s) => s.end_reason))).toEqual(new Set(['left']));
    expect(new Set(sessions.map((s) => s.node))).toEqual(new Set([node.config.nodeId]));
    const types = (await q<{ type: string; n: string }>('SELECT type, count(*) AS n FROM events WHERE room = $1 GROUP BY type', [room])).map((r) => [r.type, Number(r.n)] as const);
    expect(new Map(types)).toEqual(
      new Map([['room.started', 1], ['join.accepted', 4], ['track.published', 1], ['broadcast.started', 1], ['track.unpublished', 1], ['broadcast.stopped', 1], ['participant.left', 4], ['room.finished', 1]]),
    );
    // Samples belong to the sessions they were taken from.
    const perRole = await q<{ role: string; direction: string; loss: number; bitrate: number }>(
      `SELECT s.role, qs.direction, max(qs.packet_loss) AS loss, max(qs.bitrate)::float8 AS bitrate
       FROM quality_samples qs JOIN sessions s ON s.id = qs.session_id GROUP BY s.role, qs.direction ORDER BY 1, 2`,
    );
    expect(perRole.map((r) => [r.role, r.direction])).toEqual([['broadcaster', 'send'], ['listener', 'recv']]);
    for (const row of perRole) expect(row.bitrate).toBeGreaterThan(0);
    // Each committed batch is timed into the database latency histogram at /metrics.
    const metrics = await (await fetch(`${node.url}/metrics`)).text();
    const writes = /chorus_db_query_duration_seconds_count\{[^}]*op="write"[^}]*outcome="ok"[^}]*\} (\d+)/.exec(metrics);
    expect(Number(writes?.[1] ?? 0)).toBeGreaterThan(0);
    await expectExactlyOnce(records, queued);
  });
});

describe.each(['postgres', 'pglite'] as const)('a call recorded in %s', (kind) => {
  test('every track gets a row with its source, times and quality (layers, freezes); the room keeps its peak', async () => {
    const env: Record<string, string> = kind === 'postgres' ? { DATABASE_URL: await server.createDatabase(`call_${Date.now()}`) } : {};
    const { node, records, queued } = await recordingNode({ ...env, RTC_INITIAL_BITRATE: '3000000' });
    const room = `call-${kind}`;
    const colours = [palette.red, palette.green, palette.blue];
    const peers: CallPeer[] = [];
    for (const [i, colour] of colours.entries()) {
      const peer = await joinCallPeer(node, room, `p${i}-${kind}`, 300 + 200 * i, { camera: { colour, width: 640, height: 360 } });
      cleanup.push(() => peer.close());
      peers.push(peer);
    }
    await until(() => peers.every((p) => peers.every((q) => p === q || hears(p, q))), 20_000, 'everyone to hear everyone');
    // Sampling rounds with video flowing: every camera has consumer samples carrying the layer
    // sent (each camera's own, not a total that one busy camera could fill alone).
    await until(async () => {
      await records.flush();
      const [row] = await records.store.query<{ n: string }>('SELECT count(DISTINCT producer) AS n FROM quality_samples WHERE spatial_layer IS NOT NULL AND bitrate > 0');
      return Number(row?.n ?? 0) === 3;
    }, 15_000, 'video samples with a spatial layer for each camera');
    for (const p of peers) await p.close();
    await until(() => node.rooms.rooms.size === 0, 5000, 'the room to close');
    expect(await records.flush()).toBe(true);

    const q = <R>(sql: string, params?: unknown[]) => records.store.query<R>(sql, params);
    expect(await q('SELECT kind, peak_participants FROM rooms WHERE id = $1', [room])).toEqual([{ kind: 'call', peak_participants: 3 }]);
    const tracks = await q<{ identity: string; source: string; kind: string; closed: boolean; session: boolean; bitrate: string | null; loss: number | null; layers: Record<string, number> | null; freezes: number | null }>(
      `SELECT identity, source, kind, unpublished_at > published_at AS closed, session_id IS NOT NULL AS session,
              bitrate::text AS bitrate, packet_loss AS loss, layer_ms AS layers, freezes
       FROM tracks WHERE room = $1 ORDER BY identity, source`,
      [room],
    );
    expect(tracks.map((t) => [t.identity, t.source, t.kind])).toEqual(
      peers.flatMap((p) => [
        [p.identity, 'camera', 'video'],
        [p.identity, 'microphone', 'audio'],
      ]),
    );
    for (const t of tracks) {
      expect(t, `${t.identity} ${t.source}`).toMatchObject({ closed: true, session: true });
      expect(Number(t.bitrate), `${t.identity} ${t.source} bitrate`).toBeGreaterThan(0);
      expect(t.loss).not.toBeNull();
    }
    // Each camera was received by two subscribers; their time on each layer adds up to something.
    for (const t of tracks.filter((x) => x.source === 'camera')) {
      const total = Object.values(t.layers ?? {}).reduce((n, ms) => n + ms, 0);
      expect(total, `${t.identity} layer time`).toBeGreaterThan(0);
      expect(t.freezes).not.toBeNull();
    }
    await expectExactlyOnce(records, queued);
  });
});

describe.each(['postgres', 'pglite'] as const)('abuse limits recorded in %s', (kind) => {
  test('a join-limit flood is stored as limit.exceeded events whose keys are printable (no NUL), none rejected', async () => {
    const env: Record<string, string> = {
      CHORUS_LIMIT_JOINS_PER_IDENTITY_PER_MINUTE: '2',
      CHORUS_LIMIT_JOINS_PER_SHARED_LINK_PER_MINUTE: '2',
      ...(kind === 'postgres' ? { DATABASE_URL: await server.createDatabase(`flood_${Date.now()}`) } : {}),
    };
    const { node, records } = await recordingNode(env);
    const room = `flood-${kind}`;
    const join = async (token: string): Promise<string | undefined> => {
      const socket = await RawSocket.connect(node);
      cleanup.push(() => socket.close());
      return socket.code('join', { roomId: room, token });
    };
    const codes: Array<string | undefined> = [];
    for (let i = 0; i < 4; i++) codes.push(await join(await tokenFor(node, room, 'listener', 'flooder')));
    // A reusable link's joins have their own budget per room, address and link.
    const link = await node.tokens.mint({ room, identity: 'public', role: 'listener', grants: { reusable: true } }, 3600);
    for (let i = 0; i < 3; i++) codes.push(await join(link));
    expect(codes).toEqual([undefined, undefined, 'LIMIT_REACHED', 'LIMIT_REACHED', undefined, undefined, 'LIMIT_REACHED']);
    await until(() => records.flush(), 20_000, 'records to be written');
    expect(records.status()).toMatchObject({ rejected: 0, queued: 0, spilledBytes: 0 });
    const rows = await records.store.query<{ data: { limit: string; key: string } }>(`SELECT data FROM events WHERE type = 'limit.exceeded' ORDER BY at`);
    expect(rows.map((r) => r.data)).toEqual([
      { limit: 'joinsPerIdentity', key: JSON.stringify([room, 'flooder']) },
      { limit: 'joinsPerSharedLink', key: JSON.stringify([room, '127.0.0.1', 'public']) },
    ]);
    for (const { data } of rows) expect(/[\u0000-\u001f\u007f]/.test(data.key)).toBe(false);
  });
});

/**
 * Takes the records database away while joins and leaves go on, returns once writes are seen
 * spilling, and resolves to what gives it back (or waits for it to come back by itself).
 */
type Outage = (node: ChorusNode, records: Records, churned: () => number) => Promise<() => Promise<void>>;

const outages: Record<'postgres' | 'pglite', { env: () => Promise<Record<string, string>>; outage: Outage }> = {
  postgres: {
    env: async () => ({ DATABASE_URL: await server.createDatabase('chaos') }),
    async outage(_node, records, churned) {
      await server.kill();
      let down = true;
      // Should this test fail during the outage, the tests after it still get their database.
      cleanup.push(() => (down ? server.restart() : undefined));
      const killedAt = churned();
      await until(() => churned() >= killedAt + 20 && records.status().spilledBytes > 0, 30_000, 'joins and leaves spilling while PostgreSQL is down');
      expect(records.status().breaker).not.toBe('closed');
      expect(existsSync(records.writer.spillPath) && statSync(records.writer.spillPath).size).toBeGreaterThan(0);
      return async () => {
        await server.restart();
        down = false;
      };
    },
  },
  pglite: {
    env: async () => ({}),
    // The embedded database's process killed outright: the node starts it again by itself.
    async outage(node, records, churned) {
      const { server: before, spilled } = records.status();
      expect(before?.pid).toBeGreaterThan(0);
      process.kill(before!.pid!, 'SIGKILL');
      const killedAt = churned();
      await until(() => churned() >= killedAt + 20 && records.status().spilled > spilled, 30_000, 'joins and leaves spilling while the PGlite process is gone');
      return async () => {
        await until(() => (records.status().server?.restarts ?? 0) >= 1 && records.status().server?.pid !== undefined, 30_000, 'the PGlite process to be started again');
        // What an operator sees: the process, and that it was started again.
        const ready = (await (await fetch(`${node.url}/readyz`)).json()) as { records: { backend: string; server?: { pid: number; restarts: number } } };
        expect(ready.records).toMatchObject({ backend: 'pglite', server: { pid: records.status().server!.pid, restarts: 1 } });
      };
    },
  },
};

describe.each(['postgres', 'pglite'] as const)('the records database (%s) gone during a live broadcast', (kind) => {
test('with joins and leaves: every event and session row arrives exactly once', async () => {
  const { node, records, queued } = await recordingNode({
    ...(await outages[kind].env()),
    // Small, so the outage goes beyond memory and into the spill file.
    CHORUS_RECORDS_QUEUE_MAX: '10',
  });
  const { outage } = outages[kind];
  const room = `chaos-${kind}`;
  await broadcaster(node, room);
  const steady = await listener(node, room);
  await steady.hears(1000);

  let churning = true;
  let cycles = 0;
  // Each join and leave is bounded: one that hangs ends the churn with a message saying which
  // cycle and step, instead of the test's own timeout with PostgreSQL left down.
  const bounded = async <T>(step: Promise<T>, what: string): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`churn cycle ${cycles}: ${what} took over 20 s (records ${JSON.stringify(records.status())})`)), 20_000)));
    try {
      return await Promise.race([step, late]);
    } finally {
      clearTimeout(timer);
    }
  };
  let churnFailed: Error | undefined;
  // Paced at 20 cycles a second (~120 records a second, about what a busy node makes): unpaced
  // on this machine it makes ~360 a second, which the embedded PGlite (its own process, one
  // connection, batches of 10 here) cannot write as fast as they come, and the flush before the
  // outage would then never find the queue empty.
  const paceMs = 50;
  const churn = (async () => {
    while (churning) {
      const started = performance.now();
      const l = await bounded(joinListener(node, room), 'a join');
      await bounded(l.close(), 'a leave');
      cycles++;
      const rest = paceMs - (performance.now() - started);
      if (rest > 0) await new Promise((resolve) => setTimeout(resolve, rest));
    }
  })().catch((error: Error) => {
    churnFailed = error;
    throw error;
  });
  /** Cycles so far; the churn's own failure, should it have failed, is what the waits report. */
  const churned = (): number => {
    if (churnFailed) throw churnFailed;
    return cycles;
  };
  cleanup.push(async () => {
    churning = false;
    await churn.catch(() => undefined);
  });

  await until(() => churned() >= 2, 20_000, 'churn before the outage');
  expect(await records.flush()).toBe(true);
  const back = await outage(node, records, churned);
  await back();
  const restartedAt = cycles;
  await until(() => churned() >= restartedAt + 5, 30_000, 'churn after the database is back');
  churning = false;
  await churn;
  await undo(); // the steady listener and the broadcaster leave
  await until(() => node.rooms.rooms.size === 0, 5000, 'the room to close');
  await until(() => records.flush(), 30_000, 'records to drain after the database came back').catch((error: Error) => {
    throw new Error(`${error.message}: ${JSON.stringify(records.status())}`);
  });

  expect(records.status()).toMatchObject({ queued: 0, spilledBytes: 0, breaker: 'closed', rejected: 0 });
  expect(readFileSync(records.writer.spillPath, 'utf8')).toBe('');
  expect(ofKind(queued, 'session.joined').length).toBeGreaterThanOrEqual(2 + cycles);
  await expectExactlyOnce(records, queued);
  expect(await records.store.query('SELECT status FROM rooms WHERE id = $1', [room])).toEqual([{ status: 'ended' }]);
}, 180_000);
});

test('a node closed while PostgreSQL is down keeps its records in the spill file; the next start drains them', async () => {
  const url = await server.createDatabase('closedown');
  const first = await recordingNode({ DATABASE_URL: url });
  const room = 'closedown';
  await broadcaster(first.node, room);
  const l = await listener(first.node, room);
  await l.hears(1000);
  expect(await first.records.flush()).toBe(true);
  await server.kill();
  await undo();
  await first.node.close();
  const spilled = readFileSync(first.records.writer.spillPath, 'utf8').trim().split('\n');
  expect(spilled.length).toBeGreaterThanOrEqual(4); // two session ends, broadcast.stopped, room closed
  await server.restart();

  const second = await recordingNode({ DATABASE_URL: url }, first.dataDir);
  await until(() => second.records.flush(), 20_000, 'the spill file to drain');
  expect(readFileSync(second.records.writer.spillPath, 'utf8')).toBe('');
  await expectExactlyOnce(second.records, first.queued);
  expect(await second.records.store.query('SELECT status FROM rooms WHERE id = $1', [room])).toEqual([{ status: 'ended' }]);
});

test('PGlite records persist across a node restart in the same data directory', async () => {
  const first = await recordingNode({});
  await broadcaster(first.node, 'persist');
  await undo();
  await first.node.close(); // flushes
  const second = await recordingNode({}, first.dataDir);
  const rows = await second.records.store.query<{ identity: string; end_reason: string }>('SELECT identity, end_reason FROM sessions');
  expect(rows).toEqual([{ identity: 'imam-persist', end_reason: 'left' }]);
  expect(await second.records.store.query('SELECT version FROM schema_migrations ORDER BY version')).toEqual(migrations.map(({ version }) => ({ version })));
});

describe('a bad DATABASE_URL', () => {
  test('that is not a postgres URL is a configuration error', () => {
    expect(() => loadConfig({ DATABASE_URL: 'mysql://db/chorus' })).toThrow(ConfigError);
    expect(() => loadConfig({ DATABASE_URL: 'mysql://db/chorus' })).toThrow(/DATABASE_URL must be a postgres:\/\/ or postgresql:\/\/ URL/);
  });

  test('that nobody answers at stops the node from starting, saying where and why (password masked)', async () => {
    const port = await freePort();
    const start = startTestNode({ CHORUS_RECORDS: 'true', DATABASE_URL: `postgres://chorus:hunter2@127.0.0.1:${port}/chorus` });
    await expect(start).rejects.toThrow(new RegExp(`cannot open the records database \\(postgres://chorus:\\*\\*\\*@127\\.0\\.0\\.1:${port}/chorus\\): .*ECONNREFUSED`));
    await expect(start).rejects.not.toThrow(/hunter2/);
  });

  test('naming a database that does not exist says so', async () => {
    const url = server.url.replace(/\/postgres$/, '/nosuchdb');
    await expect(startTestNode({ CHORUS_RECORDS: 'true', DATABASE_URL: url })).rejects.toThrow(/records database .*database "nosuchdb" does not exist/);
  });
});
