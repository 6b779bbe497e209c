/**
 * One REDIS_URL, three deployments: a single Redis, Redis behind Sentinel, or a Redis Cluster.
 * This module reads the URL and opens ioredis connections to that deployment, so the store, the
 * node bus and the signaling adapter each get a connection tuned for their job (fail-fast
 * commands, blocking reads, subscriptions) without knowing which deployment it is.
 *
 *   redis://[user:pass@]host[:port][/db], rediss://…     a single node (TLS with rediss)
 *   redis+sentinel://[user:pass@]h1[:port],h2[:port]/<master>[/db][?sentinelPassword=…]
 *                                                        Sentinel: ioredis asks the sentinels
 *                                                        (default port 26379) for the master and
 *                                                        follows failovers
 *   redis+cluster://[user:pass@]h1[:port],h2[:port]…     Redis Cluster (≥ 7: node-to-node
 *   rediss+cluster://…                                   messages use sharded pub/sub): any
 *                                                        reachable nodes as seeds (default port
 *                                                        6379); ioredis learns the slot map,
 *                                                        follows MOVED/ASK and failovers
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

/** A connection to whichever deployment REDIS_URL names; the command surface is the same. */
export type RedisClient = Redis | Cluster;

interface HostPort {
  host: string;
  port: number;
}

export type ParsedRedisUrl =
  | { mode: 'standalone'; url: string }
  | {
      mode: 'sentinel';
      name: string;
      sentinels: HostPort[];
      db: number;
      username?: string;
      password?: string;
      sentinelPassword?: string;
    }
  | { mode: 'cluster'; nodes: HostPort[]; tls: boolean; username?: string; password?: string };

/** `user:pass`, `:pass` or `pass` (Redis' default user) from a URL's userinfo. */
function credentials(auth: string | undefined): { username?: string; password?: string } {
  if (!auth) return {};
  const colon = auth.indexOf(':');
  if (colon < 0) return { password: decodeURIComponent(auth) };
  const user = decodeURIComponent(auth.slice(0, colon));
  return { ...(user ? { username: user } : {}), password: decodeURIComponent(auth.slice(colon + 1)) };
}

/** `h1[:port],[::1]:port,…` — several hosts are no valid WHATWG URL authority: split by hand. */
function hostList(hosts: string, defaultPort: number, what: string): HostPort[] {
  return hosts.split(',').map((entry) => {
    const match = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d+))?$/.exec(entry.trim());
    if (!match) throw new Error(`bad ${what} address "${entry}"`);
    return { host: match[1]!.replace(/^\[|\]$/g, ''), port: match[2] ? Number(match[2]) : defaultPort };
  });
}

/** Whether the connection runs over TLS (`rediss://`, `rediss+cluster://`). */
export function usesTls(parsed: ParsedRedisUrl): boolean {
  return parsed.mode === 'cluster' ? parsed.tls : parsed.mode === 'standalone' && /^rediss:/i.test(parsed.url);
}

/** Reads REDIS_URL; throws (with the reason) on a malformed or unsupported one. */
export function parseRedisUrl(url: string): ParsedRedisUrl {
  const scheme = /^([a-z+]+):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'redis' || scheme === 'rediss') {
    new URL(url); // throws on a malformed one
    return { mode: 'standalone', url };
  }
  if (scheme === 'redis+sentinel') {
    const match = /^redis\+sentinel:\/\/(?:([^@/]*)@)?([^/?]+)\/([^/?]+)(?:\/(\d+))?\/?(?:\?(.*))?$/i.exec(url);
    if (!match) throw new Error('redis+sentinel URL must look like redis+sentinel://[user:pass@]host[:port][,host[:port]…]/<master>[/db]');
    const [, auth, hosts, name, db, query] = match;
    const parsed: ParsedRedisUrl = {
      mode: 'sentinel',
      name: decodeURIComponent(name!),
      sentinels: hostList(hosts!, 26379, 'sentinel'),
      db: db ? Number(db) : 0,
      ...credentials(auth),
    };
    const sentinelPassword = new URLSearchParams(query ?? '').get('sentinelPassword');
    if (sentinelPassword) parsed.sentinelPassword = sentinelPassword;
    return parsed;
  }
  if (scheme === 'redis+cluster' || scheme === 'rediss+cluster') {
    // A cluster has one keyspace (database 0): a path would be a mistake worth refusing.
    const match = /^rediss?\+cluster:\/\/(?:([^@/]*)@)?([^/?]+)\/?$/i.exec(url);
    if (!match) throw new Error('redis+cluster URL must look like redis+cluster://[user:pass@]host[:port][,host[:port]…] (no database: a cluster has only db 0)');
    const [, auth, hosts] = match;
    return { mode: 'cluster', nodes: hostList(hosts!, 6379, 'cluster node'), tls: scheme === 'rediss+cluster', ...credentials(auth) };
  }
  throw new Error(`unsupported REDIS_URL scheme "${scheme ?? url}": use redis://, rediss://, redis+sentinel:// or redis+cluster://`);
}

/** What a connection is for, beyond the shared options: a cluster client needs to know up front. */
export interface ConnectionPurpose {
  /** The connection will SSUBSCRIBE (a cluster then keeps one subscriber per shard). */
  shardedSubscriber?: boolean;
}

/**
 * Opens a connection to `parsed` with `options` (timeouts, queueing, retry strategy). For a
 * cluster, `options` apply to every node connection and the cluster client itself gets the same
 * queueing and reconnect behaviour, so a command either runs against the current slot owner or
 * fails fast for the caller's own retry policy.
 */
export function openRedis(parsed: ParsedRedisUrl, options: RedisOptions, purpose: ConnectionPurpose = {}): RedisClient {
  if (parsed.mode === 'standalone') return new Redis(parsed.url, options);
  if (parsed.mode === 'sentinel') {
    const { mode: _mode, ...sentinel } = parsed;
    return new Redis({ ...options, ...sentinel });
  }
  const { enableOfflineQueue, retryStrategy, ...nodeOptions } = options;
  const clusterOptions: ClusterOptions = {
    redisOptions: {
      ...nodeOptions,
      ...(parsed.username ? { username: parsed.username } : {}),
      ...(parsed.password ? { password: parsed.password } : {}),
      ...(parsed.tls ? { tls: nodeOptions.tls ?? {} } : {}),
    },
    ...(enableOfflineQueue !== undefined ? { enableOfflineQueue } : {}),
    ...(retryStrategy ? { clusterRetryStrategy: (times: number) => retryStrategy(times) } : {}),
    // A killed master's slots answer nothing until a replica is promoted: ask again for the slot
    // map soon rather than after the default 5 s, and keep retrying redirected commands briefly.
    slotsRefreshInterval: 1000,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    shardedSubscribers: purpose.shardedSubscriber === true,
  };
  return new Cluster(parsed.nodes, clusterOptions);
}
