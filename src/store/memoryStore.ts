import type { Role } from '../protocol/messages.js';
import type { NodeRecord, PeerRecord, RoomRecord, Seat, StateStore } from './stateStore.js';

/** The embedded default: one process, so plain maps are already atomic. */
export class MemoryStateStore implements StateStore {
  readonly #rooms = new Map<string, RoomRecord>();
  readonly #peers = new Map<string, Map<string, PeerRecord>>();
  readonly #seats = new Map<string, string>();
  /** key → [value, expiresAt ms]; swept as it grows so expired entries do not pile up. */
  readonly #expiring = new Map<string, [number, number]>();
  #nextSweepAt = 1024;

  async putRoom(room: RoomRecord): Promise<void> {
    this.#rooms.set(room.id, { ...room });
  }

  async claimRoom(room: RoomRecord): Promise<RoomRecord> {
    const existing = this.#rooms.get(room.id);
    if (!existing) this.#rooms.set(room.id, { ...room });
    return { ...(existing ?? room) };
  }

  async leaveRoom(): Promise<void> {
    // One process: nothing is kept alive on a lease here.
  }

  async getRoom(roomId: string): Promise<RoomRecord | undefined> {
    const room = this.#rooms.get(roomId);
    return room && { ...room };
  }

  async deleteRoom(roomId: string): Promise<void> {
    this.#rooms.delete(roomId);
    this.#peers.delete(roomId);
    for (const key of this.#seats.keys()) if (key.startsWith(`${roomId}\0`)) this.#seats.delete(key);
  }

  async addPeer(peer: PeerRecord): Promise<void> {
    let peers = this.#peers.get(peer.roomId);
    if (!peers) this.#peers.set(peer.roomId, (peers = new Map()));
    peers.set(peer.id, { ...peer });
  }

  async removePeer(roomId: string, peerId: string): Promise<void> {
    const peers = this.#peers.get(roomId);
    peers?.delete(peerId);
    if (peers?.size === 0) this.#peers.delete(roomId);
  }

  async countPeers(roomId: string, role?: Role): Promise<number> {
    const peers = this.#peers.get(roomId);
    if (!peers) return 0;
    if (role === undefined) return peers.size;
    let n = 0;
    for (const p of peers.values()) if (p.role === role) n++;
    return n;
  }

  async listPeers(roomId: string): Promise<PeerRecord[]> {
    return [...(this.#peers.get(roomId)?.values() ?? [])].map((peer) => ({ ...peer }));
  }

  async claimSeat(roomId: string, seat: Seat, peerId: string): Promise<boolean> {
    const key = `${roomId}\0${seat}`;
    const holder = this.#seats.get(key);
    if (holder !== undefined) return holder === peerId;
    this.#seats.set(key, peerId);
    return true;
  }

  async releaseSeat(roomId: string, seat: Seat, peerId: string): Promise<void> {
    const key = `${roomId}\0${seat}`;
    if (this.#seats.get(key) === peerId) this.#seats.delete(key);
  }

  async takeSeat(roomId: string, seat: Seat, fromPeerId: string, toPeerId: string): Promise<boolean> {
    const key = `${roomId}\0${seat}`;
    if (this.#seats.get(key) !== fromPeerId) return false;
    this.#seats.set(key, toPeerId);
    return true;
  }

  async getPeer(roomId: string, peerId: string): Promise<PeerRecord | undefined> {
    const peer = this.#peers.get(roomId)?.get(peerId);
    return peer && { ...peer };
  }

  async seatHolder(roomId: string, seat: Seat): Promise<string | undefined> {
    return this.#seats.get(`${roomId}\0${seat}`);
  }

  async useOnce(key: string, ttlSeconds: number): Promise<boolean> {
    // Check and set in one synchronous step: awaiting in between let racing callers all pass.
    if (this.#read(key) !== undefined) return false;
    this.#write(key, 1, ttlSeconds);
    return true;
  }

  async setMark(key: string, value: number, ttlSeconds: number): Promise<void> {
    this.#write(key, value, ttlSeconds);
  }

  async getMark(key: string): Promise<number | undefined> {
    return this.#read(key);
  }

  #write(key: string, value: number, ttlSeconds: number): void {
    this.#expiring.set(key, [value, Date.now() + ttlSeconds * 1000]);
    if (this.#expiring.size >= this.#nextSweepAt) {
      const now = Date.now();
      for (const [k, [, expiresAt]] of this.#expiring) if (expiresAt <= now) this.#expiring.delete(k);
      this.#nextSweepAt = Math.max(1024, this.#expiring.size * 2);
    }
  }

  #read(key: string): number | undefined {
    const entry = this.#expiring.get(key);
    if (!entry) return undefined;
    if (entry[1] <= Date.now()) {
      this.#expiring.delete(key);
      return undefined;
    }
    return entry[0];
  }

  async refresh(): Promise<void> {
    // One process: nothing can outlive or lose this state behind its back.
  }

  readonly #values = new Map<string, [string, number]>();

  async setValue(key: string, value: string, ttlSeconds: number): Promise<void> {
    this.#values.set(key, [value, Date.now() + ttlSeconds * 1000]);
  }

  async getValue(key: string): Promise<string | undefined> {
    const entry = this.#values.get(key);
    if (entry && entry[1] > Date.now()) return entry[0];
    this.#values.delete(key);
    return undefined;
  }

  async claimValue(key: string, value: string, ttlSeconds: number): Promise<string | undefined> {
    // No await between the check and the write: racing claims in this process see each other.
    const entry = this.#values.get(key);
    if (entry && entry[1] > Date.now()) return entry[0];
    this.#values.set(key, [value, Date.now() + ttlSeconds * 1000]);
    return value;
  }

  async deleteValue(key: string, value: string): Promise<void> {
    if (this.#values.get(key)?.[0] === value) this.#values.delete(key);
  }

  async swapValue(key: string, expected: string | undefined, next: string | undefined, ttlSeconds: number): Promise<boolean> {
    // Read and write in one synchronous step (no await between them): nothing can interleave.
    const entry = this.#values.get(key);
    const current = entry && entry[1] > Date.now() ? entry[0] : undefined;
    if (current !== expected && !(next !== undefined && current === next)) return false;
    if (next === undefined) this.#values.delete(key);
    else this.#values.set(key, [next, Date.now() + ttlSeconds * 1000]);
    return true;
  }

  readonly #nodes = new Map<string, [NodeRecord, number]>();

  async putNode(node: NodeRecord, ttlSeconds: number): Promise<void> {
    this.#nodes.set(node.id, [{ ...node }, Date.now() + ttlSeconds * 1000]);
  }

  async removeNode(nodeId: string): Promise<void> {
    this.#nodes.delete(nodeId);
  }

  async listNodes(): Promise<NodeRecord[]> {
    const now = Date.now();
    return [...this.#nodes.values()].filter(([, expiresAt]) => expiresAt > now).map(([node]) => ({ ...node }));
  }

  async close(): Promise<void> {
    this.#nodes.clear();
    this.#values.clear();
    this.#expiring.clear();
    this.#rooms.clear();
    this.#peers.clear();
    this.#seats.clear();
  }
}
