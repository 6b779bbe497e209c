/**
 * WHIP ingest (RFC 9725): an encoder or a page POSTs an SDP offer with a broadcaster's (or a
 * teacher's) join token as Bearer, and its audio and video become the room's publications:
 *
 *   POST    /whip/:roomId               application/sdp offer → 201, the answer, Location
 *   PATCH   /whip/:roomId/:sessionId    application/trickle-ice-sdpfrag: candidates (204), or an ICE restart (200, the node's new credentials)
 *   DELETE  /whip/:roomId/:sessionId    ends the session (its tracks end for everyone)
 *
 * WHEP playback: a player POSTs a receive-only offer with a listener's (or a student's) token and
 * gets the room's published tracks: a broadcast's audio, a class's stage (the screen share when
 * one is live, else the camera, and the microphone). `/whep/:roomId/:sessionId` takes the same
 * PATCH and DELETE. A player is a listener like any: counted, recorded, removed when its media dies.
 *
 * A session is a participant of the room like an SDK publisher: the same protocol handlers join
 * it, open its transport and produce its tracks, so the room's rules hold (one broadcaster seat,
 * grants, limits, records, cascade, HLS). Its client makes no request while it streams: it lives
 * as long as its media does. The node is ICE-lite: it needs no candidate from the client.
 */
import { randomUUID } from 'node:crypto';
import { getSupportedRtpCapabilities, type types } from 'mediasoup';
import { routerCodecs } from '../media/codecs.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TokenService, VerifiedGrant } from '../auth/tokens.js';
import type { Responses, Role } from '../protocol/messages.js';
import type { ParticipantInfo, TrackInfo } from '../protocol/room.js';
import type { GatewayParticipant, GatewayParticipants } from '../gateway/participants.js';
import { acceptSending, consumerAnswer, extensionClash, parseOffer, receivingCapabilities, SdpError, writeAnswer, type AnsweredSection, type AnswerTransport, type OfferSection, type ParsedOffer } from '../media/sdp.js';
import { ChorusError } from '../protocol/errors.js';
import { requests, roomId as roomIdSchema, wireLimits } from '../protocol/messages.js';
import { parse } from '../http/validate.js';
import { payloadProfile } from '../media/payloadProfile.js';
import type { RoomManager } from '../rooms/roomManager.js';
import type { Handlers } from '../signaling/handlers.js';
import type { StateStore } from '../store/stateStore.js';
import { z } from 'zod';

export interface WhipDeps {
  handlers: Handlers;
  participants: GatewayParticipants;
  tokens: TokenService;
  rooms: RoomManager;
  store: StateStore;
  /**
   * Whether the workers send each consumer's packets under the header extension ids its offer
   * gave (patch 002 of scripts/mediasoup/patches). Without it, a section whose MID id the node's
   * packets use for another extension is declined (see extensionClash).
   */
  renumbersExtensions: () => boolean;
}

const sessionParams = z.strictObject({ roomId: roomIdSchema, sessionId: z.uuid() });
const roomParams = z.strictObject({ roomId: roomIdSchema });

/** The join token from `Authorization: Bearer <token>`. */
function bearer(request: FastifyRequest, reply: FastifyReply): string {
  const match = /^Bearer ([A-Za-z0-9._~+/=-]{1,4096})$/.exec(request.headers.authorization ?? '');
  if (!match?.[1]) {
    void reply.header('www-authenticate', 'Bearer realm="chorus"');
    throw new ChorusError('UNAUTHORIZED', 'a join token is required (Authorization: Bearer <token>)');
  }
  return match[1];
}

function requireType(request: FastifyRequest, type: string, why: string): void {
  if (request.headers['content-type']?.split(';')[0]?.trim() !== type) throw new ChorusError('BAD_REQUEST', why);
}

