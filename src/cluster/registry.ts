/**
 * The cluster's node registry: each node re-announces itself (address, load, rooms, peers,
 * draining) every heartbeat with a short TTL, so a node that stops — killed, partitioned —
 * drops out within a few seconds. Other parts ask `isAlive` before depending on a node.
 */
import type { Logger } from '../observability/logger.js';
import type { NodeRecord, StateStore } from '../store/stateStore.js';

export interface RegistryOptions {
  heartbeatMs: number;
  ttlSeconds: number;
}

export class NodeRegistry {
  #nodes = new Map<string, NodeRecord>();
  /** When each node was last listed: what `isAlive` judges by. */
  readonly #lastSeen = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: StateStore,
    private readonly self: () => NodeRecord,
    private readonly log: Logger,
    private readonly options: RegistryOptions = { heartbeatMs: 2000, ttlSeconds: 6 },
  ) {}

  async start(): Promise<void> {
    await this.beat();
    this.#timer = setInterval(() => {
      this.beat().catch((error: unknown) => this.log.warn({ err: error }, 'registry heartbeat failed'));
    }, this.options.heartbeatMs);
    this.#timer.unref();
  }

  /** Announces this node and refreshes the view of the others. */
  async beat(): Promise<void> {
    const me = this.self();
    await this.store.putNode(me, this.options.ttlSeconds);
    const nodes = await this.store.listNodes();
    const before = new Set(this.#nodes.keys());
    this.#nodes = new Map(nodes.map((n) => [n.id, n]));
    this.#nodes.set(me.id, me);
    const now = Date.now();
    for (const id of this.#nodes.keys()) this.#lastSeen.set(id, now);
    // Forget nodes long gone (node ids are new on every start), keeping the map bounded.
    for (const [id, seen] of this.#lastSeen) if (now - seen > 3_600_000) this.#lastSeen.delete(id);
    for (const id of before) if (!this.#nodes.has(id)) this.log.warn({ gone: id }, 'node left the cluster (heartbeat expired)');
  }

  get nodes(): NodeRecord[] {
    return [...this.#nodes.values()];
  }

  /**
   * False only for a node this one has seen and has not seen since for longer than a record
   * lives: the view is a snapshot, so a node that started after it (unknown) or missed one
   * heartbeat is not declared dead.
   */
  isAlive(nodeId: string): boolean {
    const seen = this.#lastSeen.get(nodeId);
    if (seen === undefined || this.#nodes.has(nodeId)) return true;
    return Date.now() - seen <= this.options.ttlSeconds * 1000 + this.options.heartbeatMs * 2;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.store.removeNode(this.self().id).catch(() => undefined);
  }
}
