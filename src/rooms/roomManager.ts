/**
 * The rooms this node hosts. Creates a room (and its media) on first join, forgets it when it
 * closes, and makes concurrent first joins share one creation.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { VerifiedGrant } from '../auth/tokens.js';
import type { AuditSink } from '../observability/audit.js';
import { RoomMedia, type TransportSettings } from '../media/roomMedia.js';
import type { WorkerPool } from '../media/workerPool.js';
import type { Logger } from '../observability/logger.js';
import { ChorusError } from '../protocol/errors.js';
import type { RoomKind } from '../protocol/messages.js';
import { ownerOf, type StateStore } from '../store/stateStore.js';
import type { RoomChannel } from './channel.js';
import type { Peer } from './peer.js';
import { policyFor } from './policy.js';
import type { RemoteBroadcasts, RemoteMembers } from './remote.js';
import { Room, type RoomOptions } from './room.js';

export interface RoomManagerDeps {
  pool: WorkerPool;
  store: StateStore;
  channel: RoomChannel;
  transport: TransportSettings;
  maxConsumersPerWorker: number;
  room: RoomOptions;
  /** Rooms one API key's tokens may have open on this node at once. */
  maxRoomsPerKey: number;
  audit: AuditSink;
  log: Logger;
  /** The cluster's view of broadcasts on other nodes; absent on a single node. */
  remote?: RemoteBroadcasts | undefined;
  /** The cluster's view of members on other nodes (calls spread over nodes); absent on a single node. */
  members?: RemoteMembers | undefined;
}

export interface RoomManagerEvents {
  /** A room was created on this node (before anyone joined it). */
  room: [room: Room];
}

export class RoomManager extends EventEmitter<RoomManagerEvents> {
  readonly #rooms = new Map<string, Room>();
  readonly #creating = new Map<string, Promise<Room>>();

  constructor(private readonly deps: RoomManagerDeps) {
    super();
  }

  get rooms(): ReadonlyMap<string, Room> {
    return this.#rooms;
  }

  get(roomId: string): Room | undefined {
    return this.#rooms.get(roomId);
  }

  /** Joins `grant` to its room, creating the room here if it is new. */
  async join(grant: VerifiedGrant, previousPeerId?: string): Promise<{ room: Room; peer: Peer }> {
    const peerId = randomUUID();
    // A room may close (its last peer left) between being looked up and being joined; one
    // retry against a freshly created room covers that window.
    for (let attempt = 0; ; attempt++) {
      const room = owned(await this.#roomFor(grant), grant.tenant, grant.kind);
      try {
        return { room, peer: await room.join(grant, peerId, previousPeerId) };
      } catch (error) {
        if (!(room.closed && attempt === 0 && error instanceof ChorusError && error.code === 'UNAVAILABLE')) throw error;
      }
    }
  }

  /**
   * Opens `roomId` here for `key` without anyone joining yet (the media REST API's create), or
   * returns it when it is open already. The same rules as a join's: one tenant and one kind per
   * room, the key's room cap. Nobody publishing in it closes it after the idle time.
   */
  async open(roomId: string, kind: RoomKind, key: { id: string; tenant: string }): Promise<Room> {
    return owned(await this.#roomFor({ room: roomId, kind, keyId: key.id, tenant: key.tenant }), key.tenant, kind);
  }

  async #roomFor(grant: Pick<VerifiedGrant, 'room' | 'kind' | 'keyId' | 'tenant'>): Promise<Room> {
    const { room: roomId, kind, keyId } = grant;
    const existing = this.#rooms.get(roomId);
    if (existing && !existing.closed) return existing;
    let creating = this.#creating.get(roomId);
    if (!creating) {
      const open = [...this.#rooms.values()].filter((r) => r.keyId === keyId).length;
      if (open >= this.deps.maxRoomsPerKey) {
        throw new ChorusError('LIMIT_REACHED', `API key ${keyId} already has ${open} rooms open`);
      }
      creating = this.#create(roomId, kind, keyId, grant.tenant).finally(() => this.#creating.delete(roomId));
      this.#creating.set(roomId, creating);
    }
    return creating;
  }

  async #create(roomId: string, kind: RoomKind, keyId: string, tenant: string): Promise<Room> {
    const { pool, store, channel, transport, maxConsumersPerWorker, room: options, audit, log } = this.deps;
    const policy = policyFor(kind);
    let media: RoomMedia | undefined;
    try {
      // A watch party carries no media: no router is taken from a worker for it.
      // A broadcast's listeners use every core from the first one; rooms of many publishers fill
      // a worker first, so a small call does not pipe every track to every worker.
      media = policy.carriesMedia ? await RoomMedia.create(roomId, pool, transport, maxConsumersPerWorker, log, kind === 'broadcast') : undefined;
    } catch (error) {
      log.error({ room: roomId, err: error }, 'cannot create room media');
      throw new ChorusError('UNAVAILABLE', 'no media capacity right now; try again');
    }
    // The first node to open a room claims it for its tenant and kind, cluster-wide; another
    // tenant's tokens are refused for it for as long as it has a record anywhere.
    const claim = { id: roomId, kind, nodeId: options.nodeId, createdAt: Date.now(), keyId, tenant };
    try {
      const held = await store.claimRoom(claim);
      if (ownerOf(held) !== tenant) throw othersRoom(roomId);
      if (held.kind !== kind) {
        // One room id, one kind; a record nobody is in any more (its node died) is replaced.
        if ((await store.countPeers(roomId).catch(() => 1)) > 0) {
          throw new ChorusError('WRONG_ROOM_KIND', `this is a ${held.kind} room; the token is for a ${kind} room`);
        }
        await store.putRoom(claim);
      }
    } catch (error) {
      media?.close();
      throw error;
    }
    const room = new Room(roomId, keyId, tenant, policy, media, store, channel, options, audit, log, this.deps.remote, this.deps.members);
    this.#rooms.set(roomId, room);
    audit.record({ type: 'room.started', room: roomId, kind, node: options.nodeId });
    room.once('close', (reason) => {
      if (this.#rooms.get(roomId) === room) this.#rooms.delete(roomId);
      audit.record({ type: 'room.finished', room: roomId, kind, node: options.nodeId, reason });
    });
    this.emit('room', room);
    return room;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.#rooms.values()].map((room) => room.close()));
  }
}

/** TOKEN_WRONG_ROOM when `roomId` is open (anywhere) for a tenant other than `tenant`. */
export async function ownerRefusal(store: StateStore, roomId: string, tenant: string): Promise<ChorusError | undefined> {
  const record = await store.getRoom(roomId);
  return record && ownerOf(record) !== tenant ? othersRoom(roomId) : undefined;
}

/** `room`, when it is `tenant`'s and of `kind` (a room belongs to the tenant whose key opened it; found here, or claimed in #create). */
function owned(room: Room, tenant: string, kind: RoomKind): Room {
  if (room.tenant !== tenant) throw othersRoom(room.id);
  if (room.kind !== kind) throw new ChorusError('WRONG_ROOM_KIND', `this is a ${room.kind} room; the token is for a ${kind} room`);
  return room;
}

/** Not this tenant's room. Says no more: whose it is stays between that tenant and the node. */
function othersRoom(roomId: string): ChorusError {
  return new ChorusError('TOKEN_WRONG_ROOM', `room ${roomId} belongs to another tenant: tokens signed with this API key cannot join it`);
}
