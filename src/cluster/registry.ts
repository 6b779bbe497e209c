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
    for (const id of before) if (!this.#nodes.has(id)) this.log.warn({ gone: id }, 'node left the cluster (heartbeat expired)');
  }

  get nodes(): NodeRecord[] {
    return [...this.#nodes.values()];
  }

  isAlive(nodeId: string): boolean {
    return this.#nodes.has(nodeId);
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.store.removeNode(this.self().id).catch(() => undefined);
  }
}
