/**
 * WHIP ingest (RFC 9725): an encoder or a page POSTs an SDP offer with a broadcaster's (or a
 * teacher's) join token as Bearer, and its audio and video become the room's publications:
 *
 *   POST    /whip/:roomId               application/sdp offer → 201, the answer, Location
 *   PATCH   /whip/:roomId/:sessionId    application/trickle-ice-sdpfrag: candidates (204), or an ICE restart (200, the node's new credentials)
 *   DELETE  /whip/:roomId/:sessionId    ends the session (its tracks end for everyone)
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
import type { TokenService } from '../auth/tokens.js';
import type { GatewayParticipant, GatewayParticipants } from '../gateway/participants.js';
import { acceptSending, parseOffer, SdpError, writeAnswer, type AnsweredSection, type OfferSection } from '../media/sdp.js';
import type { Role } from '../protocol/messages.js';
import { ChorusError } from '../protocol/errors.js';
import { requests, roomId as roomIdSchema, wireLimits } from '../protocol/messages.js';
import { parse } from '../http/validate.js';
import type { Handlers } from '../signaling/handlers.js';
import { z } from 'zod';

export interface WhipDeps {
  handlers: Handlers;
  participants: GatewayParticipants;
  tokens: TokenService;
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

/** Who may publish over WHIP. */
const publishers: readonly Role[] = ['broadcaster', 'teacher', 'assistant'];

export function registerWhipRoutes(app: FastifyInstance, deps: WhipDeps): void {
  const { handlers, participants, tokens } = deps;
  const context = (): { receivedAt: number } => ({ receivedAt: Date.now() });
  const limit = { bodyLimit: wireLimits.maxMessageBytes };
  // What every room's router takes (the same codecs everywhere), to check an offer before joining.
  const capabilities = { codecs: routerCodecs() as types.RtpCodecCapability[], headerExtensions: getSupportedRtpCapabilities().headerExtensions };
  for (const type of ['application/sdp', 'application/trickle-ice-sdpfrag']) {
    app.addContentTypeParser(type, { parseAs: 'string', bodyLimit: wireLimits.maxMessageBytes }, (_request, body, done) => done(null, body));
  }

  /** The session this token's holder may act on: its own, in this room. */
  const owned = async (request: FastifyRequest, reply: FastifyReply): Promise<GatewayParticipant> => {
    const { roomId, sessionId } = parse(sessionParams, request.params, 'path');
    const grant = await tokens.verify(bearer(request, reply));
    const participant = participants.get(sessionId);
    // Someone else's session is as unknown as one that never was.
    if (!participant?.heldByMedia || participant.room?.id !== roomId || participant.peer?.identity !== grant.identity || grant.room !== roomId) {
      throw new ChorusError('NOT_FOUND', `no WHIP session ${sessionId} of yours in room ${roomId}`);
    }
    return participant;
  };

  app.post('/whip/:roomId', limit, async (request, reply) => {
    const { roomId } = parse(roomParams, request.params, 'path');
    const token = bearer(request, reply);
    requireType(request, 'application/sdp', 'the offer must be sent as application/sdp');
    const offer = parseOffer(String(request.body ?? ''));
    // Refused before joining: the token is not spent, and the records see nothing of it.
    const grant = await tokens.verify(token);
    if (!publishers.includes(grant.role)) throw new ChorusError('FORBIDDEN_ROLE', `WHIP takes a broadcaster's or a teacher's token, not a ${grant.role}'s`);
    const sending = offer.sections.filter((s) => s.direction === 'sendonly' || s.direction === 'sendrecv');
    if (sending.length === 0) throw new SdpError('BAD_REQUEST', 'the offer sends nothing (WHIP sections are sendonly)');
    // Every section is checked before anything is joined: a bad offer changes nothing.
    for (const section of sending) acceptSending(section, capabilities);
    const participant = participants.create(request.ip, 'whip', 'whip');
    participant.heldByMedia = true;
    try {
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
          answered.push({ section, accepted });
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
      const answer = writeAnswer(offer, transport as never, answered);
      for (const link of linkHeaders(joined.iceServers)) void reply.header('link', link);
      return await reply
        .status(201)
        .header('content-type', 'application/sdp')
        .header('location', `/whip/${roomId}/${joined.peerId}`)
        .header('etag', `"${randomUUID()}"`)
        .send(answer);
    } catch (error) {
      const { room, peer } = participant;
      participants.discard(participant);
      if (room && peer && !peer.closed) await room.leave(peer, 'left').catch(() => undefined);
      throw error;
    }
  });

  app.delete('/whip/:roomId/:sessionId', async (request, reply) => {
    const participant = await owned(request, reply);
    try {
      await handlers.leave(participant, {}, context());
    } finally {
      participants.discard(participant);
    }
    return reply.status(200).send();
  });

  app.patch('/whip/:roomId/:sessionId', limit, async (request, reply) => {
    const participant = await owned(request, reply);
    requireType(request, 'application/trickle-ice-sdpfrag', 'a PATCH carries application/trickle-ice-sdpfrag');
    const fragment = String(request.body ?? '');
    const ufrag = /^a=ice-ufrag:(\S+)\r?$/m.exec(fragment)?.[1];
    const transport = [...(participant.peer?.transports.values() ?? [])][0];
    if (!transport) throw new ChorusError('NOT_FOUND', 'this session has no transport');
    // New credentials from the client: an ICE restart. The node answers with its own new ones.
    if (ufrag) {
      const restarted = await handlers.restartIce(participant, { transportId: transport.id }, context());
      const ice = restarted.iceParameters as { usernameFragment: string; password: string };
      return reply.status(200).header('content-type', 'application/trickle-ice-sdpfrag').send(`a=ice-lite\r\na=ice-ufrag:${ice.usernameFragment}\r\na=ice-pwd:${ice.password}\r\n`);
    }
    // Trickled candidates: the node is ICE-lite and learns the client's addresses from its checks.
    return reply.status(204).send();
  });
}
