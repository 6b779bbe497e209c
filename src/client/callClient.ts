/**
 * The SDK for rooms where many publish (calls): a room-shaped API over one node connection.
 *
 * - The room: `participants` (everyone else, with their tracks), kept from the node's versioned
 *   snapshot and deltas (a gap re-syncs: see roomView.ts), with events for every change.
 * - Local publications: `publish(track, source)` — one track per source; the camera goes out in
 *   three VP8 simulcast layers, a screen share at full resolution (detail over motion).
 * - Subscriptions as desired state: every remote track is wanted; a reconcile loop makes the
 *   consumers match (new tracks consumed, gone ones closed, failures retried), so joins, resyncs
 *   and reconnects all go through one path.
 * - Views: `setView(trackId, {visible, width, height})` tells the node what a tile shows, so
 *   it sends the simulcast layer that fits, or nothing while the tile is hidden.
 * - Recovery: a transport that goes `disconnected`/`failed` gets an ICE restart first; a lost
 *   connection or a server reset rejoins with the resume token, republishes the local tracks and
 *   subscribes again.
 *
 * Runs in browsers; in Node pass a mediasoup-client `handlerFactory` backed by Node WebRTC.
 */
import { Emitter } from '@socket.io/component-emitter';
import { Device } from 'mediasoup-client';
import type { types } from 'mediasoup-client';
import type { ManagerOptions, SocketOptions } from 'socket.io-client';
import type { ChatMessage, RequestOf, Responses, ServerEvents } from '../protocol/messages.js';
import type { ConnectionQuality, Hand, HandAction, HandQueue, ParticipantInfo, RecordingInfo, RoomChange, TrackInfo, TrackSource } from '../protocol/room.js';
import { kindOfSource, recordingPlaylist } from '../protocol/basics.js';
import { NodeLink, nodeUrl } from './nodeLink.js';
import { arrival, flowing } from './arrival.js';
import { keepResolution } from './screenShare.js';
import { P2pLink, type P2pFactory } from './p2pLink.js';
import { RoomView } from '../protocol/roomView.js';
import { ChorusClientError, pacedRequest, request, requireProtocol, type ClientSocket } from './signaling.js';

export { ChorusClientError } from './signaling.js';

export type CallState = 'idle' | 'connecting' | 'joined' | 'reconnecting' | 'closed';

export interface CallClientOptions {
  /** Base URL of a Chorus node (or the cluster's entry). */
  url: string;
  roomId: string;
  token: string;
  handlerFactory?: types.HandlerFactory;
  iceTransportPolicy?: 'all' | 'relay';
  forceTcp?: boolean;
  /** Backoff for re-joining after a failure: first delay and cap, in ms (jittered). */
  retry?: { initialMs: number; maxMs: number };
  socket?: Partial<ManagerOptions & SocketOptions>;
  /** Camera encodings; default three simulcast layers (quarter, half, full size). */
  cameraEncodings?: RTCRtpEncodingParameters[];
  /**
   * Carry a call of two peer-to-peer when the node says so (its RTCPeerConnection: the browser's,
   * or a Node WebRTC one). Absent: this client stays on the SFU.
   */
  p2p?: P2pFactory | undefined;
}

/** A remote participant's track as this client knows it. */
export interface RemoteTrack extends TrackInfo {
  peerId: string;
  /** The media, once subscribed. */
  mediaTrack?: MediaStreamTrack | undefined;
  consumerId?: string | undefined;
  /** The layers the node currently sends (simulcast video). */
  spatialLayer?: number | null | undefined;
}

export interface RemoteParticipant {
  peerId: string;
  identity: string;
  name?: string | undefined;
  role: ParticipantInfo['role'];
  tracks: Map<string, RemoteTrack>;
  /** How well its media gets through (from the node's scores), once the node has said. */
  quality?: ConnectionQuality | undefined;
}

export interface TrackView {
  visible: boolean;
  width: number;
  height: number;
}

/** A call going (or gone) peer-to-peer. */
interface DirectPath {
  /** The switch, as the node numbered it. */
  id: string;
  /** The other participant. */
  peerId: string;
  link: P2pLink;
  reason: string;
  /** Connected, and the other's tracks moving onto the link as it carries them. */
  swapped: boolean;
  /** Reported `ready` to the node. */
  reported: boolean;
  /** Everyone plays from the link: this side's SFU uplink goes quiet. */
  settled: boolean;
  /** A poll for media arriving on the link is running; `again`: look once more when it ends. */
  polling: boolean;
  again: boolean;
  /** When the link first connected (the wait for each track's media is bounded from it). */
  connectedAt: number;
  /** Per switched audio track: how long it had had nothing on the SFU path. */
  gaps: number[];
  timer: ReturnType<typeof setTimeout>;
}

/** A direct link kept while the call goes back to the SFU. */
interface LeavingPath {
  id: string;
  peerId: string;
  link: P2pLink;
  /** Per moved audio track: how long it had had nothing on the direct link. */
  gaps: number[];
  reported: boolean;
  /** The link closes when everyone has moved (`call:settled`), or by this at the latest. */
  timer: ReturnType<typeof setTimeout>;
}

export interface CallEvents {
  state: (state: CallState) => void;
  joined: (info: Responses['join']) => void;
  participantjoined: (participant: RemoteParticipant) => void;
  participantleft: (participant: RemoteParticipant) => void;
  /** A remote track was published (not yet subscribed). */
  trackpublished: (track: RemoteTrack, participant: RemoteParticipant) => void;
  trackunpublished: (track: RemoteTrack, participant: RemoteParticipant) => void;
  /** Media of a remote track is here: attach `track.mediaTrack`. */
  tracksubscribed: (track: RemoteTrack, participant: RemoteParticipant) => void;
  /** The media of a remote track stopped (unpublished, or a reconnect is under way). */
  trackunsubscribed: (track: RemoteTrack, participant: RemoteParticipant) => void;
  /** A remote track was muted or unmuted (by its publisher or a moderator). */
  trackmuted: (track: RemoteTrack, participant: RemoteParticipant) => void;
  /** The loudest participant (`null`: nobody; this client's own peer id when it is us). */
  activespeaker: (peerId: string | null) => void;
  /** Classes, a student: its own raised hand changed (undefined: none). On `onstage` it may publish. */
  hand: (hand: Hand | undefined) => void;
  /** Classes, teachers and assistants: the hand queue changed. */
  handqueue: (queue: HandQueue) => void;
  /** Classes: the stage's recording started (`playlist`: its HLS path on the node, with a room token) or stopped (null). */
  recording: (recording: RecordingInfo | null, playlist: string | undefined) => void;
  /** Classes: a chat message (to the class, or to the staff). */
  chat: (message: ChatMessage) => void;
  /** Something is wrong that the call survives (the node's media path down while peer-to-peer). */
  warning: (warning: ChorusClientError) => void;
  /** The call's media now goes `p2p` (directly to the other participant) or through the `sfu`, and why. */
  path: (path: 'sfu' | 'p2p', reason: string) => void;
  /** Connection quality of a participant, or (participant undefined) of this client itself. */
  quality: (quality: ConnectionQuality, participant: RemoteParticipant | undefined) => void;
  levels: (levels: Array<{ peerId: string; volume: number }>) => void;
  /** The layer the node sends for a subscribed video changed (connection quality, tile size). */
  layers: (track: RemoteTrack) => void;
  /** A moderator muted (or unmuted) this client's `source` (undefined: every source). */
  muted: (muted: boolean, source: TrackSource | undefined) => void;
  /** Moderators: a participant asks to be unmuted. */
  muterequested: (request: { peerId: string; identity: string; source?: TrackSource | undefined }) => void;
  /** A local publication is live on the node (again, after a reconnect). */
  published: (source: TrackSource) => void;
  transport: (direction: 'send' | 'recv', state: string) => void;
  error: (error: ChorusClientError) => void;
}

