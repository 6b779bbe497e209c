/**
 * One room on this node: its peers, its media and its policy. Every request a peer makes goes
 * through here and is checked against the policy before any media object is touched.
 */
import type { PayloadProfile } from '../media/payloadProfile.js';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { types } from 'mediasoup';
import { tuneOpusForSpeech } from '../media/codecs.js';
import { trackIdOf, type RoomMedia } from '../media/roomMedia.js';
import { firstRtp } from '../media/sending.js';
import type { LayerRules } from '../media/layerPolicy.js';
import { RoomLayers } from './roomLayers.js';
import type { Recordings } from '../recording/recordings.js';
import type { StageSources } from '../recording/stageRun.js';
import { SpeakerDetection } from '../media/speakers.js';
import { CallPath, type CallPathSettings, type PathChange } from './callPath.js';
import { QualityWatch } from './quality.js';
import type { Logger } from '../observability/logger.js';
import { ChorusError } from '../protocol/errors.js';
import type { BroadcastState, ChatMessage, RequestOf, RoomKind } from '../protocol/messages.js';
import { defaultSource, kindOfSource, type HandAction, type HandQueue, recordingPlaylist, type RecordingInfo, type ConnectionQuality, type ParticipantInfo, type RoomChange, type RoomSnapshot, type TrackInfo, type TrackSource } from '../protocol/room.js';
import type { VerifiedGrant } from '../auth/tokens.js';
import type { AuditSink } from '../observability/audit.js';
import type { Seat, StateStore } from '../store/stateStore.js';
import type { RoomChannel } from './channel.js';
import type { HandMove, RemoteBroadcasts, RemoteMembers, UnmuteRequest } from './remote.js';
import { RoomView } from '../protocol/roomView.js';
import { watchTransportLiveness, type TransportLiveness } from './liveness.js';
import { Peer } from './peer.js';
import type { MediaKind, RoomPolicy } from './policy.js';
import { assertMayMove, Hands } from './hands.js';
import { layerFor, Publication } from './publication.js';

export type LeaveReason = 'left' | 'dropped' | 'reset' | 'replaced' | 'kicked' | 'ended' | 'stale' | 'expired';

/** Why a room closed on this node. */
export type CloseReason = 'empty' | 'ended' | 'idle' | 'media lost' | 'node closing';

export interface RoomOptions {
  nodeId: string;
  maxPeers: number;
  /** Participants a call admits (CHORUS_CALL_MAX_PARTICIPANTS). */
  maxCallParticipants: number;
  /** Students a class admits (CHORUS_CLASS_MAX_STUDENTS). */
  maxClassStudents: number;
  /** Students a class holds on stage at once (CHORUS_CLASS_MAX_STAGE; default 6). */
  maxClassStage?: number | undefined;
  /** Calls of two going peer-to-peer (CHORUS_CALL_P2P, CHORUS_CALL_P2P_BACK_MS); absent: off. */
  callP2p?: CallPathSettings | undefined;
  /** A subscriber's simulcast layer went up or down (the node's bandwidth estimate or its view): counted. */
  observeLayerChange?: ((kind: RoomKind, direction: 'up' | 'down') => void) | undefined;
  /** A subscriber's downlink estimate before transport-cc has spoken (RTC_INITIAL_BITRATE). */
  initialBitrate?: number | undefined;
  /** The layer policy's headroom and holds (tests shorten them). */
  layerRules?: LayerRules | undefined;
  /** How long a layer nobody receives stays encoded before its publisher is told to stop (dynacast; default 3000). */
  dynacastOffMs?: number | undefined;
  /** Classes: recording the stage (absent: not offered on this node). */
  recordings?: Recordings | undefined;
  /** How long a student's hand (its place on stage) waits for it after its connection dropped (default 30000). */
  handGraceMs?: number | undefined;
  /** How long a video consumer's resume waits at most for a direct call's quiet uplink to send again (default 2000). */
  uplinkBackWaitMs?: number | undefined;
  countIntervalMs: number;
  opusBitrate: number;
  /** How long kick and end marks live: the longest a token can live, so none outlives them. */
  markTtlSeconds: number;
  /**
   * A session whose media transport stays unconnected this long after media became due on it
   * (or after it went down) is removed (0: never).
   */
  stalePeerMs: number;
  /** A room where nobody publishes for this long is ended (0: never). */
  idleRoomMs: number;
  /** Listeners without a session here, across the cluster (HLS players), counted in the audience. */
  otherListeners?: ((roomId: string) => Promise<number>) | undefined;
  /** Least time between two active-speaker reports; levels for meters come at their own interval. */
  speakerIntervalMs?: number | undefined;
  audioLevelIntervalMs?: number | undefined;
}

/** How a session on this node ended: a leave, or the room closing under it. */
export type SessionEndReason = LeaveReason | 'closed';

interface RoomEvents {
  close: [reason: CloseReason];
  /** A session joined, its shared record written (`previousPeerId`: the connection it resumes, as the client named it). */
  peerjoined: [peer: Peer, previousPeerId: string | undefined];
  /** A session left, its shared record removed (`closed`: the room closed under it). */
  peerleft: [peer: Peer, reason: SessionEndReason];
}

const MAX_TRANSPORTS_PER_PEER = 2;
/** How often a room spread over nodes asks the others for their members (heals lost notices, drops dead nodes). */
const GATHER_INTERVAL_MS = 5000;
/** How long a video consumer's resume waits at most for its quiet producer's RTP. */
const UPLINK_BACK_WAIT_MS = 2000;
const HAND_GRACE_MS = 30_000;
const AUTO_RECORD_SETTLE_MS = 1500;
/** Leaves after which the student is expected back on a new connection: its hand waits for it. */
const INVOLUNTARY: ReadonlySet<LeaveReason> = new Set(['dropped', 'stale', 'replaced', 'reset']);

export class Room extends EventEmitter<RoomEvents> {
  readonly peers = new Map<string, Peer>();
  readonly createdAt = Date.now();
  /** Every track published on this node, by producer id. */
  readonly #publications = new Map<string, Publication>();
  /** The primary publication (a broadcast's microphone), when the kind has one and it is live here. */
  #broadcast: Publication | undefined;
  /** Version of this node's view of the room: one step per change announced to its members. */
  #version = 0;
  #speakers: Promise<SpeakerDetection | undefined> | undefined;
  /** Calls: whether media goes through the SFU or directly between the two participants. */
  readonly #path: CallPath | undefined;
  /** Connection quality per participant, from the SFU's scores of its streams. */
  readonly #quality = new QualityWatch((changes) => this.#reportQuality(changes));
  /** Members held by other nodes (kinds that span nodes), one view per node. */
  readonly #others = new Map<string, RoomView>();
  #gatherTimer: NodeJS.Timeout | undefined;
  #gathering: Promise<void> | undefined;
  /** Consumers the client said it is ready for (resumeConsumer), and those hidden by its view. */
  readonly #consumerReady = new WeakSet<types.Consumer>();
  readonly #consumerHidden = new WeakSet<types.Consumer>();
  /** Layered video: each subscriber's layers by its downlink, and dynacast. */
  readonly #layers: RoomLayers;
  /** The current speaker (its camera is served first). */
  #speaker: string | undefined;
  /** Classes: the raised hands (kinds whose roles have a stage). */
  readonly #hands: Hands | undefined;
  #autoRecord: NodeJS.Timeout | undefined;
  /** Hands of students whose connection dropped, kept for their return until these fire. */
  readonly #handGrace = new Map<string, NodeJS.Timeout>();
  /** The newest hand queue version the staff here were told. */
  #toldHands = -1;
  /** Video producers whose SDK stopped sending (a direct call), and the wait for their RTP once due. */
  readonly #quietUplinks = new Map<string, Promise<void> | undefined>();
  /**
   * The last request changing each consumer's flow (resume, view, layers). They run one after
   * another: a tile reported hidden then shown at once would otherwise read `paused` before the
   * pause lands, skip the resume, and leave the video paused for good.
   */
  readonly #consumerTurn = new WeakMap<types.Consumer, Promise<unknown>>();
  /** Every transport's liveness on this node, by transport id (judged, and read for the count). */
  readonly #liveness = new Map<string, TransportLiveness>();
  /** Sessions that joined and have yet to show they take media (a transport, or HLS): their deadline. */
  readonly #setupTimers = new Map<string, NodeJS.Timeout>();
  #endReason: 'stopped' | 'left' | 'dropped' = 'stopped';
  #pendingJoins = 0;
  #countTimer: NodeJS.Timeout | undefined;
  #lastCount = 0;
  #closed = false;
  #idleTimer: NodeJS.Timeout | undefined;
  /** Set while the room is being ended on purpose, so the last leave closes it for that reason. */
  #ending: CloseReason | undefined;
  readonly #log: Logger;

