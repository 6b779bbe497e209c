/**
 * The cluster's `StateStore`: rooms, peers, seats, single-use ids and marks in Redis, so every
 * node agrees on who is in a room and who holds its broadcaster seat.
 *
 * Key layout (prefix `chorus:` by default; `{roomId}` is a Redis Cluster hash tag, so all of a
 * room's keys live in one slot and the multi-key scripts below stay legal on a Cluster):
 *
 *   chorus:{room}:room            string  RoomRecord JSON (owner: SET NX)      PX lease
 *   chorus:{room}:peers           hash    peerId → PeerRecord JSON             PX lease
 *   chorus:{room}:role:<role>     zset    peerId scored by its lease expiry ms PX lease
 *   chorus:{room}:seat:<seat>     string  holder peerId (SET NX)               PX lease
 *   chorus:once:<key>             string  nonce (SET NX)                       PX ttl
 *   chorus:mark:<key>             string  number                               PX ttl
 *   chorus:value:<key>            string  small owned value (origin, playback)  PX ttl
 *   chorus:{nodes}                hash    nodeId → NodeRecord JSON             owner: NODE_LIST
 *   chorus:{nodes}:expiry         zset    nodeId scored by its expiry ms       prunes both
 *
 * Every key carries a TTL. The room keys are leases the writing node extends with `refresh()`
 * (on a timer here): when a node dies, its peers drop out of the counts once their zset score
 * passes (counts only take scores ≥ now, by Redis' own clock, so node clocks do not matter), the
 * stale members are pruned by the next write to the room, and a room nobody refreshes disappears
 * whole when its keys expire. `deleteRoom` removes the room keys at once.
 *
 * Every call runs through a cockatiel policy: a per-attempt timeout, retries with backoff on
 * transient failures, and a circuit breaker that opens after consecutive failures so that while
 * Redis is down calls fail at once with a retryable `ChorusError('UNAVAILABLE')` instead of piling
 * up. All operations are safe to retry: the writes are idempotent, `claimSeat` reports success to
 * the peer already holding the seat and `useOnce` recognises its own nonce, so a retry after a lost
 * reply never turns a success into a refusal. ioredis keeps no offline queue, so nothing waits
 * for a reconnect and no stale write lands seconds after its caller gave up.
 *
 * Connection URLs: see redisConnection.ts (a single Redis, Sentinel, or a Redis Cluster). On a
 * Cluster every multi-key script touches one room's keys only (one hash tag, so one slot) or the
 * node registry's two keys (tagged `{nodes}` together); MOVED/ASK and failovers are followed by
 * ioredis, and the errors a failover produces meanwhile count as transient here.
 */
import { rootCertificates } from 'node:tls';
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  BrokenCircuitError,
  circuitBreaker,
  CircuitState,
  ConsecutiveBreaker,
  ExponentialBackoff,
  handleWhen,
  retry,
  TaskCancelledError,
  timeout,
  TimeoutStrategy,
  wrap,
  type CircuitBreakerPolicy,
  type IPolicy,
} from 'cockatiel';
import type { RedisOptions } from 'ioredis';
import { ChorusError } from '../protocol/errors.js';
import { roles, type Role } from '../protocol/messages.js';
import { openRedis, parseRedisUrl, usesTls, type ConnectionPurpose, type ParsedRedisUrl, type RedisClient } from './redisConnection.js';
import { ownerOf, seats, type NodeRecord, type PeerRecord, type RoomRecord, type Seat, type StateStore } from './stateStore.js';