interface LocalPublication {
  source: TrackSource;
  track: MediaStreamTrack;
  paused: boolean;
  /** The capture size, when the application knows it better than the track's settings. */
  video?: { width: number; height: number } | undefined;
  producer?: types.Producer | undefined;
  /** A produce under way for this publication. */
  pending?: Promise<void> | undefined;
}

/** Failures of the path, not refusals: worth another try. */
const transientCodes = new Set<string>(['TIMEOUT', 'DISCONNECTED', 'UNAVAILABLE', 'INTERNAL', 'LIMIT_REACHED', 'ROOM_FULL']);

const defaultCameraEncodings: RTCRtpEncodingParameters[] = [
  { scaleResolutionDownBy: 4, maxBitrate: 150_000, scalabilityMode: 'L1T3' } as RTCRtpEncodingParameters,
  { scaleResolutionDownBy: 2, maxBitrate: 500_000, scalabilityMode: 'L1T3' } as RTCRtpEncodingParameters,
  { scaleResolutionDownBy: 1, maxBitrate: 1_500_000, scalabilityMode: 'L1T3' } as RTCRtpEncodingParameters,
];

/** How long a transport may stay disconnected or failed after an ICE restart before a full rejoin. */
const ICE_RESTART_GRACE_MS = 8000;
/** A direct link not connected by then is reported failed: the call goes back to the SFU. */
const P2P_CONNECT_TIMEOUT_MS = 10_000;
/** How often a path switch looks whether the new path's media arrives yet. */
const ARRIVAL_POLL_MS = 20;
/** A track whose new path brings nothing by then switches anyway (its sender may be silent). */
const ARRIVAL_WAIT_MS = 3000;
/** How long a consumer that is no longer played waits for its receive transport to connect. */
const PROVE_WAIT_MS = 10_000;
/** Tracks subscribed at once (consume, view, resume each); the rest wait their turn. */
const SUBSCRIBE_CONCURRENCY = 4;

export class CallClient extends Emitter<CallEvents, CallEvents> {
  readonly #options: CallClientOptions;
  readonly #link: NodeLink;
  readonly #view = new RoomView();
  readonly #participants = new Map<string, RemoteParticipant>();
  readonly #local = new Map<TrackSource, LocalPublication>();
  readonly #views = new Map<string, TrackView>();
  /** Consumers by track id, and the consumes under way. */
  readonly #consumers = new Map<string, types.Consumer>();
  readonly #consuming = new Set<string>();
  /** The receive transport a consumer was made on only to connect it (see `#reconcile`). */
  #proving: types.Transport | undefined;
  #state: CallState = 'idle';
  #info: Responses['join'] | undefined;
  #device: Device | undefined;
  #send: types.Transport | undefined;
  #recording: RecordingInfo | undefined;
  #recv: types.Transport | undefined;
  #generation = 0;
  #retries = 0;
  #redirects = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #reconcileTimer: ReturnType<typeof setTimeout> | undefined;
  #syncing = false;
  /** Deltas that arrived while joining: applied after the join's snapshot, in order. */
  /** Calls gone peer-to-peer: the direct link, and how far the switch to it has come. */
  #p2p: DirectPath | undefined;
  #path: 'sfu' | 'p2p' = 'sfu';
  /** A direct link kept after the call went back to the SFU, until the SFU's media plays. */
  #leavingP2p: LeavingPath | undefined;
  /** Path events that came before the join answer, run once joined. */
  #pathEarly: Array<() => void> = [];
  #early: Array<Parameters<import('../protocol/messages.js').ServerEvents['room:delta']>[0]> = [];
  #joinWaiter: { resolve(info: Responses['join']): void; reject(error: ChorusClientError): void } | undefined;
  #activeSpeaker: string | null = null;
  #quality: ConnectionQuality | undefined;
  /** The role only receives unless brought on stage (a class's student): no send transport until then. */
  #receiveOnly = false;
  #hand: Hand | undefined;
  /** The hand queue version #hand is from: the answer to a move and the event may come in either order. */
  #handVersion = -1;

  constructor(options: CallClientOptions) {
    super();
    this.#options = options;
    this.#link = new NodeLink(options.url, options.socket, (socket) => this.#wireSocket(socket));
  }

