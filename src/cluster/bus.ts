/**
 * Node-to-node requests over Redis pub/sub: each node listens on its own channel; a request
 * carries an id and the sender's node id, and the answer comes back on the sender's channel.
 * Requests time out and are retried (cockatiel); handlers must therefore be idempotent.
 *
 * On a Redis Cluster the channels are sharded (SPUBLISH/SSUBSCRIBE, Redis ≥ 7): a node's channel
 * lives on the shard its name hashes to, so a message crosses one shard instead of being
 * broadcast to every cluster node, and the receiver count a publish answers is exact — classic
 * PUBLISH on a cluster only counts the subscribers of the node that took the publish.
 */
import { randomUUID } from 'node:crypto';
import { ExponentialBackoff, handleWhen, retry, timeout, TimeoutStrategy, wrap } from 'cockatiel';
import type { RedisOptions } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import { ChorusError, isErrorCode, type WireError } from '../protocol/errors.js';
import type { ConnectionPurpose, RedisClient } from '../store/redisConnection.js';

/** Where the bus gets its two connections (the Redis state store). */
export interface BusRedis {
  connect(overrides: RedisOptions, purpose?: ConnectionPurpose): RedisClient;
  /** A Redis Cluster: use sharded pub/sub. */
  readonly cluster: boolean;
}

type Handler = (params: unknown, from: string) => Promise<unknown>;

interface Envelope {
  id: string;
  from: string;
  method?: string;
  params?: unknown;
  reply?: { ok: true; result: unknown } | { ok: false; error: WireError };
}

