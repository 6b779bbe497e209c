import type { types } from 'mediasoup';
import type { RoomMedia } from '../media/roomMedia.js';
import type { ChatMessage } from '../protocol/messages.js';
import type { Hand, HandQueue, HandState, ParticipantInfo, RoomChange, TrackSource } from '../protocol/room.js';

/**
 * Broadcasts held by other nodes. A room consults it when a listener here wants the broadcast
 * and this node does not hold it; the cluster implements it with pipes between nodes. Without a
 * cluster there is no implementation and a room only knows its own broadcast.
 */
export interface RemoteBroadcasts {
  /** This node now holds the room's broadcast (`producerId`): tell the cluster. */
  announce(roomId: string, producerId: string): Promise<void>;
  /** This node no longer holds the room's broadcast. */
  withdraw(roomId: string): void;
  /** Where the room's broadcast is, if another node holds it. */
  location(roomId: string): Promise<{ nodeId: string; producerId: string } | undefined>;
  /** The broadcast pulled onto `media` (this node's routers for `roomId`), if another node holds it. */
  pull(roomId: string, media: RoomMedia): Promise<types.Producer | undefined>;
}

/** A move of a class's raised hand: the queue after it, and the student's hand before and after. */
export interface HandMove {
  queue: HandQueue;
  peerId: string;
  before?: HandState | undefined;
  after?: Hand | undefined;
}

/** Who asks to unmute what, as moderators are told (`mute:requested`). */
export interface UnmuteRequest {
  peerId: string;
  identity: string;
  source?: TrackSource | undefined;
}

/**
 * Members of a room held by other nodes, for kinds whose participants may be spread over nodes
 * (a call whose participant landed elsewhere after a drain or a failover). A room shares its own
 * members' changes, gathers the others' members, and pulls a remote track onto its own routers
 * when a local participant consumes it. Absent on a single node.
 */
export interface RemoteMembers {
  /** This node's members of `roomId` changed: tell the other nodes serving the room. */
  share(roomId: string, changes: RoomChange[]): void;
  /** Every other node serving `roomId`, with its own members (and their tracks). */
  gather(roomId: string): Promise<Array<{ nodeId: string; participants: ParticipantInfo[] }>>;
  /** Whether `nodeId` is still part of the cluster (its members are dropped when it is not). */
  alive(nodeId: string): Promise<boolean>;
  /** Mutes, unmutes or kicks a member held by `nodeId`, as `by` (a moderator here). */
  moderate(nodeId: string, roomId: string, action: { action: 'mute' | 'unmute' | 'kick'; peerId: string; source?: TrackSource | undefined; by: string }): Promise<void>;
  /**
   * A participant here asks to be allowed to unmute: the moderators on every other node serving
   * `roomId` are told. Resolves to how many were told.
   */
  askModerators(roomId: string, request: UnmuteRequest): Promise<number>;
  /** A chat message sent here: every other node serving `roomId` delivers it to its members. */
  chat(roomId: string, message: ChatMessage): void;
  /** A hand moved here: every other node serving `roomId` tells its staff, and the student's node acts on it. */
  handMoved(roomId: string, move: HandMove): void;
  /** Pulls the track `producerId` held by `nodeId` onto `media` (one pipe pair per room and node pair). */
  pullTrack(roomId: string, producerId: string, nodeId: string, media: RoomMedia): Promise<types.Producer>;
}