  get #socket(): ClientSocket {
    return this.#link.socket;
  }

  get state(): CallState {
    return this.#state;
  }

  get peerId(): string | undefined {
    return this.#info?.peerId;
  }

  get identity(): string | undefined {
    return this.#info?.identity;
  }

  get role(): Responses['join']['role'] | undefined {
    return this.#info?.role;
  }

  /** Everyone else in the call, with their tracks. */
  get participants(): ReadonlyMap<string, RemoteParticipant> {
    return this.#participants;
  }

  get activeSpeaker(): string | null {
    return this.#activeSpeaker;
  }

  /** Whether the call's media goes directly to the other participant (`p2p`) or through the SFU. */
  /** Classes, a student: its raised hand, if any. */
  get hand(): Hand | undefined {
    return this.#hand;
  }

  /**
   * Classes: moves a raised hand. A student raises, lowers, accepts (then it may publish its
   * microphone and camera) or declines its own; teachers and assistants invite, remove or lower
   * a student's (`peerId`), naming the queue `version` they saw (STALE_VERSION when another
   * moved it first: read `handQueue()` again).
   */
  async moveHand(action: HandAction, target?: { peerId: string; version: number }): Promise<HandQueue> {
    const { queue } = await pacedRequest(this.#socket, 'hand', { action, ...(target ? { peerId: target.peerId, version: target.version } : {}) });
    // A student's own move: its new state is known now (the event may come later, through the cluster).
    if (!target && this.#receiveOnly) this.#ownHand(queue.hands.find((h) => h.peerId === this.peerId), queue.version);
    return queue;
  }

  /** This student's hand at queue `version`, unless a newer one is known. */
  #ownHand(hand: Hand | undefined, version: number): void {
    if (version <= this.#handVersion) return;
    this.#handVersion = version;
    this.#onHand(hand).catch((error: unknown) => this.emit('error', error instanceof ChorusClientError ? error : new ChorusClientError('INTERNAL', `going on stage: ${String(error)}`, true)));
  }

  /** Classes: sends a chat message to the class, or (`staff`) a question to its teachers and assistants only. */
  async sendChat(text: string, to: 'class' | 'staff' = 'class'): Promise<ChatMessage> {
    // Not paced: past the per-minute limit the person is told at once (LIMIT_REACHED, retryAfterMs).
    return (await request(this.#socket, 'chat', { text, to })).message;
  }

  /** Classes: the recording running now, if any (its playlist: `recordingPlaylist(recording)`, with a room token). */
  get recording(): RecordingInfo | undefined {
    return this.#recording;
  }

  #onRecording(recording: RecordingInfo | null): void {
    this.#recording = recording ?? undefined;
    this.emit('recording', recording, recording ? recordingPlaylist(recording) : undefined);
  }

  /** Classes, teachers and assistants: starts or stops recording the stage (then `recording` events to everyone). */
  async record(action: 'start' | 'stop'): Promise<RecordingInfo | null> {
    return (await request(this.#socket, 'record', { action })).recording;
  }

  /** Classes, teachers and assistants: the hand queue now (then `handqueue` events). */
  async handQueue(): Promise<HandQueue> {
    return (await pacedRequest(this.#socket, 'hands', {})).queue;
  }

  get mediaPath(): 'sfu' | 'p2p' {
    return this.#path;
  }

  /**
   * What this client sends to the node now: the WebRTC stats of its send transport (outbound-rtp
   * per simulcast layer, with its `rid`), or none while it has no send transport.
   */
  async sendStats(): Promise<RTCStatsReport | undefined> {
    const send = this.#send;
    return send && !send.closed ? send.getStats() : undefined;
  }

  /** This client's own connection quality, once the node has said. */
  get quality(): ConnectionQuality | undefined {
    return this.#quality;
  }

  /** What this client publishes: source → whether it is paused (muted). */
  get publications(): ReadonlyMap<TrackSource, { track: MediaStreamTrack; paused: boolean; live: boolean }> {
    return new Map([...this.#local].map(([source, p]) => [source, { track: p.track, paused: p.paused, live: p.producer !== undefined && !p.producer.closed }]));
  }

  /** The ICE servers the node handed out (for a direct connection between two participants). */
  get iceServers(): Responses['join']['iceServers'] {
    return this.#info?.iceServers ?? [];
  }

  async join(): Promise<Responses['join']> {
    if (this.#state !== 'idle') throw new ChorusClientError('ALREADY_JOINED', 'join() was already called', false);
    this.#setState('connecting');
    const joined = new Promise<Responses['join']>((resolve, reject) => {
      this.#joinWaiter = { resolve, reject };
    });
    this.#socket.connect();
    return joined;
  }

  /**
   * Publishes `track` as `source` (one track per source; a second call for the same source swaps
   * the track under the same producer, as a device change should). Kept across reconnects.
   */
  async publish(track: MediaStreamTrack, source: TrackSource, options: { video?: { width: number; height: number } } = {}): Promise<void> {
    if (kindOfSource(source) !== track.kind) throw new ChorusClientError('BAD_REQUEST', `a ${source} track must be ${kindOfSource(source)}`, false);
    const existing = this.#local.get(source);
    if (existing) {
      existing.track = track;
      await existing.pending;
      if (existing.producer && !existing.producer.closed) await existing.producer.replaceTrack({ track });
      return;
    }
    // On stage the send transport may still be in the making: it publishes what is here once made.
    if (this.#state === 'joined' && !this.#send && this.#hand?.state !== 'onstage') {
      throw new ChorusClientError('FORBIDDEN_ROLE', `a ${this.#info?.role ?? 'session'} in this room only receives (until brought on stage)`, false);
    }
    const publication: LocalPublication = { source, track, paused: false, ...(options.video ? { video: options.video } : {}) };
    this.#local.set(source, publication);
    void this.#p2p?.link.setTrack(source, track);
    if (this.#state === 'joined') await this.#produce(publication, this.#generation);
  }

  /** Stops publishing `source`. */
  async unpublish(source: TrackSource): Promise<void> {
    const publication = this.#local.get(source);
    if (!publication) return;
    this.#local.delete(source);
    void this.#p2p?.link.setTrack(source, null);
    await publication.pending?.catch(() => undefined);
    const producer = publication.producer;
    if (producer && !producer.closed) {
      producer.close();
      await pacedRequest(this.#socket, 'closeProducer', { producerId: producer.id }).catch(() => undefined);
    }
  }

  /** Mutes (pauses) or unmutes a local source; everyone sees it at once. MUTED if a moderator muted it. */
  async setMuted(source: TrackSource, muted: boolean): Promise<void> {
    const publication = this.#local.get(source);
    if (!publication) throw new ChorusClientError('NOT_FOUND', `not publishing ${source}`, false);
    const producer = publication.producer;
    if (producer && !producer.closed) {
      await pacedRequest(this.#socket, muted ? 'pauseProducer' : 'resumeProducer', { producerId: producer.id });
      if (muted) producer.pause();
      // Peer-to-peer, the SFU's copy stays quiet: the direct link carries it.
      else if (!this.#p2p?.settled) producer.resume();
    }
    publication.track.enabled = !muted;
    void this.#p2p?.link.setTrack(source, muted ? null : publication.track);
    publication.paused = muted;
  }

  /** WebRTC stats of what this client receives (its receive transport), for quality displays. */
  async stats(): Promise<RTCStatsReport | undefined> {
    const recv = this.#recv;
    return recv && !recv.closed ? recv.getStats() : undefined;
  }

  /** Tells the node how a remote video is shown, so it sends the layer that fits (or nothing). */
  async setView(trackId: string, view: TrackView): Promise<void> {
    const previous = this.#views.get(trackId);
    this.#views.set(trackId, view);
    if (previous && previous.visible === view.visible && previous.width === view.width && previous.height === view.height) return;
    const consumer = this.#consumers.get(trackId);
    if (!consumer || consumer.kind !== 'video' || consumer.closed) return;
    const answer = await pacedRequest(this.#socket, 'track.view', { consumerId: consumer.id, ...view });
    this.#setLayer(trackId, answer.spatialLayer ?? null);
  }

  /** A participant muted by a moderator asks to unmute. */
  async requestUnmute(source?: TrackSource): Promise<void> {
    await pacedRequest(this.#socket, 'mute.request', source ? { source } : {});
  }

  /** Moderators: mute/unmute a participant's source (or all), kick, or end the call. */
  async moderate(action: RequestOf<'moderate'>): Promise<void> {
    await pacedRequest(this.#socket, 'moderate', action);
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    const connected = this.#socket.connected && this.#info !== undefined;
    this.#setState('closed');
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#reconcileTimer);
    this.#teardownMedia();
    this.#applyChanges(this.#view.clear());
    if (connected) await request(this.#socket, 'leave', {}, 2000).catch(() => undefined);
    this.#socket.off();
    this.#socket.disconnect();
    this.#joinWaiter?.reject(new ChorusClientError('DISCONNECTED', 'closed before joining', false));
    this.#joinWaiter = undefined;
  }

  // --- connection -------------------------------------------------------------------------

  #setState(state: CallState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit('state', state);
  }

  #wireSocket(s: ClientSocket): void {
    s.on('connect', () => void this.#establish());
    s.on('connect_error', () => {
      if (this.#link.redirected && this.#state !== 'closed') this.#moveTo(this.#options.url, 200 + Math.random() * 800);
    });
    s.on('disconnect', (reason) => {
      if (this.#state === 'closed') return;
      this.#teardownMedia();
      this.#setState('reconnecting');
      if (this.#link.redirected && reason !== 'io client disconnect') return this.#moveTo(this.#options.url, Math.random() * 500);
      if (reason === 'io server disconnect') this.#scheduleRetry();
    });
    s.on('room:delta', (delta) => {
      if (this.#state !== 'joined') {
        this.#early.push(delta);
        return;
      }
      this.#onDelta(delta);
    });
    s.on('consumer:closed', ({ consumerId }) => {
      for (const [trackId, consumer] of this.#consumers) if (consumer.id === consumerId) this.#dropConsumer(trackId);
      this.#scheduleReconcile(0);
    });
    s.on('consumer:layers', ({ consumerId, spatialLayer }) => {
      for (const [trackId, consumer] of this.#consumers) if (consumer.id === consumerId) this.#setLayer(trackId, spatialLayer);
    });
    // Dynacast: the node says which layers anyone receives; the encoder stops the others.
    s.on('publication:layers', ({ producerId, maxSpatialLayer }) => {
      for (const publication of this.#local.values()) {
        const producer = publication.producer;
        if (producer?.id !== producerId || producer.closed) continue;
        producer.setMaxSpatialLayer(maxSpatialLayer).catch((error: unknown) => this.emit('error', new ChorusClientError('INTERNAL', `sending fewer layers: ${String(error)}`, true)));
      }
    });
    s.on('speaker:changed', ({ peerId }) => {
      this.#activeSpeaker = peerId;
      this.emit('activespeaker', peerId);
    });
    s.on('audio:levels', ({ levels }) => this.emit('levels', levels));
    s.on('call:path', (e) => this.#whenJoined(() => this.#onPath(e)));
    s.on('call:settled', (e) => this.#whenJoined(() => this.#onSettled(e.id)));
    s.on('p2p:signal', (e) => this.#whenJoined(() => void this.#p2p?.link.onSignal(e).catch((error: unknown) => this.emit('error', new ChorusClientError('INTERNAL', `peer-to-peer signal: ${String(error)}`, true)))));
    s.on('hand:queue', ({ queue }) => this.emit('handqueue', queue));
    s.on('record:state', ({ recording }) => this.#onRecording(recording));
    s.on('chat:message', ({ message }) => this.emit('chat', message));
    s.on('hand:state', ({ hand, version }) => this.#whenJoined(() => this.#ownHand(hand, version)));
    s.on('quality:changed', ({ qualities }) => {
      for (const { peerId, quality } of qualities) {
        if (peerId === this.#info?.peerId) {
          this.#quality = quality;
          this.emit('quality', quality, undefined);
          continue;
        }
        const participant = this.#participants.get(peerId);
        if (!participant) continue;
        participant.quality = quality;
        this.emit('quality', quality, participant);
      }
    });
    s.on('session:muted', ({ muted, source }) => {
      // A moderator's mute paused our producers on the node: mirror it locally.
      if (muted) {
        for (const p of this.#local.values()) {
          if (source !== undefined && p.source !== source) continue;
          p.paused = true;
          void this.#p2p?.link.setTrack(p.source, null);
        }
      }
      this.emit('muted', muted, source);
    });
    s.on('mute:requested', (r) => this.emit('muterequested', r));
    s.on('session:reset', () => this.#restart());
    s.on('node:draining', ({ moveTo }) => {
      const next = nodeUrl(moveTo);
      this.#moveTo(next ?? this.#options.url, Math.random() * 1000);
    });
    s.on('session:kicked', ({ reason }) => this.#end(new ChorusClientError('KICKED', reason, false)));
    s.on('room:ended', ({ reason }) => this.#end(new ChorusClientError('ROOM_ENDED', reason, false)));
  }

  #moveTo(url: string, delayMs = 0): void {
    this.#teardownMedia();
    this.#setState('reconnecting');
    clearTimeout(this.#retryTimer);
    const socket = this.#link.switchTo(url);
    this.#retryTimer = setTimeout(() => socket.connect(), delayMs);
  }

  #end(reason: ChorusClientError): void {
    this.#info = undefined;
    this.emit('error', reason);
    void this.close();
  }

  /** Joins (or rejoins) over the current connection and rebuilds the media path. */
  async #establish(): Promise<void> {
    clearTimeout(this.#retryTimer);
    const generation = ++this.#generation;
    const previousPeerId = this.#info?.peerId;
    this.#early = [];
    this.#pathEarly = [];
    try {
      const info = await request(this.#socket, 'join', {
        roomId: this.#options.roomId,
        token: this.#info?.resumeToken ?? this.#options.token,
        ...(previousPeerId ? { previousPeerId } : {}),
        transport: this.#options.forceTcp ? { forceTcp: true } : {},
        ...(this.#options.p2p ? { p2p: true } : {}),
      });
      if (generation !== this.#generation) return;
      await requireProtocol(this.#socket, info);
      if (info.kind !== 'call' && info.kind !== 'class') {
        await request(this.#socket, 'leave', {}).catch(() => undefined);
        throw new ChorusClientError('WRONG_ROOM_KIND', `this is a ${info.kind} room: join it with its own client`, false);
      }
      const resumed = this.#info !== undefined;
      this.#info = info;
      const device = this.#device ?? new Device(this.#options.handlerFactory ? { handlerFactory: this.#options.handlerFactory } : {});
      if (!device.loaded) await device.load({ routerRtpCapabilities: info.routerRtpCapabilities as types.RtpCapabilities });
      this.#device = device;
      // A role that only receives (a class's student) is given its receive transport alone.
      const receiveOnly = info.transport?.direction === 'recv';
      this.#receiveOnly = receiveOnly;
      // A new session starts with no hand: the old one's went with it.
      this.#hand = undefined;
      this.#handVersion = -1;
      this.#send = receiveOnly ? undefined : await this.#transport(generation, 'send', info.transport?.direction === 'send' ? info.transport : undefined);
      this.#recv = await this.#transport(generation, 'recv', receiveOnly ? info.transport : info.recvTransport);
      if (generation !== this.#generation) return;
      this.#retries = 0;
      this.#redirects = 0;
      // The join's snapshot, then whatever changed while the transports were made.
      this.#applyChanges(this.#view.reset(this.#visible(info.room)));
      for (const delta of this.#early.splice(0)) this.#onDelta(delta);
      this.#setState('joined');
      for (const run of this.#pathEarly.splice(0)) run();
      this.#joinWaiter?.resolve(info);
      this.#joinWaiter = undefined;
      this.emit('joined', info);
      if (info.recording?.id !== this.#recording?.id) this.#onRecording(info.recording ?? null);
      if (resumed) this.#activeSpeaker = null;
      await Promise.all([...this.#local.values()].map((p) => this.#produce(p, generation)));
      this.#scheduleReconcile(0);
    } catch (error) {
      if (generation !== this.#generation || this.#state === 'closed') return;
      this.#onJoinFailure(error);
    }
  }

  #onJoinFailure(error: unknown): void {
    const failure = error instanceof ChorusClientError ? error : new ChorusClientError('INTERNAL', String(error), true);
    if (failure.code === 'WRONG_NODE' && failure.redirectUrl && this.#redirects < 3) {
      this.#redirects++;
      this.#moveTo(failure.redirectUrl);
      return;
    }
    this.emit('error', failure);
    if (failure.code === 'ALREADY_JOINED' && this.#socket.connected) {
      void request(this.#socket, 'leave', {}).catch(() => undefined).then(() => this.#establish());
      return;
    }
    const everJoined = this.#info !== undefined;
    if (transientCodes.has(failure.code) || failure.code === 'WRONG_NODE' || (everJoined && failure.retryable)) {
      this.#scheduleRetry(failure.retryAfterMs);
      return;
    }
    this.#joinWaiter?.reject(failure);
    this.#joinWaiter = undefined;
    void this.close();
  }

  #scheduleRetry(atLeastMs = 0): void {
    const { initialMs, maxMs } = this.#options.retry ?? { initialMs: 500, maxMs: 10_000 };
    const delay = Math.max(atLeastMs, Math.min(maxMs, initialMs * 2 ** this.#retries++) * (0.5 + Math.random() / 2));
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      if (this.#state === 'closed') return;
      if (this.#socket.connected) void this.#establish();
      else this.#socket.connect();
    }, delay);
  }

  /** The server dropped our media (a worker restarted, a stale transport): join again here. */
  #restart(): void {
    if (this.#state === 'closed') return;
    this.#teardownMedia();
    this.#setState('reconnecting');
    this.#scheduleRetry();
  }

  // --- media ------------------------------------------------------------------------------

  async #transport(generation: number, direction: 'send' | 'recv', given?: Responses['join']['transport']): Promise<types.Transport> {
    const info = given ?? {
      direction,
      ...(await pacedRequest(this.#socket, 'createTransport', { direction, ...(this.#options.forceTcp ? { forceTcp: true } : {}) })),
    };
    const device = this.#device!;
    const params = {
      id: info.id,
      iceParameters: info.iceParameters as types.IceParameters,
      iceCandidates: info.iceCandidates as types.IceCandidate[],
      dtlsParameters: info.dtlsParameters as types.DtlsParameters,
      iceServers: (this.#info?.iceServers ?? []) as RTCIceServer[],
      ...(this.#options.iceTransportPolicy ? { iceTransportPolicy: this.#options.iceTransportPolicy } : {}),
    };
    const transport = direction === 'send' ? device.createSendTransport(params) : device.createRecvTransport(params);
    transport.on('connect', ({ dtlsParameters }, done, fail) => {
      pacedRequest(this.#socket, 'connectTransport', { transportId: transport.id, dtlsParameters: dtlsParameters as RequestOf<'connectTransport'>['dtlsParameters'] }).then(done, fail);
    });
    if (direction === 'send') {
      transport.on('produce', ({ kind, rtpParameters, appData }, done, fail) => {
        const source = appData['source'] as TrackSource;
        const settings = appData['video'] as { width: number; height: number } | undefined;
        pacedRequest(this.#socket, 'produce', {
          transportId: transport.id,
          kind,
          rtpParameters: rtpParameters as RequestOf<'produce'>['rtpParameters'],
          source,
          ...(settings ? { video: settings } : {}),
        }).then(({ producerId }) => done({ id: producerId }), fail);
      });
    }
    let restartTimer: ReturnType<typeof setTimeout> | undefined;
    transport.on('connectionstatechange', (state) => {
      this.emit('transport', direction, state);
      if (generation !== this.#generation) return;
      if (state === 'connected') {
        clearTimeout(restartTimer);
        restartTimer = undefined;
        return;
      }
      if ((state === 'disconnected' || state === 'failed') && restartTimer === undefined) {
        // A path change (Wi-Fi to mobile) or a NAT rebinding: new ICE credentials over the same
        // session first; only if the transport still does not connect, a full rejoin.
        const attempt = (): void => {
          void this.#restartIce(transport);
          restartTimer = setTimeout(() => {
            if (generation !== this.#generation || transport.connectionState === 'connected') return;
            if (!this.#p2p?.swapped) return this.#restart();
            // The call goes on directly: the node's path is only its fallback. Rejoining would
            // tear down a working call, so say so and keep trying to bring the path back.
            this.emit('warning', new ChorusClientError('UNAVAILABLE', `the ${direction} path to the node is down: the call goes on peer-to-peer, but a third participant could not be seen or heard until it is back`, true));
            attempt();
          }, ICE_RESTART_GRACE_MS);
        };
        attempt();
      }
    });
    transport.observer.on('close', () => clearTimeout(restartTimer));
    return transport;
  }

  /** On stage: a send transport now, and what was published goes out. Off it: the node closed them already. */
  async #onHand(hand: Hand | undefined): Promise<void> {
    this.#hand = hand;
    this.emit('hand', hand);
    if (!this.#receiveOnly) return;
    const generation = this.#generation;
    if (hand?.state === 'onstage') {
      if (this.#send && !this.#send.closed) return;
      this.#send = await this.#transport(generation, 'send');
      if (generation !== this.#generation) return;
      await Promise.all([...this.#local.values()].map((p) => this.#produce(p, generation)));
      return;
    }
    for (const p of this.#local.values()) {
      p.producer?.close();
      p.producer = undefined;
    }
    this.#send?.close();
    this.#send = undefined;
  }

  async #restartIce(transport: types.Transport): Promise<void> {
    try {
      const { iceParameters, iceServers } = await pacedRequest(this.#socket, 'restartIce', { transportId: transport.id });
      if (iceServers.length > 0) await transport.updateIceServers({ iceServers: iceServers as RTCIceServer[] });
      await transport.restartIce({ iceParameters: iceParameters as types.IceParameters });
    } catch {
      // The grace timer decides: a full rejoin if the transport does not come back.
    }
  }

  async #produce(publication: LocalPublication, generation: number): Promise<void> {
    if (publication.pending) return publication.pending;
    const send = this.#send;
    if (!send || send.closed || (publication.producer && !publication.producer.closed)) return;
    const run = (async () => {
      const { source, track } = publication;
      // The node maps tile sizes to simulcast layers from the capture size.
      const settings = track.kind === 'video' ? track.getSettings?.() : undefined;
      const video = publication.video ?? (settings?.width && settings.height ? { width: settings.width, height: settings.height } : undefined);
      const producer = await send.produce({
        track,
        ...(source === 'camera' ? { encodings: this.#options.cameraEncodings ?? defaultCameraEncodings, codecOptions: { videoGoogleStartBitrate: 1000 } } : {}),
        // A shared screen keeps its resolution and drops frames instead (text must stay legible).
        ...(source === 'screen' ? { encodings: [{ maxBitrate: 2_500_000 } as RTCRtpEncodingParameters] } : {}),
        stopTracks: false,
        // Pausing stops what goes to the SFU and leaves the track alone: a direct link may be
        // sending it (a mute disables the track itself, in setMuted).
        disableTrackOnPause: false,
        zeroRtpOnPause: true,
        appData: { source, ...(video ? { video } : {}) },
      });
      if (generation !== this.#generation || this.#local.get(source) !== publication) {
        producer.close();
        return;
      }
      if (source === 'screen') await keepResolution(producer.rtpSender, track);
      publication.producer = producer;
      if (publication.paused) {
        producer.pause();
        await pacedRequest(this.#socket, 'pauseProducer', { producerId: producer.id }).catch(() => undefined);
      } else if (this.#p2p?.settled) producer.pause();
      this.emit('published', source);
    })();
    publication.pending = run;
    try {
      await run;
    } finally {
      publication.pending = undefined;
    }
  }

  /** Closes the media path (the node's side goes with the session); local tracks stay for the next one. */
  #teardownMedia(): void {
    clearTimeout(this.#reconcileTimer);
    // A new session (a rejoin) is placed on a path afresh by the node.
    this.#p2p?.link.close();
    clearTimeout(this.#p2p?.timer);
    this.#closeLeaving();
    this.#p2p = undefined;
    this.#path = 'sfu';
    for (const trackId of [...this.#consumers.keys()]) this.#dropConsumer(trackId);
    for (const p of this.#local.values()) p.producer = undefined;
    this.#send?.close();
    this.#recv?.close();
    this.#send = undefined;
    this.#recv = undefined;
    this.#consuming.clear();
  }

  // --- the room -----------------------------------------------------------------------------

  /** Our own entry is not a remote participant; the rest is what the node shows us. */
  #visible(snapshot: Responses['join']['room']): Responses['join']['room'] {
    return { ...snapshot, participants: snapshot.participants.filter((p) => p.peerId !== this.#info?.peerId) };
  }

  #onDelta(delta: Parameters<import('../protocol/messages.js').ServerEvents['room:delta']>[0]): void {
    const own = this.#info?.peerId;
    const { outcome, changes } = this.#view.apply(delta);
    if (outcome === 'gap') {
      void this.#resync();
      return;
    }
    // Our own joins and publications come back to us as deltas too: they are not remote.
    this.#applyChanges(changes.filter((c) => (c.type === 'joined' ? c.participant.peerId : c.peerId) !== own));
  }

  /** A delta was missed: take a fresh snapshot, and show what changed between the two. */
  async #resync(): Promise<void> {
    if (this.#syncing) return;
    this.#syncing = true;
    const generation = this.#generation;
    try {
      const snapshot = await pacedRequest(this.#socket, 'room.sync', {});
      if (generation === this.#generation) this.#applyChanges(this.#view.reset(this.#visible(snapshot)));
    } catch {
      this.#scheduleReconcile(1000);
    } finally {
      this.#syncing = false;
    }
  }

  #applyChanges(changes: RoomChange[]): void {
    const own = this.#info?.peerId;
    for (const change of changes) {
      switch (change.type) {
        case 'joined': {
          if (change.participant.peerId === own) break;
          const p = toParticipant(change.participant);
          this.#participants.set(p.peerId, p);
          this.emit('participantjoined', p);
          for (const track of p.tracks.values()) this.emit('trackpublished', track, p);
          break;
        }
        case 'left': {
          const p = this.#participants.get(change.peerId);
          if (!p) break;
          for (const trackId of [...p.tracks.keys()]) this.#removeTrack(p, trackId);
          this.#participants.delete(change.peerId);
          this.emit('participantleft', p);
          break;
        }
        case 'published': {
          const p = this.#participants.get(change.peerId);
          if (!p) break;
          const track: RemoteTrack = { ...change.track, peerId: p.peerId };
          p.tracks.set(track.trackId, track);
          this.emit('trackpublished', track, p);
          this.#syncDirect();
          break;
        }
        case 'unpublished': {
          const p = this.#participants.get(change.peerId);
          if (p) this.#removeTrack(p, change.trackId);
          break;
        }
        case 'muted': {
          const p = this.#participants.get(change.peerId);
          const track = p?.tracks.get(change.trackId);
          if (!p || !track) break;
          track.muted = change.muted;
          track.mutedByModerator = change.mutedByModerator;
          this.emit('trackmuted', track, p);
          break;
        }
      }
    }
    if (changes.length > 0) this.#scheduleReconcile(0);
  }

  #removeTrack(p: RemoteParticipant, trackId: string): void {
    const track = p.tracks.get(trackId);
    if (!track) return;
    this.#dropConsumer(trackId);
    p.tracks.delete(trackId);
    this.#views.delete(trackId);
    this.emit('trackunpublished', track, p);
  }

  // --- subscriptions: desired (every remote track) reconciled with actual (consumers) -------

  #scheduleReconcile(delayMs: number): void {
    if (this.#state === 'closed') return;
    clearTimeout(this.#reconcileTimer);
    this.#reconcileTimer = setTimeout(() => void this.#reconcile(), delayMs);
  }

  async #reconcile(): Promise<void> {
    if (this.#state !== 'joined' || !this.#recv || this.#recv.closed) return;
    const wanted = new Map<string, RemoteTrack>();
    // A peer-to-peer call's other participant plays from the direct link: no SFU consumers for
    // the tracks the link carries.
    const played = new Set<string>();
    for (const p of this.#participants.values()) {
      for (const t of p.tracks.values()) {
        if (this.#playsDirect(t)) played.add(t.trackId);
        else wanted.set(t.trackId, t);
      }
    }
    for (const trackId of [...this.#consumers.keys()]) {
      if (wanted.has(trackId)) continue;
      if (played.has(trackId)) this.#closeConsumerQuietly(trackId);
      else this.#dropConsumer(trackId);
    }
    const missing = [...wanted.values()].filter((t) => !this.#consumers.has(t.trackId) && !this.#consuming.has(t.trackId));
    // The SFU path stays proven while the call is direct, so moving back to it costs no ICE or
    // DTLS. A receive transport connects with its first consumer; when the direct link carried
    // the other's tracks before any consumer was made (the link won the race with the room's
    // delta), one consumer is made anyway and retired once the transport has connected.
    const recv = this.#recv;
    if (missing.length === 0 && played.size > 0 && this.#consumers.size === 0 && this.#consuming.size === 0 && recv.connectionState === 'new' && this.#proving !== recv) {
      const tracks = [...this.#participants.values()].flatMap((p) => [...p.tracks.values()]).filter((t) => played.has(t.trackId));
      const track = tracks.find((t) => t.kind === 'audio') ?? tracks[0];
      if (track) {
        this.#proving = recv;
        missing.push(track);
      }
    }
    // A few at a time: joining a full call subscribes to ~100 tracks, and a hundred requests at
    // once would meet the node's per-session rate (and gain nothing: the handler runs them in turn).
    const generation = this.#generation;
    const failures: unknown[] = [];
    const subscribeNext = async (): Promise<void> => {
      for (let track = missing.shift(); track; track = missing.shift()) await this.#subscribe(track, generation).catch((error: unknown) => void failures.push(error));
    };
    await Promise.all(Array.from({ length: Math.min(SUBSCRIBE_CONCURRENCY, missing.length) }, subscribeNext));
    // A failed consume (a track that went away meanwhile is simply no longer wanted) is retried,
    // after the delay the node asked for when it was a rate limit.
    if (failures.length > 0) {
      if (this.#proving === recv && recv.connectionState === 'new') this.#proving = undefined;
      const asked = failures.map((e) => (e instanceof ChorusClientError && e.code === 'LIMIT_REACHED' ? (e.retryAfterMs ?? 1000) : 1000));
      this.#scheduleReconcile(Math.min(5000, Math.max(...asked)));
    }
    this.#finishLeavingP2p();
  }

  // --- peer-to-peer: make before break ------------------------------------------------------

  #whenJoined(run: () => void): void {
    if (this.#state === 'joined') run();
    else this.#pathEarly.push(run);
  }

  #reportPath(id: string, state: 'ready' | 'failed', gaps: readonly number[] = []): void {
    const gapMs = gaps.length > 0 ? Math.min(600_000, Math.max(...gaps)) : undefined;
    void pacedRequest(this.#socket, 'p2p.state', { id, state, ...(gapMs !== undefined ? { gapMs } : {}) }).catch(() => undefined);
  }

  /** Both play from the direct link: the SFU copies of this side's tracks go quiet now, not before. */
  #onSettled(id: string): void {
    if (this.#leavingP2p?.id === id) this.#closeLeaving();
    const direct = this.#p2p;
    if (!direct || direct.id !== id || direct.settled) return;
    direct.settled = true;
    for (const p of this.#local.values()) if (p.producer && !p.producer.closed) p.producer.pause();
  }

  #onPath(e: Parameters<ServerEvents['call:path']>[0]): void {
    const factory = this.#options.p2p;
    if (e.path === 'p2p') {
      if (!factory || !e.peerId || !this.#info) return;
      this.#p2p?.link.close();
      this.#closeLeaving();
      const link = new P2pLink(factory, { iceServers: this.#info.iceServers as RTCIceServer[], ...(this.#options.iceTransportPolicy ? { iceTransportPolicy: this.#options.iceTransportPolicy } : {}) }, e.polite ?? false);
      const direct: DirectPath = {
        id: e.id,
        peerId: e.peerId,
        link,
        reason: e.reason,
        swapped: false,
        reported: false,
        settled: false,
        polling: false,
        again: false,
        connectedAt: 0,
        gaps: [],
        // A direct path that cannot be made (a firewall, no usable candidates) is given up on.
        timer: setTimeout(() => {
          if (this.#p2p === direct && link.connectionState !== 'connected') this.#reportPath(direct.id, 'failed');
        }, P2P_CONNECT_TIMEOUT_MS),
      };
      this.#p2p = direct;
      for (const p of this.#local.values()) void link.setTrack(p.source, p.paused ? null : p.track);
      link.on('signal', (signal) => void pacedRequest(this.#socket, 'p2p.signal', { to: direct.peerId, ...signal }).catch(() => undefined));
      link.on('track', () => this.#syncDirect());
      link.on('state', (state) => {
        if (this.#p2p !== direct) return;
        if (state === 'connected') this.#syncDirect();
        else if (state === 'disconnected') link.restartIce();
        else if (state === 'failed') this.#reportPath(direct.id, 'failed');
      });
      link.start();
      return;
    }
    // Back on the SFU: its media first (producers resumed, consumers made), the direct link
    // closed only once the SFU's copy of every track plays.
    const was = this.#p2p;
    this.#p2p = undefined;
    clearTimeout(was?.timer);
    if (this.#path !== 'sfu') {
      this.#path = 'sfu';
      this.emit('path', 'sfu', e.reason);
    }
    if (!was) {
      this.#reportPath(e.id, 'ready');
      return;
    }
    this.#closeLeaving();
    const leaving: LeavingPath = {
      id: e.id,
      peerId: was.peerId,
      link: was.link,
      gaps: [],
      reported: false,
      timer: setTimeout(() => this.#leavingP2p === leaving && this.#closeLeaving(), P2P_CONNECT_TIMEOUT_MS),
    };
    this.#leavingP2p = leaving;
    for (const p of this.#local.values()) if (!p.paused && p.producer && !p.producer.closed) p.producer.resume();
    this.#scheduleReconcile(0);
  }

  /**
   * The direct link is up: each of the other's tracks plays from it once packets arrive on it
   * (its SFU consumer goes then, not before), so the element never waits on an empty path. Runs
   * again as tracks arrive on the link or are published; polls while a track's media is due.
   */
  #syncDirect(): void {
    const direct = this.#p2p;
    if (!direct || direct.link.connectionState !== 'connected') return;
    if (direct.polling) {
      direct.again = true;
      return;
    }
    direct.polling = true;
    void (async () => {
      try {
        // Bounded: every track switches by ARRIVAL_WAIT_MS after the link connected.
        for (let i = 0; i < ARRIVAL_WAIT_MS / ARRIVAL_POLL_MS + 2 && this.#p2p === direct; i++) {
          direct.again = false;
          if ((await this.#stepDirect(direct)) && !direct.again) return;
          await new Promise((resolve) => setTimeout(resolve, ARRIVAL_POLL_MS));
        }
      } finally {
        direct.polling = false;
      }
    })().catch((error: unknown) => this.emit('error', new ChorusClientError('INTERNAL', `peer-to-peer switch: ${String(error)}`, true)));
  }

  /** One look at the link: switches the tracks it carries now. True once every track plays from it. */
  async #stepDirect(direct: DirectPath): Promise<boolean> {
    const participant = this.#participants.get(direct.peerId);
    if (!participant) return true;
    if (!direct.swapped) {
      direct.swapped = true;
      direct.connectedAt = Date.now();
      clearTimeout(direct.timer);
      this.#path = 'p2p';
      this.emit('path', 'p2p', direct.reason);
    }
    const pending = [...participant.tracks.values()].filter((t) => !this.#playsDirect(t) && direct.link.remote(t.source));
    if (pending.length > 0) {
      const recv = this.#recv;
      const [onLink, onSfu] = await Promise.all([direct.link.getStats(), recv && !recv.closed ? recv.getStats() : undefined]);
      if (this.#p2p !== direct) return true;
      const late = Date.now() - direct.connectedAt >= ARRIVAL_WAIT_MS;
      for (const track of pending) {
        const media = direct.link.remote(track.source);
        if (!media || track.mediaTrack === media) continue;
        // A muted track has nothing to wait for on either path.
        if (!track.muted && !late && !flowing(onLink, media.id)) continue;
        const old = track.kind === 'audio' && track.mediaTrack ? arrival(onSfu, track.mediaTrack.id)?.sinceLastMs : undefined;
        if (old !== undefined && !track.muted) direct.gaps.push(old);
        track.mediaTrack = media;
        this.emit('tracksubscribed', track, participant);
        this.#closeConsumerQuietly(track.trackId);
      }
    }
    const all = [...participant.tracks.values()].every((t) => this.#playsDirect(t));
    if (all && !direct.reported) {
      direct.reported = true;
      this.#reportPath(direct.id, 'ready', direct.gaps);
    }
    return all;
  }

  /** Whether `track` plays from the direct link (the call is direct with its publisher, and the link carries it). */
  #playsDirect(track: RemoteTrack): boolean {
    const direct = this.#p2p;
    return direct !== undefined && direct.swapped && direct.peerId === track.peerId && direct.link.remote(track.source) !== undefined && track.mediaTrack === direct.link.remote(track.source);
  }

  /** Closes the SFU consumer of a track that plays from elsewhere, without unsubscribing it. */
  #closeConsumerQuietly(trackId: string): void {
    const consumer = this.#consumers.get(trackId);
    if (!consumer) return;
    this.#consumers.delete(trackId);
    for (const p of this.#participants.values()) {
      const track = p.tracks.get(trackId);
      if (track) track.consumerId = undefined;
    }
    this.#retire(consumer);
  }

  /**
   * Closes an SFU consumer whose track plays from the direct link, once the receive transport has
   * connected: the only consumer of a transport still connecting takes its m-section with it, the
   * transport then never finishes ICE and DTLS, and the SFU path, kept proven while the call is
   * direct, would have to be set up when the call moves back to it (seen in CI: the call went
   * direct while the first consume was in flight).
   */
  #retire(consumer: types.Consumer): void {
    const recv = this.#recv;
    const close = (): void => {
      if (consumer.closed) return;
      consumer.close();
      void pacedRequest(this.#socket, 'closeConsumer', { consumerId: consumer.id }).catch(() => undefined);
    };
    if (!recv || recv.closed || recv.connectionState !== 'new' && recv.connectionState !== 'connecting') return close();
    const settled = (state: string): void => {
      if (state === 'new' || state === 'connecting') return;
      clearTimeout(timer);
      recv.off('connectionstatechange', settled);
      close();
    };
    const timer = setTimeout(() => settled('timeout'), PROVE_WAIT_MS);
    recv.on('connectionstatechange', settled);
  }

  /** Back on the SFU: once every track of the former peer plays from its consumer, the direct link goes. */
  #finishLeavingP2p(): void {
    const leaving = this.#leavingP2p;
    if (!leaving) return;
    const participant = this.#participants.get(leaving.peerId);
    if (leaving.reported || (participant && [...participant.tracks.values()].some((t) => t.mediaTrack === undefined || t.mediaTrack !== this.#consumers.get(t.trackId)?.track))) return;
    // The other side may still play from the link: it closes once everyone has moved.
    leaving.reported = true;
    this.#reportPath(leaving.id, 'ready', leaving.gaps);
    if (!participant) this.#closeLeaving();
  }

  #closeLeaving(): void {
    const leaving = this.#leavingP2p;
    if (!leaving) return;
    this.#leavingP2p = undefined;
    clearTimeout(leaving.timer);
    leaving.link.close();
  }

  /**
   * Back on the SFU, a track that plays from the direct link moves to its consumer once the
   * consumer's packets arrive (bounded: a silent or hidden one moves at once or by
   * ARRIVAL_WAIT_MS), so the element never waits on an empty path.
   */
  async #moveWhenFlowing(track: RemoteTrack, consumer: types.Consumer, participant: RemoteParticipant, leaving: LeavingPath): Promise<void> {
    const waits = !track.muted && this.#views.get(track.trackId)?.visible !== false;
    const until = Date.now() + ARRIVAL_WAIT_MS;
    const current = (): boolean => this.#consumers.get(track.trackId) === consumer && participant.tracks.get(track.trackId) === track && !consumer.closed;
    for (let i = 0; waits && i < ARRIVAL_WAIT_MS / ARRIVAL_POLL_MS && Date.now() < until; i++) {
      const recv = this.#recv;
      const [onSfu, onLink] = await Promise.all([recv && !recv.closed ? recv.getStats() : undefined, leaving.link.getStats()]);
      if (!current()) return;
      if (flowing(onSfu, consumer.track.id)) {
        const old = track.kind === 'audio' && track.mediaTrack ? arrival(onLink, track.mediaTrack.id)?.sinceLastMs : undefined;
        if (old !== undefined) leaving.gaps.push(old);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, ARRIVAL_POLL_MS));
    }
    if (!current()) return;
    track.mediaTrack = consumer.track;
    this.emit('tracksubscribed', track, participant);
    this.#finishLeavingP2p();
  }

  async #subscribe(track: RemoteTrack, generation: number): Promise<void> {
    const recv = this.#recv;
    const device = this.#device;
    if (!recv || !device) return;
    this.#consuming.add(track.trackId);
    try {
      const info = await pacedRequest(this.#socket, 'consume', {
        transportId: recv.id,
        producerId: track.trackId,
        rtpCapabilities: device.rtpCapabilities as RequestOf<'consume'>['rtpCapabilities'],
        paused: track.kind === 'video',
      });
      const consumer = await recv.consume({
        id: info.consumerId,
        producerId: info.producerId,
        kind: info.kind,
        rtpParameters: info.rtpParameters as types.RtpParameters,
      });
      const participant = this.#participants.get(track.peerId);
      if (generation !== this.#generation || participant?.tracks.get(track.trackId) !== track || recv.closed) {
        consumer.close();
        return;
      }
      if (this.#playsDirect(track)) {
        // The call went direct while this was being made: the link carries the track.
        this.#retire(consumer);
        return;
      }
      this.#consumers.set(track.trackId, consumer);
      track.consumerId = consumer.id;
      // Back from a direct call: the link's copy plays on until the consumer's arrives.
      const leaving = this.#leavingP2p;
      const fromLink = leaving !== undefined && leaving.peerId === track.peerId && track.mediaTrack !== undefined && track.mediaTrack === leaving.link.remote(track.source);
      if (!fromLink) track.mediaTrack = consumer.track;
      // The tile's size first (so the first keyframe is on the right layer), then resume.
      const view = this.#views.get(track.trackId);
      if (view && consumer.kind === 'video') {
        const answer = await pacedRequest(this.#socket, 'track.view', { consumerId: consumer.id, ...view });
        this.#setLayer(track.trackId, answer.spatialLayer ?? null);
      }
      if (info.paused) await pacedRequest(this.#socket, 'resumeConsumer', { consumerId: consumer.id });
      if (fromLink) void this.#moveWhenFlowing(track, consumer, participant!, leaving).catch(() => undefined);
      else this.emit('tracksubscribed', track, participant);
    } finally {
      this.#consuming.delete(track.trackId);
    }
  }

  #dropConsumer(trackId: string): void {
    const consumer = this.#consumers.get(trackId);
    if (!consumer) return;
    this.#consumers.delete(trackId);
    consumer.close();
    for (const p of this.#participants.values()) {
      const track = p.tracks.get(trackId);
      if (!track) continue;
      track.mediaTrack = undefined;
      track.consumerId = undefined;
      this.emit('trackunsubscribed', track, p);
    }
  }

  #setLayer(trackId: string, spatialLayer: number | null): void {
    for (const p of this.#participants.values()) {
      const track = p.tracks.get(trackId);
      if (!track || track.spatialLayer === spatialLayer) continue;
      track.spatialLayer = spatialLayer;
      this.emit('layers', track);
    }
  }
}

function toParticipant(info: ParticipantInfo): RemoteParticipant {
  return {
    peerId: info.peerId,
    identity: info.identity,
    ...(info.name !== undefined ? { name: info.name } : {}),
    role: info.role,
    tracks: new Map(info.tracks.map((t) => [t.trackId, { ...t, peerId: info.peerId }])),
  };
}
