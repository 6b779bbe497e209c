/**
 * Room administration for an operator's backend: list and inspect rooms, close a room, remove a
 * session, mute a session. A room may be served by several nodes (its origin and edges), so in a
 * cluster every question goes to every live node over the node bus and the answers are merged;
 * on a single node it is all local.
 *
 * An API key administers only its tenant's rooms (those opened with its own tokens, or with
 * another key of the same tenant): another tenant's room is simply not found.
 */
import { z } from 'zod';
import type { NodeBus } from '../cluster/bus.js';
import type { Logger } from '../observability/logger.js';
import { ChorusError } from '../protocol/errors.js';
import type { RoomKind, Role } from '../protocol/messages.js';
import { trackSource, type TrackSource } from '../protocol/room.js';
import type { Room } from '../rooms/room.js';
import type { RoomManager } from '../rooms/roomManager.js';

export interface PeerView {
  id: string;
  identity: string;
  role: Role;
  name?: string | undefined;
  node: string;
  joinedAt: string;
  publishing: boolean;
  muted: boolean;
}

/** One node's share of a room. */
export interface RoomShare {
  node: string;
  peers: number;
  byRole: Partial<Record<Role, number>>;
  /** HLS players without a session counted on this node (the one running the room's HLS). */
  hlsViewers: number;
  /** Calls: whether this node's participants send media through the SFU or peer-to-peer. */
  mediaPath?: 'sfu' | 'p2p' | undefined;
}

export interface RoomView {
  id: string;
  kind: RoomKind;
  peers: number;
  /** HLS players without a session (not in `peers`). */
  hlsViewers: number;
  nodes: RoomShare[];
  broadcasting: boolean;
  createdAt: string;
}

interface LocalRoom {
  id: string;
  kind: RoomKind;
  keyId: string;
  createdAt: number;
  share: RoomShare;
  broadcasting: boolean;
  peers?: PeerView[] | undefined;
}

export interface ClusterView {
  bus: NodeBus;
  /** Ids of the nodes currently alive (including this one). */
  nodeIds(): string[];
}

// `keyId` carries the tenant too: nodes from before tenants filter by it, and a key's default
// tenant is its id, so they still see the same rooms.
const target = z.object({ keyId: z.string(), tenant: z.string().optional(), roomId: z.string(), by: z.string() });
const tenantOf = (p: { keyId: string; tenant?: string | undefined }): string => p.tenant ?? p.keyId;
const peerTarget = target.extend({ peerId: z.string() });

export class RoomAdmin {
  readonly #log: Logger;

  constructor(
    private readonly rooms: RoomManager,
    private readonly nodeId: string,
    log: Logger,
    private readonly cluster?: ClusterView,
    /** HLS players of a room counted on this node. */
    private readonly hlsViewers: (roomId: string) => number = () => 0,
  ) {
    this.#log = log.child({ component: 'admin' });
    if (cluster) {
      cluster.bus.handle('admin.rooms', async (params) => {
        const p = z.object({ keyId: z.string(), tenant: z.string().optional(), roomId: z.string().optional() }).parse(params);
        return this.#localRooms(tenantOf(p), p.roomId);
      });
      cluster.bus.handle('admin.end', async (params) => {
        const p = target.parse(params);
        return this.#localEnd(tenantOf(p), p.roomId, p.by);
      });
      cluster.bus.handle('admin.kick', async (params) => {
        const p = peerTarget.parse(params);
        return this.#localPeer(tenantOf(p), p.roomId, p.peerId, (room) => room.kick(p.peerId, p.by));
      });
      cluster.bus.handle('admin.mute', async (params) => {
        const p = peerTarget.extend({ muted: z.boolean(), source: trackSource.optional() }).parse(params);
        return this.#localPeer(tenantOf(p), p.roomId, p.peerId, (room) => room.setMuted(p.peerId, p.muted, p.by, p.source));
      });
    }
  }

  async listRooms(tenant: string): Promise<{ rooms: RoomView[]; unreachable: string[] }> {
    const { shares, unreachable } = await this.#gather(tenant);
    return { rooms: merge(shares).map(({ view }) => view), unreachable };
  }

  async getRoom(tenant: string, roomId: string): Promise<RoomView & { participants: PeerView[]; unreachable: string[] }> {
    const { shares, unreachable } = await this.#gather(tenant, roomId);
    const found = merge(shares)[0];
    if (!found) throw new ChorusError('NOT_FOUND', `no room ${roomId}`);
    return { ...found.view, participants: found.peers, unreachable };
  }

  /** Ends the room on every node that serves it; tokens issued before now cannot reopen it. */
  async closeRoom(tenant: string, roomId: string, by: string): Promise<{ nodes: string[] }> {
    const ended = await this.#onEveryNode<boolean>('admin.end', { keyId: tenant, tenant, roomId, by }, () => this.#localEnd(tenant, roomId, by));
    const nodes = ended.filter((r) => r.result).map((r) => r.node);
    if (nodes.length === 0) throw new ChorusError('NOT_FOUND', `no room ${roomId}`);
    return { nodes };
  }

  /** Removes a session wherever it is connected; its identity's older tokens stop working. */
  async removePeer(tenant: string, roomId: string, peerId: string, by: string): Promise<void> {
    await this.#onPeerNode(tenant, roomId, peerId, 'admin.kick', { keyId: tenant, tenant, roomId, peerId, by }, (room) => room.kick(peerId, by));
  }