export interface RedisStateStoreOptions {
  /** REDIS_URL: `redis://`, `rediss://`, `redis+sentinel://` or `redis+cluster://` (redisConnection.ts). */
  url: string;
  /** Prepended to every key; several deployments can share one Redis. Default `chorus:`. */
  prefix?: string;
  /** Lifetime of room, peer and seat entries unless refreshed. Default 30 s. */
  leaseMs?: number;
  /** How often `refresh()` runs on its own; 0 turns the timer off. Default a third of the lease. */
  refreshIntervalMs?: number;
  /** Per-attempt limit for one Redis call. Default 500 ms. */
  commandTimeoutMs?: number;
  /** Retries after a transient failure (so attempts = retries + 1). Default 2. */
  retries?: number;
  /** Consecutive failed attempts that open the breaker. Default 5. */
  breakerThreshold?: number;
  /** How long the open breaker refuses calls before letting one probe through. Default 1 s. */
  halfOpenAfterMs?: number;
  /** Longest pause between ioredis reconnect attempts. Default 1 s. */
  reconnectMaxDelayMs?: number;
  /** Shown in CLIENT LIST (the node id is a good choice). */
  connectionName?: string;
  /**
   * PEM certificates trusted for a TLS connection (`rediss://`) besides the system's: a private
   * CA, or a self-signed Redis.
   */
  tlsCa?: string | undefined;
  /** Failures nobody awaits: background refreshes, connection errors. */
  onError?: (error: unknown, context: string) => void;
  /** Each call's duration through the whole policy (retries included) and outcome, for metrics. */
  onCommand?: (op: string, seconds: number, ok: boolean) => void;
}

export { parseRedisUrl, type ParsedRedisUrl } from './redisConnection.js';

export type BreakerState = 'closed' | 'open' | 'half-open' | 'isolated';

export interface SeatLoss {
  roomId: string;
  seat: Seat;
  /** The local peer that held the seat until a refresh found someone else in it. */
  peerId: string;
}

export interface RedisStateStoreEvents {
  /** `healthy` changed (breaker state or connection). */
  health: [healthy: boolean];
  /** A refresh found a seat this node held taken by another peer (its lease had run out). */
  seatLost: [loss: SeatLoss];
}

// --- Lua ------------------------------------------------------------------------------------
// Times come from Redis (TIME), never from a node, so clock skew between nodes cannot make a
// peer expire early or linger. Writes after TIME need effect replication (default since 5.0).

const NOW = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/**
 * Writes (or re-asserts) a room's entries held by one node and extends their leases; prunes
 * peers whose lease ran out. Used by addPeer (one peer) and refresh (everything the node holds).
 * KEYS: room, peers hash, R role zsets, S seat keys.
 * ARGV: leaseMs, room JSON ('' = leave the record alone), R, S seat holders ('' = not ours),
 *       then (peerId, role index 1..R, peer JSON) triples.
 * Returns the (1-based) indexes of seats found held by someone else.
 */
const SYNC = `${NOW}
local lease = tonumber(ARGV[1])
local nRoles = tonumber(ARGV[3])
local nSeats = #KEYS - 2 - nRoles
local function extend(key)
  local ttl = redis.call('PTTL', key)
  if ttl == -1 or (ttl >= 0 and ttl < lease) then redis.call('PEXPIRE', key, lease) end
end
for i = 3, 2 + nRoles do
  while true do
    local stale = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', '(' .. string.format('%d', now), 'LIMIT', 0, 500)
    if #stale == 0 then break end
    redis.call('ZREM', KEYS[i], unpack(stale))
    redis.call('HDEL', KEYS[2], unpack(stale))
  end
end
if ARGV[2] ~= '' then
  if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', lease) then extend(KEYS[1]) end
end
local expires = string.format('%d', now + lease)
for j = 4 + nSeats, #ARGV, 3 do
  redis.call('ZADD', KEYS[2 + tonumber(ARGV[j + 1])], expires, ARGV[j])
  redis.call('HSET', KEYS[2], ARGV[j], ARGV[j + 2])
end
for i = 2, 2 + nRoles do extend(KEYS[i]) end
local lost = {}
for s = 1, nSeats do
  local holder = ARGV[3 + s]
  if holder ~= '' then
    local key = KEYS[2 + nRoles + s]
    local current = redis.call('GET', key)
    if not current then redis.call('SET', key, holder, 'PX', lease)
    elseif current == holder then redis.call('PEXPIRE', key, lease)
    else lost[#lost + 1] = s end
  end
end
return lost
`;

