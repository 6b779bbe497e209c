/**
 * A real Redis Cluster for one test file: `masters × (1 + replicas)` redis-server processes
 * (cluster-enabled, each in its own temp dir on a spare port), joined by `redis-cli --cluster
 * create` as an operator would. Helpers answer where a key lives now, who replicates whom, and
 * wait for the cluster to be whole again after a chaos test killed a master.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { makeTlsFiles, startRedis, type RedisServer } from './redisServer.js';
import { until } from './testNode.js';

const run = promisify(execFile);

export interface RedisCluster {
  /** `redis+cluster://127.0.0.1:p1,…` (`rediss+cluster://` with `tls`) for REDIS_URL (every node a seed). */
  url: string;
  /** With `tls`: the certificate every node presents, for REDIS_TLS_CA. */
  caPath?: string;
  servers: RedisServer[];
  /** The live server that masters `key`'s hash slot now. */
  ownerOf(key: string): Promise<RedisServer>;
  /** The live masters now. */
  masters(): Promise<RedisServer[]>;
  /** The live replicas of `master`. */
  replicasOf(master: RedisServer): Promise<RedisServer[]>;
  /** Keys matching `pattern` on every live master. */
  keys(pattern: string): Promise<string[]>;
  /** PTTL of `key`, asked of its slot's master. */
  pttl(key: string): Promise<number>;
  flushAll(): Promise<void>;
  /** Resolves once every slot has a live master and every live node says `cluster_state:ok`. */
  whole(ms?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Every key matching `pattern` on one Redis server (SCAN, so a large keyspace is not blocked). */
export async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  return keys;
}

interface ClusterNodeLine {
  id: string;
  port: number;
  master: boolean;
  failed: boolean;
  masterId: string;
  slots: Array<[number, number]>;
}

/** CLUSTER NODES, one line per node: `<id> <ip:port@cport> <flags> <master> … <slot>…`. */
function parseNodes(text: string): ClusterNodeLine[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [id, address, flags, masterId, , , , , ...slots] = line.trim().split(' ');
      const flagList = flags!.split(',');
      return {
        id: id!,
        port: Number(/:(\d+)@/.exec(address!)![1]),
        master: flagList.includes('master'),
        failed: flagList.includes('fail') || flagList.includes('fail?'),
        masterId: masterId!,
        slots: slots
          .filter((s) => !s.startsWith('['))
          .map((s): [number, number] => {
            const [from, to] = s.split('-').map(Number);
            return [from!, to ?? from!];
          }),
      };
    });
}