  /** Mutes one source of a session (`source` absent: all of them), wherever it is connected. */
  async mutePeer(tenant: string, roomId: string, peerId: string, muted: boolean, by: string, source?: TrackSource): Promise<void> {
    const params = { keyId: tenant, tenant, roomId, peerId, muted, by, ...(source ? { source } : {}) };
    await this.#onPeerNode(tenant, roomId, peerId, 'admin.mute', params, (room) => room.setMuted(peerId, muted, by, source));
  }

  async #onPeerNode(tenant: string, roomId: string, peerId: string, method: string, params: unknown, act: (room: Room) => Promise<void>): Promise<void> {
    // Peers are few per node and ids are unguessable: asking every node is simpler and as
    // cheap as a shared-state lookup, and it cannot act on a stale record.
    const results = await this.#onEveryNode<boolean>(method, params, () => this.#localPeer(tenant, roomId, peerId, act));
    if (!results.some((r) => r.result)) throw new ChorusError('NOT_FOUND', `no session ${peerId} in room ${roomId}`);
  }

  async #gather(tenant: string, roomId?: string): Promise<{ shares: LocalRoom[]; unreachable: string[] }> {
    const results = await this.#onEveryNode<LocalRoom[]>('admin.rooms', { keyId: tenant, tenant, roomId }, () => this.#localRooms(tenant, roomId));
    return { shares: results.flatMap((r) => r.result ?? []), unreachable: results.filter((r) => r.result === undefined).map((r) => r.node) };
  }

  /** Runs locally and, in a cluster, on every other live node; a node that fails to answer is reported, not fatal. */
  async #onEveryNode<T>(method: string, params: unknown, local: () => Promise<T>): Promise<Array<{ node: string; result: T | undefined }>> {
    const others = this.cluster ? this.cluster.nodeIds().filter((id) => id !== this.nodeId) : [];
    return Promise.all([
      local().then((result) => ({ node: this.nodeId, result })),
      ...others.map((node) =>
        this.cluster!.bus.request<T>(node, method, params).then(
          (result) => ({ node, result }),
          (error: unknown) => {
            if (error instanceof ChorusError && error.code === 'NOT_FOUND') return { node, result: undefined };
            this.#log.warn({ node, method, err: error }, 'a node did not answer an admin request');
            return { node, result: undefined };
          },
        ),
      ),
    ]);
  }

  async #localRooms(tenant: string, roomId?: string): Promise<LocalRoom[]> {
    const rooms = roomId === undefined ? [...this.rooms.rooms.values()] : [this.rooms.get(roomId)].filter((r) => r !== undefined);
    return rooms
      .filter((room) => !room.closed && room.tenant === tenant)
      .map((room) => {
        const byRole: Partial<Record<Role, number>> = {};
        for (const peer of room.peers.values()) byRole[peer.role] = (byRole[peer.role] ?? 0) + 1;
        return {
          id: room.id,
          kind: room.kind,
          keyId: room.keyId,
          createdAt: room.createdAt,
          broadcasting: room.localBroadcast !== undefined,
          share: { node: this.nodeId, peers: room.peers.size, byRole, hlsViewers: this.hlsViewers(room.id), ...(room.policy.peerToPeer ? { mediaPath: room.mediaPath.path } : {}) },
          peers: roomId === undefined ? undefined : [...room.peers.values()].map((p) => ({
            id: p.id,
            identity: p.identity,
            role: p.role,
            name: p.name,
            node: this.nodeId,
            joinedAt: new Date(p.joinedAt).toISOString(),
            publishing: p.producers.size > 0,
            muted: p.moderatorMuted.size > 0,
          })),
        };
      });
  }

  #ownRoom(tenant: string, roomId: string): Room | undefined {
    const room = this.rooms.get(roomId);
    return room && !room.closed && room.tenant === tenant ? room : undefined;
  }

  async #localEnd(tenant: string, roomId: string, by: string): Promise<boolean> {
    const room = this.#ownRoom(tenant, roomId);
    if (!room) return false;
    this.#log.info({ room: roomId, by }, 'closing a room (admin API)');
    await room.end(by, { localOnly: true });
    return true;
  }

  async #localPeer(tenant: string, roomId: string, peerId: string, act: (room: Room) => Promise<void>): Promise<boolean> {
    const room = this.#ownRoom(tenant, roomId);
    if (!room?.peers.has(peerId)) return false;
    await act(room);
    return true;
  }
}

/** Folds every node's share of each room into one view per room. */
function merge(shares: LocalRoom[]): Array<{ view: RoomView; peers: PeerView[] }> {
  const byId = new Map<string, { view: RoomView; peers: PeerView[] }>();
  for (const share of shares) {
    let entry = byId.get(share.id);
    if (!entry) {
      entry = {
        view: { id: share.id, kind: share.kind, peers: 0, hlsViewers: 0, nodes: [], broadcasting: false, createdAt: new Date(share.createdAt).toISOString() },
        peers: [],
      };
      byId.set(share.id, entry);
    }
    entry.view.peers += share.share.peers;
    // A node from before this field (a rolling upgrade) reports none.
    entry.view.hlsViewers += share.share.hlsViewers ?? 0;
    entry.view.nodes.push(share.share);
    entry.view.broadcasting ||= share.broadcasting;
    if (share.createdAt < Date.parse(entry.view.createdAt)) entry.view.createdAt = new Date(share.createdAt).toISOString();
    entry.peers.push(...(share.peers ?? []));
  }
  return [...byId.values()].sort((a, b) => a.view.id.localeCompare(b.view.id));
}
