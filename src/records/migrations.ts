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
  {
    version: 2,
    name: 'tracks',
    sql: `
      -- The most sessions a room had open at once (any kind; a call's participants).
      ALTER TABLE rooms ADD COLUMN peak_participants integer NOT NULL DEFAULT 0;

      -- One row per published track (a producer): who, which source, when, and a summary of its
      -- quality written when it is unpublished (from the samples below).
      CREATE TABLE tracks (
        id              text PRIMARY KEY,
        room            text NOT NULL,
        session_id      text,
        peer_id         text NOT NULL,
        identity        text NOT NULL,
        source          text NOT NULL,
        kind            text NOT NULL,
        node            text NOT NULL,
        published_at    timestamptz NOT NULL,
        unpublished_at  timestamptz,
        packet_loss     real,
        jitter_ms       real,
        bitrate         bigint,
        rtt_ms          real,
        -- Milliseconds subscribers spent on each spatial layer ({"0": ms, "1": ms, ...}).
        layer_ms        jsonb,
        -- Sampling intervals in which a subscriber's resumed video got no packets or scored 0.
        freezes         integer
      );
      CREATE INDEX tracks_room_published ON tracks (room, published_at);

      -- Consumer samples name the track they carry, the layer sent and whether it froze.
      ALTER TABLE quality_samples ADD COLUMN producer text;
      ALTER TABLE quality_samples ADD COLUMN spatial_layer smallint;
      ALTER TABLE quality_samples ADD COLUMN frozen boolean;
      ALTER TABLE quality_samples ADD COLUMN interval_ms integer;
      CREATE INDEX quality_samples_producer ON quality_samples (producer) WHERE producer IS NOT NULL;
    `,
  },
  {
    version: 3,
    name: 'session layer changes',
    sql: `
      -- How often the videos a session received changed spatial layer (its downlink's story).
      ALTER TABLE sessions ADD COLUMN layer_changes integer NOT NULL DEFAULT 0;
    `,
  },
  {
    version: 4,
    name: 'recordings',
    sql: `
      -- Class recordings: what the admin API lists after any restart (the state store's list is
      -- only the live view). The files stay on the node that wrote them.
      CREATE TABLE recordings (
        id          text PRIMARY KEY,
        tenant      text NOT NULL,
        room        text NOT NULL,
        node        text NOT NULL,
        started_at  timestamptz NOT NULL,
        started_by  text NOT NULL,
        ended_at    timestamptz,
        stopped_by  text
      );
      CREATE INDEX recordings_tenant_started ON recordings (tenant, started_at DESC);
    `,
  },
];
