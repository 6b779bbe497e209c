/**
 * Writes batches of records into the records database, idempotently: events and quality
 * samples are keyed by their record id (ON CONFLICT DO NOTHING); room and session changes are
 * applied only if their id is new to `applied_records`, in the same transaction. A batch
 * delivered twice leaves the database as if it had been delivered once.
 */
import type { SqlDatabase, SqlExecutor } from './sql.js';
import type { RecordingInfo } from '../protocol/room.js';
import { isLifecycle, storable, type ChorusRecord } from './types.js';

export interface RecordStore {
  readonly kind: SqlDatabase['kind'];
  readonly where: string;
  readonly server: SqlDatabase['server'];
  /** Applies `batch` in one transaction, in order; safe to call again with the same records. */
  write(batch: readonly ChorusRecord[]): Promise<void>;
  /** Marks a room archived (rooms are never deleted). False when there is no such room. */
  archiveRoom(roomId: string): Promise<boolean>;
  /** `tenant`'s recordings, the newest first. */
  recordings(tenant: string, limit: number): Promise<RecordingInfo[]>;
  /** Read access for operators and tests. */
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>;
  close(): Promise<void>;
}

type Lifecycle = Extract<ChorusRecord, { kind: `${'room' | 'session' | 'track' | 'recording'}.${string}` }>;
type EventRecord = Extract<ChorusRecord, { kind: 'event' }>;
type QualityRecord = Extract<ChorusRecord, { kind: 'quality' }>;

export class SqlRecordStore implements RecordStore {
  constructor(private readonly db: SqlDatabase) {}

  get kind(): SqlDatabase['kind'] {
    return this.db.kind;
  }

  get where(): string {
    return this.db.where;
  }

  get server(): SqlDatabase['server'] {
    return this.db.server;
  }

  async write(batch: readonly ChorusRecord[]): Promise<void> {
    if (batch.length === 0) return;
    const lifecycle: Lifecycle[] = [];
    const events: EventRecord[] = [];
    const quality: QualityRecord[] = [];
    // The storage boundary: whatever text a record holds, it is stored (see storable).
    for (const record of batch.map(storable)) {
      if (isLifecycle(record)) lifecycle.push(record);
      else if (record.kind === 'event') events.push(record);
      else quality.push(record);
    }
    await this.db.transaction(async (tx) => {
      // Lifecycle first: quality samples name their session through session_peers.
      if (lifecycle.length > 0) {
        const fresh = new Set(
          (
            await tx.query<{ id: string }>(
              'INSERT INTO applied_records (id) SELECT unnest($1::uuid[]) ON CONFLICT (id) DO NOTHING RETURNING id',
              [lifecycle.map((r) => r.id)],
            )
          ).map((r) => r.id),
        );
        const applied = lifecycle.filter((r) => fresh.has(r.id));
        for (const [i, record] of applied.entries()) {
          await applyLifecycle(tx, record);
          if (record.kind === 'session.joined' && peakAfter(applied, i)) await updatePeak(tx, record.room);
        }
      }
      if (events.length > 0) {
        await tx.query(
          `INSERT INTO events (id, at, type, room, identity, node, data)
           SELECT id, to_timestamp(at / 1000.0), type, room, identity, node, data
           FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, at float8, type text, room text, identity text, node text, data jsonb)
           ON CONFLICT (id) DO NOTHING`,
          [JSON.stringify(events.map(({ id, at, type, room, identity, node, data }) => ({ id, at, type, room: room ?? null, identity: identity ?? null, node, data })))],
        );
      }
      if (quality.length > 0) {
        await tx.query(
          `INSERT INTO quality_samples (id, session_id, peer_id, room, node, at, direction, track, packet_loss, packets_lost, jitter_ms, rtt_ms, bitrate,
                                       producer, spatial_layer, frozen, interval_ms)
           SELECT x.id, COALESCE(sp.session_id, x.peer), x.peer, x.room, x.node, to_timestamp(x.at / 1000.0), x.direction, x.track,
                  x."packetLoss", x."packetsLost", x."jitterMs", x."rttMs", x.bitrate, x.producer, x."spatialLayer", x.frozen, x."intervalMs"
           FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, peer text, room text, node text, at float8, direction text, track text,
                "packetLoss" real, "packetsLost" bigint, "jitterMs" real, "rttMs" real, bitrate bigint,
                producer text, "spatialLayer" smallint, frozen boolean, "intervalMs" integer)
           LEFT JOIN session_peers sp ON sp.peer_id = x.peer
           ON CONFLICT (id) DO NOTHING`,
          [JSON.stringify(quality.map(({ kind: _kind, ...rest }) => ({ ...rest, packetsLost: round(rest.packetsLost), bitrate: round(rest.bitrate) })))],
        );
      }
      // After this batch's samples are in: an unpublished track's summary covers all of them.
      for (const record of lifecycle) if (record.kind === 'track.unpublished') await summariseTrack(tx, record.track);
    });
  }

