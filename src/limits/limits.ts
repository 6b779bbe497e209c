/**
 * Abuse limits: request rates per IP, per connection and per identity, joins per room, concurrent
 * connections per IP. Backed by rate-limiter-flexible's memory limiters; the cluster swaps in its
 * Redis limiters behind the same `RateLimiterAbstract` interface. Refusing costs one map lookup.
 */
import { BurstyRateLimiter, RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { ChorusError } from '../protocol/errors.js';
import type { AuditSink } from '../observability/audit.js';
import type { RedisClient } from '../store/redisConnection.js';

export interface LimitSettings {
  httpPerIpPerMinute: number;
  messagesPerConnectionPerSecond: number;
  /**
   * Messages a session may send beyond its steady rate, per 10 s: joining a call of fifty
   * subscribes to ~100 tracks at once (consume, view, resume: ~250 messages), which a steady
   * 50 per second would refuse for five seconds while a flood is still held to the steady rate.
   */
  messageBurstPerConnection: number;
  messagesPerIpPerSecond: number;
  joinsPerIdentityPerMinute: number;
  /**
   * Joins through one reusable link from one address: a venue's Wi-Fi or a carrier NAT puts
   * hundreds of people behind one address within minutes, so this is sized for a crowd, and the
   * room's capacity is the real bound.
   */
  joinsPerSharedLinkPerMinute: number;
  joinsPerRoomPerSecond: number;
  /** Layer, view and mute requests of one session (a tile resized in a loop, a mute flood). */
  trackControlsPerSecond: number;
  /** Track controls beyond the steady rate, per 10 s (a joiner sizing every tile of a full call at once). */
  trackControlBurst: number;
  /** Offers, answers and ICE candidates a call participant relays to its peer (a few dozen per connection). */
  p2pSignalsPerSecond: number;
  /** Asks to be unmuted, per session: the moderators read each one. */
  muteRequestsPerMinute: number;
  /** Chat messages per session per minute (a class of hundreds reads each one). */
  chatPerMinute: number;
  connectionsPerIp: number;
  /** TCP connections per socket address (see ConnectionGuard); X-Forwarded-For never applies. */
  tcpConnectionsPerAddress: number;
  /** Handshakes: how long a connection may stay before its first request or Socket.IO connect. */
  handshakeTimeoutMs: number;
  /** Refusal log lines: at most one per offender per this interval. */
  logIntervalMs: number;
  tokensPerKeyPerMinute: number;
  roomsPerApiKey: number;
}

export type LimitName =
  | 'http'
  | 'messagesPerConnection'
  | 'messagesPerIp'
  | 'joinsPerIdentity'
  | 'joinsPerSharedLink'
  | 'joinsPerRoom'
  | 'tokensPerKey'
  | 'trackControls'
  | 'p2pSignals'
  | 'muteRequests'
  | 'chat';

/** A limiter, and how to tell its first refusal in a window (audited; the rest of a flood is not). */
interface Limiter {
  consume(key: string): Promise<unknown>;
  firstRefusal(rejection: RateLimiterRes, key: string): Promise<boolean>;
}

function steadyOnly(limiter: RateLimiterAbstract): Limiter {
  return { consume: (key) => limiter.consume(key), firstRefusal: async (rejection) => rejection.consumedPoints === limiter.points + 1 };
}

/** A steady rate plus a burst spent only when the steady one is used up (rate-limiter-flexible's BurstyRateLimiter). */
function withBurst(steady: RateLimiterAbstract, burstPoints: number, keyPrefix: string): Limiter {
  const burst = new RateLimiterMemory({ points: Math.max(1, burstPoints), duration: 10, keyPrefix: `${keyPrefix}-burst` });
  if (burstPoints === 0) return steadyOnly(steady);
  const limiter = new BurstyRateLimiter(steady, burst);
  return {
    consume: (key) => limiter.consume(key),
    // The combined refusal carries the steady count; the burst's own says whether it just ran out.
    firstRefusal: async (_rejection, key) => (await burst.get(key))?.consumedPoints === burstPoints + 1,
  };
}

export class Limits {
  readonly #limiters: Record<LimitName, Limiter>;
  readonly #connections = new Map<string, number>();
  readonly #refusedIps = new Set<string>();

  /**
   * @param redis in a cluster, counters live in Redis so a client spreading requests over nodes
   *   meets one limit; while Redis is unreachable each node falls back to its own memory counters.
   */
  constructor(
    readonly settings: LimitSettings,
    private readonly audit: AuditSink,
    redis?: { client: RedisClient; prefix: string },
  ) {
    const make = (points: number, duration: number, keyPrefix: string, shared = true): RateLimiterAbstract => {
      const memory = new RateLimiterMemory({ points, duration, keyPrefix });
      if (!redis || !shared) return memory;
      return new RateLimiterRedis({
        storeClient: redis.client,
        points,
        duration,
        keyPrefix: `${redis.prefix}rl:${keyPrefix}`,
        rejectIfRedisNotReady: true,
        insuranceLimiter: memory,
      });
    };
    const perSecond = (points: number, keyPrefix: string) => steadyOnly(make(points, 1, keyPrefix));
    const perMinute = (points: number, keyPrefix: string) => steadyOnly(make(points, 60, keyPrefix));
    this.#limiters = {
      http: perMinute(settings.httpPerIpPerMinute, 'http'),
      // Message rates protect the node that reads the messages, and a connection lives on one
      // node: counted in memory. In Redis they cost two round trips on every signaling message
      // (~40 of a listener join's ~100 Redis commands, measured) and bought nothing.
      messagesPerConnection: withBurst(make(settings.messagesPerConnectionPerSecond, 1, 'msg-conn', false), settings.messageBurstPerConnection, 'msg-conn'),
      messagesPerIp: steadyOnly(make(settings.messagesPerIpPerSecond, 1, 'msg-ip', false)),
      joinsPerIdentity: perMinute(settings.joinsPerIdentityPerMinute, 'join-id'),
      joinsPerSharedLink: perMinute(settings.joinsPerSharedLinkPerMinute, 'join-link'),
      joinsPerRoom: perSecond(settings.joinsPerRoomPerSecond, 'join-room'),
      tokensPerKey: perMinute(settings.tokensPerKeyPerMinute, 'tokens'),
      // A session lives on one node: its own controls are counted where it is.
      trackControls: withBurst(make(settings.trackControlsPerSecond, 1, 'track-ctl', false), settings.trackControlBurst, 'track-ctl'),
      p2pSignals: withBurst(make(settings.p2pSignalsPerSecond, 1, 'p2p-sig', false), settings.p2pSignalsPerSecond * 2, 'p2p-sig'),
      muteRequests: steadyOnly(make(settings.muteRequestsPerMinute, 60, 'mute-req', false)),
      chat: steadyOnly(make(settings.chatPerMinute, 60, 'chat', false)),
    };
  }

  /**
   * Spends one point of `name` for `key`, or throws LIMIT_REACHED with a retry delay. A key made
   * of several parts (a room and an identity) is passed as a list and kept as its JSON text:
   * unambiguous whatever the parts hold, and printable, since it reaches the audit log and the
   * records database as it is.
   */
  async take(name: LimitName, parts: string | readonly string[]): Promise<void> {
    const key = typeof parts === 'string' ? parts : JSON.stringify(parts);
    try {
      await this.#limiters[name].consume(key);
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      // Audit the first refusal of a burst only: a flood must not become a log flood.
      if (await this.#limiters[name].firstRefusal(rejection, key)) this.audit.record({ type: 'limit.exceeded', limit: name, key });
      throw new ChorusError('LIMIT_REACHED', `too many requests (${name}); retry later`, Math.max(1, rejection.msBeforeNext));
    }
  }

  /** Counts a new connection from `ip`; false when that IP already holds its share. */
  openConnection(ip: string): boolean {
    const n = this.#connections.get(ip) ?? 0;
    if (n >= this.settings.connectionsPerIp) {
      if (!this.#refusedIps.has(ip)) this.audit.record({ type: 'limit.exceeded', limit: 'connectionsPerIp', key: ip });
      this.#refusedIps.add(ip);
      return false;
    }
    this.#connections.set(ip, n + 1);
    return true;
  }

  closeConnection(ip: string): void {
    this.#refusedIps.delete(ip);
    const n = (this.#connections.get(ip) ?? 1) - 1;
    if (n <= 0) this.#connections.delete(ip);
    else this.#connections.set(ip, n);
  }

  connectionsFrom(ip: string): number {
    return this.#connections.get(ip) ?? 0;
  }
}
