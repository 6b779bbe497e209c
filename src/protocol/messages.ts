/**
 * The Chorus wire protocol, defined once and shared by the server and the client SDK.
 *
 * Requests are Socket.IO events named after the method, carrying one payload object and an
 * acknowledgement callback that receives a `Reply`. Events the server pushes are listed in
 * `ServerEvents`. Payloads are strict: unknown fields are an error, not silently ignored.
 */
import { z } from 'zod';
import type { WireError } from './errors.js';
import { dtlsParameters, entityId, mediaKind, rtpCapabilities, rtpParameters } from './media.js';
import { handActions, trackSource, trackView, type CallPathReason, type ConnectionQuality, type Hand, type HandQueue, type RecordingInfo, type MediaPath, type RoomDelta, type RoomSnapshot, type TrackSource } from './room.js';
import { timeSync, watchControl, watchReport, type WatchCause, type WatchMember, type WatchSnapshot, type WatchState } from './watch.js';

export { PROTOCOL_VERSION } from './basics.js';

export const roomKinds = ['broadcast', 'watch', 'call', 'class'] as const;
export type RoomKind = (typeof roomKinds)[number];

export const roles = ['broadcaster', 'listener', 'host', 'participant', 'moderator', 'teacher', 'student', 'assistant'] as const;
export type Role = (typeof roles)[number];

/** Room ids appear in URLs, logs and (later) Redis keys, so they are kept to a safe alphabet. */
export const roomId = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'room ids are 1-64 of A-Z a-z 0-9 _ -');

/**
 * Control characters (NUL among them), line and paragraph separators, bidirectional overrides
 * and unpaired surrogates: nothing a person means in a name, and each breaks something on the
 * way (PostgreSQL refuses NUL and unpaired surrogates, logs and admin views show a line break or
 * reversed text that is not there). Joiners (ZWJ, ZWNJ) stay: scripts and emoji need them.
 */
const unprintable = /[\p{Cc}\p{Cs}\p{Zl}\p{Zp}\u202A-\u202E\u2066-\u2069]/u;

/** Text a person chose (an identity, a display name): 1..max UTF-16 units, printable only. */
export const printableText = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((text) => !unprintable.test(text), 'must be printable text: no control characters, line separators, bidirectional overrides or unpaired surrogates');

/** Who a token admits (its `sub`): in records, logs, audit events, rate-limit keys. */
export const identityText = printableText(256);
/** The name a session shows to others. */
export const displayName = printableText(128);

/** A chat message: 1..2000 UTF-16 units, printable (line breaks allowed), not blank. */
export const chatText = z
  .string()
  .min(1)
  .max(2000)
  .refine((text) => !unprintable.test(text.replace(/\n/g, '')) && text.trim().length > 0, 'must be printable text (line breaks allowed), not blank');

/** A chat message as delivered (`chat:message`) and recorded. */
export interface ChatMessage {
  id: string;
  from: { peerId: string; identity: string; name?: string | undefined; role: Role };
  text: string;
  /** `class`: everyone in the room; `staff`: teachers and assistants (and the sender). */
  to: 'class' | 'staff';
  at: number;
}