  async recordings(tenant: string, limit: number): Promise<RecordingInfo[]> {
    const rows = await this.db.query<{ id: string; room: string; node: string; started: number; ended: number | null; started_by: string }>(
      `SELECT id, room, node, (extract(epoch FROM started_at) * 1000)::float8 AS started, (extract(epoch FROM ended_at) * 1000)::float8 AS ended, started_by
       FROM recordings WHERE tenant = $1 ORDER BY started_at DESC LIMIT $2`,
      [tenant, limit],
    );
    return rows.map((r) => ({ id: r.id, roomId: r.room, node: r.node, startedAt: Math.round(Number(r.started)), ...(r.ended === null ? {} : { endedAt: Math.round(Number(r.ended)) }), by: r.started_by }));
  }

  async archiveRoom(roomId: string): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE rooms SET status = 'archived', archived_at = now(), ended_at = COALESCE(ended_at, now()) WHERE id = $1 RETURNING id`,
      [roomId],
    );
    return rows.length > 0;
  }

  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]> {
    return this.db.query<R>(text, params);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

function round(value: number | null): number | null {
  return value === null ? null : Math.round(value);
}

/** Sessions open now, across the cluster's nodes (they all write here): the room's peak. */
async function updatePeak(tx: SqlExecutor, room: string): Promise<void> {
  await tx.query(
    `UPDATE rooms SET peak_participants = GREATEST(peak_participants, (SELECT count(*) FROM sessions WHERE room = $1 AND left_at IS NULL)) WHERE id = $1`,
    [room],
  );
}

/**
 * Whether the room's open sessions may peak after the join at `i`: not when the room's
 * next session change in this batch is another join, since within the transaction the count only
 * grows until a leave. Counting once per run of joins instead of once per join matters because
 * the count grows with the room: a ramp of joins costs one count per batch.
 */
function peakAfter(batch: readonly Lifecycle[], i: number): boolean {
  const joined = batch[i]!;
  const room = 'room' in joined ? joined.room : undefined;
  for (let j = i + 1; j < batch.length; j++) {
    const next = batch[j]!;
    if (!('room' in next) || next.room !== room) continue;
    if (next.kind === 'session.joined') return false;
    if (next.kind === 'session.left') return true;
  }
  return true;
}

async function applyLifecycle(tx: SqlExecutor, record: Lifecycle): Promise<void> {
  switch (record.kind) {
    case 'room.opened':
      // A room name used again is open again (and no longer archived).
      await tx.query(
        `INSERT INTO rooms (id, kind, status, created_at, last_node) VALUES ($1, $2, 'open', to_timestamp($3::float8 / 1000.0), $4)
         ON CONFLICT (id) DO UPDATE SET status = 'open', kind = EXCLUDED.kind, ended_at = NULL, archived_at = NULL, last_node = EXCLUDED.last_node`,
        [record.room, record.roomKind, record.at, record.node],
      );
      return;
    case 'room.closed':
      // In a cluster the room may still have sessions on other nodes: it ends with the last one.
      await tx.query(
        `UPDATE rooms SET status = 'ended', ended_at = to_timestamp($2::float8 / 1000.0)
         WHERE id = $1 AND status = 'open'
           AND NOT EXISTS (SELECT 1 FROM sessions WHERE room = $1 AND left_at IS NULL AND node <> $3)`,
        [record.room, record.at, record.node],
      );
      return;
    case 'session.joined': {
      // A connection that resumes an earlier one (same room and identity) continues its session;
      // when the earlier one was on another node, that is a failover, logged as an event.
      const [resumed] = await tx.query<{ session_id: string; node: string }>(
        `SELECT sp.session_id, s.node FROM session_peers sp JOIN sessions s ON s.id = sp.session_id
         WHERE sp.peer_id = $1 AND s.room = $2 AND s.identity = $3`,
        [record.previousPeer ?? null, record.room, record.identity],
      );
      const sessionId = resumed?.session_id ?? record.peer;
      await tx.query(
        `INSERT INTO sessions AS s (id, room, identity, role, node, peer_id, joined_at)
         VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::float8 / 1000.0))
         ON CONFLICT (id) DO UPDATE SET peer_id = EXCLUDED.peer_id, node = EXCLUDED.node, role = EXCLUDED.role,
           left_at = NULL, end_reason = NULL, resumes = s.resumes + 1`,
        [sessionId, record.room, record.identity, record.role, record.node, record.peer, record.at],
      );
      await tx.query('INSERT INTO session_peers (peer_id, session_id) VALUES ($1, $2) ON CONFLICT (peer_id) DO NOTHING', [record.peer, sessionId]);
      if (resumed && resumed.node !== record.node) {
        // The join record's id is unique and applied once: a fine id for the event it implies.
        await tx.query(
          `INSERT INTO events (id, at, type, room, identity, node, data) VALUES ($1, to_timestamp($2::float8 / 1000.0), 'session.failover', $3, $4, $5, $6::jsonb)
           ON CONFLICT (id) DO NOTHING`,
          [record.id, record.at, record.room, record.identity, record.node, JSON.stringify({ session: sessionId, peer: record.peer, previousPeer: record.previousPeer, fromNode: resumed.node, toNode: record.node })],
        );
      }
      return;
    }
    case 'track.published':
      await tx.query(
        `INSERT INTO tracks (id, room, session_id, peer_id, identity, source, kind, node, published_at)
         SELECT $1, $2, (SELECT session_id FROM session_peers WHERE peer_id = $3), $3, $4, $5, $6, $7, to_timestamp($8::float8 / 1000.0)
         ON CONFLICT (id) DO NOTHING`,
        [record.track, record.room, record.peer, record.identity, record.source, record.trackKind, record.node, record.at],
      );
      return;
    case 'recording.started':
      await tx.query(
        `INSERT INTO recordings (id, tenant, room, node, started_at, started_by) VALUES ($1, $2, $3, $4, to_timestamp($5::float8 / 1000.0), $6)
         ON CONFLICT (id) DO NOTHING`,
        [record.recording, record.tenant, record.room, record.node, record.at, record.by],
      );
      return;
    case 'recording.stopped':
      await tx.query(`UPDATE recordings SET ended_at = to_timestamp($2::float8 / 1000.0), stopped_by = $3 WHERE id = $1 AND ended_at IS NULL`, [record.recording, record.at, record.by]);
      return;
    case 'track.unpublished':
      await tx.query(`UPDATE tracks SET unpublished_at = to_timestamp($2::float8 / 1000.0) WHERE id = $1 AND unpublished_at IS NULL`, [record.track, record.at]);
      return;
    case 'session.left':
      // Only the connection the session is on now can end it (an old one noticed late cannot).
      await tx.query(
        `UPDATE sessions SET left_at = to_timestamp($2::float8 / 1000.0), end_reason = $3 WHERE peer_id = $1 AND left_at IS NULL`,
        [record.peer, record.at, record.reason],
      );
      // What each of its connections received counts for the session, a late notice's included.
      if (record.layerChanges) {
        await tx.query(`UPDATE sessions SET layer_changes = layer_changes + $2 WHERE id = (SELECT session_id FROM session_peers WHERE peer_id = $1)`, [record.peer, record.layerChanges]);
      }
      return;
  }
}

/**
 * A track's quality over its life, from the samples: what the node received from its publisher
 * (loss, jitter, bitrate) and what its subscribers got (round trip, time on each spatial layer,
 * freezes).
 */
async function summariseTrack(tx: SqlExecutor, trackId: string): Promise<void> {
  await tx.query(
    `UPDATE tracks t SET
       packet_loss = s.loss, jitter_ms = s.jitter, bitrate = s.bitrate,
       rtt_ms = r.rtt, freezes = r.freezes, layer_ms = l.layers
     FROM (SELECT avg(packet_loss) AS loss, avg(jitter_ms) AS jitter, avg(bitrate)::bigint AS bitrate
             FROM quality_samples WHERE track = $1 AND direction = 'send') s,
          (SELECT avg(rtt_ms) AS rtt, count(*) FILTER (WHERE frozen)::integer AS freezes
             FROM quality_samples WHERE producer = $1) r,
          (SELECT jsonb_object_agg(layer, ms) AS layers
             FROM (SELECT spatial_layer::text AS layer, sum(interval_ms) AS ms FROM quality_samples
                   WHERE producer = $1 AND spatial_layer IS NOT NULL GROUP BY spatial_layer) x) l
     WHERE t.id = $1`,
    [trackId],
  );
}
