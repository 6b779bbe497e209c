/**
 * The records schema, as versioned migrations. Both backends (PostgreSQL, PGlite) run exactly
 * these. A migration is never edited once released: add the next number instead.
 *
 * Kept as TypeScript constants rather than .sql files so the compiled server carries them
 * without a copy step.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'initial',
    sql: `
      -- One row per room name. Rooms are archived (status 'archived'), never deleted.
      CREATE TABLE rooms (
        id          text PRIMARY KEY,
        kind        text NOT NULL,
        status      text NOT NULL CHECK (status IN ('open', 'ended', 'archived')),
        created_at  timestamptz NOT NULL,
        ended_at    timestamptz,
        archived_at timestamptz,
        last_node   text NOT NULL
      );

      -- One row per session: the id is the peer id of its first connection; a connection that
      -- resumes it (SDK reconnect, node failover) updates this row instead of adding one.
      CREATE TABLE sessions (
        id          text PRIMARY KEY,
        room        text NOT NULL,
        identity    text NOT NULL,
        role        text NOT NULL,
        node        text NOT NULL,
        peer_id     text NOT NULL,
        resumes     integer NOT NULL DEFAULT 0,
        joined_at   timestamptz NOT NULL,
        left_at     timestamptz,
        end_reason  text
      );
      CREATE INDEX sessions_room_joined ON sessions (room, joined_at);
      CREATE INDEX sessions_peer ON sessions (peer_id);
      CREATE INDEX sessions_open ON sessions (room) WHERE left_at IS NULL;

      -- Every connection (peer id) and the session it belongs to.
      CREATE TABLE session_peers (
        peer_id     text PRIMARY KEY,
        session_id  text NOT NULL
      );
      CREATE INDEX session_peers_session ON session_peers (session_id);

      -- Append-only audit log.
      CREATE TABLE events (
        id        uuid PRIMARY KEY,
        at        timestamptz NOT NULL,
        type      text NOT NULL,
        room      text,
        identity  text,
        node      text NOT NULL,
        data      jsonb NOT NULL
      );
      CREATE INDEX events_room_at ON events (room, at);
      CREATE INDEX events_type_at ON events (type, at);

      CREATE TABLE quality_samples (
        id           uuid PRIMARY KEY,
        session_id   text NOT NULL,
        peer_id      text NOT NULL,
        room         text NOT NULL,
        node         text NOT NULL,
        at           timestamptz NOT NULL,
        direction    text NOT NULL CHECK (direction IN ('send', 'recv')),
        track        text NOT NULL,
        packet_loss  real,
        packets_lost bigint,
        jitter_ms    real,
        rtt_ms       real,
        bitrate      bigint
      );
      CREATE INDEX quality_samples_session_at ON quality_samples (session_id, at);

      -- Ids of room/session changes already applied, so a re-delivered one is skipped.
      CREATE TABLE applied_records (
        id          uuid PRIMARY KEY,
        applied_at  timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
];