/** ICE servers as RFC 9725 Link headers (TURN credentials are the session's own, short-lived). */
function linkHeaders(servers: Array<{ urls: string[]; username?: string; credential?: string }>): string[] {
  return servers.flatMap((s) =>
    s.urls.map((url) => {
      const credentials = s.username && s.credential ? `; username="${s.username}"; credential="${s.credential}"; credential-type="password"` : '';
      return `<${url}>; rel="ice-server"${credentials}`;
    }),
  );
}

/**
 * A request made of what an offer said, checked by the protocol's own schema as a socket message
 * would be: what the offer carried that the protocol refuses (an over-long parameter, too many
 * codecs) is the offer's fault, a 400, not the node's.
 */
function checked<T>(schema: z.ZodType<T>, value: unknown, section: OfferSection): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new SdpError('BAD_REQUEST', `${section.kind} section ${section.mid}: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
}

/** Who may publish over WHIP, and who may play over WHEP. */
const publishers: readonly Role[] = ['broadcaster', 'teacher', 'assistant'];
const players: readonly Role[] = ['listener', 'student'];

/**
 * What a player is given of a room, in order of preference for its one audio and one video
 * section: the teacher's before anyone else's, and of each a screen share before the camera.
 */
function stageTracks(participants: ParticipantInfo[]): TrackInfo[] {
  const roles = ['teacher', 'assistant', 'broadcaster'];
  const sources = ['screen', 'camera', 'microphone', 'screen-audio'];
  const rank = (order: string[], value: string): number => (order.includes(value) ? order.indexOf(value) : order.length);
  return participants
    .flatMap((p) => p.tracks.map((track) => ({ track, role: p.role })))
    .sort((a, b) => rank(roles, a.role) - rank(roles, b.role) || rank(sources, a.track.source) - rank(sources, b.track.source))
    .map((entry) => entry.track);
}

/** A new version of a session, its client's ICE credentials being `ufrag`: its ETag. */
function version(participant: GatewayParticipant, ufrag: string): string {
  participant.ice = { ufrag, etag: `"${randomUUID()}"` };
  return participant.ice.etag;
}

export function registerWhipRoutes(app: FastifyInstance, deps: WhipDeps): void {
  const { handlers, participants, tokens } = deps;
  const context = (): { receivedAt: number } => ({ receivedAt: Date.now() });
  const limit = { bodyLimit: wireLimits.maxMessageBytes };
  // What every room's router takes (the same codecs everywhere), to check an offer before joining.
  const capabilities = { codecs: routerCodecs() as types.RtpCodecCapability[], headerExtensions: getSupportedRtpCapabilities().headerExtensions };
  for (const type of ['application/sdp', 'application/trickle-ice-sdpfrag']) {
    app.addContentTypeParser(type, { parseAs: 'string', bodyLimit: wireLimits.maxMessageBytes }, (_request, body, done) => done(null, body));
  }

  /** Refuses a token whose role is not one of `roles`, before anything is joined. */
  const allowed = async (token: string, roles: readonly Role[], why: string): Promise<VerifiedGrant> => {
    const grant = await tokens.verify(token);
    if (!roles.includes(grant.role)) throw new ChorusError('FORBIDDEN_ROLE', `${why}, not a ${grant.role}'s`);
    return grant;
  };

  /** Whether a receiving section offers a codec the node sends. */
  const playable = (section: OfferSection): boolean => {
    const offered = receivingCapabilities(section).codecs ?? [];
    return offered.some((o) => capabilities.codecs.some((c) => c.kind === o.kind && c.mimeType.toLowerCase() === o.mimeType.toLowerCase() && c.clockRate === o.clockRate));
  };

  /**
   * Whether a room plays nothing for sure, as far as this node can tell without joining: no room
   * anywhere, or a broadcast here that is not live. (A class's stage may be on another node: that
   * is found out by joining.)
   */
  const nothingYet = async (roomId: string): Promise<boolean> => {
    const room = deps.rooms.get(roomId);
    if (!room) return (await deps.store.getRoom(roomId)) === undefined;
    return room.kind === 'broadcast' && !(await room.broadcastState()).live;
  };

  /** The session this token's holder may act on: its own, in this room. */
  const owned = async (request: FastifyRequest, reply: FastifyReply, what: 'WHIP' | 'WHEP'): Promise<GatewayParticipant> => {
    const { roomId, sessionId } = parse(sessionParams, request.params, 'path');
    const grant = await tokens.verify(bearer(request, reply));
    const participant = participants.get(sessionId);
    // Someone else's session is as unknown as one that never was.
    // (A WHIP session is not reached by its WHEP path, nor the other way.)
    if (!participant?.heldByMedia || participant.keyId !== what.toLowerCase() || participant.room?.id !== roomId || participant.peer?.identity !== grant.identity || grant.room !== roomId) {
      throw new ChorusError('NOT_FOUND', `no ${what} session ${sessionId} of yours in room ${roomId}`);
    }
    return participant;
  };

  /**
   * A new WHIP or WHEP session: `setup` joins it and makes its media. Answers `201` with the SDP
   * answer, its resource, its version and its ICE servers; on any failure undoes everything it
   * made (the session leaves, nothing stays) and lets the error answer.
   */
  const establish = async (
    request: FastifyRequest,
    reply: FastifyReply,
    prefix: 'whip' | 'whep',
    roomId: string,
    offer: ParsedOffer,
    setup: (participant: GatewayParticipant) => Promise<{ joined: Responses['join']; transport: Responses['createTransport']; answered: AnsweredSection[] }>,
  ): Promise<FastifyReply> => {
    const participant = participants.create(request.ip, prefix, prefix);
    participant.heldByMedia = true;
    try {
      const { joined, transport, answered } = await setup(participant);
      // The wire's transport is mediasoup's, typed loosely for clients.
      const answer = writeAnswer(offer, transport as unknown as AnswerTransport, answered);
      for (const link of linkHeaders(joined.iceServers)) void reply.header('link', link);
      return await reply
        .status(201)
        .header('content-type', 'application/sdp')
        .header('location', `/${prefix}/${roomId}/${joined.peerId}`)
        .header('etag', version(participant, offer.iceParameters.usernameFragment))
        .send(answer);
    } catch (error) {
      const { room, peer } = participant;
      participants.discard(participant);
      if (room && peer && !peer.closed) await room.leave(peer, 'left').catch(() => undefined);
      throw error;
    }
  };

  /** What a POST brings: its room, its bearer token (of one of `roles`) and its offer, checked. */
  const offered = async (request: FastifyRequest, reply: FastifyReply, roles: readonly Role[], why: string): Promise<{ roomId: string; token: string; offer: ParsedOffer }> => {
    const { roomId } = parse(roomParams, request.params, 'path');
    const token = bearer(request, reply);
    requireType(request, 'application/sdp', 'the offer must be sent as application/sdp');
    const offer = parseOffer(String(request.body ?? ''));
    await allowed(token, roles, why);
    return { roomId, token, offer };
  };

  app.post('/whip/:roomId', limit, async (request, reply) => {
    const { roomId, token, offer } = await offered(request, reply, publishers, 'WHIP takes a broadcaster\'s or a teacher\'s token');
    const sending = offer.sections.filter((s) => s.direction === 'sendonly' || s.direction === 'sendrecv');
    if (sending.length === 0) throw new SdpError('BAD_REQUEST', 'the offer sends nothing (WHIP sections are sendonly)');
    // Every section is checked before anything is joined: a bad offer changes nothing.
    for (const section of sending) acceptSending(section, capabilities);
    return establish(request, reply, 'whip', roomId, offer, async (participant) => {
      const joined = await handlers.join(participant, { roomId, token, transport: {} }, context());
      const transport = joined.transport;
      if (!transport || transport.direction !== 'send') throw new ChorusError('FORBIDDEN_ROLE', `a ${joined.role} does not publish: WHIP takes a broadcaster's or a teacher's token`);
      const router = joined.routerRtpCapabilities as Parameters<typeof acceptSending>[1];
      await handlers.connectTransport(participant, { transportId: transport.id, dtlsParameters: offer.dtlsParameters as never }, context());
      const answered: AnsweredSection[] = [];
      for (const section of offer.sections) {
        if (!sending.includes(section)) {
          answered.push({ section });
          continue;
        }
        const accepted = acceptSending(section, router);
        const produce = checked(requests.produce, { transportId: transport.id, kind: section.kind, rtpParameters: accepted.rtpParameters, source: section.kind === 'audio' ? 'microphone' : 'camera' }, section);
        try {
          await handlers.produce(participant, produce, context());
          // A broadcast asks for longer audio packets; a sender that reads `a=ptime` (libwebrtc does) follows.
          answered.push({ section, accepted, ...(section.kind === 'audio' && joined.opus ? { ptimeMs: joined.opus.frameMs } : {}) });
        } catch (error) {
          // Video where the room takes only audio (a broadcast from OBS): that section is declined.
          if (section.kind === 'video' && error instanceof ChorusError && error.code !== 'INTERNAL') {
            answered.push({ section });
            continue;
          }
          throw error;
        }
      }
      if (!answered.some((a) => a.accepted)) throw new SdpError('MEDIA_REJECTED', 'nothing in the offer could be published in this room');
      return { joined, transport, answered };
    });
  });

  app.post('/whep/:roomId', limit, async (request, reply) => {
    const { roomId, token, offer } = await offered(request, reply, players, 'WHEP takes a listener\'s or a student\'s token');
    const receiving = offer.sections.filter((s) => s.direction === 'recvonly' || s.direction === 'sendrecv');
    if (receiving.length === 0) throw new SdpError('BAD_REQUEST', 'the offer receives nothing (WHEP sections are recvonly)');
    for (const section of receiving) if (!playable(section)) throw new SdpError('MEDIA_REJECTED', `${section.kind} section ${section.mid}: none of its codecs is one the node sends`);
    const renumbers = deps.renumbersExtensions();
    const clashes = new Map(receiving.map((section) => [section, renumbers ? undefined : extensionClash(offer, section.kind)]));
    const clash = [...clashes.values()].find(Boolean);
    if (clash && [...clashes.values()].every(Boolean)) throw new SdpError('MEDIA_REJECTED', `the node cannot send this player anything it can read: ${clash}`);
    // Refused before joining when it is plain nothing plays yet, so the player's token is not spent.
    if (await nothingYet(roomId)) throw new ChorusError('NOTHING_TO_CONSUME', 'nothing is published in this room yet');
    return establish(request, reply, 'whep', roomId, offer, async (participant) => {
      const joined = await handlers.join(participant, { roomId, token }, context());
      // The player's transport is on a router that numbers the codecs as its offer does.
      const offered = receiving.flatMap((section) => receivingCapabilities(section).codecs ?? []);
      participant.payloadProfile = payloadProfile(offered, joined.routerRtpCapabilities as types.RtpCapabilities);
      const transport = await handlers.createTransport(participant, { direction: 'recv' }, context());
      await handlers.connectTransport(participant, { transportId: transport.id, dtlsParameters: offer.dtlsParameters as never }, context());
      const tracks = stageTracks(joined.room.participants);
      const { room, peer } = participant;
      if (!room || !peer) throw new ChorusError('NOT_JOINED', 'the session ended while joining');
      const answered: AnsweredSection[] = [];
      const given = new Set<string>();
      // A broadcast's audio is consumed as the room's broadcast, whichever producer it is now.
      let broadcastAudio = joined.kind === 'broadcast' && joined.broadcast.live;
      for (const section of offer.sections) {
        const track = clashes.get(section) === undefined && receiving.includes(section) ? tracks.find((t) => t.kind === section.kind && !given.has(t.trackId)) : undefined;
        const broadcast = !track && broadcastAudio && section.kind === 'audio' && receiving.includes(section) && clashes.get(section) === undefined;
        if (!track && !broadcast) {
          if (clashes.get(section)) request.log.info({ room: roomId, mid: section.mid, why: clashes.get(section) }, 'WHEP section declined');
          answered.push({ section });
          continue;
        }
        if (track) given.add(track.trackId);
        else broadcastAudio = false;
        const { rtpCapabilities } = checked(requests.consume, { transportId: transport.id, rtpCapabilities: receivingCapabilities(section) }, section);
        // The stream's MID is the section's, so a player that reads MID finds it.
        const consumer = await room.consume(peer, transport.id, track?.trackId, rtpCapabilities as types.RtpCapabilities, false, section.mid);
        if (consumer.paused) await handlers.resumeConsumer(participant, { consumerId: consumer.id }, context());
        answered.push({ section, ...consumerAnswer(consumer.rtpParameters) });
      }
      if (!answered.some((a) => a.accepted)) {
        if (clash) throw new SdpError('MEDIA_REJECTED', `what this room plays cannot be sent to this player: ${clash}`);
        throw new ChorusError('NOTHING_TO_CONSUME', 'nothing the offer can receive is published in this room yet');
      }
      return { joined, transport, answered };
    });
  });

  for (const [prefix, what] of [['whip', 'WHIP'], ['whep', 'WHEP']] as const) {
    app.delete(`/${prefix}/:roomId/:sessionId`, async (request, reply) => {
      const participant = await owned(request, reply, what);
      try {
        await handlers.leave(participant, {}, context());
      } finally {
        participants.discard(participant);
      }
      return reply.status(200).send();
    });

    app.patch(`/${prefix}/:roomId/:sessionId`, limit, async (request, reply) => {
      const participant = await owned(request, reply, what);
      requireType(request, 'application/trickle-ice-sdpfrag', 'a PATCH carries application/trickle-ice-sdpfrag');
      const fragment = String(request.body ?? '');
      const ufrag = /^a=ice-ufrag:(\S+)\r?$/m.exec(fragment)?.[1];
      const transport = [...(participant.peer?.transports.values() ?? [])][0];
      if (!transport) throw new ChorusError('NOT_FOUND', 'this session has no transport');
      // A client names the version it patches (`*` for an ICE restart, which makes a new one).
      const match = request.headers['if-match'];
      if (match !== undefined && match !== '*' && match !== participant.ice?.etag) {
        throw new ChorusError('PRECONDITION_FAILED', `this session is at version ${participant.ice?.etag ?? 'unknown'}, not ${match}`);
      }
      // Credentials other than the client's current ones: an ICE restart. (A trickle carries the
      // current ones.) The node answers with its own new credentials and candidates.
      if (ufrag !== undefined && ufrag !== participant.ice?.ufrag) {
        const restarted = await handlers.restartIce(participant, { transportId: transport.id }, context());
        const ice = restarted.iceParameters as { usernameFragment: string; password: string };
        // The candidates again: a client may drop the old ones with the old credentials (RFC 9725 4.3.1).
        const candidates = transport.iceCandidates.map((c) => `a=candidate:${c.foundation} 1 ${c.protocol} ${c.priority} ${c.address} ${c.port} typ ${c.type}${c.tcpType ? ` tcptype ${c.tcpType}` : ''}\r\n`);
        return reply
          .status(200)
          .header('content-type', 'application/trickle-ice-sdpfrag')
          .header('etag', version(participant, ufrag))
          .send(`a=ice-lite\r\na=ice-ufrag:${ice.usernameFragment}\r\na=ice-pwd:${ice.password}\r\n${candidates.join('')}a=end-of-candidates\r\n`);
      }
      // Trickled candidates: the node is ICE-lite and learns the client's addresses from its checks.
      return reply.status(204).send();
    });
  }
}
