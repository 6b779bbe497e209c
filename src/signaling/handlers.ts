/**
 * One function per protocol method. Each receives a validated request and the socket's session
 * and returns the response payload, or throws a ChorusError.
 */
import { trackIdOf } from '../media/roomMedia.js';
import type { PayloadProfile } from '../media/payloadProfile.js';
import { randomBytes } from 'node:crypto';
import type { types } from 'mediasoup';
import type { TokenService } from '../auth/tokens.js';
import { ChorusError } from '../protocol/errors.js';
import { PROTOCOL_VERSION, type CreatedTransport, type Method, type RequestOf, type Responses, type Role, type RoomKind, type TransportInfo } from '../protocol/messages.js';
import type { Peer } from '../rooms/peer.js';
import { canSend } from '../rooms/policy.js';
import { Room } from '../rooms/room.js';
import type { StateStore } from '../store/stateStore.js';
import type { RoomManager } from '../rooms/roomManager.js';
import type { Limits } from '../limits/limits.js';
import type { AuditSink } from '../observability/audit.js';
import { iceServersFor, type TurnSettings } from '../auth/turn.js';
import type { WatchRequests } from '../watch/watchService.js';

export interface Session {
  /** Client address (the proxy's forwarded one when the proxy is trusted). */
  readonly ip: string;
  room?: Room | undefined;
  peer?: Peer | undefined;
  joining: boolean;
  /** False once the connection is gone; a join finishing after that is undone. */
  isConnected(): boolean;
  /** Called after a successful join / leave so the transport layer can (un)subscribe. */
  onJoined(room: Room, peer: Peer): void;
  onLeft(room: Room, peer: Peer): void;
  /** A receiver that numbers the codecs itself (a WHEP player): its receive transport follows. */
  readonly payloadProfile?: PayloadProfile | undefined;
}

export interface HandlerDeps {
  rooms: RoomManager;
  tokens: TokenService;
  limits: Limits;
  audit: AuditSink;
  turn: TurnSettings | undefined;
  store: StateStore;
  /** Lifetime of the resume tokens handed out on join. */
  resumeTtlSeconds: number;
  /** Watch parties' playback (for rooms whose policy has shared playback). */
  watch: WatchRequests;
  /** In a cluster: sends a room's publisher to the node that owns the room. */
  placement?: PublisherPlacement | undefined;
  /** A client's join-to-first-media time, as it measured it (metrics). */
  observeFirstMedia?: ((seconds: number) => void) | undefined;
  /** How a one-way room's publisher is asked to encode its microphone (CHORUS_OPUS_BITRATE, CHORUS_BROADCAST_FRAME_MS). */
  opus: { bitrate: number; frameMs: number };
}

export interface PublisherPlacement {
  /** Whether `role` in a room of `kind` must be on the room's origin node (a publisher; all of a call). */
  places(kind: RoomKind, role: Role): boolean;
  /** The URL of the node the publisher must use instead of this one, if any. */
  redirectFor(roomId: string): Promise<string | undefined>;
  /** This node now hosts the room's publisher. */
  hold(room: Room): void;
}

export interface RequestContext {
  /** When the message arrived (server clock, ms), before any other work on it. */
  receivedAt: number;
}

export type Handlers = { [M in Method]: (session: Session, request: RequestOf<M>, context: RequestContext) => Promise<Responses[M]> };

function member(session: Session): { room: Room; peer: Peer } {
  const { room, peer } = session;
  if (!room || !peer || peer.closed) throw new ChorusError('NOT_JOINED', 'join a room first');
  return { room, peer };
}

const empty = {} as Record<string, never>;

function transportInfo(t: types.WebRtcTransport): TransportInfo {
  return { id: t.id, iceParameters: t.iceParameters, iceCandidates: t.iceCandidates, dtlsParameters: t.dtlsParameters };
}

/**
 * The transport a join asked for: the direction follows from the role and the room's policy, so
 * the join cannot get more than createTransport would grant. A failure does not undo the join
 * (its token is spent by now): the answer just has no transport, and the client's
 * createTransport then gets the reason.
 */