export class NodeBus {
  readonly #handlers = new Map<string, Handler>();
  /** Request ids handled in the last minute, oldest first. */
  readonly #handled = new Map<string, number>();
  readonly #pending = new Map<string, { resolve(value: unknown): void; reject(error: Error): void }>();
  readonly #policy = wrap(
    retry(handleWhen((e) => e instanceof ChorusError && e.code === 'UNAVAILABLE'), {
      maxAttempts: 2,
      backoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 500 }),
    }),
    timeout(3000, TimeoutStrategy.Aggressive),
  );

  private constructor(
    private readonly pub: RedisClient,
    private readonly sub: RedisClient,
    private readonly sharded: boolean,
    readonly nodeId: string,
    private readonly prefix: string,
    private readonly log: Logger,
  ) {}

  static async start(redis: BusRedis, nodeId: string, prefix: string, log: Logger): Promise<NodeBus> {
    const sharded = redis.cluster;
    const pub = redis.connect({ enableOfflineQueue: true, maxRetriesPerRequest: 1 });
    const sub = redis.connect({ enableOfflineQueue: true, maxRetriesPerRequest: null }, { shardedSubscriber: sharded });
    for (const c of [pub, sub]) c.on('error', (error: Error) => log.debug({ err: error }, 'redis (node bus)'));
    const bus = new NodeBus(pub, sub, sharded, nodeId, prefix, log.child({ component: 'bus' }));
    sub.on(sharded ? 'smessage' : 'message', (_channel: string, raw: string) => bus.#receive(raw));
    if (sharded) await sub.ssubscribe(bus.#channel(nodeId));
    else await sub.subscribe(bus.#channel(nodeId));
    return bus;
  }

  /** Sends `envelope` to `nodeId`'s channel; answers how many subscribers received it. */
  #publish(nodeId: string, envelope: Envelope): Promise<number> {
    const channel = this.#channel(nodeId);
    const raw = JSON.stringify(envelope);
    return this.sharded ? this.pub.spublish(channel, raw).then(Number) : this.pub.publish(channel, raw);
  }

  #channel(nodeId: string): string {
    return `${this.prefix}node:${nodeId}`;
  }

  /** Records `id`; true when it was already recorded within the last minute. */
  #seen(id: string): boolean {
    const now = Date.now();
    if (this.#handled.has(id)) return true;
    this.#handled.set(id, now);
    // Insertion order is age order: drop what is older than a minute (retries use new ids).
    for (const [old, at] of this.#handled) {
      if (now - at < 60_000) break;
      this.#handled.delete(old);
    }
    return false;
  }

  handle(method: string, handler: Handler): void {
    this.#handlers.set(method, handler);
  }

  /** Calls `method` on `nodeId` and returns its result, or throws its ChorusError. */
  async request<T>(nodeId: string, method: string, params: unknown): Promise<T> {
    try {
      return (await this.#policy.execute(() => this.#once(nodeId, method, params))) as T;
    } catch (error) {
      if (error instanceof ChorusError) throw error;
      throw new ChorusError('UNAVAILABLE', `node ${nodeId} did not answer ${method}`);
    }
  }

  /**
   * Whether `nodeId` is subscribed to its channel right now. Redis drops a subscription the moment
   * its connection closes, so a killed node stops listening at once — seconds before its registry
   * record expires. Asked with an empty envelope (no method: the receiver ignores it) because a
   * publish's receiver count is exact on every deployment, where PUBSUB NUMSUB on a cluster only
   * knows the node it was sent to.
   */
  async isListening(nodeId: string): Promise<boolean> {
    return (await this.#publish(nodeId, { id: randomUUID(), from: this.nodeId })) > 0;
  }

  /** Fire and forget (a notice that needs no answer). */
  notify(nodeId: string, method: string, params: unknown): void {
    this.#publish(nodeId, { id: randomUUID(), from: this.nodeId, method, params }).catch((error: unknown) => this.log.warn({ err: error, method }, 'notice not sent'));
  }

  async #once(nodeId: string, method: string, params: unknown): Promise<unknown> {
    const id = randomUUID();
    const answered = new Promise<unknown>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    try {
      const receivers = await this.#publish(nodeId, { id, from: this.nodeId, method, params });
      if (receivers === 0) throw new ChorusError('UNAVAILABLE', `node ${nodeId} is not listening`);
      return await answered;
    } finally {
      this.#pending.delete(id);
    }
  }

  #receive(raw: string): void {
    let envelope: Envelope;
    try {
      envelope = JSON.parse(raw) as Envelope;
    } catch {
      return;
    }
    if (envelope.reply) {
      const pending = this.#pending.get(envelope.id);
      if (!pending) return;
      if (envelope.reply.ok) pending.resolve(envelope.reply.result);
      else pending.reject(new ChorusError(isErrorCode(envelope.reply.error.code) ? envelope.reply.error.code : 'INTERNAL', envelope.reply.error.message));
      return;
    }
    const handler = envelope.method === undefined ? undefined : this.#handlers.get(envelope.method);
    if (!handler) return;
    // At most once per request id: a message delivered twice (a subscriber being replaced while
    // the cluster's slot map changes) would otherwise run the handler again, and pipe.open run
    // twice replaces the pipe whose address the edge already took from the first answer.
    if (this.#seen(envelope.id)) {
      this.log.warn({ method: envelope.method, from: envelope.from }, 'duplicate node-bus request ignored');
      return;
    }
    handler(envelope.params, envelope.from).then(
      (result) => this.#reply(envelope, { ok: true, result }),
      (error: unknown) => {
        if (!(error instanceof ChorusError)) this.log.error({ err: error, method: envelope.method }, 'bus handler failed');
        const wire = error instanceof ChorusError ? error.toWire() : new ChorusError('INTERNAL', 'internal error').toWire();
        this.#reply(envelope, { ok: false, error: wire });
      },
    );
  }

  #reply(request: Envelope, reply: NonNullable<Envelope['reply']>): void {
    this.#publish(request.from, { id: request.id, from: this.nodeId, reply }).catch((error: unknown) => this.log.warn({ err: error }, 'reply not sent'));
  }

  close(): void {
    for (const { reject } of this.#pending.values()) reject(new ChorusError('UNAVAILABLE', 'node bus closed'));
    this.sub.disconnect();
    this.pub.disconnect();
  }
}