export async function startRedisCluster(options: { masters?: number; replicas?: number; nodeTimeoutMs?: number; tls?: boolean } = {}): Promise<RedisCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 1;
  // TLS everywhere (clients, the cluster bus, replication) with one certificate every node trusts.
  const tlsDir = options.tls ? mkdtempSync(join(tmpdir(), 'chorus-redis-tls-')) : undefined;
  const tls = tlsDir ? makeTlsFiles(tlsDir) : undefined;
  const ca = tls && readFileSync(tls.certFile, 'utf8');
  const args = [
    ...(tls ? ['--tls-cluster', 'yes', '--tls-replication', 'yes'] : []),
    '--cluster-enabled', 'yes',
    '--cluster-config-file', 'nodes.conf',
    '--cluster-node-timeout', String(options.nodeTimeoutMs ?? 1000),
    // A replica that never finished its first sync may not be promoted; Redis' default waits 5 s
    // for more replicas before streaming that sync.
    '--repl-diskless-sync-delay', '0',
  ];
  const servers = await Promise.all(Array.from({ length: masters * (1 + replicas) }, () => startRedis({ args, ...(tls ? { tls } : {}) })));
  const admins = new Map(
    servers.map((s) => [
      s,
      new Redis({ port: s.port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 100, ...(ca ? { tls: { ca } } : {}) }),
    ]),
  );
  // Admin connections to a killed node keep retrying; their errors are expected, not news.
  for (const admin of admins.values()) admin.on('error', () => undefined);
  await Promise.all([...admins.values()].map((a) => a.connect()));
  const live = (): RedisServer[] => servers.filter((s) => admins.get(s)!.status === 'ready');
  const byPort = (port: number): RedisServer => servers.find((s) => s.port === port)!;

  const nodes = async (): Promise<ClusterNodeLine[]> => {
    for (const server of live()) {
      try {
        return parseNodes(String(await admins.get(server)!.call('CLUSTER', 'NODES')));
      } catch {
        // that one just died: ask the next
      }
    }
    throw new Error('no live Redis Cluster node answers');
  };

  const cluster: RedisCluster = {
    url: `${tls ? 'rediss' : 'redis'}+cluster://${servers.map((s) => `127.0.0.1:${s.port}`).join(',')}`,
    ...(tls ? { caPath: tls.certFile } : {}),
    servers,
    async ownerOf(key) {
      const slot = Number(await admins.get(live()[0]!)!.call('CLUSTER', 'KEYSLOT', key));
      const owner = (await nodes()).find((n) => n.master && !n.failed && n.slots.some(([from, to]) => slot >= from && slot <= to));
      if (!owner) throw new Error(`slot ${slot} (${key}) has no live master`);
      return byPort(owner.port);
    },
    async masters() {
      return (await nodes()).filter((n) => n.master && !n.failed).map((n) => byPort(n.port));
    },
    async replicasOf(master) {
      const all = await nodes();
      const id = all.find((n) => n.port === master.port)!.id;
      return all.filter((n) => !n.master && !n.failed && n.masterId === id).map((n) => byPort(n.port));
    },
    async keys(pattern) {
      const found: string[] = [];
      for (const node of (await nodes()).filter((n) => n.master && !n.failed)) {
        found.push(...(await scanKeys(admins.get(byPort(node.port))!, pattern)));
      }
      return found;
    },
    async pttl(key) {
      return admins.get(await cluster.ownerOf(key))!.pttl(key);
    },
    async flushAll() {
      for (const node of (await nodes()).filter((n) => n.master && !n.failed)) await admins.get(byPort(node.port))!.flushall();
    },
    async whole(ms = 20_000) {
      await until(
        async () => {
          const states = await Promise.all(live().map((s) => admins.get(s)!.call('CLUSTER', 'INFO').then(String, () => '')));
          // A master only just killed still looks healthy to its peers until the node timeout:
          // count the slots of masters that answer.
          const masters = (await nodes().catch(() => [])).filter((n) => n.master && !n.failed);
          const answering = await Promise.all(masters.map((n) => admins.get(byPort(n.port))!.ping().then(() => true, () => false)));
          const covered = masters.filter((_, i) => answering[i]).reduce((sum, n) => sum + n.slots.reduce((k, [from, to]) => k + to - from + 1, 0), 0);
          return covered === 16384 && states.length > 0 && states.every((info) => info.includes('cluster_state:ok'));
        },
        ms,
        'the Redis Cluster to cover every slot with a live master',
      );
    },
    async stop() {
      for (const admin of admins.values()) admin.disconnect();
      await Promise.all(servers.map((s) => s.stop()));
      if (tlsDir) rmSync(tlsDir, { recursive: true, force: true });
    },
  };

  try {
    const addresses = servers.map((s) => `127.0.0.1:${s.port}`);
    const tlsArgs = tls ? ['--tls', '--cacert', tls.certFile] : [];
    await run('redis-cli', [...tlsArgs, '--cluster', 'create', ...addresses, '--cluster-replicas', String(replicas), '--cluster-yes'], { timeout: 30_000 });
    await cluster.whole();
    // Replicas attach after the slots are assigned: wait until every master has its replicas and
    // each has synced (only a synced replica can be promoted when its master dies).
    await until(
      async () => {
        const all = await nodes();
        if (!all.filter((n) => n.master).every((m) => all.filter((r) => !r.master && r.masterId === m.id).length === replicas)) return false;
        const links = await Promise.all(all.filter((n) => !n.master).map((r) => admins.get(byPort(r.port))!.info('replication')));
        return links.every((info) => info.includes('master_link_status:up'));
      },
      20_000,
      'every Redis Cluster master to have its replicas',
    );
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}
