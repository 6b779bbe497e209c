/**
 * Rooms driven directly, without sockets: a real one-worker mediasoup pool, the memory store and
 * a channel that records every event a room sends. Each policy's rules are checked here in
 * milliseconds; real peers and browsers test the same rules end to end on top.
 */
import type { types } from 'mediasoup';
import { ChorusError } from '../../src/protocol/errors.js';
import pino from 'pino';
import type { VerifiedGrant } from '../../src/auth/tokens.js';
import { RoomMedia } from '../../src/media/roomMedia.js';
import { WorkerPool } from '../../src/media/workerPool.js';
import { AuditLog, type AuditEvent } from '../../src/observability/audit.js';
import type { Role, RoomKind, ServerEvents } from '../../src/protocol/messages.js';
import type { RoomChange, RoomDelta, TrackSource } from '../../src/protocol/room.js';
import type { RoomChannel } from '../../src/rooms/channel.js';
import type { Peer } from '../../src/rooms/peer.js';
import { policyFor } from '../../src/rooms/policy.js';
import { Room, type RoomOptions } from '../../src/rooms/room.js';
import { MemoryStateStore } from '../../src/store/memoryStore.js';

export interface Sent {
  /** `room`, `local` (this node's members), or the peer id it was sent to. */
  to: string;
  event: keyof ServerEvents;
  payload: unknown;
}

/** Keeps what a room sends, in order. */
export class RecordingChannel implements RoomChannel {
  readonly sent: Sent[] = [];
  readonly detached: string[] = [];

  toRoom<E extends keyof ServerEvents>(_roomId: string, event: E, ...args: Parameters<ServerEvents[E]>): void {
    this.sent.push({ to: 'room', event, payload: args[0] });
  }

  toRoomLocal<E extends keyof ServerEvents>(_roomId: string, event: E, ...args: Parameters<ServerEvents[E]>): void {
    this.sent.push({ to: 'local', event, payload: args[0] });
  }

  toPeer<E extends keyof ServerEvents>(peerId: string, event: E, ...args: Parameters<ServerEvents[E]>): void {
    this.sent.push({ to: peerId, event, payload: args[0] });
  }

  detach(peerId: string): void {
    this.detached.push(peerId);
  }

  /** Every room delta so far, in order. */
  deltas(): RoomDelta[] {
    return this.sent.filter((s) => s.event === 'room:delta').map((s) => s.payload as RoomDelta);
  }

  changes(): RoomChange[] {
    return this.deltas().flatMap((d) => d.changes);
  }

  /** Events of one kind sent to `to`. */
  to(to: string, event: keyof ServerEvents): unknown[] {
    return this.sent.filter((s) => s.to === to && s.event === event).map((s) => s.payload);
  }
}

const silent = pino({ level: 'silent' });

export interface Harness {
  pool: WorkerPool;
  room(kind: RoomKind, options?: Partial<RoomOptions>): Promise<{ room: Room; channel: RecordingChannel; audit: AuditEvent[]; store: MemoryStateStore }>;
  close(): Promise<void>;
}

export async function startHarness(): Promise<Harness> {
  const pool = await WorkerPool.start({ size: 1, logLevel: 'warn', rtcMinPort: 40_000, rtcMaxPort: 40_999 }, silent);
  const rooms: Room[] = [];
  let n = 0;
  return {
    pool,
    async room(kind, options = {}) {
      const id = `${kind}-${++n}`;
      const policy = policyFor(kind);
      const media = policy.carriesMedia
        ? await RoomMedia.create(
            id,
            pool,
            { listenIp: '127.0.0.1', announcedAddress: undefined, minPort: 40_000, maxPort: 40_999, enableUdp: true, enableTcp: false, initialAvailableOutgoingBitrate: 1_000_000 },
            500,
            silent,
          )
        : undefined;
      const channel = new RecordingChannel();
      const auditLog = new AuditLog(silent);
      const audit: AuditEvent[] = [];
      auditLog.on('event', (e) => audit.push(e));
      const store = new MemoryStateStore();
      const room = new Room(id, 'test', 'test', policy, media, store, channel, {
        nodeId: 'n1',
        maxPeers: 10_000,
        maxCallParticipants: 50,
        maxClassStudents: 1000,
        countIntervalMs: 50,
        opusBitrate: 24_000,
        markTtlSeconds: 60,
        stalePeerMs: 0,
        idleRoomMs: 0,
        speakerIntervalMs: 300,
        audioLevelIntervalMs: 200,
        // Room rules, not bandwidth: an estimate no test's layers reach (the policy has its own tests).
        initialBitrate: 10_000_000,
        ...options,
      }, auditLog, silent);
      rooms.push(room);
      return { room, channel, audit, store };
    },
    async close() {
      for (const room of rooms) await room.close();
      pool.close();
    },
  };
}

