/**
 * Audit events: who was let in, who was turned away and why, who spoke, what moderators did.
 * Emitted as structured log lines now (`audit: true`, with `event` naming the type) and to
 * in-process subscribers; the records issue persists them through the same sink.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from './logger.js';

export type AuditEvent =
  | { type: 'token.minted'; keyId: string; room: string; identity: string; role: string; tokenId: string; via: 'http' | 'cli' | 'demo' | 'gateway' }
  | { type: 'join.refused'; room?: string | undefined; identity?: string | undefined; code: string; reason: string; ip?: string | undefined }
  | { type: 'join.accepted'; room: string; identity: string; role: string; peer: string; ip?: string | undefined }
  | { type: 'broadcast.started'; room: string; peer: string; identity: string; producer: string }
  | { type: 'broadcast.stopped'; room: string; peer: string; identity: string; producer: string; reason: string }
  /** A participant's track went live on this node (a call's camera, a broadcast's microphone). */
  | { type: 'track.published'; room: string; peer: string; identity: string; producer: string; source: string; kind: 'audio' | 'video' }
  | { type: 'track.unpublished'; room: string; peer: string; identity: string; producer: string; source: string }
  | { type: 'participant.left'; room: string; peer: string; identity: string; role: string; reason: string }
  | { type: 'room.started'; room: string; kind: string; node: string }
  | { type: 'room.finished'; room: string; kind: string; node: string; reason: string }
  | { type: 'moderator.action'; room: string; moderator: string; action: 'mute' | 'unmute' | 'kick' | 'end'; target?: string | undefined; source?: string | undefined }
  | { type: 'webhook.delivered'; id: string; event: string; url: string; attempts: number; status: number }
  | { type: 'webhook.failed'; id: string; event: string; url: string; attempts: number; error: string }
  | { type: 'limit.exceeded'; limit: string; key: string }
  /** A call's media path changed (peer-to-peer for two, the SFU from three), and when the switch was done. */
  | { type: 'call.path'; room: string; id: string; from: 'sfu' | 'p2p'; to: 'sfu' | 'p2p'; reason: string; peers: string[] }
  | { type: 'call.path.settled'; room: string; id: string; from: 'sfu' | 'p2p'; to: 'sfu' | 'p2p'; reason: string; durationMs: number; gaps: Record<string, number> }
  /** Classes: a chat message, kept whole in the records. */
  | { type: 'chat'; room: string; id: string; peer: string; identity: string; to: 'class' | 'staff'; text: string }
  /** Classes: every move of a raised hand (`by`: the identity that acted; `left`: the student left). */
  | { type: 'hand'; room: string; peer: string; identity: string; action: string; from: string | null; to: string | null; by: string; version: number }
  /** Classes: a recording of the stage started or stopped (`by`: who, or why it stopped by itself). */
  | { type: 'recording.started'; room: string; tenant: string; id: string; by: string }
  | { type: 'recording.stopped'; room: string; id: string; by: string; durationMs: number }
  /** Watch rooms: every change of the playback state (`create` when a room's state is born). */
  | {
      type: 'watch.state';
      room: string;
      peer: string;
      identity: string;
      action: 'create' | 'play' | 'pause' | 'seek' | 'rate' | 'load';
      version: number;
      url: string;
      position: number;
      playing: boolean;
      rate: number;
    }
  /** Watch rooms: hosting passed on (`to` absent: nobody left to host). */
  | { type: 'watch.host'; room: string; from?: string | undefined; to?: string | undefined; peer?: string | undefined; reason: 'joined' | 'left' | 'gone'; version: number }
  | { type: 'watch.member.removed'; room: string; peer: string; identity: string; reason: 'missed heartbeats' }
  /** Watch rooms: nobody came back within the archive timeout; the state was dropped. */
  | { type: 'watch.archived'; room: string; url: string; position: number; version: number };

export interface AuditSink {
  record(event: AuditEvent): void;
}

export class AuditLog extends EventEmitter<{ event: [AuditEvent & { at: number }] }> implements AuditSink {
  readonly #log: Logger;

  constructor(log: Logger) {
    super();
    this.#log = log.child({ audit: true });
  }

  record(event: AuditEvent): void {
    const stamped = { ...event, at: Date.now() };
    const { type, ...fields } = stamped;
    this.#log.info({ event: type, ...fields }, `audit ${type}`);
    this.emit('event', stamped);
  }
}