export const requests = {
  join: z.strictObject({
    /** The room the client means to join; a token for any other room is refused. */
    roomId,
    token: z.string().min(1).max(4096),
    /** The id of this session before a reconnect, so the server can retire the old one now. */
    previousPeerId: entityId.optional(),
    /**
     * Also create the media transport this session's role uses (send for a publisher, receive
     * for everyone else) and return it as `transport`: one round trip less than createTransport.
     */
    transport: z.strictObject({ forceTcp: z.boolean().optional() }).optional(),
    /** Calls: this client can carry the call peer-to-peer while it has two participants. */
    p2p: z.boolean().optional(),
  }),
  getRouterRtpCapabilities: z.strictObject({}),
  createTransport: z.strictObject({
    direction: z.enum(['send', 'recv']),
    /** Ask for ICE over TCP only, for networks that drop UDP. */
    forceTcp: z.boolean().optional(),
  }),
  connectTransport: z.strictObject({ transportId: entityId, dtlsParameters }),
  restartIce: z.strictObject({ transportId: entityId }),
  produce: z.strictObject({
    transportId: entityId,
    kind: mediaKind,
    rtpParameters,
    /** What the track is; absent: the microphone for audio, the camera for video. */
    source: trackSource.optional(),
    /** The size the video is captured at, so the SFU knows each simulcast layer's height. */
    video: z.strictObject({ width: z.number().int().min(1).max(16_384), height: z.number().int().min(1).max(16_384) }).optional(),
  }),
  pauseProducer: z.strictObject({ producerId: entityId }),
  resumeProducer: z.strictObject({ producerId: entityId }),
  closeProducer: z.strictObject({ producerId: entityId }),
  consume: z.strictObject({
    transportId: entityId,
    /** Omitted: consume the room's broadcast, whatever its producer id is now. */
    producerId: entityId.optional(),
    rtpCapabilities,
    /**
     * false: an audio consumer starts flowing at once, no resumeConsumer needed (nothing is lost
     * to a receiver that is not ready yet: no keyframe to miss, and on a new transport nothing
     * flows before DTLS is up). Video consumers always start paused. Default true.
     */
    paused: z.boolean().optional(),
  }),
  resumeConsumer: z.strictObject({ consumerId: entityId }),
  /** Stops receiving a track (a call gone peer-to-peer plays it from the direct link). */
  closeConsumer: z.strictObject({ consumerId: entityId }),
  /** A video's rendered size and visibility: the node picks the layer that fits, or pauses it. */
  'track.view': trackView,
  /** Pins a simulcast consumer to layers (within what its producer sends). */
  setPreferredLayers: z.strictObject({
    consumerId: entityId,
    spatialLayer: z.number().int().min(0).max(15),
    temporalLayer: z.number().int().min(0).max(15).optional(),
  }),
  /**
   * Calls gone peer-to-peer: an offer, answer or ICE candidate for the other participant, relayed
   * by the node only between the two, only while the call is peer-to-peer.
   */
  'p2p.signal': z.strictObject({
    to: entityId,
    // A call's SDP is a few kB; the cap stays under the 64 KiB message limit, so an oversized one
    // is a clear BAD_REQUEST rather than a dropped connection.
    description: z.strictObject({ type: z.enum(['offer', 'answer', 'rollback']), sdp: z.string().max(48 * 1024) }).optional(),
    /** null: end of candidates. */
    candidate: z
      .strictObject({
        candidate: z.string().max(1024),
        sdpMid: z.string().max(64).nullable().optional(),
        sdpMLineIndex: z.number().int().min(0).max(64).nullable().optional(),
        usernameFragment: z.string().max(256).nullable().optional(),
      })
      .nullable()
      .optional(),
  }),
  /**
   * Calls: this client renders media on the path of switch `id` (`ready`), or its direct
   * connection failed (`failed`: the call goes back to the SFU). `gapMs`: how long it had no
   * audio from the others when it took the new path's (for the records).
   */
  'p2p.state': z.strictObject({ id: z.string().min(1).max(64), state: z.enum(['ready', 'failed']), gapMs: z.number().int().min(0).max(600_000).optional() }),
  /** A fresh snapshot of the room (after a gap in delta versions). */
  'room.sync': z.strictObject({}),
  /** A participant a moderator muted asks to be allowed to unmute (moderators are told). */
  'mute.request': z.strictObject({ source: trackSource.optional() }),
  /**
   * Classes: move a raised hand. A student raises, lowers, accepts or declines its own (no
   * `peerId`); staff invite, remove or lower a student's, naming the queue `version` they saw
   * (a stale one is STALE_VERSION: two assistants acting at once, one wins).
   */
  hand: z.strictObject({ action: z.enum(handActions), peerId: z.string().min(1).max(64).optional(), version: z.number().int().min(0).optional() }),
  /** Classes, teachers and assistants: the hand queue now (then `hand:queue` events). */
  hands: z.strictObject({}),
  /** Classes, teachers and assistants: start or stop recording the stage. */
  record: z.strictObject({ action: z.enum(['start', 'stop']) }),
  /** Classes: a chat message to the class, or a question to the staff only. */
  chat: z.strictObject({ text: chatText, to: z.enum(['class', 'staff']).optional() }),
  /** Moderators: who is in the room (first `limit` sessions). */
  listPeers: z.strictObject({ limit: z.number().int().min(1).max(1000).optional() }),
  /** Moderators: mute/unmute or kick a session, or end the room for everyone. */
  moderate: z.discriminatedUnion('action', [
    /** `source` absent: every source of that session. */
    z.strictObject({ action: z.literal('mute'), peerId: entityId, source: trackSource.optional() }),
    z.strictObject({ action: z.literal('unmute'), peerId: entityId, source: trackSource.optional() }),
    z.strictObject({ action: z.literal('kick'), peerId: entityId }),
    z.strictObject({ action: z.literal('end') }),
  ]),
  leave: z.strictObject({}),
  /**
   * The client's own measure of how long its listener waited: from its join() to the first media
   * packet it received. Once per session (counted in chorus_join_to_first_media_seconds).
   */
  'media.started': z.strictObject({ afterMs: z.number().int().min(0).max(600_000) }),
  /** NTP-style clock ping: the server's receive and send times (any connection, joined or not). */
  'time.sync': timeSync,
  /** Watch rooms: change the shared playback (the host, or a token with the control grant). */
  'watch.control': watchControl,
  /** Watch rooms: this member's player position; also its heartbeat. */
  'watch.report': watchReport,
} as const;