  constructor(
    readonly id: string,
    /** The API key whose token opened the room. */
    readonly keyId: string,
    /** Whose room it is, cluster-wide (the tenant of the key that first opened it anywhere). */
    readonly tenant: string,
    readonly policy: RoomPolicy,
    /** The room's routers; none for a room that carries no media (a watch party). */
    readonly media: RoomMedia | undefined,
    private readonly store: StateStore,
    private readonly channel: RoomChannel,
    private readonly options: RoomOptions,
    private readonly audit: AuditSink,
    log: Logger,
    /** Broadcasts held by other nodes (the cluster); absent on a single node. */
    private readonly remote?: RemoteBroadcasts,
    /** Members held by other nodes, for kinds that span nodes (the cluster); absent on a single node. */
    private readonly members?: RemoteMembers,
  ) {
    super();
    this.#log = log.child({ room: id });
    this.#layers = new RoomLayers({
      log: this.#log,
      initialBitrate: options.initialBitrate ?? 600_000,
      rules: options.layerRules,
      dynacastOffMs: options.dynacastOffMs,
      publication: (producerId) => {
        const publication = this.#publications.get(producerId);
        return publication && { peerId: publication.peer.id, producer: publication.producer, layers: publication.layers };
      },
      prioritised: (producerId) => {
        const source = this.#publications.get(producerId)?.source ?? this.#remoteTrack(producerId)?.track.source;
        return source === 'screen' || (this.#speaker !== undefined && this.#publisherOf(producerId) === this.#speaker);
      },
      inTurn: (consumer, change) => this.#inTurn(consumer, change),
      wantsFlowing: (consumer) => this.#consumerReady.has(consumer) && !this.#consumerHidden.has(consumer),
      tellPublisher: (peerId, producerId, maxSpatialLayer) => this.channel.toPeer(peerId, 'publication:layers', { producerId, maxSpatialLayer }),
    });
    this.#hands = policy.roles.some((r) => policy.stageSources(r).length > 0) ? new Hands(store, id, options.maxClassStage ?? 6, () => this.#toldHands) : undefined;
    if (policy.peerToPeer) {
      this.#path = new CallPath(options.callP2p ?? { enabled: false, backMs: 5000 });
      this.#path.on('change', (change) => this.#onPathChange(change));
      this.#path.on('settled', (change, durationMs, gaps) => {
        this.#log.info({ id: change.id, to: change.to, durationMs, gaps }, 'call media path switch done');
        this.audit.record({ type: 'call.path.settled', room: this.id, id: change.id, from: change.from, to: change.to, reason: change.reason, durationMs, gaps });
        for (const peerId of change.members) this.channel.toPeer(peerId, 'call:settled', { id: change.id });
        // From now the pair's SDKs send nothing to their producers here (see #uplinkBack).
        if (change.to === 'p2p') {
          for (const peerId of change.members) {
            for (const publication of this.peers.get(peerId)?.publications.values() ?? []) {
              if (publication.producer.kind === 'video') this.#quietUplinks.set(publication.producer.id, undefined);
            }
          }
        }
      });
    }
    media?.on('routerlost', (slot) => this.#onRouterLost(slot.router.id, slot.origin));
    if (remote) {
      // In a cluster the audience joins on every node, so each node reads the shared count at
      // the push interval and tells its own clients (the adapter would multiply a room-wide push).
      this.#countTimer = setInterval(() => void this.#pushClusterCount(), options.countIntervalMs);
      this.#countTimer.unref();
    }
    this.#armIdle();
    if (members && policy.spansNodes) {
      // A notice lost on the way (a Redis blip) heals here; a node that died drops out here.
      this.#gatherTimer = setInterval(() => {
        void this.gatherRemote();
        void this.#healStage();
      }, GATHER_INTERVAL_MS);
      this.#gatherTimer.unref();
    }
  }

  get kind(): RoomKind {
    return this.policy.kind;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The room's media; WRONG_ROOM_KIND for a room that carries none. */
  requireMedia(): RoomMedia {
    if (!this.media) throw new ChorusError('WRONG_ROOM_KIND', `a ${this.kind} room carries no media`);
    return this.media;
  }

  /**
   * The audience sessions on this node that are really listening: with their media connected,
   * fetching the room's HLS, or waiting for a broadcast that has not started (a live socket is
   * all there is to ask of them then). A session that joined while something is live and never
   * set media up is not a listener, so joins alone cannot inflate the count.
   */
  get audience(): number {
    let n = 0;
    for (const peer of this.peers.values()) if (this.policy.isAudience(peer.role) && this.#listening(peer)) n++;
    return n;
  }

  #listening(peer: Peer): boolean {
    if (!this.policy.carriesMedia || !this.#receivable(peer) || peer.playsHls) return true;
    for (const id of peer.transports.keys()) if (this.#liveness.get(id)?.connected) return true;
    return false;
  }

  /**
   * A session of `identity` fetched the room's HLS playlist (its fallback): it listens, so it is
   * counted although it has no WebRTC media.
   */
  playsHls(identity: string): boolean {
    let found = false;
    for (const peer of this.peers.values()) {
      if (peer.identity !== identity) continue;
      found = true;
      if (peer.playsHls) continue;
      peer.playsHls = true;
      this.#disarmSetupCheck(peer.id);
      this.#scheduleCount();
    }
    return found;
  }

  /**
   * A player of an SDK session of `identity` asked a node where that session is not for the
   * room's HLS: the session's own node reads this mark before it removes the session as one that
   * set no media up. It lives a stale window (at least 10 s); the player asks every few seconds.
   */
  static async markPlaysHls(store: StateStore, roomId: string, identity: string, stalePeerMs: number): Promise<void> {
    await store.setMark(hlsPlayMark(roomId, identity), Date.now(), Math.max(10, Math.ceil(stalePeerMs / 1000)));
  }

  /** The broadcast producer this node holds (this node is the room's origin), if any. */
  get localBroadcast(): types.Producer | undefined {
    return this.#broadcast?.producer;
  }

  /** Tracks published on this node. */
  get publications(): ReadonlyMap<string, Publication> {
    return this.#publications;
  }

  /** Whether some track here is one `peer` may receive (so its receive transport is due media). */
  #receivable(peer: Peer): boolean {
    for (const publication of this.#publications.values()) {
      if (publication.peer !== peer && this.policy.mayReceive(peer.role, publication.peer.role, publication.source)) return true;
    }
    for (const view of this.#others.values()) {
      for (const p of view.participants.values()) if (p.tracks.some((t) => this.policy.mayReceive(peer.role, p.role, t.source))) return true;
    }
    return false;
  }

  /** This node's members that the kind shows, with their tracks (what other nodes are told). */
  localMembers(): ParticipantInfo[] {
    return [...this.peers.values()].filter((p) => this.#shown(p)).map(participantInfo);
  }

  /** Another node's members changed: show it to this node's members. */
  remoteChanged(nodeId: string, changes: RoomChange[]): void {
    if (this.#closed || !this.policy.spansNodes) return;
    let view = this.#others.get(nodeId);
    if (!view) {
      view = new RoomView();
      view.reset({ version: 0, participants: [] });
      this.#others.set(nodeId, view);
    }
    this.#emitDelta(view.applyChanges(changes));
    this.#mediaDueChanged();
    this.#updatePath();
  }

  /**
   * Asks the other nodes serving the room for their members and shows the difference: on the
   * room's first join here, then periodically. A node that no longer answers and is gone from
   * the cluster takes its members with it.
   */
  gatherRemote(): Promise<void> {
    if (!this.members || !this.policy.spansNodes || this.#closed) return Promise.resolve();
    this.#gathering ??= (async () => {
      const members = this.members!;
      try {
        const answers = await members.gather(this.id);
        const answered = new Set(answers.map((a) => a.nodeId));
        for (const { nodeId, participants } of answers) {
          let view = this.#others.get(nodeId);
          if (!view) this.#others.set(nodeId, (view = new RoomView()));
          this.#emitDelta(view.reset({ version: 0, participants }));
        }
        for (const [nodeId, view] of this.#others) {
          if (answered.has(nodeId) || (await members.alive(nodeId))) continue;
          this.#log.info({ gone: nodeId }, 'a node serving this room left the cluster; its members go with it');
          this.#others.delete(nodeId);
          this.#emitDelta(view.clear());
        }
        this.#mediaDueChanged();
        this.#updatePath();
      } catch (error) {
        this.#log.warn({ err: error }, 'members on other nodes not gathered (next try at the next interval)');
      } finally {
        this.#gathering = undefined;
      }
    })();
    return this.#gathering;
  }

  /** Who publishes a track, here or on another node. */
  #publisherOf(producerId: string): string | undefined {
    return this.#publications.get(producerId)?.peer.id ?? this.#remoteTrack(producerId)?.participant.peerId;
  }

  /** The node holding a member that is not here. */
  #holderOf(peerId: string): string | undefined {
    for (const [nodeId, view] of this.#others) if (view.participants.has(peerId)) return nodeId;
    return undefined;
  }

  /** A track held by another node, and who holds it. */
  #remoteTrack(trackId: string): { nodeId: string; participant: ParticipantInfo; track: TrackInfo } | undefined {
    for (const [nodeId, view] of this.#others) {
      const found = view.track(trackId);
      if (found) return { nodeId, ...found };
    }
    return undefined;
  }

  /**
   * The room as `viewer` is shown it: the members the kind announces (and whoever publishes),
   * with their tracks, at this node's current version. Taken synchronously, so no delta can fall
   * between it and its version.
   */
  snapshot(viewer?: Peer): RoomSnapshot {
    const participants: ParticipantInfo[] = [];
    for (const peer of this.peers.values()) {
      if (peer === viewer || this.#shown(peer)) participants.push(participantInfo(peer));
    }
    for (const view of this.#others.values()) for (const p of view.participants.values()) participants.push({ ...p, tracks: p.tracks.map((t) => ({ ...t })) });
    return { version: this.#version, participants };
  }

  #shown(peer: Peer): boolean {
    return this.policy.announced(peer.role) || peer.publications.size > 0;
  }

  /** Announces changes of this node's members: to its own clients, and to the other nodes. */
  #announce(...changes: RoomChange[]): void {
    if (changes.length === 0 || this.#closed) return;
    this.#emitDelta(changes);
    if (this.policy.spansNodes) this.members?.share(this.id, changes);
  }

  /** Tells this node's clients, each change one version step. */
  #emitDelta(changes: RoomChange[]): void {
    if (changes.length === 0 || this.#closed) return;
    this.#version += changes.length;
    this.channel.toRoomLocal(this.id, 'room:delta', { version: this.#version, changes });
  }

  /** The room's broadcast, wherever in the cluster it is held. */
  async broadcastState(): Promise<BroadcastState> {
    const producer = this.#broadcast?.producer;
    if (producer) return { live: true, paused: producer.paused, producerId: producer.id };
    const remote = await this.remote?.location(this.id);
    return remote ? { live: true, paused: false, producerId: remote.producerId } : { live: false, paused: false };
  }

  async join(grant: VerifiedGrant, peerId: string, previousPeerId?: string): Promise<Peer> {
    this.#assertOpen();
    this.#pendingJoins++;
    let joined = false;
    try {
      if (grant.room !== this.id) throw new ChorusError('TOKEN_WRONG_ROOM', 'token is for another room');
      if (!this.policy.roles.includes(grant.role)) {
        throw new ChorusError('FORBIDDEN_ROLE', `role ${grant.role} cannot join a ${this.kind} room`);
      }
      // A client that reconnects before the server noticed its old socket die names the old
      // session, which is retired now instead of after the ping timeout.
      const previous = previousPeerId ? this.peers.get(previousPeerId) : undefined;
      if (previous && previous.identity === grant.identity) await this.leave(previous, 'replaced');
      const capacity = this.policy.capacity(this.options, grant.role);
      let counted = 0;
      for (const p of this.peers.values()) if (capacity.counts(p.role)) counted++;
      if (counted >= capacity.max) {
        throw new ChorusError(capacity.code, capacity.code === 'ROOM_FULL' ? 'room is full' : `a ${this.kind} room admits at most ${capacity.max} ${grant.role === 'participant' ? 'participants' : `sessions like yours (${grant.role})`}`);
      }

      const seat = this.policy.exclusiveSeat(grant.role);
      if (seat && !(await this.store.claimSeat(this.id, seat, peerId))) await this.#takeSeat(seat, grant, peerId);
      this.#assertOpen();
      const peer = new Peer(peerId, this.id, grant.identity, grant.role, grant.name, grant.grants);
      this.peers.set(peerId, peer);
      await this.store.addPeer({
        id: peerId,
        roomId: this.id,
        identity: grant.identity,
        role: grant.role,
        nodeId: this.options.nodeId,
        joinedAt: peer.joinedAt,
      });
      this.#log.info({ peer: peerId, identity: grant.identity, role: grant.role }, 'peer joined');
      // The first session here: learn who is on the other nodes before it is shown the room.
      if (this.peers.size === 1 && this.#others.size === 0) await this.gatherRemote();
      if (this.#shown(peer)) this.#announce({ type: 'joined', participant: participantInfo(peer) });
      this.emit('peerjoined', peer, previousPeerId);
      this.#scheduleCount();
      this.#armSetupCheck(peer);
      joined = true;
      return peer;
    } finally {
      this.#pendingJoins--;
      // A refused join must not leave behind a room nobody is in: the one it just created, or one
      // whose last peer left while it waited (that leave saw this join pending and stayed open).
      if (!joined && this.peers.size === 0 && this.#pendingJoins === 0) {
        await this.close('empty').catch((error: unknown) => this.#log.error({ err: error }, 'closing a room left empty by a refused join failed'));
      }
    }
  }

  /**
   * The seat is held. It is taken over when the token says `replace`, when the holder is the
   * same identity (a broadcaster back from a dropped connection or a dead node, before its old
   * session has timed out), or when the holder has no session record left (it died with its
   * node). The holder is told, here or — through the store's lease check — on its own node.
   */
  async #takeSeat(seat: Seat, grant: VerifiedGrant, peerId: string): Promise<void> {
    const present = (): ChorusError => new ChorusError('BROADCASTER_PRESENT', 'this room already has a broadcaster');
    const holderId = await this.store.seatHolder(this.id, seat);
    if (holderId === undefined) {
      if (await this.store.claimSeat(this.id, seat, peerId)) return;
      throw present();
    }
    const local = this.peers.get(holderId);
    const record = local ? undefined : await this.store.getPeer(this.id, holderId);
    const identity = local?.identity ?? record?.identity;
    const orphaned = !local && record === undefined;
    if (!grant.grants.replace && identity !== grant.identity && !orphaned) throw present();
    if (local) {
      this.channel.toPeer(local.id, 'session:kicked', { reason: 'replaced by a newer session' });
      await this.leave(local, 'replaced');
      if (!(await this.store.claimSeat(this.id, seat, peerId))) throw present();
      return;
    }
    if (!(await this.store.takeSeat(this.id, seat, holderId, peerId))) throw present();
    this.#log.info({ peer: peerId, from: holderId, orphaned }, 'took the seat over from a session on another node');
  }

  async leave(peer: Peer, reason: LeaveReason): Promise<void> {
    if (!this.peers.has(peer.id)) return;
    this.peers.delete(peer.id);
    this.#quality.forget(peer.id);
    this.#updatePath();
    this.#disarmSetupCheck(peer.id);
    if (this.#broadcast?.peer === peer) this.#endReason = reason === 'dropped' ? 'dropped' : 'left';
    const shown = this.#shown(peer);
    // Its tracks go first (each announced as unpublished), then the participant.
    peer.close();
    if (shown) this.#announce({ type: 'left', peerId: peer.id });
    const seat = this.policy.exclusiveSeat(peer.role);
    await Promise.all([
      this.store.removePeer(this.id, peer.id),
      seat ? this.store.releaseSeat(this.id, seat, peer.id) : undefined,
    ]);
    this.#log.info({ peer: peer.id, reason }, 'peer left');
    this.audit.record({ type: 'participant.left', room: this.id, peer: peer.id, identity: peer.identity, role: peer.role, reason });
    this.emit('peerleft', peer, reason);
    this.#scheduleCount();
    if (this.#hands && this.policy.stageSources(peer.role).length > 0) {
      // Its connection dropped: the student is likely back in a moment (the SDK rejoins naming
      // this session) and keeps its place, on stage included. Left on purpose: gone now. A drop
      // while this node closes (a drain whose deadline passed before the client moved) keeps the
      // hand as a node's death does: the student takes it back on the node it moves to. Forgetting
      // it here raced with that rejoin (CI saw a drained student back, but no longer on stage).
      if (INVOLUNTARY.has(reason)) {
        if (!this.#closed) {
          const timer = setTimeout(() => {
            this.#handGrace.delete(peer.id);
            void this.#forgetHand(peer);
          }, this.options.handGraceMs ?? HAND_GRACE_MS);
          timer.unref();
          this.#handGrace.set(peer.id, timer);
        }
      } else await this.#forgetHand(peer);
    }
    if (this.peers.size === 0 && this.#pendingJoins === 0) await this.close(this.#ending ?? 'empty');
  }

  /**
   * Students on stage here are on stage in the shared queue too: a Redis that came back empty
   * lost the queue, while the students went on speaking. Their node writes them back.
   */
  async #healStage(): Promise<void> {
    const onStage = [...this.peers.values()].filter((p) => p.onStage && !p.closed);
    if (!this.#hands || onStage.length === 0 || this.#closed) return;
    const queue = await this.#hands.restoreOnStage(onStage.map((p) => ({ peerId: p.id, identity: p.identity, name: p.name }))).catch(() => undefined);
    if (!queue) return;
    this.#log.info({ students: onStage.map((p) => p.id), version: queue.version }, 'students on stage written back to the hand queue');
    this.#tellStaff(queue);
    this.members?.handMoved(this.id, { queue, peerId: onStage[0]!.id });
  }

  async #forgetHand(peer: Peer): Promise<void> {
    const queue = await this.#hands?.forget(peer.id).catch(() => undefined);
    if (!queue) return;
    this.audit.record({ type: 'hand', room: this.id, peer: peer.id, identity: peer.identity, action: 'left', from: null, to: null, by: peer.identity, version: queue.version });
    this.#tellStaff(queue);
    this.members?.handMoved(this.id, { queue, peerId: peer.id });
  }

  /**
   * A student rejoined naming its previous connection (here, or on a node that died): its hand
   * moves to this session, and a student who was on stage is on stage again (it may publish;
   * its SDK is told with `hand:state`). Called once the session receives its events.
   */
  async resumeHand(peer: Peer, previousPeerId: string | undefined): Promise<void> {
    if (!this.#hands || previousPeerId === undefined || this.policy.stageSources(peer.role).length === 0) return;
    clearTimeout(this.#handGrace.get(previousPeerId));
    this.#handGrace.delete(previousPeerId);
    const moved = await this.#hands.rekey(previousPeerId, peer.id, peer.identity);
    if (!moved || peer.closed) return;
    if (moved.hand.state === 'onstage') peer.onStage = true;
    this.audit.record({ type: 'hand', room: this.id, peer: peer.id, identity: peer.identity, action: 'resumed', from: moved.hand.state, to: moved.hand.state, by: peer.identity, version: moved.queue.version });
    this.channel.toPeer(peer.id, 'hand:state', { hand: moved.hand, version: moved.queue.version });
    this.#tellStaff(moved.queue);
    this.members?.handMoved(this.id, { queue: moved.queue, peerId: peer.id });
  }

  async createTransport(peer: Peer, direction: 'send' | 'recv', forceTcp: boolean, profile?: PayloadProfile): Promise<types.WebRtcTransport> {
    this.#assertMember(peer);
    const media = this.requireMedia();
    if (direction === 'send' && this.publishable(peer).length === 0) {
      throw new ChorusError('FORBIDDEN_ROLE', `a ${peer.role} cannot send media`);
    }
    // Transports still being created count too: requests sent at once must not all pass the check.
    if (peer.transports.size + peer.pendingTransports >= MAX_TRANSPORTS_PER_PEER) {
      throw new ChorusError('LIMIT_REACHED', `at most ${MAX_TRANSPORTS_PER_PEER} transports per session`);
    }
    peer.pendingTransports++;
    let transport: types.WebRtcTransport;
    try {
      transport = await media.createTransport(direction, forceTcp, direction === 'recv' ? profile : undefined);
    } finally {
      peer.pendingTransports--;
    }
    if (peer.closed) {
      transport.close();
      throw new ChorusError('NOT_JOINED', 'session ended');
    }
    peer.madeTransport = true;
    peer.routers.add(String(transport.appData['routerId']));
    transport.on('dtlsstatechange', (state) => {
      if (state === 'failed' || state === 'closed') {
        this.#log.warn({ peer: peer.id, transport: transport.id, state }, 'DTLS ended');
      }
    });
    // Media came up or went down: whether this session counts as listening may have changed.
    transport.on('icestatechange', (state) => {
      this.#log.debug({ peer: peer.id, transport: transport.id, state }, 'ICE state');
      this.#scheduleCount();
    });
    transport.on('dtlsstatechange', () => this.#scheduleCount());
    // A receive transport is told to consume when a broadcast is live here: it must then connect
    // within the window even if its client never asks for the stream.
    const told = direction === 'recv' ? () => this.#receivable(peer) : () => false;
    this.#liveness.set(transport.id, watchTransportLiveness(transport, this.options.stalePeerMs, told, (why) => this.#onStale(peer, transport.id, why)));
    transport.observer.once('close', () => this.#liveness.delete(transport.id));
    return peer.track(peer.transports, transport);
  }

  async connectTransport(peer: Peer, transportId: string, dtlsParameters: types.DtlsParameters): Promise<void> {
    this.#assertMember(peer);
    const transport = peer.transport(transportId);
    try {
      await transport.connect({ dtlsParameters });
    } catch (error) {
      this.#log.info({ peer: peer.id, transport: transportId, err: error }, 'connectTransport refused');
      throw new ChorusError('MEDIA_REJECTED', 'cannot connect transport: it is already connected, or its DTLS parameters were refused');
    }
  }

  async restartIce(peer: Peer, transportId: string): Promise<types.IceParameters> {
    this.#assertMember(peer);
    return peer.transport(transportId).restartIce();
  }

  async produce(
    peer: Peer,
    transportId: string,
    kind: MediaKind,
    rtpParameters: types.RtpParameters,
    requestedSource?: TrackSource,
    video?: { width: number; height: number },
  ): Promise<types.Producer> {
    this.#assertMember(peer);
    if (this.publishable(peer).length === 0) throw new ChorusError('FORBIDDEN_ROLE', `a ${peer.role} cannot send media`);
    const transport = peer.transport(transportId);
    if (transport.appData['direction'] !== 'send') throw new ChorusError('BAD_REQUEST', 'that transport is receive-only');
    const source = requestedSource ?? defaultSource(kind);
    if (kindOfSource(source) !== kind) throw new ChorusError('BAD_REQUEST', `a ${source} track is ${kindOfSource(source)}, not ${kind}`);
    if (!this.publishable(peer).includes(source)) {
      throw new ChorusError(
        requestedSource === undefined ? 'MEDIA_REJECTED' : 'FORBIDDEN_ROLE',
        requestedSource === undefined ? `a ${this.kind} room does not carry ${kind}` : `a ${peer.role} cannot publish ${source} in a ${this.kind} room`,
      );
    }
    const granted = peer.grants.publish;
    if (granted && !granted.includes(kind) && !granted.includes(source)) {
      throw new ChorusError('FORBIDDEN_ROLE', `your token does not grant publishing ${source}`);
    }
    if (peer.moderatorMuted.has(source)) throw new ChorusError('MUTED', `a moderator muted your ${source}`);
    // A producer still being created counts too: requests sent at once must not all pass the check.
    if (peer.pendingProduce.has(source) || peer.publications.has(source)) {
      throw new ChorusError('MEDIA_REJECTED', `already publishing ${source}; close it first`);
    }
    let producer: types.Producer;
    peer.pendingProduce.add(source);
    try {
      const tuned = source === 'microphone' ? tuneOpusForSpeech(rtpParameters, this.options.opusBitrate) : rtpParameters;
      producer = await transport.produce({ kind, rtpParameters: tuned, appData: { peerId: peer.id, source } });
    } catch (error) {
      this.#log.info({ peer: peer.id, transport: transportId, kind, source, err: error }, 'produce refused');
      throw new ChorusError('MEDIA_REJECTED', producerRefusal(error));
    } finally {
      peer.pendingProduce.delete(source);
    }
    if (peer.closed) {
      producer.close();
      throw new ChorusError('NOT_JOINED', 'session ended');
    }
    peer.track(peer.producers, producer);
    this.requireMedia().addProducer(producer);
    await this.#publish(new Publication(peer, source, producer, kind === 'video' ? video : undefined));
    return producer;
  }

  /** A track is live here: index it, tell the members, and start what watches it. */
  async #publish(publication: Publication): Promise<void> {
    const { peer, producer, source } = publication;
    const wasShown = this.#shown(peer);
    peer.publications.set(source, publication);
    this.#publications.set(producer.id, publication);
    this.#quality.watchProducer(peer.id, producer);
    const primary = this.policy.isPrimary(peer.role, source);
    producer.observer.on('pause', () => this.#announceMuted(publication));
    producer.observer.on('resume', () => this.#announceMuted(publication));
    producer.observer.once('close', () => {
      if (peer.publications.get(source) === publication) peer.publications.delete(source);
      this.#publications.delete(producer.id);
      this.#quietUplinks.delete(producer.id);
      this.#log.info({ peer: peer.id, producer: producer.id, source }, 'track unpublished');
      this.audit.record({ type: 'track.unpublished', room: this.id, peer: peer.id, identity: peer.identity, producer: producer.id, source });
      this.#announce({ type: 'unpublished', peerId: peer.id, trackId: producer.id });
      // A member shown only while it publishes leaves the view with its last track.
      if (!this.#shown(peer) && this.peers.get(peer.id) === peer) this.#announce({ type: 'left', peerId: peer.id });
      if (!primary) this.#mediaDueChanged();
      // A recording follows the stage (a screen share ending goes back to the camera).
      if (this.policy.recordsStage && this.policy.moderates(peer.role)) void this.options.recordings?.stageChanged(this.id);
    });
    this.#log.info({ peer: peer.id, producer: producer.id, source, layers: publication.layers }, 'track published');
    this.audit.record({ type: 'track.published', room: this.id, peer: peer.id, identity: peer.identity, producer: producer.id, source, kind: producer.kind });
    if (!wasShown) this.#announce({ type: 'joined', participant: participantInfo(peer) });
    else this.#announce({ type: 'published', peerId: peer.id, track: publication.info() });
    if (source === 'microphone' && this.policy.detectsSpeakers) void this.#speakerDetection().then((d) => d?.add(producer, this.#log));
    if (primary) await this.#startBroadcast(publication);
    else this.#mediaDueChanged();
    if (this.policy.recordsStage && this.policy.moderates(peer.role)) {
      if (this.options.recordings?.settings.mode === 'always') this.#scheduleAutoRecord();
      void this.options.recordings?.stageChanged(this.id);
    }
  }

  /**
   * CHORUS_CLASS_RECORD=always: the recording starts once the teacher's tracks have settled (an
   * SDK publishes microphone and camera together: starting on the first would miss the other).
   */
  #scheduleAutoRecord(): void {
    clearTimeout(this.#autoRecord);
    this.#autoRecord = setTimeout(() => {
      if (this.#closed || this.options.recordings?.active(this.id)) return;
      void this.#startRecording('always').catch((error: unknown) => this.#log.warn({ err: error }, 'automatic recording did not start'));
    }, AUTO_RECORD_SETTLE_MS);
    this.#autoRecord.unref();
  }

  /** Classes: the recording running now, on whichever node records it. */
  async liveRecording(): Promise<RecordingInfo | undefined> {
    return this.policy.recordsStage ? this.options.recordings?.live(this.id).catch(() => undefined) : undefined;
  }

  /** Classes, staff: starts or stops recording the stage here. */
  async record(peer: Peer, action: 'start' | 'stop'): Promise<RecordingInfo | null> {
    this.#assertMember(peer);
    if (!this.policy.recordsStage) throw new ChorusError('BAD_REQUEST', `a ${this.kind} room is not recorded`);
    if (!this.canModerate(peer)) throw new ChorusError('FORBIDDEN_ROLE', `a ${peer.role} cannot start or stop the recording`);
    const recordings = this.options.recordings;
    if (!recordings || recordings.settings.mode === 'off') throw new ChorusError('UNAVAILABLE', 'recording is off on this node (CHORUS_CLASS_RECORD=off)');
    if (action === 'start') return this.#startRecording(peer.identity);
    await recordings.stop(this.id, peer.identity);
    this.channel.toRoom(this.id, 'record:state', { recording: null });
    return null;
  }

  /** The stage now: the first teacher's (else assistant's) screen share or camera, and microphone. */
  #stage(): StageSources | undefined {
    if (this.#closed || !this.media || this.media.closed) return undefined;
    const staff = [...this.peers.values()].filter((p) => this.policy.moderates(p.role) && p.publications.size > 0).sort((a, b) => Number(b.role === 'teacher') - Number(a.role === 'teacher'));
    const presenter = staff[0];
    if (!presenter) return undefined;
    const live = (source: TrackSource): types.Producer | undefined => {
      const producer = presenter.publications.get(source)?.producer;
      return producer && !producer.closed ? producer : undefined;
    };
    const source: TrackSource | undefined = live('screen') ? 'screen' : live('camera') ? 'camera' : undefined;
    const video = source && live(source);
    // The recording takes the top layer: dynacast must not turn it off under it.
    if (video) this.#layers.feedsElsewhere(video.id);
    return { router: this.media.origin.router, video, audio: live('microphone'), size: source && presenter.publications.get(source)?.video };
  }

  async #startRecording(by: string): Promise<RecordingInfo> {
    const recordings = this.options.recordings!;
    const info = await recordings.start(
      this.id,
      this.tenant,
      () => this.#stage(),
      by,
      () => {
        if (!this.#closed) this.channel.toRoom(this.id, 'record:state', { recording: null });
      },
    );
    this.channel.toRoom(this.id, 'record:state', { recording: info, playlist: recordingPlaylist(info) });
    return info;
  }

  #announceMuted(publication: Publication): void {
    if (publication.producer.closed) return;
    const { muted, mutedByModerator, trackId } = publication.info();
    this.#announce({ type: 'muted', peerId: publication.peer.id, trackId, muted, mutedByModerator });
  }

  /** The room's speaker detection, made on first use on the router every publisher sends to. */
  #speakerDetection(): Promise<SpeakerDetection | undefined> {
    this.#speakers ??= SpeakerDetection.create(
      this.requireMedia().origin.router,
      { speakerIntervalMs: this.options.speakerIntervalMs ?? 300, levelIntervalMs: this.options.audioLevelIntervalMs ?? 500 },
      {
        speaker: (producerId) => {
          const peerId = producerId === undefined ? null : (this.#publisherOf(producerId) ?? null);
          this.channel.toRoomLocal(this.id, 'speaker:changed', { peerId });
          this.#speaker = peerId ?? undefined;
          this.#layers.reassessAll();
        },
        levels: (levels) => {
          const known = levels.flatMap(({ producerId, volume }) => {
            const peerId = this.#publisherOf(producerId);
            return peerId ? [{ peerId, volume }] : [];
          });
          this.channel.toRoomLocal(this.id, 'audio:levels', { levels: known });
        },
      },
    ).catch((error: unknown) => {
      this.#log.warn({ err: error }, 'speaker detection unavailable in this room');
      return undefined;
    });
    return this.#speakers;
  }

  async #startBroadcast(publication: Publication): Promise<void> {
    const { peer, producer } = publication;
    this.#broadcast = publication;
    this.#disarmIdle();
    this.#mediaDueChanged();
    this.#endReason = 'stopped';
    // Other nodes learn where the broadcast is before anyone is told it started, so a listener
    // elsewhere reacting to the event finds it.
    await this.remote?.announce(this.id, producer.id).catch((error: unknown) => this.#log.warn({ err: error }, 'broadcast not announced to the cluster'));
    const producerId = producer.id;
    producer.observer.on('pause', () => this.channel.toRoom(this.id, 'broadcast:paused', { producerId }));
    producer.observer.on('resume', () => this.channel.toRoom(this.id, 'broadcast:resumed', { producerId }));
    producer.observer.once('close', () => {
      if (this.#broadcast === publication) {
        this.#broadcast = undefined;
        this.remote?.withdraw(this.id);
        this.#armIdle();
        this.#mediaDueChanged();
      }
      this.#log.info({ peer: peer.id, producer: producerId, reason: this.#endReason }, 'broadcast ended');
      this.audit.record({ type: 'broadcast.stopped', room: this.id, peer: peer.id, identity: peer.identity, producer: producerId, reason: this.#endReason });
      this.channel.toRoom(this.id, 'broadcast:ended', { producerId, reason: this.#endReason });
    });
    this.#log.info({ peer: peer.id, producer: producerId }, 'broadcast started');
    this.audit.record({ type: 'broadcast.started', room: this.id, peer: peer.id, identity: peer.identity, producer: producerId });
    this.channel.toRoom(this.id, 'broadcast:started', { producerId });
  }

  /** Media became due on receive transports here, or stopped being due: judge them again, and count. */
  #mediaDueChanged(): void {
    if (this.policy.endsWhenIdle) {
      if (this.#publications.size > 0) this.#disarmIdle();
      else this.#armIdle();
    }
    for (const liveness of this.#liveness.values()) liveness.update();
    this.#scheduleCount();
  }

  async setProducerPaused(peer: Peer, producerId: string, paused: boolean): Promise<void> {
    this.#assertMember(peer);
    const producer = peer.producer(producerId);
    const source = this.#publications.get(producerId)?.source;
    if (!paused && source !== undefined && peer.moderatorMuted.has(source)) {
      throw new ChorusError('MUTED', `a moderator muted your ${source}; ask to unmute`);
    }
    if (paused) await producer.pause();
    else await producer.resume();
  }

  closeProducer(peer: Peer, producerId: string): void {
    this.#assertMember(peer);
    const producer = peer.producer(producerId);
    this.#endReason = 'stopped';
    producer.close();
  }

  async consume(
    peer: Peer,
    transportId: string,
    producerId: string | undefined,
    rtpCapabilities: types.RtpCapabilities,
    /** false: start audio flowing at once (video always waits, so its first keyframe is not missed). */
    startPaused = true,
    /** The MID its packets carry (a WHEP player's section); mediasoup numbers them otherwise. */
    mid?: string,
  ): Promise<types.Consumer> {
    this.#assertMember(peer);
    const transport = peer.transport(transportId);
    if (transport.appData['direction'] !== 'recv') throw new ChorusError('BAD_REQUEST', 'that transport is send-only');
    const { producer, publication } = await this.#consumable(peer, producerId);
    const id = producer.id;
    // A consumer still being created counts too: requests sent at once must not all pass the check.
    if (peer.pendingConsume.has(id) || [...peer.consumers.values()].some((existing) => trackIdOf(existing) === id)) {
      throw new ChorusError('BAD_REQUEST', 'already consuming that producer');
    }
    let consumer: types.Consumer;
    peer.pendingConsume.add(id);
    try {
      const { router, producerId: here } = await this.requireMedia().ensureProducerOn(transport, id);
      if (!router.canConsume({ producerId: here, rtpCapabilities })) {
        throw new ChorusError('CANNOT_CONSUME', 'your device cannot decode this stream');
      }
      const layers = publication?.layers ?? 1;
      try {
        // Paused by default until the client has its track wired, so no early packets are lost
        // to it; a lost video keyframe would mean a frozen picture until the next one. Audio has
        // no such packet, so a client may ask for it flowing at once. Layered video starts on a
        // middle layer until the subscriber says how large it shows it.
        consumer = await transport.consume({
          producerId: here,
          rtpCapabilities,
          paused: startPaused || producer.kind !== 'audio',
          ...(mid === undefined ? {} : { mid }),
          ...(layers > 1 ? { preferredLayers: { spatialLayer: Math.min(1, layers - 1) } } : {}),
          appData: { source: publication?.source, trackId: id },
        });
      } catch (error) {
        this.#log.info({ peer: peer.id, transport: transportId, producer: id, err: error }, 'consume refused');
        throw new ChorusError('CANNOT_CONSUME', 'cannot consume: the server could not make a stream for these RTP capabilities');
      }
    } finally {
      peer.pendingConsume.delete(id);
    }
    if (peer.closed) {
      consumer.close();
      throw new ChorusError('NOT_JOINED', 'session ended');
    }
    if (!consumer.paused) this.#consumerReady.add(consumer);
    this.#quality.watchConsumer(peer.id, consumer);
    const consumerId = consumer.id;
    consumer.on('producerclose', () => this.channel.toPeer(peer.id, 'consumer:closed', { consumerId }));
    consumer.on('producerpause', () => this.channel.toPeer(peer.id, 'consumer:paused', { consumerId, byPublisher: true }));
    consumer.on('producerresume', () => this.channel.toPeer(peer.id, 'consumer:resumed', { consumerId }));
    if (layers(consumer) > 1) {
      let spatial = -1;
      consumer.on('layerschange', (now) => {
        this.channel.toPeer(peer.id, 'consumer:layers', { consumerId, spatialLayer: now?.spatialLayer ?? null, temporalLayer: now?.temporalLayer ?? null });
        // None (paused for want of bandwidth) counts as below the lowest layer.
        const next = now?.spatialLayer ?? -1;
        if (next !== spatial && (spatial !== -1 || next === -1)) {
          this.options.observeLayerChange?.(this.kind, next > spatial ? 'up' : 'down');
          peer.layerChanges++;
        }
        spatial = next;
      });
      const { spatial: spatialLayers, temporal } = scalability(consumer);
      // Until the subscriber says how large it shows the video: the middle layer at most.
      this.#layers.track(peer, transport, consumer, producer, { visible: true, area: 0, maxSpatial: Math.min(1, spatialLayers - 1), maxTemporal: temporal - 1 });
    }
    return peer.track(peer.consumers, consumer);
  }

  /**
   * The producer `producerId` names for `peer` (none: the room's primary track), if the kind lets
   * it receive that track. A producer of another room, or of nobody, is simply not found.
   */
  async #consumable(peer: Peer, producerId: string | undefined): Promise<{ producer: types.Producer; publication?: Publication | undefined }> {
    const local = producerId === undefined ? this.#broadcast : this.#publications.get(producerId);
    if (local) {
      if (local.peer === peer) throw new ChorusError('BAD_REQUEST', 'that is your own track; it is not sent back to you');
      if (!this.policy.mayReceive(peer.role, local.peer.role, local.source)) {
        throw new ChorusError('FORBIDDEN_ROLE', `a ${peer.role} does not receive ${local.source} from a ${local.peer.role}`);
      }
      return { producer: local.producer, publication: local };
    }
    const remote = producerId === undefined ? undefined : this.#remoteTrack(producerId);
    if (remote && this.members) {
      if (!this.policy.mayReceive(peer.role, remote.participant.role, remote.track.source)) {
        throw new ChorusError('FORBIDDEN_ROLE', `a ${peer.role} does not receive ${remote.track.source} from a ${remote.participant.role}`);
      }
      let pulled: types.Producer;
      try {
        pulled = await this.members.pullTrack(this.id, remote.track.trackId, remote.nodeId, this.requireMedia());
      } catch (error) {
        this.#log.warn({ err: error, producer: producerId, holder: remote.nodeId }, 'a track on another node could not be pulled');
        // Its holder may be gone: look again, so a track that is gone stops being shown.
        void this.gatherRemote();
        throw new ChorusError('UNAVAILABLE', 'that track is on another node which did not answer; try again');
      }
      // A microphone pulled here speaks in this node's speaker detection too, so the active
      // speaker of a call spread over nodes can be someone on another node.
      if (remote.track.source === 'microphone' && this.policy.detectsSpeakers) void this.#speakerDetection().then((d) => d?.add(pulled, this.#log));
      return { producer: pulled };
    }
    // The broadcast, pulled here from the node that holds it (one pipe per room per node), for
    // a role that receives it.
    const pulled = this.#broadcast === undefined && this.policy.receives(peer.role) ? await this.remote?.pull(this.id, this.requireMedia()) : undefined;
    if (producerId === undefined && pulled === undefined) throw new ChorusError('NOTHING_TO_CONSUME', 'nothing is being broadcast yet');
    if (pulled === undefined || (producerId !== undefined && pulled.id !== producerId)) {
      throw new ChorusError('PRODUCER_NOT_FOUND', `no producer ${producerId ?? ''} in this room`);
    }
    return { producer: pulled };
  }

  async resumeConsumer(peer: Peer, consumerId: string): Promise<void> {
    this.#assertMember(peer);
    const consumer = peer.consumer(consumerId);
    this.#consumerReady.add(consumer);
    await this.#inTurn(consumer, async () => {
      // A tile reported hidden stays paused until it is shown again; one the downlink cannot
      // carry, until it can.
      if (this.#consumerHidden.has(consumer) || this.#layers.starved(consumer)) return;
      if (consumer.kind === 'video') await this.#uplinkBack(trackIdOf(consumer));
      if (consumer.closed || this.#consumerHidden.has(consumer) || this.#layers.starved(consumer)) return;
      await consumer.resume();
      if (consumer.kind === 'video') await consumer.requestKeyFrame().catch(() => undefined);
    });
  }

  /** Waits (bounded) for a quiet producer's RTP to come back; at once for any other. */
  async #uplinkBack(producerId: string): Promise<void> {
    if (!this.#quietUplinks.has(producerId)) return;
    let waiting = this.#quietUplinks.get(producerId);
    const producer = this.#publications.get(producerId)?.producer;
    if (!waiting) {
      waiting = (producer ? firstRtp(producer, this.options.uplinkBackWaitMs ?? UPLINK_BACK_WAIT_MS) : Promise.resolve()).then(() => {
        if (this.#quietUplinks.get(producerId) === waiting) this.#quietUplinks.delete(producerId);
      });
      this.#quietUplinks.set(producerId, waiting);
    }
    await waiting;
  }

  /** Which way the call's media goes now (calls; other kinds: always the SFU). */
  get mediaPath(): { path: 'sfu' | 'p2p'; pair?: readonly [string, string] | undefined } {
    return this.#path ? { path: this.#path.path, pair: this.#path.pair } : { path: 'sfu' };
  }

  /** A call participant says whether it can carry the call peer-to-peer (with its join). */
  declareP2p(peer: Peer, capable: boolean): void {
    this.#assertMember(peer);
    peer.p2p = capable;
    this.#updatePath();
  }

  /** The subscriber no longer wants this track here (it plays it from a direct link). */
  closeConsumer(peer: Peer, consumerId: string): void {
    this.#assertMember(peer);
    peer.consumer(consumerId).close();
  }

  /** An offer, answer or candidate for the other participant of a peer-to-peer call. */
  relayP2p(peer: Peer, signal: RequestOf<'p2p.signal'>): void {
    this.#assertMember(peer);
    if (!this.#path?.mayRelay(peer.id, signal.to)) {
      throw new ChorusError('NOT_PEER_TO_PEER', 'this call is not peer-to-peer between you and that participant');
    }
    const { to, ...payload } = signal;
    this.channel.toPeer(to, 'p2p:signal', { from: peer.id, ...payload });
  }

  /** A participant renders media on the path of switch `id`, or its direct connection failed. */
  reportPath(peer: Peer, id: string, state: 'ready' | 'failed', gapMs?: number): void {
    this.#assertMember(peer);
    const path = this.#path;
    if (!path) throw new ChorusError('NOT_PEER_TO_PEER', 'this room has no peer-to-peer path');
    if (state === 'failed') {
      if (!path.fail(peer.id)) throw new ChorusError('NOT_PEER_TO_PEER', 'this call is not peer-to-peer with you in it');
      return;
    }
    if (!path.ready(peer.id, id, gapMs)) throw new ChorusError('BAD_REQUEST', `switch ${id} is not the call's current one, or not yours`);
  }

  /** The members of the call here, in join order, and whether any are on other nodes. */
  #updatePath(): void {
    if (!this.#path || this.#closed) return;
    const members = [...this.peers.values()].filter((p) => !p.closed && this.#shown(p)).map((p) => ({ peerId: p.id, p2p: p.p2p }));
    const spans = [...this.#others.values()].some((view) => view.participants.size > 0);
    this.#path.update(members, spans);
  }

  #onPathChange(change: PathChange): void {
    this.#log.info({ id: change.id, from: change.from, to: change.to, reason: change.reason, members: change.members }, 'call media path changed');
    this.audit.record({ type: 'call.path', room: this.id, id: change.id, from: change.from, to: change.to, reason: change.reason, peers: change.members });
    if (change.to === 'p2p') {
      const [offerer, polite] = change.pair!;
      this.channel.toPeer(offerer, 'call:path', { id: change.id, path: 'p2p', reason: change.reason, peerId: polite, polite: false });
      this.channel.toPeer(polite, 'call:path', { id: change.id, path: 'p2p', reason: change.reason, peerId: offerer, polite: true });
      return;
    }
    for (const peerId of change.members) this.channel.toPeer(peerId, 'call:path', { id: change.id, path: 'sfu', reason: change.reason });
  }

  /**
   * Quality changes: those of participants shown in the room go to everyone here (a call's
   * participants, a broadcast's speaker); a listener's only to itself, so a room of thousands is
   * not told of each one.
   */
  #reportQuality(all: Array<{ peerId: string; quality: ConnectionQuality }>): void {
    // Peer-to-peer, the SFU's scores of the pair's idle streams say nothing about their call.
    const direct = this.#path?.path === 'p2p' ? this.#path.pair : undefined;
    const changes = direct ? all.filter((c) => !direct.includes(c.peerId)) : all;
    const shown = changes.filter((c) => {
      const peer = this.peers.get(c.peerId);
      return peer !== undefined && this.#shown(peer);
    });
    if (shown.length > 0) this.channel.toRoom(this.id, 'quality:changed', { qualities: shown });
    for (const change of changes) if (!shown.includes(change) && this.peers.has(change.peerId)) this.channel.toPeer(change.peerId, 'quality:changed', { qualities: [change] });
  }

  /** Runs a request on a consumer after the ones before it, as the track allows (see whileOpen). */
  #inTurn<T>(consumer: types.Consumer, request: () => Promise<T>): Promise<T> {
    const previous = this.#consumerTurn.get(consumer) ?? Promise.resolve();
    const turn = previous.catch(() => undefined).then(() => whileOpen(consumer, request));
    this.#consumerTurn.set(consumer, turn);
    return turn;
  }

  /**
   * A subscriber's tile for a video: hidden or off-screen pauses the consumer (nothing is sent);
   * shown, the consumer gets the layer that fits its rendered height, and a keyframe so the new
   * layer starts at once.
   */
  async viewTrack(peer: Peer, view: { consumerId: string; visible: boolean; width: number; height: number }): Promise<{ paused: boolean; spatialLayer?: number }> {
    this.#assertMember(peer);
    const consumer = peer.consumer(view.consumerId);
    if (consumer.kind !== 'video') throw new ChorusError('BAD_REQUEST', 'only video tracks have a view');
    const result = await this.#inTurn(consumer, () => this.#applyView(consumer, view));
    // Answered once the layer policy has acted on the new view (its decision runs in the consumer's turn too).
    await this.#layers.settled(consumer);
    return result;
  }

  async #applyView(consumer: types.Consumer, view: { visible: boolean; width: number; height: number }): Promise<{ paused: boolean; spatialLayer?: number }> {
    if (!view.visible || view.width === 0 || view.height === 0) {
      this.#consumerHidden.add(consumer);
      this.#layers.setView(consumer, { visible: false, area: 0, maxSpatial: 0, maxTemporal: 0 });
      if (!consumer.paused) await consumer.pause();
      return { paused: true };
    }
    this.#consumerHidden.delete(consumer);
    let spatialLayer: number | undefined;
    const publication = this.#publications.get(trackIdOf(consumer));
    if (layers(consumer) > 1) {
      // A track from another node: its capture height came with its info (the layers halve it each).
      const heights = publication?.layerHeights() ?? evenHeights(layers(consumer), this.#remoteTrack(trackIdOf(consumer))?.track.height);
      spatialLayer = layerFor(heights, view.height);
      // The layer policy sets the layers: the view is its ceiling, the downlink its budget.
      this.#layers.setView(consumer, { visible: true, area: view.width * view.height, maxSpatial: spatialLayer, maxTemporal: scalability(consumer).temporal - 1 });
    }
    if (consumer.paused && this.#consumerReady.has(consumer) && !this.#layers.starved(consumer)) {
      await consumer.resume();
      await consumer.requestKeyFrame().catch(() => undefined);
    }
    return { paused: consumer.paused, ...(spatialLayer !== undefined ? { spatialLayer } : {}) };
  }

  /** Pins a layered consumer to layers within what its producer sends. */
  async setPreferredLayers(peer: Peer, consumerId: string, spatialLayer: number, temporalLayer?: number): Promise<void> {
    this.#assertMember(peer);
    const consumer = peer.consumer(consumerId);
    const { spatial, temporal } = scalability(consumer);
    if (spatial <= 1 && temporal <= 1) throw new ChorusError('BAD_REQUEST', 'that track is not sent in layers');
    if (spatialLayer >= spatial) throw new ChorusError('BAD_REQUEST', `spatial layer ${spatialLayer} is out of range: this track has ${spatial} (0-${spatial - 1})`);
    if (temporalLayer !== undefined && temporalLayer >= temporal) {
      throw new ChorusError('BAD_REQUEST', `temporal layer ${temporalLayer} is out of range: this track has ${temporal} (0-${temporal - 1})`);
    }
    if (this.#layers.governs(consumer)) {
      // A pin is a ceiling like a view: the downlink still decides what fits under it.
      this.#layers.setView(consumer, { visible: !this.#consumerHidden.has(consumer), area: 0, maxSpatial: spatialLayer, maxTemporal: temporalLayer ?? temporal - 1 });
      await this.#layers.settled(consumer);
      return;
    }
    await this.#inTurn(consumer, async () => {
      await consumer.setPreferredLayers({ spatialLayer, ...(temporalLayer !== undefined ? { temporalLayer } : {}) });
      await consumer.requestKeyFrame().catch(() => undefined);
    });
  }

  /** A track of this node is piped to another node: dynacast keeps all its layers (its subscribers there are not seen here). */
  feedsElsewhere(producerId: string): void {
    this.#layers.feedsElsewhere(producerId);
  }

  /** The sources `peer` may publish now: its role's, and its stage's while on stage. */
  publishable(peer: Peer): readonly TrackSource[] {
    const always = this.policy.publishable(peer.role);
    return peer.onStage ? [...new Set([...always, ...this.policy.stageSources(peer.role)])] : always;
  }

  /**
   * Classes: a chat message from `peer`, to the whole room or to its staff only; delivered here
   * and on every other node serving the room, and recorded.
   */
  chat(peer: Peer, text: string, to: 'class' | 'staff'): ChatMessage {
    this.#assertMember(peer);
    if (!this.policy.chats) throw new ChorusError('BAD_REQUEST', `a ${this.kind} room has no chat`);
    const message: ChatMessage = {
      id: randomUUID(),
      from: { peerId: peer.id, identity: peer.identity, ...(peer.name !== undefined ? { name: peer.name } : {}), role: peer.role },
      text,
      to,
      at: Date.now(),
    };
    this.audit.record({ type: 'chat', room: this.id, id: message.id, peer: peer.id, identity: peer.identity, to, text });
    this.deliverChat(message);
    this.members?.chat(this.id, message);
    return message;
  }

  /** A chat message (from here or another node) to the members here it is for. */
  deliverChat(message: ChatMessage): void {
    for (const p of this.peers.values()) {
      if (message.to === 'class' || this.canModerate(p) || p.id === message.from.peerId) this.channel.toPeer(p.id, 'chat:message', { message });
    }
  }

  /** Classes: the hand queue, for staff. */
  async handQueue(peer: Peer): Promise<HandQueue> {
    this.#assertMember(peer);
    if (!this.#hands) throw new ChorusError('BAD_REQUEST', `a ${this.kind} room has no raised hands`);
    if (!this.canModerate(peer)) throw new ChorusError('FORBIDDEN_ROLE', 'only teachers and assistants see the hand queue');
    return this.#hands.read();
  }

  /**
   * Classes: a move of a raised hand. A student acts on its own (raise, lower, accept, decline);
   * staff on a student's here (invite, remove, lower), naming the queue version they saw. On
   * `accept` the student may publish its stage sources; on `remove` they are closed at once,
   * whatever its client does.
   */
  async hand(peer: Peer, action: HandAction, targetId?: string, version?: number): Promise<HandQueue> {
    this.#assertMember(peer);
    const hands = this.#hands;
    if (!hands) throw new ChorusError('BAD_REQUEST', `a ${this.kind} room has no raised hands`);
    // The student may be on another node of the cluster: the queue is shared, and its node acts.
    const target = targetId === undefined || targetId === peer.id ? peer : (this.peers.get(targetId) ?? (this.members ? await this.store.getPeer(this.id, targetId) : undefined));
    if (!target) throw new ChorusError('NOT_FOUND', `no student ${targetId} in this class`);
    if (this.policy.stageSources(target.role).length === 0) throw new ChorusError('BAD_TRANSITION', `a ${target.role} has no hand to raise`);
    const name = target instanceof Peer ? target.name : undefined;
    const actor = { peerId: peer.id, staff: this.canModerate(peer) };
    // Who may, before which version: a refusal must not depend on how old the asker's queue is.
    assertMayMove(action, { peerId: target.id }, actor);
    // Staff act on what they saw: without it, two assistants would each act on whatever is there.
    if (target !== peer && version === undefined) throw new ChorusError('BAD_REQUEST', 'name the hand queue version you saw (from hands or hand:queue)');
    const { before, queue } = await hands.apply(action, { peerId: target.id, identity: target.identity, name }, actor, target === peer ? undefined : version);
    const after = queue.hands.find((h) => h.peerId === target.id);
    this.audit.record({ type: 'hand', room: this.id, peer: target.id, identity: target.identity, action, from: before?.state ?? null, to: after?.state ?? null, by: peer.identity, version: queue.version });
    this.#log.info({ peer: target.id, action, from: before?.state, to: after?.state, by: peer.id }, 'hand moved');
    const move = { queue, peerId: target.id, ...(before ? { before: before.state } : {}), ...(after ? { after } : {}) };
    this.applyHandMove(move);
    this.members?.handMoved(this.id, move);
    return queue;
  }

  /**
   * A hand moved (here, or on another node): the student, if it is here, goes on or off stage
   * and is told; the staff here get the queue (never an older one than they have).
   */
  applyHandMove(move: HandMove): void {
    const student = this.peers.get(move.peerId);
    if (student) {
      if (move.after?.state === 'onstage') student.onStage = true;
      if (move.before === 'onstage' && move.after?.state !== 'onstage') this.#offStage(student);
      this.channel.toPeer(student.id, 'hand:state', { ...(move.after ? { hand: move.after } : {}), version: move.queue.version });
    }
    this.#tellStaff(move.queue);
  }

  /** Off the stage: its stage tracks and its send transport close now, not when its client agrees. */
  #offStage(peer: Peer): void {
    peer.onStage = false;
    const allowed = this.policy.publishable(peer.role);
    for (const publication of [...peer.publications.values()]) if (!allowed.includes(publication.source)) publication.producer.close();
    if (allowed.length > 0) return;
    for (const transport of [...peer.transports.values()]) if (transport.appData['direction'] === 'send') transport.close();
  }

  #tellStaff(queue: HandQueue): void {
    // Moves made on several nodes may arrive out of order: the newest queue stands.
    if (queue.version <= this.#toldHands) return;
    this.#toldHands = queue.version;
    for (const p of this.peers.values()) if (this.canModerate(p)) this.channel.toPeer(p.id, 'hand:queue', { queue });
  }

  canModerate(peer: Peer): boolean {
    return this.policy.moderates(peer.role) || peer.grants.moderate === true;
  }

  listPeers(peer: Peer, limit: number): Array<{ peerId: string; identity: string; role: Peer['role']; name?: string | undefined; publishing: boolean; muted: boolean }> {
    this.#assertModerator(peer);
    return [...this.peers.values()].slice(0, limit).map((p) => ({
      peerId: p.id,
      identity: p.identity,
      role: p.role,
      name: p.name,
      publishing: p.producers.size > 0,
      muted: p.moderatorMuted.size > 0,
    }));
  }

  async moderate(peer: Peer, action: 'mute' | 'unmute' | 'kick' | 'end', targetId?: string, source?: TrackSource): Promise<void> {
    this.#assertModerator(peer);
    if (action === 'end') return this.end(peer.identity);
    // A participant on another node (a call spread over nodes): its node acts on it.
    const holder = targetId !== undefined && !this.peers.has(targetId) ? this.#holderOf(targetId) : undefined;
    if (holder && this.members) return this.members.moderate(holder, this.id, { action, peerId: targetId!, ...(source ? { source } : {}), by: peer.identity });
    if (action === 'kick') return this.kick(targetId, peer.identity);
    return this.setMuted(targetId, action === 'mute', peer.identity, source);
  }

  /**
   * A participant a moderator muted asks to unmute: the moderators are told, on this node and on
   * any other serving the room (the moderator decides; nothing changes here).
   */
  async requestUnmute(peer: Peer, source: TrackSource | undefined): Promise<void> {
    this.#assertMember(peer);
    if (peer.moderatorMuted.size === 0 || (source !== undefined && !peer.moderatorMuted.has(source))) {
      throw new ChorusError('BAD_REQUEST', 'no moderator muted that; unmute it yourself');
    }
    const request = { peerId: peer.id, identity: peer.identity, ...(source ? { source } : {}) };
    let told = this.tellModerators(request, peer.id);
    if (this.#others.size > 0 && this.members) {
      told += await this.members.askModerators(this.id, request).catch((error: unknown) => {
        this.#log.warn({ err: error }, 'moderators on other nodes were not told of an unmute request');
        return 0;
      });
    }
    if (told === 0) throw new ChorusError('UNAVAILABLE', 'no moderator is in the room right now');
  }

  /** Tells this node's moderators (but not the asker) of an unmute request; returns how many. */
  tellModerators(request: UnmuteRequest, except?: string): number {
    const moderators = [...this.peers.values()].filter((p) => p.id !== except && this.canModerate(p));
    for (const moderator of moderators) this.channel.toPeer(moderator.id, 'mute:requested', request);
    return moderators.length;
  }

  /**
   * Ends the room for everyone on this node and refuses tokens issued before now everywhere.
   * `by` names who did it (a moderator's identity, `api:<key>` for the admin API). `localOnly`
   * tells only this node's clients, for a caller that ends the room on every node itself.
   */
  async end(by: string, { localOnly = false } = {}): Promise<void> {
    this.audit.record({ type: 'moderator.action', room: this.id, moderator: by, action: 'end' });
    await this.store.setMark(`ended\0${this.id}`, Date.now(), this.options.markTtlSeconds);
    if (localOnly) this.channel.toRoomLocal(this.id, 'room:ended', { reason: `ended by ${by}` });
    else this.channel.toRoom(this.id, 'room:ended', { reason: `ended by ${by}` });
    this.#ending = 'ended';
    for (const p of [...this.peers.values()]) await this.leave(p, 'ended');
    await this.close('ended');
  }

  /** Removes a session; the identity's tokens issued before now stop working, so it cannot resume. */
  async kick(targetId: string | undefined, by: string): Promise<void> {
    const target = this.#target(targetId);
    this.audit.record({ type: 'moderator.action', room: this.id, moderator: by, action: 'kick', target: target.identity });
    await this.store.setMark(`kick\0${this.id}\0${target.identity}`, Date.now(), this.options.markTtlSeconds);
    this.channel.toPeer(target.id, 'session:kicked', { reason: `removed by ${by}` });
    await this.leave(target, 'kicked');
  }

  /**
   * A source a moderator mutes is paused, and its publisher may not resume (or publish) it until
   * a moderator unmutes it; `source` absent: every source. Unmuting only lifts the ban: the
   * participant turns its microphone back on itself.
   */
  async setMuted(targetId: string | undefined, muted: boolean, by: string, source?: TrackSource): Promise<void> {
    const target = this.#target(targetId);
    this.audit.record({ type: 'moderator.action', room: this.id, moderator: by, action: muted ? 'mute' : 'unmute', target: target.identity, ...(source ? { source } : {}) });
    // Everything it may publish now (a student on stage: its stage sources too); unmuting, every ban.
    const sources = source ? [source] : [...new Set([...this.publishable(target), ...(muted ? [] : target.moderatorMuted)])];
    for (const s of sources) {
      if (muted) target.moderatorMuted.add(s);
      else target.moderatorMuted.delete(s);
    }
    for (const s of sources) {
      const publication = target.publications.get(s);
      if (!publication) continue;
      if (muted && !publication.producer.paused) await publication.producer.pause();
      // Paused already, or the ban lifted: the flag changed all the same.
      else this.#announceMuted(publication);
    }
    this.channel.toPeer(target.id, 'session:muted', { muted, ...(source ? { source } : {}) });
  }

  #target(targetId: string | undefined): Peer {
    const target = targetId === undefined ? undefined : this.peers.get(targetId);
    if (!target) throw new ChorusError('NOT_FOUND', `no session ${targetId} in this room`);
    return target;
  }

  /** Whether tokens issued at `issuedAtMs` are refused for `identity` (kicked, or room ended). */
  static async refusal(store: StateStore, roomId: string, identity: string, issuedAtMs: number): Promise<ChorusError | undefined> {
    const [ended, kicked] = await Promise.all([store.getMark(`ended\0${roomId}`), store.getMark(`kick\0${roomId}\0${identity}`)]);
    if (ended !== undefined && issuedAtMs <= ended) return new ChorusError('ROOM_ENDED', 'this room was ended; ask for a new token');
    if (kicked !== undefined && issuedAtMs <= kicked) return new ChorusError('KICKED', 'you were removed from this room');
    return undefined;
  }

  #assertModerator(peer: Peer): void {
    this.#assertMember(peer);
    if (!this.canModerate(peer)) throw new ChorusError('FORBIDDEN_ROLE', 'only moderators can do that');
  }

  /** The audience across the cluster (this node's alone without one), HLS players included. */
  async audienceCount(): Promise<number> {
    // Listeners without a session are HLS players: only a room carrying media has them.
    const others = this.policy.carriesMedia ? (this.options.otherListeners?.(this.id).catch(() => 0) ?? 0) : 0;
    const sessions = this.remote ? this.store.countPeers(this.id, 'listener').catch(() => this.audience) : this.audience;
    const [a, b] = await Promise.all([sessions, others]);
    return a + b;
  }

  /** Listeners that are not sessions came or went (HLS players): push the count. */
  audienceChanged(): void {
    // In a cluster the count is read at every push interval anyway.
    this.#scheduleCount();
  }

  async #pushClusterCount(): Promise<void> {
    const count = await this.audienceCount();
    if (count !== this.#lastCount && !this.#closed) {
      this.#lastCount = count;
      this.channel.toRoomLocal(this.id, 'room:listeners', { count });
    }
  }

  /** Pushes the audience size at most once per interval, and only when it changed. */
  #scheduleCount(): void {
    if (this.#countTimer || this.#closed || this.remote) return;
    this.#countTimer = setTimeout(() => {
      void this.audienceCount().then((count) => {
        this.#countTimer = undefined;
        if (count !== this.#lastCount && !this.#closed) {
          this.#lastCount = count;
          this.channel.toRoom(this.id, 'room:listeners', { count });
        }
      });
    }, this.options.countIntervalMs);
    this.#countTimer.unref();
  }

  #onRouterLost(routerId: string, origin: boolean): void {
    const affected = [...this.peers.values()].filter((p) => origin || p.routers.has(routerId));
    this.#log.warn({ origin, peers: affected.length }, 'media lost with a worker; sessions must rejoin');
    for (const peer of affected) {
      this.channel.toPeer(peer.id, 'session:reset', { reason: 'media worker restarted' });
      this.leave(peer, 'reset').catch((error: unknown) => this.#log.error({ err: error, peer: peer.id }, 'leave after reset failed'));
    }
    if (origin) this.close('media lost').catch((error: unknown) => this.#log.error({ err: error }, 'closing room after reset failed'));
  }

  /**
   * A session in a room that carries media takes media within the stale window of joining: the
   * SDK asks for its transport with the join (or right after it), and a listener that fell back
   * to HLS fetches the playlist with its resume token (its player retries every few seconds, a
   * broadcast live or not). One that does neither is a join and nothing more; left in place it
   * would hold a seat and, in a cluster, a `listener` record that the shared count counts.
   */
  #armSetupCheck(peer: Peer): void {
    if (!this.policy.carriesMedia || this.options.stalePeerMs <= 0) return;
    const timer = setTimeout(() => {
      this.#setupTimers.delete(peer.id);
      void this.#checkSetup(peer).catch((error: unknown) => this.#log.error({ err: error, peer: peer.id }, 'checking a session for media failed'));
    }, this.options.stalePeerMs);
    timer.unref();
    this.#setupTimers.set(peer.id, timer);
  }

  #disarmSetupCheck(peerId: string): void {
    clearTimeout(this.#setupTimers.get(peerId));
    this.#setupTimers.delete(peerId);
  }

  async #checkSetup(peer: Peer): Promise<void> {
    // Gone, or taking media: a transport made or being made (from then on the transport reaper
    // judges it), or HLS. Asked again after the store lookup, which may change any of it.
    const settled = (): boolean =>
      peer.closed || this.peers.get(peer.id) !== peer || peer.madeTransport || peer.pendingTransports > 0 || peer.playsHls;
    if (settled()) return;
    // Its player may have asked another node for the playlist (any node serves HLS).
    if ((await this.store.getMark(hlsPlayMark(this.id, peer.identity)).catch(() => undefined)) !== undefined) {
      this.playsHls(peer.identity);
      return;
    }
    if (settled()) return;
    this.#log.warn({ peer: peer.id, identity: peer.identity, staleMs: this.options.stalePeerMs }, 'session set up no media (no transport, no HLS) within the window; removing it');
    this.channel.toPeer(peer.id, 'session:reset', { reason: 'no media was set up for this session' });
    await this.leave(peer, 'stale');
  }

  #onStale(peer: Peer, transportId: string, why: string): void {
    if (peer.closed || this.peers.get(peer.id) !== peer) return;
    this.#log.warn({ peer: peer.id, transport: transportId, why, staleMs: this.options.stalePeerMs }, 'media transport stale; removing the session');
    // The client may still be listening on its socket: it rejoins with a fresh transport.
    this.channel.toPeer(peer.id, 'session:reset', { reason: `media connection lost (${why})` });
    this.leave(peer, 'stale').catch((error: unknown) => this.#log.error({ err: error, peer: peer.id }, 'removing a stale session failed'));
  }

  /** Starts the no-publisher clock (again); it ends the room when it runs out. */
  #armIdle(): void {
    if (this.options.idleRoomMs <= 0 || this.#idleTimer || this.#closed) return;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      void this.#endIfIdle();
    }, this.options.idleRoomMs);
    this.#idleTimer.unref();
  }

  #disarmIdle(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
  }

  async #endIfIdle(): Promise<void> {
    if (this.#closed) return;
    // In a cluster the broadcast may be held by another node.
    const state = this.#publications.size > 0 ? { live: true } : await this.broadcastState().catch(() => ({ live: true }));
    if (state.live) {
      this.#armIdle();
      return;
    }
    this.#log.info({ idleRoomMs: this.options.idleRoomMs }, 'nobody published for too long; ending the room here');
    this.channel.toRoomLocal(this.id, 'room:ended', { reason: `nobody broadcast for ${Math.round(this.options.idleRoomMs / 1000)} s` });
    this.#ending = 'idle';
    for (const p of [...this.peers.values()]) await this.leave(p, 'ended');
    await this.close('idle');
  }

  #assertMember(peer: Peer): void {
    if (peer.closed || this.peers.get(peer.id) !== peer) throw new ChorusError('NOT_JOINED', 'join the room first');
  }

  #assertOpen(): void {
    if (this.#closed) throw new ChorusError('UNAVAILABLE', 'room is closing; join again');
  }

  async close(reason: CloseReason = 'node closing'): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#quality.close();
    this.#path?.close();
    this.#disarmIdle();
    for (const timer of this.#setupTimers.values()) clearTimeout(timer);
    this.#setupTimers.clear();
    for (const timer of this.#handGrace.values()) clearTimeout(timer);
    this.#handGrace.clear();
    clearTimeout(this.#autoRecord);
    void this.options.recordings?.stop(this.id, 'class over').catch((error: unknown) => this.#log.warn({ err: error }, 'stopping the recording failed'));
    clearTimeout(this.#countTimer);
    clearInterval(this.#countTimer);
    const mine = [...this.peers.values()];
    // Other nodes showing these members drop them now rather than at their next gather.
    if (this.policy.spansNodes) this.members?.share(this.id, mine.filter((p) => this.#shown(p)).map((p) => ({ type: 'left', peerId: p.id })));
    for (const peer of mine) peer.close();
    this.peers.clear();
    for (const peer of mine) this.emit('peerleft', peer, 'closed');
    void this.#speakers?.then((speakers) => speakers?.close());
    clearInterval(this.#gatherTimer);
    this.media?.close();
    this.remote?.withdraw(this.id);
    // Other nodes may still serve this room: remove only what this node put in the shared
    // state, and the room record only when nobody anywhere is left in it.
    await this.store.leaveRoom(this.id);
    try {
      await Promise.all(
        mine.map(async (peer) => {
          await this.store.removePeer(this.id, peer.id);
          const seat = this.policy.exclusiveSeat(peer.role);
          if (seat) await this.store.releaseSeat(this.id, seat, peer.id);
        }),
      );
      if ((await this.store.countPeers(this.id)) === 0) {
        await this.store.deleteRoom(this.id);
        await this.#hands?.clear();
      }
    } catch (error) {
      // Leases expire what could not be removed now (shared state unreachable).
      this.#log.warn({ err: error }, 'room closed; its shared records will expire instead');
    }
    this.#log.info({ reason }, 'room closed');
    this.emit('close', reason);
  }
}

/**
 * What a client is told when mediasoup refuses its RTP parameters. mediasoup's own text (and,
 * for some inconsistent inputs, a JavaScript TypeError from inside it) is for the log, not the
 * wire: clients get our wording, which names what to fix.
 */
function producerRefusal(error: unknown): string {
  if (error instanceof Error && error.name === 'UnsupportedError') {
    return 'cannot produce: rtpParameters name a codec this room does not accept (see getRouterRtpCapabilities)';
  }
  return 'cannot produce: rtpParameters are inconsistent (codecs, their RTX apt references, encodings or header extensions)';
}

function participantInfo(peer: Peer): ParticipantInfo {
  return {
    peerId: peer.id,
    identity: peer.identity,
    ...(peer.name !== undefined ? { name: peer.name } : {}),
    role: peer.role,
    tracks: [...peer.publications.values()].map((p) => p.info()),
  };
}

/**
 * Spatial and temporal layers a consumer can be given. mediasoup describes a layered consumer's
 * stream in its one encoding's scalability mode (`L3T3`: three spatial layers, three temporal).
 */
function layers(consumer: types.Consumer): number {
  return scalability(consumer).spatial;
}

/**
 * Runs a request on a consumer whose track may end meanwhile: its publisher leaving closes it in
 * the worker, which then answers that it has no such consumer before this node hears it closed.
 * That consumer is simply gone, as it would be a moment later; anything else is a real failure.
 */
async function whileOpen<T>(consumer: types.Consumer, request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (error) {
    const unknownToWorker = error instanceof Error && error.message.includes(consumer.id) && / not found /.test(error.message);
    if (consumer.closed || unknownToWorker) throw new ChorusError('CONSUMER_NOT_FOUND', `consumer ${consumer.id} is gone: its track ended`);
    throw error;
  }
}

function scalability(consumer: types.Consumer): { spatial: number; temporal: number } {
  if (consumer.type !== 'simulcast' && consumer.type !== 'svc') return { spatial: 1, temporal: 1 };
  const match = /^[LS](\d+)T(\d+)/.exec(consumer.rtpParameters.encodings?.[0]?.scalabilityMode ?? '');
  return { spatial: Number(match?.[1] ?? 1), temporal: Number(match?.[2] ?? 1) };
}

function evenHeights(n: number, top = 720): number[] {
  return Array.from({ length: n }, (_, i) => Math.round(top / 2 ** (n - 1 - i)));
}

function hlsPlayMark(roomId: string, identity: string): string {
  return JSON.stringify(['hls', roomId, identity]);
}