async function joinTransport(room: Room, peer: Peer, direction: 'send' | 'recv', forceTcp: boolean, profile: PayloadProfile | undefined): Promise<CreatedTransport | undefined> {
  try {
    return { direction, ...transportInfo(await room.createTransport(peer, direction, forceTcp, profile)) };
  } catch {
    return undefined;
  }
}

/**
 * The transports a join asked for: the one the role uses (send for a publisher, receive for
 * everyone else), and for a role that does both (a call's participants) the receive one too.
 */
async function joinTransports(room: Room, peer: Peer, forceTcp: boolean, profile: PayloadProfile | undefined): Promise<Pick<Responses['join'], 'transport' | 'recvTransport'>> {
  const sends = canSend(room.policy, peer.role);
  const [transport, recvTransport] = await Promise.all([
    joinTransport(room, peer, sends ? 'send' : 'recv', forceTcp, profile),
    sends && room.policy.receives(peer.role) ? joinTransport(room, peer, 'recv', forceTcp, profile) : undefined,
  ]);
  return { ...(transport ? { transport } : {}), ...(recvTransport ? { recvTransport } : {}) };
}

export function createHandlers({ rooms, tokens, limits, audit, turn, store, resumeTtlSeconds, placement, watch, observeFirstMedia, opus }: HandlerDeps): Handlers {
  return {
    async join(session, { roomId, token, previousPeerId, transport: wantsTransport, p2p }) {
      if (session.joining || (session.peer && !session.peer.closed)) {
        throw new ChorusError('ALREADY_JOINED', 'this connection already joined a room; leave first');
      }
      session.joining = true;
      let identity: string | undefined;
      try {
        await limits.take('joinsPerRoom', roomId);
        const verified = await tokens.verify(token);
        identity = verified.identity;
        if (verified.room !== roomId) throw new ChorusError('TOKEN_WRONG_ROOM', 'token is for another room');
        // A reusable link is shared by many people under one identity: each join becomes its own
        // identity (kept across reconnects by the resume token). Its join rate is per address, with
        // a budget for a crowd behind one NAT (a venue's Wi-Fi), not for one person reconnecting.
        const shared = verified.grants.reusable === true && !verified.resume;
        const grant = shared ? { ...verified, identity: `${verified.identity}~${randomBytes(6).toString('base64url')}` } : verified;
        if (shared) await limits.take('joinsPerSharedLink', [roomId, session.ip, verified.identity]);
        else await limits.take('joinsPerIdentity', [roomId, grant.identity]);
        const refusal = await Room.refusal(store, roomId, grant.identity, grant.issuedAtMs);
        if (refusal) throw refusal;
        // Before anything is created or the token spent: the client joins again over there.
        if (placement?.places(grant.kind, grant.role)) {
          const elsewhere = await placement.redirectFor(roomId);
          if (elsewhere) throw new ChorusError('WRONG_NODE', `room ${roomId} is hosted on another node`, undefined, elsewhere);
        }
        const { room, peer } = await rooms.join(grant, previousPeerId);
        // A join token works once. It is spent only now, so a join refused for a passing reason
        // (seat taken, room full) can be retried with it; two racing joins still admit one.
        const singleUse = !grant.resume && !grant.grants.reusable;
        const ttl = Math.max(1, Math.ceil((grant.expiresAtMs - Date.now()) / 1000));
        if (singleUse && !(await store.useOnce(`jti\0${grant.tokenId}`, ttl))) {
          await room.leave(peer, 'left');
          throw new ChorusError('TOKEN_USED', 'this token was already used to join; ask for a new one');
        }
        if (!session.isConnected()) {
          await room.leave(peer, 'dropped');
          throw new ChorusError('NOT_JOINED', 'connection closed while joining');
        }
        session.room = room;
        session.peer = peer;
        session.onJoined(room, peer);
        // A student back from a dropped connection gets its hand (and its place on stage) back.
        await room.resumeHand(peer, previousPeerId);
        // After subscribing to room events, so no change falls between the snapshot and them.
        let playback: Responses['join']['watch'];
        try {
          playback = await watch.joined(room, peer);
        } catch (error) {
          session.room = undefined;
          session.peer = undefined;
          session.onLeft(room, peer);
          await room.leave(peer, 'left');
          throw error;
        }
        if (placement?.places(room.kind, peer.role)) placement.hold(room);
        audit.record({ type: 'join.accepted', room: room.id, identity: peer.identity, role: peer.role, peer: peer.id, ip: session.ip });
        // Taken before anything else is awaited: the deltas this session receives from now on
        // carry the versions after it.
        const snapshot = room.snapshot(peer);
        // A call may go peer-to-peer now: `call:path` can reach the client before this answer.
        if (p2p && room.policy.peerToPeer) room.declareP2p(peer, true);
        const [broadcast, listeners, resumeToken, transport, recording] = await Promise.all([
          room.broadcastState(),
          room.audienceCount(),
          tokens.resumeToken(grant, resumeTtlSeconds),
          wantsTransport ? joinTransports(room, peer, wantsTransport.forceTcp ?? false, session.payloadProfile) : undefined,
          room.liveRecording(),
        ]);
        return {
          protocol: PROTOCOL_VERSION,
          peerId: peer.id,
          roomId: room.id,
          kind: room.kind,
          role: peer.role,
          identity: peer.identity,
          // A room without media (a watch party) has no router to describe.
          routerRtpCapabilities: room.media?.rtpCapabilities ?? null,
          broadcast,
          room: snapshot,
          listeners,
          ...(room.policy.oneWay && room.policy.publishable(peer.role).includes('microphone') ? { opus } : {}),
          iceServers: iceServersFor(turn, peer.identity),
          resumeToken,
          ...(playback ? { watch: playback } : {}),
          ...(recording ? { recording } : {}),
          ...transport,
        };
      } catch (error) {
        if (error instanceof ChorusError) {
          audit.record({ type: 'join.refused', room: roomId, identity, code: error.code, reason: error.message, ip: session.ip });
        }
        throw error;
      } finally {
        session.joining = false;
      }
    },

    async getRouterRtpCapabilities(session) {
      return { routerRtpCapabilities: member(session).room.requireMedia().rtpCapabilities };
    },

    async createTransport(session, { direction, forceTcp }) {
      const { room, peer } = member(session);
      return transportInfo(await room.createTransport(peer, direction, forceTcp ?? false, session.payloadProfile));
    },

    async connectTransport(session, { transportId, dtlsParameters }) {
      const { room, peer } = member(session);
      await room.connectTransport(peer, transportId, dtlsParameters as types.DtlsParameters);
      return empty;
    },

    async restartIce(session, { transportId }) {
      const { room, peer } = member(session);
      // Fresh TURN credentials too: the join's may have expired for new allocations.
      return { iceParameters: await room.restartIce(peer, transportId), iceServers: iceServersFor(turn, peer.identity) };
    },

    async produce(session, { transportId, kind, rtpParameters, source, video }) {
      const { room, peer } = member(session);
      const producer = await room.produce(peer, transportId, kind, rtpParameters as types.RtpParameters, source, video);
      return { producerId: producer.id };
    },

    async pauseProducer(session, { producerId }) {
      const { room, peer } = member(session);
      await room.setProducerPaused(peer, producerId, true);
      return empty;
    },

    async resumeProducer(session, { producerId }) {
      const { room, peer } = member(session);
      await room.setProducerPaused(peer, producerId, false);
      return empty;
    },

    async closeProducer(session, { producerId }) {
      const { room, peer } = member(session);
      room.closeProducer(peer, producerId);
      return empty;
    },

    async consume(session, { transportId, producerId, rtpCapabilities, paused }) {
      const { room, peer } = member(session);
      const c = await room.consume(peer, transportId, producerId, rtpCapabilities as types.RtpCapabilities, paused ?? true);
      return { consumerId: c.id, producerId: trackIdOf(c), kind: c.kind, rtpParameters: c.rtpParameters, paused: c.paused };
    },

    async resumeConsumer(session, { consumerId }) {
      const { room, peer } = member(session);
      await room.resumeConsumer(peer, consumerId);
      return empty;
    },

    async 'track.view'(session, view) {
      const { room, peer } = member(session);
      await limits.take('trackControls', peer.id);
      return room.viewTrack(peer, view);
    },

    async setPreferredLayers(session, { consumerId, spatialLayer, temporalLayer }) {
      const { room, peer } = member(session);
      await limits.take('trackControls', peer.id);
      await room.setPreferredLayers(peer, consumerId, spatialLayer, temporalLayer);
      return empty;
    },

    async 'room.sync'(session) {
      const { room, peer } = member(session);
      return room.snapshot(peer);
    },

    async closeConsumer(session, { consumerId }) {
      const { room, peer } = member(session);
      room.closeConsumer(peer, consumerId);
      return empty;
    },

    async 'p2p.signal'(session, signal) {
      const { room, peer } = member(session);
      await limits.take('p2pSignals', peer.id);
      room.relayP2p(peer, signal);
      return empty;
    },

    async 'p2p.state'(session, { id, state, gapMs }) {
      const { room, peer } = member(session);
      await limits.take('trackControls', peer.id);
      room.reportPath(peer, id, state, gapMs);
      return empty;
    },

    async hand(session, { action, peerId, version }) {
      const { room, peer } = member(session);
      await limits.take('trackControls', peer.id);
      const queue = await room.hand(peer, action, peerId, version);
      // Students are not shown to each other: one learns only of its own hand.
      return { queue: room.canModerate(peer) ? queue : { version: queue.version, hands: queue.hands.filter((h) => h.peerId === peer.id) } };
    },

    async chat(session, { text, to }) {
      const { room, peer } = member(session);
      await limits.take('chat', peer.id);
      return { message: room.chat(peer, text, to ?? 'class') };
    },

    async hands(session) {
      const { room, peer } = member(session);
      return { queue: await room.handQueue(peer) };
    },

    async record(session, { action }) {
      const { room, peer } = member(session);
      return { recording: await room.record(peer, action) };
    },

    async 'mute.request'(session, { source }) {
      const { room, peer } = member(session);
      await limits.take('muteRequests', peer.id);
      await room.requestUnmute(peer, source);
      return empty;
    },

    async listPeers(session, { limit }) {
      const { room, peer } = member(session);
      return { peers: room.listPeers(peer, limit ?? 200) };
    },

    async moderate(session, request) {
      const { room, peer } = member(session);
      if (request.action === 'mute' || request.action === 'unmute') await limits.take('trackControls', peer.id);
      await room.moderate(peer, request.action, 'peerId' in request ? request.peerId : undefined, 'source' in request ? request.source : undefined);
      return empty;
    },

    async 'media.started'(session, { afterMs }) {
      const { room, peer } = member(session);
      if (!room.policy.receives(peer.role)) throw new ChorusError('BAD_REQUEST', 'only receiving sessions report when their media started');
      if (peer.mediaStartReported) throw new ChorusError('BAD_REQUEST', 'this session already reported when its media started');
      peer.mediaStartReported = true;
      observeFirstMedia?.(afterMs / 1000);
      return empty;
    },

    async 'time.sync'(_session, { clientSentAt }, { receivedAt }) {
      return { ...(clientSentAt !== undefined ? { clientSentAt } : {}), receivedAt, sentAt: Date.now() };
    },

    async 'watch.control'(session, control) {
      const { room, peer } = member(session);
      return { state: await watch.control(room, peer, control) };
    },

    async 'watch.report'(session, report, { receivedAt }) {
      const { room, peer } = member(session);
      return watch.report(room, peer, report, receivedAt);
    },

    async leave(session) {
      const { room, peer } = member(session);
      session.room = undefined;
      session.peer = undefined;
      session.onLeft(room, peer);
      await room.leave(peer, 'left');
      return empty;
    },
  };
}
