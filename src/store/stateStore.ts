/**
 * Shared room and peer state. The memory implementation serves one node; the Redis one
 * (redisStore.ts, for the cluster) implements the same interface so several nodes agree on who is
 * in a room and who holds its single broadcaster seat. Everything is async for that reason.
 */
import type { Role, RoomKind } from '../protocol/messages.js';

export interface RoomRecord {
  id: string;
  kind: RoomKind;
  nodeId: string;
  createdAt: number;
  /** The API key whose token created the room (rooms-per-key quota). */
  keyId: string;
  /**
   * Whose room it is: the tenant of the key that opened it. Only that tenant's tokens join it,
   * on any node. Absent in records written before tenants: the key id is the tenant then.
   */
  tenant?: string | undefined;
}

/** The tenant a room record belongs to. */
export function ownerOf(room: RoomRecord): string {
  return room.tenant ?? room.keyId;
}

export interface PeerRecord {
  id: string;
  roomId: string;
  identity: string;
  role: Role;
  nodeId: string;
  joinedAt: number;
}

/** Seats only one peer of a room can hold at a time (the broadcaster's, a host's). */
/** A node of the cluster as it announces itself in the registry. */
export interface NodeRecord {
  id: string;
  /** Base URL of its HTTP/signaling endpoint. */
  url: string;
  /** Consumers + transports on its workers. */
  load: number;
  rooms: number;
  peers: number;
  draining: boolean;
}

export const seats = ['broadcaster'] as const;
export type Seat = (typeof seats)[number];

export interface StateStore {
  putRoom(room: RoomRecord): Promise<void>;
  /**
   * Writes `room` only if the room has no record yet, atomically (the first node to open a room
   * decides its owner and kind for the whole cluster); answers the record the room has after
   * the call: `room` itself, or the one that was there. This node keeps the record alive (its
   * lease, see refresh) when it has the same owner and kind as `room`, until `leaveRoom`.
   */
  claimRoom(room: RoomRecord): Promise<RoomRecord>;
  /**
   * This node no longer serves the room, but others may (its record stays): stop keeping the
   * record alive from here. Paired with each claimRoom/putRoom a room of this node made.
   */
  leaveRoom(roomId: string): Promise<void>;
  getRoom(roomId: string): Promise<RoomRecord | undefined>;
  deleteRoom(roomId: string): Promise<void>;

  addPeer(peer: PeerRecord): Promise<void>;
  removePeer(roomId: string, peerId: string): Promise<void>;
  countPeers(roomId: string, role?: Role): Promise<number>;
  /** The room's live sessions on every node (leases not run out), in no particular order. */
  listPeers(roomId: string): Promise<PeerRecord[]>;

  /**
   * Atomically takes `seat` for `peerId` if nobody holds it; true when `peerId` holds it after the
   * call (so a retried claim whose first reply was lost still reports success).
   */
  claimSeat(roomId: string, seat: Seat, peerId: string): Promise<boolean>;
  /** Frees `seat` only if `peerId` holds it, so a late release never evicts a successor. */
  releaseSeat(roomId: string, seat: Seat, peerId: string): Promise<void>;
  seatHolder(roomId: string, seat: Seat): Promise<string | undefined>;
  /** Moves `seat` from `fromPeerId` to `toPeerId` only if `fromPeerId` still holds it. */
  takeSeat(roomId: string, seat: Seat, fromPeerId: string, toPeerId: string): Promise<boolean>;
  getPeer(roomId: string, peerId: string): Promise<PeerRecord | undefined>;

  /**
   * Records `key` for `ttlSeconds`; true only for the first caller (a token id's single use).
   */
  useOnce(key: string, ttlSeconds: number): Promise<boolean>;
  /** A timestamp that expires (when an identity was kicked, when a room was ended). */
  setMark(key: string, value: number, ttlSeconds: number): Promise<void>;
  getMark(key: string): Promise<number | undefined>;

  /**
   * Re-asserts what this node wrote (its rooms, peers and seats) and extends their leases. A
   * shared store gives every entry a lease so a node that dies or is partitioned away stops
   * counting on its own; the node keeps its live entries by calling this periodically (the Redis
   * store does so on a timer) and it also restores them after the store lost its data. A no-op in
   * the memory store, whose state dies with the process it describes.
   */
  refresh(): Promise<void>;

  /**
   * A small value with a lease, owned by whoever wrote it (a room's current broadcast: which
   * node holds it, which producer). The owner re-writes it to extend the lease.
   */
  setValue(key: string, value: string, ttlSeconds: number): Promise<void>;
  getValue(key: string): Promise<string | undefined>;
  /**
   * Writes `value` only if `key` holds nothing, atomically; answers the value `key` holds after
   * the call (ours if we won). Two nodes claiming at once: one wins, both learn who.
   */
  claimValue(key: string, value: string, ttlSeconds: number): Promise<string | undefined>;
  /** Deletes `key` only while it still holds `value`, so a late delete spares a successor's. */
  deleteValue(key: string, value: string): Promise<void>;
  /**
   * Compare-and-set: writes `next` (or deletes the key when `next` is undefined) only while the key
   * holds `expected` (undefined: the key is absent). True when the swap happened. State several
   * nodes change (a watch room's playback) goes through this so no change is silently lost.
   */
  swapValue(key: string, expected: string | undefined, next: string | undefined, ttlSeconds: number): Promise<boolean>;

  /** Announces (or re-announces) a node; it drops out of `listNodes` after `ttlSeconds`. */
  putNode(node: NodeRecord, ttlSeconds: number): Promise<void>;
  removeNode(nodeId: string): Promise<void>;
  /** Nodes whose announcement has not expired. */
  listNodes(): Promise<NodeRecord[]>;

  close(): Promise<void>;
}
