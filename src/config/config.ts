/**
 * Node configuration, read once from the environment and validated. Everything has an embedded
 * default so `npm start` on a laptop works with no settings at all.
 */
import type { RecordingSettings } from '../recording/recordings.js';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { networkInterfaces, availableParallelism } from 'node:os';
import { z } from 'zod';
import type { LimitSettings } from '../limits/limits.js';
import { ApiKeyring } from '../auth/apiKeys.js';
import type { TurnSettings } from '../auth/turn.js';
import type { TransportSettings } from '../media/roomMedia.js';
import type { WatchSettings } from '../watch/watchService.js';
import type { RecordsSettings } from '../records/records.js';
import type { HlsSettings } from '../hls/settings.js';
import { parseRedisUrl, usesTls } from '../store/redisConnection.js';

function redisUrlUsesTls(url: string): boolean {
  try {
    return usesTls(parseRedisUrl(url));
  } catch {
    return false; // REDIS_URL's own check reports it
  }
}

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const port = z.coerce.number().int().min(1).max(65535);

export const envSchema = z
  .object({
    CHORUS_HOST: z.string().default('0.0.0.0'),
    CHORUS_PORT: z.coerce.number().int().min(0).max(65535).default(3000),
    CHORUS_NODE_ID: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).optional(),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

    /**
     * API keys that sign room tokens: `id:secret,id2:secret2` (secrets ≥ 32 chars; the first signs
     * new tokens). Unset: a development key is created in CHORUS_DATA_DIR and demo minting is on.
     */
    CHORUS_API_KEYS: z.string().optional(),
    /** One secret instead of a key list (key id `default`). */
    CHORUS_TOKEN_SECRET: z.string().min(32, 'CHORUS_TOKEN_SECRET must be at least 32 characters').optional(),
    /** Let the home page mint tokens (a demo convenience; off when keys are configured, unless asked). */
    CHORUS_DEMO: bool.optional(),
    /** Where embedded defaults keep state between runs (the development API key). */
    CHORUS_DATA_DIR: z.string().default('.data'),
    /** Default lifetime of a join token: short, since it only has to reach the join. */
    CHORUS_TOKEN_TTL_SECONDS: z.coerce.number().int().min(10).max(7 * 24 * 3600).default(600),
    /** The longest lifetime a token may be minted with (public listening links). */
    CHORUS_TOKEN_MAX_TTL_SECONDS: z.coerce.number().int().min(60).max(365 * 24 * 3600).default(7 * 24 * 3600),
    /** Lifetime of the resume token a session gets on join, to reconnect as itself. */
    CHORUS_RESUME_TTL_SECONDS: z.coerce.number().int().min(60).default(24 * 3600),

    MEDIASOUP_WORKERS: z.coerce.number().int().min(1).max(256).optional(),
    MEDIASOUP_LOG_LEVEL: z.enum(['debug', 'warn', 'error', 'none']).default('warn'),
    /** Consumers one worker should carry before a broadcast fans out to another worker. */
    CHORUS_MAX_CONSUMERS_PER_WORKER: z.coerce.number().int().min(1).default(500),

    /** IP the RTC sockets bind to. */
    RTC_LISTEN_IP: z.string().default('0.0.0.0'),
    /** Address put in ICE candidates: the one clients can reach. Default: first LAN IPv4. */
    RTC_ANNOUNCED_ADDRESS: z.string().optional(),
    RTC_MIN_PORT: port.default(40000),
    /**
     * When set, worker i listens on this port + i (UDP, and TCP when enabled) with one mediasoup
     * WebRtcServer, and every WebRTC transport on it shares that port, instead of each taking its
     * own from RTC_MIN_PORT..RTC_MAX_PORT. One port per worker to open in a firewall or a pod spec.
     */
    RTC_SERVER_PORT: port.optional(),
    RTC_MAX_PORT: port.default(49999),
    RTC_ENABLE_TCP: bool.default(true),
    RTC_ENABLE_UDP: bool.default(true),
    RTC_INITIAL_BITRATE: z.coerce.number().int().min(16000).default(600_000),
    RTC_MIN_BITRATE: z.coerce.number().int().min(0).default(0),

    /** Opus target for speech (kbit/s average). 16-32 is the useful range for one voice. */
    CHORUS_OPUS_BITRATE: z.coerce.number().int().min(16000).max(32000).default(24000),
    /**
     * Audio per packet a broadcaster sends, ms (Opus frame sizes libwebrtc encodes: 10, 20, 40,
     * 60). A broadcast is one-way, so it trades that much delay for a third of the packets at 60:
     * every listener's link carries a third of the headers and the node does a third of the
     * per-listener work. Calls and classes stay at 20 (people answer each other there).
     */
    CHORUS_BROADCAST_FRAME_MS: z.coerce
      .number()
      .int()
      .refine((ms) => [10, 20, 40, 60].includes(ms), 'must be 10, 20, 40 or 60')
      .default(60),
    /** How often, at most, each room's listener count is pushed to its clients. */
    CHORUS_COUNT_INTERVAL_MS: z.coerce.number().int().min(100).max(60_000).default(1000),
    /** Per-room listener cap on this node (a later cluster issue lifts this across nodes). */
    CHORUS_MAX_PEERS_PER_ROOM: z.coerce.number().int().min(1).default(10_000),
    /** Participants one call admits; the next join gets LIMIT_REACHED. */
    CHORUS_CALL_MAX_PARTICIPANTS: z.coerce.number().int().min(2).max(1000).default(50),
    /** Students one class admits (its teachers and assistants are counted apart); the next gets ROOM_FULL. */
    CHORUS_CLASS_MAX_STUDENTS: z.coerce.number().int().min(1).max(100_000).default(1000),
    /** Students a class holds on stage (invited or on) at once; the next invite gets STAGE_FULL. */
    CHORUS_CLASS_MAX_STAGE: z.coerce.number().int().min(1).max(50).default(6),
    /** manual: teachers start and stop recording the stage; always: every class is recorded; off. */
    CHORUS_CLASS_RECORD: z.enum(['off', 'manual', 'always']).default('manual'),
    /** A recording's ffmpeg sent media this long without writing a segment is hung: killed and run again. */
    CHORUS_RECORDING_STALL_MS: z.coerce.number().int().min(2000).max(600_000).default(15_000),
    /** Where class recordings are written (HLS: live while recording, then the replay); default <CHORUS_DATA_DIR>/recordings. */
    CHORUS_RECORDINGS_DIR: z.string().optional(),
    /** auto: a call of two clients that can goes peer-to-peer; off: calls always use the SFU. */
    CHORUS_CALL_P2P: z.enum(['auto', 'off']).default('auto'),
    /** Back to two after three or more: how long before the call returns to peer-to-peer. */
    CHORUS_CALL_P2P_BACK_MS: z.coerce.number().int().min(0).max(600_000).default(5000),
    /** A session whose media transport stays unconnected (never, or ICE lost) this long is removed. 0: never. */
    CHORUS_STALE_PEER_MS: z.coerce.number().int().min(0).max(3_600_000).default(45_000),
    /** A room where nobody publishes for this long is ended (listeners may wait for a broadcast). 0: never. */
    CHORUS_ROOM_IDLE_MS: z.coerce.number().int().min(0).default(6 * 3600_000),

    /** Comma-separated URLs that receive signed webhooks (room, participant, broadcast events). */
    CHORUS_WEBHOOK_URLS: z.string().optional(),
    /** Deliveries tried per webhook before it is recorded as failed. */
    CHORUS_WEBHOOK_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(6),
    /** Per-attempt timeout of a webhook delivery. */
    CHORUS_WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(5000),
    /** First retry delay of a webhook; each later one doubles, up to 30 s. */
    CHORUS_WEBHOOK_BACKOFF_MS: z.coerce.number().int().min(10).max(60_000).default(500),

    /** Believe X-Forwarded-For for client addresses (only behind a proxy you run). */
    CHORUS_TRUST_PROXY: bool.default(false),
    /** Comma-separated origins allowed to call the API and open signaling. Unset: any origin. */
    CHORUS_CORS_ORIGINS: z.string().optional(),
    /** Serve HTTPS directly (no proxy): PEM certificate chain and key paths. */
    CHORUS_TLS_CERT: z.string().optional(),
    CHORUS_TLS_KEY: z.string().optional(),

    CHORUS_LIMIT_HTTP_PER_IP_PER_MINUTE: z.coerce.number().int().min(1).default(1200),
    CHORUS_LIMIT_MESSAGES_PER_CONNECTION_PER_SECOND: z.coerce.number().int().min(1).default(50),
    /** Beyond the steady rate, per 10 s: a joiner subscribing to every track of a full call at once. */
    CHORUS_LIMIT_MESSAGE_BURST_PER_CONNECTION: z.coerce.number().int().min(0).default(300),
    CHORUS_LIMIT_MESSAGES_PER_IP_PER_SECOND: z.coerce.number().int().min(1).default(2000),
    CHORUS_LIMIT_JOINS_PER_IDENTITY_PER_MINUTE: z.coerce.number().int().min(1).default(30),
    /**
     * Joins through one reusable (shared) link per address: a venue's Wi-Fi at prayer time or a
     * carrier NAT puts hundreds of people behind one address; the room's capacity is the real bound.
     */
    CHORUS_LIMIT_JOINS_PER_SHARED_LINK_PER_MINUTE: z.coerce.number().int().min(1).default(600),
    CHORUS_LIMIT_JOINS_PER_ROOM_PER_SECOND: z.coerce.number().int().min(1).default(200),
    CHORUS_LIMIT_TRACK_CONTROLS_PER_SECOND: z.coerce.number().int().min(1).default(30),
    CHORUS_LIMIT_TRACK_CONTROL_BURST: z.coerce.number().int().min(0).default(100),
    /** Peer-to-peer calls: offers, answers and candidates relayed per session per second (twice that once per 10 s). */
    CHORUS_LIMIT_P2P_SIGNALS_PER_SECOND: z.coerce.number().int().min(1).default(20),
    CHORUS_LIMIT_MUTE_REQUESTS_PER_MINUTE: z.coerce.number().int().min(1).default(6),
    /** Classes: chat messages per session per minute. */
    CHORUS_LIMIT_CHAT_PER_MINUTE: z.coerce.number().int().min(1).default(20),
    /** Many listeners can share one address (a campus, carrier-grade NAT): keep this generous. */
    CHORUS_LIMIT_CONNECTIONS_PER_IP: z.coerce.number().int().min(1).default(1000),
    /**
     * TCP connections one socket address may hold (HTTP, polling, WebSocket, or nothing yet),
     * counted from the first byte; X-Forwarded-For never applies. Default: CHORUS_LIMIT_CONNECTIONS_PER_IP,
     * or 100000 behind a trusted proxy, where every client arrives from the proxy's address.
     */
    CHORUS_LIMIT_TCP_CONNECTIONS_PER_ADDRESS: z.coerce.number().int().min(1).optional(),
    /**
     * Socket.IO heartbeat: a ping to every client this often, and a client that has not answered
     * within the timeout is gone. Each ping is a write and a read per connection (at 5 s, about
     * half of the node's main thread with 200 quiet listeners); a dead media path is noticed apart
     * from it (CHORUS_STALE_PEER_MS, ICE consent).
     */
    CHORUS_PING_INTERVAL_MS: z.coerce.number().int().min(1000).max(300_000).default(15_000),
    CHORUS_PING_TIMEOUT_MS: z.coerce.number().int().min(1000).max(300_000).default(10_000),
    /**
     * Pings that fall due within one step of this grid go out together, in one wake-up, each at
     * most one step after engine.io would have sent it (see HeartbeatGrid); 0 leaves every
     * connection on a timer of its own.
     */
    CHORUS_PING_ALIGN_MS: z.coerce.number().int().min(0).max(10_000).default(1000),
    /** A connection with no HTTP request, or a Socket.IO session not connected, after this long is closed. */
    CHORUS_HANDSHAKE_TIMEOUT_MS: z.coerce.number().int().min(500).max(60_000).default(5000),
    /** Refusal warnings (limits, floods): at most one line per offender per this interval. */
    CHORUS_LIMIT_LOG_INTERVAL_MS: z.coerce.number().int().min(100).max(3_600_000).default(10_000),
    CHORUS_LIMIT_TOKENS_PER_KEY_PER_MINUTE: z.coerce.number().int().min(1).default(6000),
    CHORUS_LIMIT_ROOMS_PER_API_KEY: z.coerce.number().int().min(1).default(1000),

    /** TURN servers for clients, comma-separated (turn:host:3478?transport=udp,turns:host:5349). */
    TURN_URLS: z.string().optional(),
    /** coturn's static-auth-secret (use-auth-secret): credentials are minted per session. */
    TURN_SECRET: z.string().min(16, 'TURN_SECRET must be at least 16 characters').optional(),
    /**
     * Lifetime of minted TURN credentials. coturn checks the expiry when an allocation is made,
     * not on refreshes, so this bounds how long a credential can open new relays (ICE restarts
     * get fresh ones), not how long a call may last.
     */
    TURN_TTL_SECONDS: z.coerce.number().int().min(60).default(12 * 3600),

    /** Shared state for a cluster (`redis://`, `rediss://`, `redis+sentinel://`, `redis+cluster://`). Unset: in memory. */
    REDIS_URL: z
      .string()
      .superRefine((url, ctx) => {
        try {
          parseRedisUrl(url);
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: `REDIS_URL: ${(error as Error).message}` });
        }
      })
      .optional(),
    /**
     * In a cluster, where a room's publisher connects: `rendezvous` sends it to the node rendezvous
     * hashing picks (clients must reach every node's CHORUS_PUBLIC_URL), `local` keeps it on the
     * node the load balancer chose.
     */
    CHORUS_ORIGIN_PLACEMENT: z.enum(['rendezvous', 'local']).default('rendezvous'),
    /** This node's URL as clients reach it (for redirects in a cluster). Default: its listen address. */
    CHORUS_PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
    /** PEM file of certificates trusted for `rediss://` besides the system's (a private CA). */
    REDIS_TLS_CA: z
      .string()
      .refine((path) => existsSync(path), { message: 'REDIS_TLS_CA: no such file' })
      .optional(),
    /** Key prefix, so several deployments can share one Redis. */
    CHORUS_REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9_:.-]{1,32}$/).default('chorus:'),

    /** On SIGTERM, how long to wait for clients to move to other nodes before closing. */
    CHORUS_DRAIN_DEADLINE_MS: z.coerce.number().int().min(0).max(600_000).default(20_000),

    /**
     * Records (rooms, sessions, audit events, quality samples): a PostgreSQL URL
     * (`postgres://user:pass@host:5432/db`). Unset: PGlite in CHORUS_DATA_DIR/pglite.
     */
    DATABASE_URL: z
      .string()
      .regex(/^postgres(ql)?:\/\/.+/, 'DATABASE_URL must be a postgres:// or postgresql:// URL')
      .refine((u) => URL.canParse(u), 'DATABASE_URL is not a valid URL')
      .optional(),
    /** Turn records off entirely (no database at all). */
    CHORUS_RECORDS: bool.default(true),
    /** How often queued records are written to the database. */
    CHORUS_RECORDS_FLUSH_MS: z.coerce.number().int().min(10).max(60_000).default(1000),
    /** Records held in memory while the database is down; beyond that they spill to a file. */
    CHORUS_RECORDS_QUEUE_MAX: z.coerce.number().int().min(10).default(10_000),
    /**
     * How often the node reads its producers' and consumers' stats from mediasoup (a pass): each
     * read is a quality record (loss, jitter, RTT, bitrate) and feeds the per-room gauges. 0: no
     * reads (no quality records; per-room gauges count listeners only).
     */
    CHORUS_QUALITY_SAMPLE_MS: z.coerce.number().int().min(0).default(10_000),
    /**
     * At most this many producers and consumers are asked for stats in one pass; past it they take
     * turns, so a node with many listeners or rooms spends a bounded share of its time on it.
     */
    CHORUS_QUALITY_SAMPLE_BUDGET: z.coerce.number().int().min(1).default(50),

    /** Where the built web pages live. */
    CHORUS_WEB_DIR: z.string().optional(),

    /** Bearer token /metrics asks for. Unset: /metrics is open (keep it off the public network). */
    CHORUS_METRICS_TOKEN: z.string().min(16, 'CHORUS_METRICS_TOKEN must be at least 16 characters').optional(),
    /** Rooms given their own series (bitrate, loss, jitter): the N with most listeners; 0 turns them off. */
    CHORUS_METRICS_ROOMS: z.coerce.number().int().min(0).max(1000).default(20),
    /** How often the per-room gauges are summed up from the latest stats reads (which cost nothing more). */
    CHORUS_METRICS_SAMPLE_INTERVAL_MS: z.coerce.number().int().min(500).max(300_000).default(5000),
    /** Dependencies whose outage marks the node degraded but still ready (comma-separated: redis, database). */
    CHORUS_READY_OPTIONAL: z.string().default(''),
    /** Watch rooms: a member whose player is further than this from the room is told to resync. */
    CHORUS_WATCH_DRIFT_MS: z.coerce.number().int().min(20).max(10_000).default(300),
    /** Watch rooms: how often members report their position (their heartbeat; two missed remove them). */
    CHORUS_WATCH_REPORT_INTERVAL_MS: z.coerce.number().int().min(100).max(60_000).default(2000),
    /** Watch rooms: how long an empty room's playback is kept for people coming back. */
    CHORUS_WATCH_ARCHIVE_AFTER_MS: z.coerce.number().int().min(0).max(7 * 24 * 3600 * 1000).default(300_000),
    /** HLS fallback (src/hls): serve live broadcasts at /hls/<room>/index.m3u8. */
    CHORUS_HLS: bool.default(true),
    /** Where HLS segments are written (per node, per room); default <CHORUS_DATA_DIR>/hls. */
    CHORUS_HLS_DIR: z.string().optional(),
    CHORUS_HLS_FFMPEG: z.string().default('ffmpeg'),
    CHORUS_HLS_SEGMENT_SECONDS: z.coerce.number().min(0.5).max(2).default(1),
    CHORUS_HLS_LIST_SIZE: z.coerce.number().int().min(3).max(60).default(6),
    /** Start HLS for every live broadcast here instead of on the first HLS request. */
    CHORUS_HLS_ALWAYS: bool.default(false),
    /** Stop (and delete) a room's HLS after no playlist or segment fetch for this long. */
    CHORUS_HLS_IDLE_MS: z.coerce.number().int().min(1000).default(30_000),
    /** How long the first request waits for the first segment before answering UNAVAILABLE. */
    CHORUS_HLS_START_TIMEOUT_MS: z.coerce.number().int().min(1000).default(15_000),
    /** No new segment for this long while the broadcast is live means ffmpeg hangs: restart it. */
    CHORUS_HLS_STALL_MS: z.coerce.number().int().min(1000).default(6000),
    /** Consecutive ffmpeg failures (crash, hang) before a room's HLS gives up until asked again. */
    CHORUS_HLS_MAX_RESTARTS: z.coerce.number().int().min(0).max(100).default(5),
    /** An HLS player counts in the room's audience for this long after its last playlist fetch. */
    CHORUS_HLS_VIEWER_WINDOW_MS: z.coerce.number().int().min(1000).max(300_000).default(10_000),
  })
  .refine((e) => e.REDIS_TLS_CA === undefined || (e.REDIS_URL !== undefined && redisUrlUsesTls(e.REDIS_URL)), {
    message: 'REDIS_TLS_CA is for TLS connections: use it with a rediss:// or rediss+cluster:// REDIS_URL',
  })
  .refine((e) => (e.TURN_URLS === undefined) === (e.TURN_SECRET === undefined), {
    message: 'set both TURN_URLS and TURN_SECRET, or neither',
  })
  .refine((e) => (e.CHORUS_TLS_CERT === undefined) === (e.CHORUS_TLS_KEY === undefined), {
    message: 'set both CHORUS_TLS_CERT and CHORUS_TLS_KEY, or neither',
  })
  .refine((e) => e.RTC_MIN_PORT <= e.RTC_MAX_PORT, { message: 'RTC_MIN_PORT must be <= RTC_MAX_PORT' })
  .refine((e) => e.RTC_ENABLE_UDP || e.RTC_ENABLE_TCP, { message: 'enable at least one of RTC_ENABLE_UDP, RTC_ENABLE_TCP' })
  // A client expects the next ping within interval + timeout of the last; the grid may send one
  // up to a step late, which must leave the client time to hear it.
  .refine((e) => e.CHORUS_PING_ALIGN_MS * 2 <= e.CHORUS_PING_TIMEOUT_MS, {
    message: 'CHORUS_PING_ALIGN_MS must be at most half of CHORUS_PING_TIMEOUT_MS (clients would time out waiting for a late ping)',
  });