let ids = 0;

export function grantFor(room: Room, role: Role, extra: Partial<VerifiedGrant> = {}): VerifiedGrant {
  const now = Date.now();
  return {
    room: room.id,
    identity: `${role}-${++ids}`,
    role,
    name: `${role} ${ids}`,
    grants: {},
    kind: room.kind,
    tokenId: `t${ids}`,
    keyId: 'test',
    tenant: 'test',
    issuedAtMs: now,
    expiresAtMs: now + 60_000,
    resume: false,
    ...extra,
  };
}

let ssrc = 1000;

/** RTP parameters a browser would send for `source`: Opus, or VP8 in three simulcast layers for a camera. */
export function rtpFor(source: TrackSource, { simulcast = source === 'camera' } = {}): types.RtpParameters {
  if (source === 'microphone' || source === 'screen-audio') {
    return {
      codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: { useinbandfec: 1 } }],
      encodings: [{ ssrc: ++ssrc }],
      rtcp: { cname: `c${ssrc}` },
    };
  }
  const layers = simulcast ? [4, 2, 1] : [1];
  return {
    codecs: [
      {
        mimeType: 'video/VP8',
        payloadType: 96,
        clockRate: 90000,
        rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }, { type: 'goog-remb' }],
      },
    ],
    encodings: layers.map((scale) => ({ ssrc: ++ssrc, scalabilityMode: 'L1T3', ...(simulcast ? { scaleResolutionDownBy: scale } : {}) }) as types.RtpEncodingParameters),
    rtcp: { cname: `c${ssrc}` },
  };
}

/** A joined peer with the transports it needs, ready to publish and consume. */
export async function joined(room: Room, role: Role, extra: Partial<VerifiedGrant> = {}): Promise<{ peer: Peer; send?: types.WebRtcTransport; recv: types.WebRtcTransport }> {
  const peer = await room.join(grantFor(room, role, extra), crypto.randomUUID());
  const canPublish = room.policy.publishable(role).length > 0;
  const send = canPublish ? await room.createTransport(peer, 'send', false) : undefined;
  const recv = await room.createTransport(peer, 'recv', false);
  return { peer, recv, ...(send ? { send } : {}) };
}

export async function publish(room: Room, who: { peer: Peer; send?: types.WebRtcTransport }, source: TrackSource, opts: { simulcast?: boolean } = {}): Promise<types.Producer> {
  if (!who.send) throw new Error('no send transport');
  const kind = source === 'microphone' || source === 'screen-audio' ? 'audio' : 'video';
  return room.produce(who.peer, who.send.id, kind, rtpFor(source, opts), source, kind === 'video' ? { width: 1280, height: 720 } : undefined);
}

/** The receive capabilities of a browser that decodes everything the router offers. */
export function deviceCaps(room: Room): types.RtpCapabilities {
  return room.requireMedia().rtpCapabilities;
}

/** The typed error code a room refuses with ('OK' when it does not); other errors are thrown. */
export async function errorCode(attempt: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof attempt === 'function' ? attempt() : attempt);
  } catch (error) {
    if (error instanceof ChorusError) return error.code;
    throw error;
  }
  return 'OK';
}
