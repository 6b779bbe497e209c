import type { Server } from 'socket.io';
import type { ServerEvents } from '../protocol/messages.js';
import type { RoomChannel } from '../rooms/channel.js';

export const roomAddress = (roomId: string): string => `room:${roomId}`;
export const peerAddress = (peerId: string): string => `peer:${peerId}`;

/** Room events over Socket.IO rooms: one per Chorus room, one per peer. */
export class SocketRoomChannel implements RoomChannel {
  constructor(private readonly io: Server<Record<string, never>, ServerEvents>) {}

  toRoom<E extends keyof ServerEvents>(roomId: string, event: E, ...args: Parameters<ServerEvents[E]>): void {
    this.io.to(roomAddress(roomId)).emit(event, ...args);
  }

  toRoomLocal<E extends keyof ServerEvents>(roomId: string, event: E, ...args: Parameters<ServerEvents[E]>): void {
    this.io.local.to(roomAddress(roomId)).emit(event, ...args);
  }

  toPeer<E extends keyof ServerEvents>(peerId: string, event: E, ...args: Parameters<ServerEvents[E]>): void {
    this.io.to(peerAddress(peerId)).emit(event, ...args);
  }

  detach(peerId: string, roomId: string): void {
    this.io.in(peerAddress(peerId)).socketsLeave(roomAddress(roomId));
  }
}
