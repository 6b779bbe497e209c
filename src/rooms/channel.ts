import type { ServerEvents } from '../protocol/messages.js';

/**
 * How a room reaches its peers. Signaling implements it over Socket.IO (and, with the cluster,
 * over the Redis adapter), so rooms never touch sockets.
 */
export interface RoomChannel {
  toRoom<E extends keyof ServerEvents>(roomId: string, event: E, ...args: Parameters<ServerEvents[E]>): void;
  /** Only this node's clients of the room (for what every node pushes itself, like counts). */
  toRoomLocal<E extends keyof ServerEvents>(roomId: string, event: E, ...args: Parameters<ServerEvents[E]>): void;
  toPeer<E extends keyof ServerEvents>(peerId: string, event: E, ...args: Parameters<ServerEvents[E]>): void;
  /** Stops room events reaching a session the server removed while its connection stays open. */
  detach(peerId: string, roomId: string): void;
}