export interface Config {
  nodeId: string;
  http: {
    host: string;
    port: number;
    webDir: string | undefined;
    trustProxy: boolean;
    corsOrigins: string[] | undefined;
    tls: { certPath: string; keyPath: string } | undefined;
    /** Socket.IO heartbeat: ping every `pingIntervalMs`; no answer within `pingTimeoutMs` and the client is gone. */
    pingIntervalMs: number;
    pingTimeoutMs: number;
    /** Pings due within one step of this grid go out together; 0: engine.io's per-connection timers. */
    pingAlignMs: number;
  };
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  tokens: {
    /** Configured keys; undefined means "use the development key in dataDir". */
    keys: ApiKeyring | undefined;
    demo: boolean;
    ttlSeconds: number;
    maxTtlSeconds: number;
    resumeTtlSeconds: number;
  };
  dataDir: string;
  drainDeadlineMs: number;
  redis: { url: string; prefix: string; tlsCaPath: string | undefined } | undefined;
  cluster: { placement: 'rendezvous' | 'local'; publicUrl: string | undefined };
  media: TransportSettings & {
    workers: number;
    logLevel: 'debug' | 'warn' | 'error' | 'none';
    maxConsumersPerWorker: number;
    opusBitrate: number;
    /** CHORUS_BROADCAST_FRAME_MS: audio per packet a broadcaster is asked to send. */
    broadcastFrameMs: number;
    /** RTC_SERVER_PORT: the first worker's shared port (WorkerPool opens one per worker). */
    serverPort: number | undefined;
  };
  rooms: { countIntervalMs: number; maxPeersPerRoom: number; maxCallParticipants: number; maxClassStudents: number; maxClassStage: number; stalePeerMs: number; idleRoomMs: number; callP2p: { enabled: boolean; backMs: number } };
  webhooks: { urls: string[]; maxAttempts: number; timeoutMs: number; initialDelayMs: number };
  watch: WatchSettings;
  limits: LimitSettings;
  turn: TurnSettings | undefined;
  observability: {
    metricsToken: string | undefined;
    metricsRooms: number;
    sampleIntervalMs: number;
    /** The node's stats reads (quality records and per-room gauges): a pass this often, of at most `budget` objects. */
    stats: { intervalMs: number; budget: number };
    /** Dependencies that only degrade readiness (the others make the node unready). */
    optionalDependencies: string[];
  };
  records: RecordsSettings | undefined;
  hls: HlsSettings | undefined;
  recordings: RecordingSettings;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** First non-internal IPv4 address, so phones on the same LAN can reach the demo. */
export function lanAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) {
      if (info.family === 'IPv4' && !info.internal) return info.address;
    }
  }
  return undefined;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'env'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const e = parsed.data;
  let keys: ApiKeyring | undefined;
  try {
    if (e.CHORUS_API_KEYS) keys = ApiKeyring.parse(e.CHORUS_API_KEYS);
    else if (e.CHORUS_TOKEN_SECRET) keys = new ApiKeyring([{ id: 'default', secret: e.CHORUS_TOKEN_SECRET }]);
  } catch (error) {
    throw new ConfigError(`invalid configuration:\n  CHORUS_API_KEYS: ${error instanceof z.ZodError ? error.issues[0]?.message : (error as Error).message}`);
  }
  const listenIsWildcard = e.RTC_LISTEN_IP === '0.0.0.0' || e.RTC_LISTEN_IP === '::';
  return {
    nodeId: e.CHORUS_NODE_ID ?? `node-${randomBytes(4).toString('hex')}`,
    http: {
      host: e.CHORUS_HOST,
      port: e.CHORUS_PORT,
      webDir: e.CHORUS_WEB_DIR,
      trustProxy: e.CHORUS_TRUST_PROXY,
      corsOrigins: e.CHORUS_CORS_ORIGINS?.split(',').map((o) => o.trim()).filter(Boolean),
      tls: e.CHORUS_TLS_CERT && e.CHORUS_TLS_KEY ? { certPath: e.CHORUS_TLS_CERT, keyPath: e.CHORUS_TLS_KEY } : undefined,
      pingIntervalMs: e.CHORUS_PING_INTERVAL_MS,
      pingTimeoutMs: e.CHORUS_PING_TIMEOUT_MS,
      pingAlignMs: e.CHORUS_PING_ALIGN_MS,
    },
    logLevel: e.LOG_LEVEL,
    tokens: {
      keys,
      demo: e.CHORUS_DEMO ?? keys === undefined,
      ttlSeconds: e.CHORUS_TOKEN_TTL_SECONDS,
      maxTtlSeconds: e.CHORUS_TOKEN_MAX_TTL_SECONDS,
      resumeTtlSeconds: e.CHORUS_RESUME_TTL_SECONDS,
    },
    dataDir: e.CHORUS_DATA_DIR,
    drainDeadlineMs: e.CHORUS_DRAIN_DEADLINE_MS,
    redis: e.REDIS_URL ? { url: e.REDIS_URL, prefix: e.CHORUS_REDIS_PREFIX, tlsCaPath: e.REDIS_TLS_CA } : undefined,
    cluster: { placement: e.CHORUS_ORIGIN_PLACEMENT, publicUrl: e.CHORUS_PUBLIC_URL?.replace(/\/+$/, '') },
    media: {
      workers: e.MEDIASOUP_WORKERS ?? availableParallelism(),
      logLevel: e.MEDIASOUP_LOG_LEVEL,
      maxConsumersPerWorker: e.CHORUS_MAX_CONSUMERS_PER_WORKER,
      listenIp: e.RTC_LISTEN_IP,
      // A wildcard bind cannot go into a candidate; announce something reachable instead.
      announcedAddress: e.RTC_ANNOUNCED_ADDRESS ?? (listenIsWildcard ? (lanAddress() ?? '127.0.0.1') : undefined),
      minPort: e.RTC_MIN_PORT,
      maxPort: e.RTC_MAX_PORT,
      serverPort: e.RTC_SERVER_PORT,
      enableUdp: e.RTC_ENABLE_UDP,
      enableTcp: e.RTC_ENABLE_TCP,
      initialAvailableOutgoingBitrate: e.RTC_INITIAL_BITRATE,
      minOutgoingBitrate: e.RTC_MIN_BITRATE,
      opusBitrate: e.CHORUS_OPUS_BITRATE,
      broadcastFrameMs: e.CHORUS_BROADCAST_FRAME_MS,
    },
    rooms: {
      countIntervalMs: e.CHORUS_COUNT_INTERVAL_MS,
      maxPeersPerRoom: e.CHORUS_MAX_PEERS_PER_ROOM,
      maxCallParticipants: e.CHORUS_CALL_MAX_PARTICIPANTS,
      maxClassStudents: e.CHORUS_CLASS_MAX_STUDENTS,
      maxClassStage: e.CHORUS_CLASS_MAX_STAGE,
      callP2p: { enabled: e.CHORUS_CALL_P2P === 'auto', backMs: e.CHORUS_CALL_P2P_BACK_MS },
      stalePeerMs: e.CHORUS_STALE_PEER_MS,
      idleRoomMs: e.CHORUS_ROOM_IDLE_MS,
    },
    webhooks: {
      urls: webhookUrls(e.CHORUS_WEBHOOK_URLS),
      maxAttempts: e.CHORUS_WEBHOOK_MAX_ATTEMPTS,
      timeoutMs: e.CHORUS_WEBHOOK_TIMEOUT_MS,
      initialDelayMs: e.CHORUS_WEBHOOK_BACKOFF_MS,
    },
    watch: {
      driftThresholdMs: e.CHORUS_WATCH_DRIFT_MS,
      reportIntervalMs: e.CHORUS_WATCH_REPORT_INTERVAL_MS,
      archiveAfterMs: e.CHORUS_WATCH_ARCHIVE_AFTER_MS,
      // Renewed while anyone is in the room; a day covers a node dying with the last members.
      stateTtlSeconds: 24 * 3600,
    },
    limits: {
      httpPerIpPerMinute: e.CHORUS_LIMIT_HTTP_PER_IP_PER_MINUTE,
      messagesPerConnectionPerSecond: e.CHORUS_LIMIT_MESSAGES_PER_CONNECTION_PER_SECOND,
      messageBurstPerConnection: e.CHORUS_LIMIT_MESSAGE_BURST_PER_CONNECTION,
      messagesPerIpPerSecond: e.CHORUS_LIMIT_MESSAGES_PER_IP_PER_SECOND,
      joinsPerIdentityPerMinute: e.CHORUS_LIMIT_JOINS_PER_IDENTITY_PER_MINUTE,
      joinsPerSharedLinkPerMinute: e.CHORUS_LIMIT_JOINS_PER_SHARED_LINK_PER_MINUTE,
      joinsPerRoomPerSecond: e.CHORUS_LIMIT_JOINS_PER_ROOM_PER_SECOND,
      trackControlsPerSecond: e.CHORUS_LIMIT_TRACK_CONTROLS_PER_SECOND,
      trackControlBurst: e.CHORUS_LIMIT_TRACK_CONTROL_BURST,
      p2pSignalsPerSecond: e.CHORUS_LIMIT_P2P_SIGNALS_PER_SECOND,
      muteRequestsPerMinute: e.CHORUS_LIMIT_MUTE_REQUESTS_PER_MINUTE,
      chatPerMinute: e.CHORUS_LIMIT_CHAT_PER_MINUTE,
      connectionsPerIp: e.CHORUS_LIMIT_CONNECTIONS_PER_IP,
      tcpConnectionsPerAddress: e.CHORUS_LIMIT_TCP_CONNECTIONS_PER_ADDRESS ?? (e.CHORUS_TRUST_PROXY ? 100_000 : e.CHORUS_LIMIT_CONNECTIONS_PER_IP),
      handshakeTimeoutMs: e.CHORUS_HANDSHAKE_TIMEOUT_MS,
      logIntervalMs: e.CHORUS_LIMIT_LOG_INTERVAL_MS,
      tokensPerKeyPerMinute: e.CHORUS_LIMIT_TOKENS_PER_KEY_PER_MINUTE,
      roomsPerApiKey: e.CHORUS_LIMIT_ROOMS_PER_API_KEY,
    },
    turn:
      e.TURN_URLS && e.TURN_SECRET
        ? { urls: e.TURN_URLS.split(',').map((u) => u.trim()).filter(Boolean), secret: e.TURN_SECRET, ttlSeconds: e.TURN_TTL_SECONDS }
        : undefined,
    observability: {
      metricsToken: e.CHORUS_METRICS_TOKEN,
      metricsRooms: e.CHORUS_METRICS_ROOMS,
      sampleIntervalMs: e.CHORUS_METRICS_SAMPLE_INTERVAL_MS,
      stats: { intervalMs: e.CHORUS_QUALITY_SAMPLE_MS, budget: e.CHORUS_QUALITY_SAMPLE_BUDGET },
      optionalDependencies: e.CHORUS_READY_OPTIONAL.split(',').map((d) => d.trim()).filter(Boolean),
    },
    records: e.CHORUS_RECORDS
      ? {
          databaseUrl: e.DATABASE_URL,
          flushMs: e.CHORUS_RECORDS_FLUSH_MS,
          queueMax: e.CHORUS_RECORDS_QUEUE_MAX,
        }
      : undefined,
    recordings: {
      dir: e.CHORUS_RECORDINGS_DIR ?? `${e.CHORUS_DATA_DIR}/recordings`,
      ffmpeg: e.CHORUS_HLS_FFMPEG,
      segmentSeconds: 2,
      mode: e.CHORUS_CLASS_RECORD,
      stallMs: e.CHORUS_RECORDING_STALL_MS,
    },
    hls: e.CHORUS_HLS
      ? {
          dir: e.CHORUS_HLS_DIR ?? `${e.CHORUS_DATA_DIR}/hls`,
          ffmpeg: e.CHORUS_HLS_FFMPEG,
          segmentSeconds: e.CHORUS_HLS_SEGMENT_SECONDS,
          listSize: e.CHORUS_HLS_LIST_SIZE,
          always: e.CHORUS_HLS_ALWAYS,
          idleMs: e.CHORUS_HLS_IDLE_MS,
          startTimeoutMs: e.CHORUS_HLS_START_TIMEOUT_MS,
          stallMs: e.CHORUS_HLS_STALL_MS,
          maxRestarts: e.CHORUS_HLS_MAX_RESTARTS,
          viewerWindowMs: e.CHORUS_HLS_VIEWER_WINDOW_MS,
        }
      : undefined,
  };
}

/** Webhook targets must be absolute http(s) URLs: a typo fails at start, not at the first event. */
function webhookUrls(list: string | undefined): string[] {
  const urls = (list ?? '').split(',').map((u) => u.trim()).filter(Boolean);
  for (const url of urls) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new ConfigError(`invalid configuration:\n  CHORUS_WEBHOOK_URLS: "${url}" is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new ConfigError(`invalid configuration:\n  CHORUS_WEBHOOK_URLS: "${url}" must be http or https`);
    }
  }
  return urls;
}