export type Method = keyof typeof requests;
export type RequestOf<M extends Method> = z.infer<(typeof requests)[M]>;
/** An ICE candidate relayed between the two participants of a peer-to-peer call. */
export type P2pCandidate = NonNullable<RequestOf<'p2p.signal'>['candidate']>;

export interface TransportInfo {
  id: string;
  iceParameters: unknown;
  iceCandidates: unknown[];
  dtlsParameters: unknown;
}

export interface CreatedTransport extends TransportInfo {
  direction: 'send' | 'recv';
}

export interface BroadcastState {
  live: boolean;
  paused: boolean;
  producerId?: string | undefined;
}

export interface Responses {
  join: {
    protocol: number;
    peerId: string;
    roomId: string;
    kind: RoomKind;
    role: Role;
    identity: string;
    routerRtpCapabilities: unknown;
    broadcast: BroadcastState;
    listeners: number;
    /**
     * One-way rooms (a broadcast), to a role that publishes a microphone: how the node asks it to
     * encode (Opus average bitrate in bit/s, audio per packet in ms). An SDK's own options win.
     */
    opus?: { bitrate: number; frameMs: number } | undefined;
    /** STUN/TURN servers for this session, TURN credentials minted for it. */
    iceServers: Array<{ urls: string[]; username?: string; credential?: string }>;
    /** Rejoin with this after a drop: same identity, no new join token needed. */
    resumeToken: string;
    /** Watch rooms: the playback state, members and sync settings. */
    watch?: WatchSnapshot | undefined;
    /** Classes: the recording running now, if any (then `record:state` events). */
    recording?: RecordingInfo | undefined;
    /**
     * The participants this session is shown and their tracks (those the room kind announces:
     * everyone in a call, the broadcaster in a broadcast), then `room:delta` events.
     */
    room: RoomSnapshot;
    /**
     * The transport asked for with `transport` in the request. Absent when it was not asked for,
     * or could not be made (then createTransport reports why).
     */
    transport?: CreatedTransport | undefined;
    /** A role that publishes and receives (a call's participant): its receive transport too. */
    recvTransport?: CreatedTransport | undefined;
  };
  getRouterRtpCapabilities: { routerRtpCapabilities: unknown };
  createTransport: TransportInfo;
  connectTransport: Record<string, never>;
  restartIce: { iceParameters: unknown; iceServers: Responses['join']['iceServers'] };
  produce: { producerId: string };
  pauseProducer: Record<string, never>;
  resumeProducer: Record<string, never>;
  closeProducer: Record<string, never>;
  /** `paused`: whether the consumer waits for resumeConsumer. */
  consume: { consumerId: string; producerId: string; kind: 'audio' | 'video'; rtpParameters: unknown; paused: boolean };
  resumeConsumer: Record<string, never>;
  closeConsumer: Record<string, never>;
  'track.view': { paused: boolean; spatialLayer?: number | undefined };
  setPreferredLayers: Record<string, never>;
  'room.sync': RoomSnapshot;
  'p2p.signal': Record<string, never>;
  'p2p.state': Record<string, never>;
  'mute.request': Record<string, never>;
  /** The queue after the move (a student is given only its own hand in it). */
  hand: { queue: HandQueue };
  hands: { queue: HandQueue };
  record: { recording: RecordingInfo | null };
  chat: { message: ChatMessage };
  listPeers: { peers: Array<{ peerId: string; identity: string; role: Role; name?: string | undefined; publishing: boolean; muted: boolean }> };
  moderate: Record<string, never>;
  leave: Record<string, never>;
  'media.started': Record<string, never>;
  'time.sync': { clientSentAt?: number | undefined; receivedAt: number; sentAt: number };
  'watch.control': { state: WatchState };
  /** `driftMs`: reported minus expected position (null when not comparable, e.g. ended). */
  'watch.report': { driftMs: number | null; resync: boolean; version: number };
}