/** KEYS: role zsets. Live peers: scores (lease expiries) not yet passed. */
const COUNT = `${NOW}
local n = 0
for i = 1, #KEYS do n = n + redis.call('ZCOUNT', KEYS[i], now, '+inf') end
return n
`;

/** KEYS: peers hash, role zsets. ARGV: peerId. */
const REMOVE = `
redis.call('HDEL', KEYS[1], ARGV[1])
for i = 2, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
`;

/** KEYS: seat. ARGV: peerId, leaseMs. 1 when peerId holds the seat afterwards. */
const CLAIM = `
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`;

/** KEYS: seat. ARGV: peerId. Compare-and-delete: only the holder frees the seat. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** KEYS: value. ARGV: value, ttlMs. Writes only if absent; answers whoever holds it now. */
const CLAIM_VALUE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return ARGV[1] end
return redis.call('GET', KEYS[1])
`;

/** KEYS: nodes hash, expiries zset. ARGV: id, record, ttlMs. Expiry on Redis's clock. */
const NODE_PUT = `${NOW}
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return 1
`;

/** KEYS: nodes hash, expiries zset. Drops expired nodes, returns the live records. */
const NODE_LIST = `${NOW}
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%d', now))
if #dead > 0 then
  redis.call('ZREM', KEYS[2], unpack(dead))
  redis.call('HDEL', KEYS[1], unpack(dead))
end
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[1], unpack(ids))
`;

/** KEYS: seat. ARGV: from, to, leaseMs. 1 when the seat moved from ARGV[1] to ARGV[2]. */
const TAKE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`;

/** KEYS: role zsets, then the peers hash. Records of live peers (scores not yet passed). */
const LIST = `${NOW}
local ids = {}
for i = 1, #KEYS - 1 do
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[i], now, '+inf')) do ids[#ids + 1] = id end
end
if #ids == 0 then return {} end
return redis.call('HMGET', KEYS[#KEYS], unpack(ids))
`;

/**
 * KEYS: value. ARGV: expected present ('1'/'0'), expected, next present ('1'/'0'), next, ttlMs.
 * 1 when the value held `expected` (or was absent, as expected) and is now `next` (or deleted).
 * A value already equal to `next` also answers 1: a retry after a lost reply finds its own write
 * (values carry a version and a timestamp, so another writer's is never byte-equal).
 */
const SWAP = `
local current = redis.call('GET', KEYS[1])
if ARGV[3] == '1' and current == ARGV[4] then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return 1
end
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then return 0 end
if ARGV[3] == '1' then redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5]) else redis.call('DEL', KEYS[1]) end
return 1
`;

