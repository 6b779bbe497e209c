/**
 * Shared room and peer state. The memory implementation serves one node; a Redis one (next, for
 * the cluster) will implement the same interface so several nodes agree on who is in a room and
 * who holds its single broadcaster seat. Everything is async for that reason.
 */
import type { Role, RoomKind } from '../protocol/messages.js';

export interface RoomRecord {
  id: string;
  kind: RoomKind;
  nodeId: string;
  createdAt: number;
  /** The API key whose token created the room (rooms-per-key quota). */
  keyId: string;
}

export interface PeerRecord {
  id: string;
  roomId: string;
  identity: string;
  role: Role;
  nodeId: string;
  joinedAt: number;
}

/** A seat only one peer of a room can hold at a time (the broadcaster's, a host's). */
export type Seat = 'broadcaster';

export interface StateStore {
  putRoom(room: RoomRecord): Promise<void>;
  getRoom(roomId: string): Promise<RoomRecord | undefined>;
  deleteRoom(roomId: string): Promise<void>;

  addPeer(peer: PeerRecord): Promise<void>;
  removePeer(roomId: string, peerId: string): Promise<void>;
  countPeers(roomId: string, role?: Role): Promise<number>;

  /** Atomically takes `seat` for `peerId` if nobody holds it; true when taken. */
  claimSeat(roomId: string, seat: Seat, peerId: string): Promise<boolean>;
  /** Frees `seat` only if `peerId` holds it, so a late release never evicts a successor. */
  releaseSeat(roomId: string, seat: Seat, peerId: string): Promise<void>;
  seatHolder(roomId: string, seat: Seat): Promise<string | undefined>;

  /**
   * Records `key` for `ttlSeconds`; true only for the first caller (a token id's single use).
   */
  useOnce(key: string, ttlSeconds: number): Promise<boolean>;
  /** A timestamp that expires (when an identity was kicked, when a room was ended). */
  setMark(key: string, value: number, ttlSeconds: number): Promise<void>;
  getMark(key: string): Promise<number | undefined>;

  close(): Promise<void>;
}