export type Reply<M extends Method> = { ok: true; data: Responses[M] } | { ok: false; error: WireError };

export interface ServerEvents {
  /** The broadcaster started (or restarted) publishing: consume `producerId`. */
  'broadcast:started': (e: { producerId: string }) => void;
  'broadcast:paused': (e: { producerId: string }) => void;
  'broadcast:resumed': (e: { producerId: string }) => void;
  /** The broadcaster stopped or dropped; listeners stay joined and wait for it to return. */
  'broadcast:ended': (e: { producerId: string; reason: 'stopped' | 'left' | 'dropped' }) => void;
  /** Throttled: at most one per room per interval, only when the number changed. */
  'room:listeners': (e: { count: number }) => void;
  /** This consumer is gone (its producer closed or its transport did); drop the track. */
  'consumer:closed': (e: { consumerId: string }) => void;
  /** A moderator removed this session; do not rejoin with the same token. */
  'session:kicked': (e: { reason: string }) => void;
  /**
   * A moderator muted or unmuted this session (`source` absent: every source). Muted by a
   * moderator, a track cannot be resumed by its publisher until a moderator unmutes it.
   */
  'session:muted': (e: { muted: boolean; source?: TrackSource | undefined }) => void;
  /** Participants and their tracks changed: apply in order; a gap in versions means `room.sync`. */
  'room:delta': (e: RoomDelta) => void;
  /** The loudest participant now (null: nobody speaks); at most one per 300 ms. */
  'speaker:changed': (e: { peerId: string | null }) => void;
  /** Audio levels for meters (dBov, -127..0), throttled; only participants above the threshold. */
  'audio:levels': (e: { levels: Array<{ peerId: string; volume: number }> }) => void;
  /**
   * Connection quality changed: of the participants shown in the room (to everyone), and of this
   * session itself (to it alone). At most one per room every 2 s.
   */
  'quality:changed': (e: { qualities: Array<{ peerId: string; quality: ConnectionQuality }> }) => void;
  /**
   * The call's media path changed (switch `id`). `p2p`: connect directly to `peerId` (the one
   * not `polite` makes the offer), keeping the SFU transports up; `sfu`: media goes through the
   * node again. Report `p2p.state ready` once media renders on the new path.
   */
  'call:path': (e: { id: string; path: MediaPath; reason: CallPathReason; peerId?: string | undefined; polite?: boolean | undefined }) => void;
  /**
   * Everyone in switch `id` renders media on its path. Going peer-to-peer, only now do the SFU
   * producers go quiet: the other side may have played them until it had the direct media.
   */
  'call:settled': (e: { id: string }) => void;
  /** An offer, answer or candidate from the other participant of a peer-to-peer call. */
  'p2p:signal': (e: { from: string; description?: { type: 'offer' | 'answer' | 'rollback'; sdp: string } | undefined; candidate?: P2pCandidate | null | undefined }) => void;
  /** Moderators: a participant muted by a moderator asks to unmute. */
  'mute:requested': (e: { peerId: string; identity: string; source?: TrackSource | undefined }) => void;
  /** Classes: a chat message (to the class; or to the staff, who alone get those besides the sender). */
  'chat:message': (e: { message: ChatMessage }) => void;
  /** Classes, to teachers and assistants: the hand queue after every change. */
  'hand:queue': (e: { queue: HandQueue }) => void;
  /** Classes: the stage's recording started (with where to play it) or stopped (null). */
  'record:state': (e: { recording: RecordingInfo | null; playlist?: string | undefined }) => void;
  /** Classes, to a student: its own hand (absent: none). On `onstage` it may publish; on `back` its tracks were closed. */
  'hand:state': (e: { hand?: Hand | undefined; version: number }) => void;
  /**
   * To a publisher (dynacast): send the spatial layers of this simulcast track up to
   * `maxSpatialLayer` only; nobody here receives the ones above, so encoding them is wasted uplink.
   */
  'publication:layers': (e: { producerId: string; maxSpatialLayer: number }) => void;
  /** The publisher paused or resumed the track behind this consumer. */
  'consumer:paused': (e: { consumerId: string; byPublisher: boolean }) => void;
  'consumer:resumed': (e: { consumerId: string }) => void;
  /** The layers this consumer receives now, and its quality score (0-10). */
  'consumer:layers': (e: { consumerId: string; spatialLayer: number | null; temporalLayer: number | null }) => void;
  /** The room was ended by a moderator; everyone is out. */
  'room:ended': (e: { reason: string }) => void;
  /** This node is shutting down: reconnect (the balancer picks another node) and resume. */
  /**
   * This node is shutting down: move. `moveTo`, when present, is a node that stays (a cluster
   * whose nodes clients reach directly); otherwise reconnect through the entry URL.
   */
  'node:draining': (e: { reason: string; moveTo?: string }) => void;
  /** The media behind this session was lost (a worker died): join again to recover. */
  'session:reset': (e: { reason: string }) => void;
  /** Watch rooms: the playback state changed (a control, or hosting passed to someone else). */
  'watch:state': (e: { state: WatchState; cause: WatchCause; serverTime: number; by?: string | undefined }) => void;
  /** Watch rooms: this member's player is off by more than the threshold; follow `state`. */
  'watch:resync': (e: { state: WatchState; driftMs: number | null; serverTime: number }) => void;
  'watch:member': (e: { change: 'joined' | 'left'; member: WatchMember }) => void;
  /** Watch rooms: this session missed its heartbeats and was removed; join again to come back. */
  'watch:removed': (e: { reason: string }) => void;
  /** A request that carried no acknowledgement callback failed; reported here instead. */
  'request:error': (e: { method: string; error: WireError }) => void;
}

/** Limits the server applies to every socket, shared so the SDK can stay inside them. */
export const wireLimits = {
  maxMessageBytes: 64 * 1024,
} as const;
