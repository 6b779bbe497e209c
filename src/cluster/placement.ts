/**
 * Where a room's origin (the node its publisher sends media to) lives in a cluster.
 *
 * Every node computes the same answer from the registry: weighted rendezvous (highest random
 * weight) hashing of the room id over the healthy, non-draining nodes, a lightly loaded node
 * weighing more. The first node to ask claims the answer atomically in the shared store, so two
 * nodes never both own a room even if their registry snapshots differ for a moment; the owner
 * renews the claim while it hosts the room. A claim whose node died or is draining is given up
 * and the room placed again, and rendezvous moves only that node's rooms.
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../observability/logger.js';
import type { NodeRecord, StateStore } from '../store/stateStore.js';

/** A node carrying this many consumers + transports weighs half as much as an idle one. */
const LOAD_HALF_WEIGHT = 500;

/** A uniform number in (0, 1) from a stable hash of the room and the node. */
function unit(roomId: string, nodeId: string): number {
  const digest = createHash('sha256').update(roomId).update('\0').update(nodeId).digest();
  // 53 bits: the most a double holds exactly; +0.5 keeps it off 0 and 1.
  return (Number(digest.readBigUInt64BE(0) >> 11n) + 0.5) / 2 ** 53;
}

export function weightOf(node: Pick<NodeRecord, 'load'>): number {
  return 1 / (1 + Math.max(0, node.load) / LOAD_HALF_WEIGHT);
}

/** The score of `node` for `roomId`: the highest wins (weighted rendezvous, `-w / ln u`). */
export function rendezvousScore(roomId: string, node: Pick<NodeRecord, 'id' | 'load'>): number {
  return -weightOf(node) / Math.log(unit(roomId, node.id));
}

/** The node rendezvous hashing picks for `roomId` among `nodes` (ties broken by id). */
export function rendezvousPick<N extends Pick<NodeRecord, 'id' | 'load'>>(roomId: string, nodes: readonly N[]): N | undefined {
  let best: N | undefined;
  let bestScore = -Infinity;
  for (const node of nodes) {
    const score = rendezvousScore(roomId, node);
    if (score > bestScore || (score === bestScore && best !== undefined && node.id < best.id)) {
      best = node;
      bestScore = score;
    }
  }
  return best;
}

/**
 * A node drawn at random with probability proportional to its weight (idle nodes more often):
 * how a draining node spreads its clients over the nodes that stay.
 */
export function pickWeighted<N extends Pick<NodeRecord, 'load'>>(nodes: readonly N[], random: () => number = Math.random): N | undefined {
  const total = nodes.reduce((sum, node) => sum + weightOf(node), 0);
  let r = random() * total;
  for (const node of nodes) {
    r -= weightOf(node);
    if (r < 0) return node;
  }
  return nodes.at(-1);
}

const claimKey = (roomId: string): string => `origin\0${roomId}`;

export class OriginPlacement {
  readonly #held = new Map<string, NodeJS.Timeout>();
  readonly #log: Logger;

  constructor(
    private readonly store: StateStore,
    /** Live nodes, read fresh: a node that just started draining must not be picked. */
    private readonly nodes: () => Promise<readonly NodeRecord[]>,
    private readonly selfId: string,
    log: Logger,
    private readonly leaseSeconds = 15,
    /** A faster death notice than the registry's TTL (the node bus: is it still subscribed?). */
    private readonly listening: (nodeId: string) => Promise<boolean> = async () => true,
  ) {
    this.#log = log.child({ component: 'placement' });
  }

  /**
   * The node that must host `roomId`'s publisher, claimed if nobody holds it; undefined when no
   * other node is eligible (then this node serves it).
   */
  async originFor(roomId: string): Promise<NodeRecord | undefined> {
    const listed = (await this.nodes()).filter((n) => !n.draining);
    // A node killed a moment ago is still listed until its record expires; it no longer listens.
    const live = await Promise.all(listed.map((n) => (n.id === this.selfId ? true : this.listening(n.id).catch(() => true))));
    const eligible = listed.filter((_, i) => live[i]);
    const key = claimKey(roomId);
    let holder = await this.store.getValue(key);
    if (holder !== undefined && !eligible.some((n) => n.id === holder)) {
      // Its node is dead, or draining (this one included): place the room again.
      this.#log.info({ room: roomId, from: holder }, 'origin claim held by a node that is gone or draining; placing again');
      if (holder === this.selfId) this.#stopHolding(roomId);
      await this.store.deleteValue(key, holder);
      holder = undefined;
    }
    if (holder === undefined) {
      const pick = rendezvousPick(roomId, eligible);
      if (!pick) return undefined;
      holder = await this.store.claimValue(key, pick.id, this.leaseSeconds);
      if (holder === pick.id) this.#log.info({ room: roomId, origin: pick.id }, 'room placed');
    }
    return eligible.find((n) => n.id === holder);
  }

  /** This node hosts `roomId`'s publisher: keep the claim alive until `closed` fires. */
  hold(roomId: string, closed: { once(event: 'close', listener: () => void): unknown }): void {
    if (this.#held.has(roomId)) return;
    const renew = (): void => {
      this.store.setValue(claimKey(roomId), this.selfId, this.leaseSeconds).catch((error: unknown) => this.#log.warn({ err: error, room: roomId }, 'origin claim not renewed'));
    };
    renew();
    const timer = setInterval(renew, (this.leaseSeconds * 1000) / 3);
    timer.unref();
    this.#held.set(roomId, timer);
    closed.once('close', () => this.release(roomId));
  }

  release(roomId: string): void {
    if (!this.#stopHolding(roomId)) return;
    this.store.deleteValue(claimKey(roomId), this.selfId).catch(() => undefined);
  }

  #stopHolding(roomId: string): boolean {
    const timer = this.#held.get(roomId);
    if (!timer) return false;
    clearInterval(timer);
    this.#held.delete(roomId);
    return true;
  }

  close(): void {
    for (const roomId of [...this.#held.keys()]) this.release(roomId);
  }
}
