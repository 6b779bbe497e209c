/**
 * Turns what happens on a node into records: rooms opening and closing, sessions joining and
 * leaving (from the rooms' observer events) and every audit event. It only queues; the writer
 * does the rest off the caller's path.
 */
import { randomUUID } from 'node:crypto';
import type { AuditEvent, AuditLog } from '../observability/audit.js';
import type { Room } from '../rooms/room.js';
import type { RoomManager } from '../rooms/roomManager.js';
import type { ChorusRecord } from './types.js';

/** Records without id and time; the recorder stamps them. */
export type NewRecord = ChorusRecord extends infer R ? (R extends ChorusRecord ? Omit<R, 'id' | 'at'> : never) : never;

export interface RecordSink {
  record(record: NewRecord, at?: number): void;
}

/** Subscribes to `rooms` and `audit`; returns the unsubscribe. */
export function recordNode(rooms: RoomManager, audit: AuditLog, sink: RecordSink, nodeId: string): () => void {
  const onRoom = (room: Room): void => {
    sink.record({ kind: 'room.opened', room: room.id, roomKind: room.kind, node: nodeId });
    room.on('peerjoined', (peer, previousPeerId) =>
      sink.record({
        kind: 'session.joined',
        peer: peer.id,
        ...(previousPeerId ? { previousPeer: previousPeerId } : {}),
        room: room.id,
        identity: peer.identity,
        role: peer.role,
        node: nodeId,
      }),
    );
    room.on('peerleft', (peer, reason) =>
      sink.record({ kind: 'session.left', peer: peer.id, room: room.id, reason, ...(peer.layerChanges > 0 ? { layerChanges: peer.layerChanges } : {}) }),
    );
    room.once('close', () => sink.record({ kind: 'room.closed', room: room.id, node: nodeId }));
  };
  const onEvent = (event: AuditEvent & { at: number }): void => {
    // A track's life is a row of its own (tracks), besides the event.
    if (event.type === 'track.published') {
      sink.record({ kind: 'track.published', track: event.producer, peer: event.peer, room: event.room, identity: event.identity, source: event.source, trackKind: event.kind, node: nodeId }, event.at);
    } else if (event.type === 'track.unpublished') {
      sink.record({ kind: 'track.unpublished', track: event.producer, room: event.room }, event.at);
    } else if (event.type === 'recording.started') {
      sink.record({ kind: 'recording.started', recording: event.id, tenant: event.tenant, room: event.room, node: nodeId, by: event.by }, event.at);
    } else if (event.type === 'recording.stopped') {
      sink.record({ kind: 'recording.stopped', recording: event.id, by: event.by }, event.at);
    }
    const { type, at, ...data } = event;
    const room = 'room' in event ? event.room : undefined;
    const identity = 'identity' in event ? event.identity : 'moderator' in event ? event.moderator : undefined;
    sink.record(
      {
        kind: 'event',
        type,
        ...(room !== undefined ? { room } : {}),
        ...(identity !== undefined ? { identity } : {}),
        node: nodeId,
        data,
      },
      at,
    );
  };
  rooms.on('room', onRoom);
  audit.on('event', onEvent);
  return () => {
    rooms.off('room', onRoom);
    audit.off('event', onEvent);
  };
}

export function stamp(record: NewRecord, at = Date.now()): ChorusRecord {
  return { ...record, id: randomUUID(), at } as ChorusRecord;
}