/** KEYS: once key. ARGV: nonce, ttlMs. 1 for the first caller (or that caller's retry). */
const ONCE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end
return 0
`;

interface Script {
  lua: string;
  sha: string;
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

const scripts = { sync: script(SYNC), count: script(COUNT), remove: script(REMOVE), claim: script(CLAIM), release: script(RELEASE), claimValue: script(CLAIM_VALUE), once: script(ONCE), take: script(TAKE), nodePut: script(NODE_PUT), nodeList: script(NODE_LIST), list: script(LIST), swap: script(SWAP) };

/** Failures worth a retry and counted by the breaker: the connection, timeouts, a failover. */
export function isTransientRedisError(error: unknown): boolean {
  if (error instanceof TaskCancelledError || error instanceof BrokenCircuitError) return true;
  if (!(error instanceof Error)) return false;
  if (error.name === 'ReplyError') {
    return /^(LOADING|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY|OOM|NOREPLICAS|MOVED|ASK)\b/.test(error.message);
  }
  // Connection refused/reset, "Stream isn't writeable", "Connection is closed.", command timeouts,
  // MaxRetriesPerRequestError: everything ioredis raises that is not a server's reply.
  return true;
}

/** What this node wrote to a room, re-asserted by refresh(). */
interface Held {
  room: RoomRecord | undefined;
  /** Rooms of this node keeping `room` alive (claimRoom/putRoom not yet paired with leaveRoom). */
  claims: number;
  peers: Map<string, PeerRecord>;
  seats: Map<Seat, string>;
}

export class RedisStateStore extends EventEmitter<RedisStateStoreEvents> implements StateStore {
  readonly prefix: string;
  readonly leaseMs: number;
  /** The connection, for other cluster parts that need one (RateLimiterRedis takes it as is). */
  readonly client: RedisClient;
  readonly #options: RedisStateStoreOptions;
  readonly #target: ParsedRedisUrl;
  readonly #common: RedisOptions;
  readonly #breaker: CircuitBreakerPolicy;
  readonly #policy: IPolicy;
  readonly #held = new Map<string, Held>();
  #refreshTimer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;
  #healthy = false;
  /** The connection's latest error, so a node that cannot start says why (a refused TLS certificate…). */
  #lastConnectionError: string | undefined;
  #closed = false;

  constructor(options: RedisStateStoreOptions) {
    super();
    this.#options = options;
    this.prefix = options.prefix ?? 'chorus:';
    this.leaseMs = options.leaseMs ?? 30_000;
    const commandTimeoutMs = options.commandTimeoutMs ?? 500;
    const reconnectMaxDelayMs = options.reconnectMaxDelayMs ?? 1000;

    const common: RedisOptions = {
      // Fail fast while disconnected instead of queueing: the policy retries and the caller gets
      // UNAVAILABLE; a queued write landing seconds later, after the caller gave up, helps nobody.
      enableOfflineQueue: false,
      // Commands in flight when the connection drops fail at once rather than waiting for reconnects.
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: commandTimeoutMs,
      connectTimeout: Math.max(1000, commandTimeoutMs * 2),
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), reconnectMaxDelayMs),
      // After a Sentinel failover the old master turns replica: reconnect to find the new one.
      reconnectOnError: (error) => error.message.startsWith('READONLY'),
      ...(options.connectionName ? { connectionName: options.connectionName } : {}),
    };
    this.#target = parseRedisUrl(options.url);
    if (options.tlsCa && usesTls(this.#target)) common.tls = { ca: [...rootCertificates, options.tlsCa] };
    this.#common = common;
    this.client = openRedis(this.#target, common);

    this.client.on('error', (error) => {
      this.#lastConnectionError = error.message;
      this.#report(error, 'redis connection');
    });
    for (const event of ['ready', 'close', 'end', 'reconnecting'] as const) this.client.on(event, () => this.#updateHealth());

    this.#breaker = circuitBreaker(handleWhen(isTransientRedisError), {
      halfOpenAfter: options.halfOpenAfterMs ?? 1000,
      breaker: new ConsecutiveBreaker(options.breakerThreshold ?? 5),
    });
    this.#breaker.onStateChange(() => this.#updateHealth());
    const retries = retry(
      handleWhen((error) => isTransientRedisError(error) && !(error instanceof BrokenCircuitError)),
      { maxAttempts: options.retries ?? 2, backoff: new ExponentialBackoff({ initialDelay: 50, maxDelay: 250 }) },
    );
    // Outermost retry, then the breaker (each attempt counts), then the per-attempt timeout.
    this.#policy = wrap(retries, this.#breaker, timeout(commandTimeoutMs, TimeoutStrategy.Aggressive));

    const refreshIntervalMs = options.refreshIntervalMs ?? Math.floor(this.leaseMs / 3);
    if (refreshIntervalMs > 0) {
      this.#refreshTimer = setInterval(() => {
        this.refresh().catch((error: unknown) => this.#report(error, 'lease refresh'));
      }, refreshIntervalMs);
      this.#refreshTimer.unref();
    }
  }

  /** Whether REDIS_URL names a Redis Cluster. */
  get cluster(): boolean {
    return this.#target.mode === 'cluster';
  }

  /**
   * A further connection to the same deployment for another job (blocking reads, subscriptions),
   * with the store's reconnect strategy and `overrides` on top. The caller closes it.
   */
  connect(overrides: RedisOptions, purpose: ConnectionPurpose = {}): RedisClient {
    return openRedis(this.#target, { ...this.#common, ...overrides }, purpose);
  }

  /** Redis answers and the breaker is closed: what /readyz should report. */
  get healthy(): boolean {
    return this.#healthy;
  }

  get breakerState(): BreakerState {
    switch (this.#breaker.state) {
      case CircuitState.Closed:
        return 'closed';
      case CircuitState.Open:
        return 'open';
      case CircuitState.HalfOpen:
        return 'half-open';
      default:
        return 'isolated';
    }
  }

  /** Resolves once connected (calls made before fail fast with UNAVAILABLE); rejects after `ms`. */
  async ready(ms = 10_000): Promise<void> {
    if (this.client.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.client.off('ready', onReady);
        const why = this.#lastConnectionError ? ` (last error: ${this.#lastConnectionError})` : '';
        reject(new ChorusError('UNAVAILABLE', `state store (Redis) not reachable within ${ms} ms${why}`));
      }, ms);
      const onReady = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.client.once('ready', onReady);
    });
  }

  // --- rooms --------------------------------------------------------------------------------

  async putRoom(room: RoomRecord): Promise<void> {
    const record = { ...room };
    const held = this.#hold(room.id);
    held.room = record;
    held.claims++;
    const key = this.#keys(room.id).room;
    await this.#run('putRoom', async () => {
      if (this.#held.get(room.id)?.room !== record) return; // deleted meanwhile: do not resurrect
      await this.client.set(key, JSON.stringify(record), 'PX', this.leaseMs);
    });
  }

  async claimRoom(room: RoomRecord): Promise<RoomRecord> {
    const key = this.#keys(room.id).room;
    // SET NX answering whoever holds it: a retry after a lost reply finds its own record.
    const json = await this.#run('claimRoom', () => this.#eval(scripts.claimValue, [key], [JSON.stringify(room), this.leaseMs]));
    const current = JSON.parse(String(json)) as RoomRecord;
    if (ownerOf(current) === ownerOf(room) && current.kind === room.kind) {
      // Kept as found: should Redis lose it, the refresh writes back the first claimant's record.
      const held = this.#hold(room.id);
      held.room = current;
      held.claims++;
    }
    return current;
  }

  async leaveRoom(roomId: string): Promise<void> {
    const held = this.#held.get(roomId);
    if (!held) return;
    held.claims = Math.max(0, held.claims - 1);
    // Another room of this node (one opened again while the old one closed) still needs it.
    if (held.claims > 0) return;
    // Re-asserting it from here would bring the record back after the last node deletes it,
    // keeping the room's owner claimed for as long as this node runs.
    held.room = undefined;
    if (held.peers.size === 0 && held.seats.size === 0) this.#held.delete(roomId);
  }

  async getRoom(roomId: string): Promise<RoomRecord | undefined> {
    const json = await this.#run('getRoom', () => this.client.get(this.#keys(roomId).room));
    return json === null ? undefined : (JSON.parse(json) as RoomRecord);
  }

  async deleteRoom(roomId: string): Promise<void> {
    this.#held.delete(roomId);
    const k = this.#keys(roomId);
    await this.#run('deleteRoom', () => this.client.del(k.room, k.peers, ...k.roles, ...k.seats));
  }

  // --- peers --------------------------------------------------------------------------------

  async addPeer(peer: PeerRecord): Promise<void> {
    const record = { ...peer };
    const held = this.#hold(peer.roomId);
    held.peers.set(peer.id, record);
    try {
      await this.#run('addPeer', async () => {
        if (this.#held.get(peer.roomId)?.peers.get(peer.id) !== record) return; // removed meanwhile
        await this.#sync(peer.roomId, { room: undefined, claims: 0, peers: new Map([[peer.id, record]]), seats: new Map() }, false);
      });
    } catch (error) {
      // Not written (as far as we know): do not re-assert it later either.
      if (held.peers.get(peer.id) === record) held.peers.delete(peer.id);
      throw error;
    }
  }

  async removePeer(roomId: string, peerId: string): Promise<void> {
    this.#held.get(roomId)?.peers.delete(peerId);
    const k = this.#keys(roomId);
    await this.#run('removePeer', () => this.#eval(scripts.remove, [k.peers, ...k.roles], [peerId]));
  }

  async countPeers(roomId: string, role?: Role): Promise<number> {
    const k = this.#keys(roomId);
    const keys = role === undefined ? k.roles : [k.roles[roles.indexOf(role)]!];
    return Number(await this.#run('countPeers', () => this.#eval(scripts.count, keys, [])));
  }

  async listPeers(roomId: string): Promise<PeerRecord[]> {
    const k = this.#keys(roomId);
    const raw = (await this.#run('listPeers', () => this.#eval(scripts.list, [...k.roles, k.peers], []))) as Array<string | null>;
    return raw.filter((r): r is string => typeof r === 'string').map((r) => JSON.parse(r) as PeerRecord);
  }

  // --- seats --------------------------------------------------------------------------------

  async claimSeat(roomId: string, seat: Seat, peerId: string): Promise<boolean> {
    const key = this.#keys(roomId).seats[seats.indexOf(seat)]!;
    const won = Number(await this.#run('claimSeat', () => this.#eval(scripts.claim, [key], [peerId, this.leaseMs]))) === 1;
    if (won) this.#hold(roomId).seats.set(seat, peerId);
    return won;
  }

  async releaseSeat(roomId: string, seat: Seat, peerId: string): Promise<void> {
    const held = this.#held.get(roomId);
    if (held?.seats.get(seat) === peerId) held.seats.delete(seat);
    const key = this.#keys(roomId).seats[seats.indexOf(seat)]!;
    await this.#run('releaseSeat', () => this.#eval(scripts.release, [key], [peerId]));
  }

  async takeSeat(roomId: string, seat: Seat, fromPeerId: string, toPeerId: string): Promise<boolean> {
    const key = this.#keys(roomId).seats[seats.indexOf(seat)]!;
    const moved = Number(await this.#run('takeSeat', () => this.#eval(scripts.take, [key], [fromPeerId, toPeerId, this.leaseMs]))) === 1;
    if (moved) this.#hold(roomId).seats.set(seat, toPeerId);
    return moved;
  }

  async putNode(node: NodeRecord, ttlSeconds: number): Promise<void> {
    await this.#run('putNode', () => this.#eval(scripts.nodePut, [...this.#nodeKeys()], [node.id, JSON.stringify(node), ttlMs(ttlSeconds)]));
  }

  async removeNode(nodeId: string): Promise<void> {
    await this.#run('removeNode', async () => {
      const [records, expiries] = this.#nodeKeys();
      await this.client.zrem(expiries, nodeId);
      await this.client.hdel(records, nodeId);
    });
  }

  async listNodes(): Promise<NodeRecord[]> {
    const raw = (await this.#run('listNodes', () => this.#eval(scripts.nodeList, [...this.#nodeKeys()], []))) as Array<string | null>;
    return raw.filter((r): r is string => typeof r === 'string').map((r) => JSON.parse(r) as NodeRecord);
  }

  async getPeer(roomId: string, peerId: string): Promise<PeerRecord | undefined> {
    const raw = await this.#run('getPeer', () => this.client.hget(this.#keys(roomId).peers, peerId));
    return raw === null ? undefined : (JSON.parse(raw) as PeerRecord);
  }

  async seatHolder(roomId: string, seat: Seat): Promise<string | undefined> {
    const key = this.#keys(roomId).seats[seats.indexOf(seat)]!;
    return (await this.#run('seatHolder', () => this.client.get(key))) ?? undefined;
  }

  // --- single use and marks -----------------------------------------------------------------

  async useOnce(key: string, ttlSeconds: number): Promise<boolean> {
    // The nonce makes a retry after a lost reply recognise its own first write.
    const nonce = randomBytes(12).toString('base64url');
    const args = [nonce, ttlMs(ttlSeconds)];
    return Number(await this.#run('useOnce', () => this.#eval(scripts.once, [`${this.prefix}once:${key}`], args))) === 1;
  }

  async setMark(key: string, value: number, ttlSeconds: number): Promise<void> {
    await this.#run('setMark', () => this.client.set(`${this.prefix}mark:${key}`, String(value), 'PX', ttlMs(ttlSeconds)));
  }

  async getMark(key: string): Promise<number | undefined> {
    const value = await this.#run('getMark', () => this.client.get(`${this.prefix}mark:${key}`));
    return value === null ? undefined : Number(value);
  }

  async setValue(key: string, value: string, ttlSeconds: number): Promise<void> {
    await this.#run('setValue', () => this.client.set(`${this.prefix}value:${key}`, value, 'PX', ttlMs(ttlSeconds)));
  }

  async getValue(key: string): Promise<string | undefined> {
    return (await this.#run('getValue', () => this.client.get(`${this.prefix}value:${key}`))) ?? undefined;
  }

  async claimValue(key: string, value: string, ttlSeconds: number): Promise<string | undefined> {
    const holder = await this.#run('claimValue', () => this.#eval(scripts.claimValue, [`${this.prefix}value:${key}`], [value, ttlMs(ttlSeconds)]));
    return holder === null || holder === undefined ? undefined : String(holder);
  }

  async deleteValue(key: string, value: string): Promise<void> {
    await this.#run('deleteValue', () => this.#eval(scripts.release, [`${this.prefix}value:${key}`], [value]));
  }

  async swapValue(key: string, expected: string | undefined, next: string | undefined, ttlSeconds: number): Promise<boolean> {
    const args = [expected === undefined ? '0' : '1', expected ?? '', next === undefined ? '0' : '1', next ?? '', ttlMs(ttlSeconds)];
    return Number(await this.#run('swapValue', () => this.#eval(scripts.swap, [`${this.prefix}value:${key}`], args))) === 1;
  }

  // --- leases -------------------------------------------------------------------------------

  async refresh(): Promise<void> {
    // Overlapping refreshes (a slow Redis and the timer) would only repeat the same writes.
    this.#refreshing ??= this.#refreshAll().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async #refreshAll(): Promise<void> {
    const results = await Promise.allSettled(
      [...this.#held.keys()].map((roomId) =>
        this.#run('refresh', async () => {
          // Snapshot per attempt: a peer removed meanwhile is not written back by a retry.
          const held = this.#held.get(roomId);
          if (held) await this.#sync(roomId, held, true);
        }),
      ),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Runs SYNC for one room's held entries; reports (and forgets) seats someone else now holds. */
  async #sync(roomId: string, held: Held, withSeats: boolean): Promise<void> {
    const k = this.#keys(roomId);
    const holders = seats.map((seat) => (withSeats ? (held.seats.get(seat) ?? '') : ''));
    const args: Array<string | number> = [this.leaseMs, held.room ? JSON.stringify(held.room) : '', roles.length, ...holders];
    for (const peer of held.peers.values()) args.push(peer.id, roles.indexOf(peer.role) + 1, JSON.stringify(peer));
    const lost = (await this.#eval(scripts.sync, [k.room, k.peers, ...k.roles, ...k.seats], args)) as unknown[];
    for (const index of lost) {
      const seat = seats[Number(index) - 1]!;
      const peerId = holders[Number(index) - 1]!;
      if (held.seats.get(seat) === peerId) held.seats.delete(seat);
      this.emit('seatLost', { roomId, seat, peerId });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#refreshTimer);
    await this.#refreshing?.catch(() => undefined);
    // What this node holds is left to its leases: the rooms' own close already deleted them.
    this.#held.clear();
    try {
      await Promise.race([this.client.quit(), new Promise((_, reject) => setTimeout(reject, 1000).unref())]);
    } catch {
      // Not connected (or too slow to say goodbye): just drop the socket.
    }
    this.client.disconnect();
    this.#updateHealth();
  }

  // --- plumbing -----------------------------------------------------------------------------

  #keys(roomId: string): { room: string; peers: string; roles: string[]; seats: string[] } {
    const base = `${this.prefix}{${roomId}}`;
    return {
      room: `${base}:room`,
      peers: `${base}:peers`,
      roles: roles.map((role) => `${base}:role:${role}`),
      seats: seats.map((seat) => `${base}:seat:${seat}`),
    };
  }

  /** The registry's hash and expiry zset: one hash tag, so NODE_PUT/NODE_LIST stay in one slot. */
  #nodeKeys(): [records: string, expiries: string] {
    return [`${this.prefix}{nodes}`, `${this.prefix}{nodes}:expiry`];
  }

  #hold(roomId: string): Held {
    let held = this.#held.get(roomId);
    if (!held) this.#held.set(roomId, (held = { room: undefined, claims: 0, peers: new Map(), seats: new Map() }));
    return held;
  }

  /** EVALSHA, falling back to EVAL when Redis lost its script cache (a restart, a failover). */
  async #eval(s: Script, keys: string[], args: Array<string | number>): Promise<unknown> {
    try {
      return await this.client.evalsha(s.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return this.client.eval(s.lua, keys.length, ...keys, ...args);
    }
  }

  async #run<T>(op: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new ChorusError('UNAVAILABLE', `state store closed (${op})`);
    const started = performance.now();
    let ok = false;
    try {
      // A signal of its own per call: without one cockatiel hangs every call's listener on one
      // shared signal, and a burst of concurrent calls trips Node's max-listeners warning.
      const result = await this.#policy.execute(fn, new AbortController().signal);
      ok = true;
      return result;
    } catch (error) {
      throw this.#asChorusError(op, error);
    } finally {
      this.#options.onCommand?.(op, (performance.now() - started) / 1000, ok);
    }
  }

  #asChorusError(op: string, error: unknown): ChorusError {
    if (error instanceof ChorusError) return error;
    if (error instanceof BrokenCircuitError) {
      return new ChorusError('UNAVAILABLE', `state store (Redis) unavailable, circuit open (${op}); retry shortly`);
    }
    if (error instanceof TaskCancelledError) return new ChorusError('UNAVAILABLE', `state store (Redis) timed out (${op}); retry`);
    const detail = error instanceof Error ? error.message : String(error);
    if (isTransientRedisError(error)) return new ChorusError('UNAVAILABLE', `state store (Redis) unavailable (${op}: ${detail}); retry`);
    this.#report(error, op);
    return new ChorusError('INTERNAL', `state store error (${op}: ${detail})`);
  }

  #updateHealth(): void {
    const healthy = !this.#closed && this.client.status === 'ready' && this.#breaker.state === CircuitState.Closed;
    if (healthy === this.#healthy) return;
    this.#healthy = healthy;
    this.emit('health', healthy);
  }

  #report(error: unknown, context: string): void {
    this.#options.onError?.(error, context);
  }
}

function ttlMs(ttlSeconds: number): number {
  return Math.max(1, Math.ceil(ttlSeconds * 1000));
}
