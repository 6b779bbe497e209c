import type { types } from 'mediasoup';
import type { RoomMedia } from '../media/roomMedia.js';

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
