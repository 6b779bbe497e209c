/**
 * The media REST API, for applications that keep their own signaling gateway and use Chorus as
 * the media server behind it (HTTP Basic with an API key; JSON bodies; the socket protocol's
 * error codes and statuses):
 *
 *   POST   /api/rooms/:roomId/create                              open a room of a kind; its RTP capabilities
 *   GET    /api/rooms/:roomId                                     the room: participants, tracks, nodes
 *   POST   /api/rooms/:roomId/participants                        join a participant (its token, or identity + role)
 *   POST   /api/rooms/:roomId/transports                          a WebRTC transport for a participant
 *   POST   /api/rooms/:roomId/transports/:transportId/connect     its DTLS parameters
 *   POST   /api/rooms/:roomId/transports/:transportId/produce     publish a track on it
 *   POST   /api/rooms/:roomId/consume                             receive a track
 *   POST   /api/rooms/:roomId/consumers/:consumerId/resume        start a consumer
 *   DELETE /api/rooms/:roomId/producers/:producerId?participantId= stop publishing a track
 *   POST   /api/rooms/:roomId/participants/:participantId/leave   the participant leaves
 *   GET    /api/rooms/:roomId/participants/:participantId/events  its room events (Server-Sent Events)
 *   GET    /api/openapi.json                                      this API, described
 *
 * Every participant request runs the same handler a socket's message does, so every rule of the
 * room's kind holds here too. In a cluster a room's REST participants live on the node holding
 * the room: a request reaching another node is redirected there (307).
 */
import { fastifySSE } from '@fastify/sse';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import type { ApiKey, ApiKeyring } from '../auth/apiKeys.js';
import type { TokenService } from '../auth/tokens.js';
import type { RoomAdmin } from '../admin/roomAdmin.js';
import { requireApiKey } from '../http/apiKeyAuth.js';
import { parse } from '../http/validate.js';
import type { Limits } from '../limits/limits.js';
import type { AuditSink } from '../observability/audit.js';
import { ChorusError } from '../protocol/errors.js';
import { wireLimits, type Method, type RequestOf } from '../protocol/messages.js';
import type { RoomManager } from '../rooms/roomManager.js';
import type { Handlers } from '../signaling/handlers.js';
import type { StateStore } from '../store/stateStore.js';
import {
  actingQuery,
  connectBody,
  consumeBody,
  consumerParams,
  createBody,
  joinBody,
  participantParams,
  produceBody,
  producerParams,
  resumeBody,
  roomParams,
  transportBody,
  transportParams,
} from './api.js';
import { gatewayDocument } from './openapi.js';
import type { GatewayParticipant, GatewayParticipants } from './participants.js';

export interface GatewayDeps {
  handlers: Handlers;
  participants: GatewayParticipants;
  rooms: RoomManager;
  admin: RoomAdmin;
  keys: ApiKeyring;
  tokens: TokenService;
  store: StateStore;
  limits: Limits;
  audit: AuditSink;
  nodeId: string;
  /** In a cluster: the URL of the node holding `roomId`, when that is not this node. */
  roomNode?: ((roomId: string) => Promise<string | undefined>) | undefined;
  /** Told of every protocol method run (the signaling request metrics). */
  observe?: ((method: string, seconds: number, code: string | undefined) => void) | undefined;
  /** Heartbeat comments on idle event streams (proxies cut silent connections). */
  heartbeatMs?: number | undefined;
}

export async function registerGatewayRoutes(app: FastifyInstance, deps: GatewayDeps): Promise<void> {
  const { handlers, participants, rooms, keys, tokens, limits } = deps;
  const document = gatewayDocument();

  /** Sends the request to the node holding the room; true when it did. */
  const redirected = async (request: FastifyRequest, reply: FastifyReply, roomId: string): Promise<boolean> => {
    const url = await deps.roomNode?.(roomId);
    if (!url) return false;
    await reply.redirect(`${url}${request.url}`, 307);
    return true;
  };

  /** The participant this key acts for, in this room; its request counted against its own rate. */
  const acting = async (key: ApiKey, roomId: string, participantId: string): Promise<GatewayParticipant> => {
    const participant = participants.get(participantId);
    // Another key's participant is as unknown as a made-up id.
    if (!participant || participant.tenant !== key.tenant || participant.room?.id !== roomId) {
      throw new ChorusError('NOT_FOUND', `no participant ${participantId} of this API key in room ${roomId}`);
    }
    participant.lastSeen = Date.now();
    await limits.take('messagesPerConnection', participant.id);
    return participant;
  };

  const context = (): { receivedAt: number } => ({ receivedAt: Date.now() });

  /** Runs a protocol method for a participant, counted in the signaling metrics as a socket's is. */
  const counted = async <T>(method: string, work: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    const done = (code: string | undefined): void => deps.observe?.(method, (performance.now() - started) / 1000, code);
    try {
      const result = await work();
      done(undefined);
      return result;
    } catch (error) {
      done(error instanceof ChorusError ? error.code : 'INTERNAL');
      throw error;
    }
  };

  await app.register(async (scope) => {
    await scope.register(fastifySSE, { heartbeatInterval: deps.heartbeatMs ?? 15_000 });
    const body = { bodyLimit: wireLimits.maxMessageBytes };

    scope.get('/api/openapi.json', async () => document);

    scope.post('/api/rooms/:roomId/create', body, async (request, reply) => {
      const key = requireApiKey(request, reply, keys);
      const { roomId } = parse(roomParams, request.params, 'path');
      const { kind } = parse(createBody, request.body, 'body');
      if (await redirected(request, reply, roomId)) return reply;
      const room = await rooms.open(roomId, kind, key);
      return { roomId: room.id, kind: room.kind, node: deps.nodeId, rtpCapabilities: room.media?.rtpCapabilities ?? null };
    });

    scope.get('/api/rooms/:roomId', async (request, reply) => {
      const key = requireApiKey(request, reply, keys);
      const { roomId } = parse(roomParams, request.params, 'path');
      return deps.admin.getRoom(key.tenant, roomId);
    });

    scope.post('/api/rooms/:roomId/participants', body, async (request, reply) => {
      const key = requireApiKey(request, reply, keys);
      const { roomId } = parse(roomParams, request.params, 'path');
      const join = parse(joinBody, request.body, 'body');
      if (await redirected(request, reply, roomId)) return reply;
      let token: string;
      if ('token' in join) {
        // A token of another tenant's key cannot be carried in by this one.
        const verified = await tokens.verify(join.token);
        if (verified.tenant !== key.tenant) throw new ChorusError('TOKEN_WRONG_ROOM', 'this token was signed by another tenant\'s key');
        token = join.token;
      } else {
        const kind = rooms.get(roomId)?.kind ?? (await deps.store.getRoom(roomId))?.kind;
        if (!kind) throw new ChorusError('NOT_FOUND', `no room ${roomId}: create it first`);
        await limits.take('tokensPerKey', key.id);
        const grant = { room: roomId, kind, identity: join.identity, role: join.role, ...(join.name ? { name: join.name } : {}) };
        const minted = await tokens.issue(grant, { keyId: key.id, ttlSeconds: 60 });
        deps.audit.record({ type: 'token.minted', keyId: key.id, room: roomId, identity: grant.identity, role: grant.role, tokenId: minted.tokenId, via: 'gateway' });
        token = minted.token;
      }
      const participant = participants.create(request.ip, key.id, key.tenant);
      try {
        const answer = await counted('join', () => handlers.join(participant, { roomId, token, ...(join.previousPeerId ? { previousPeerId: join.previousPeerId } : {}) }, context()));
        return await reply.status(201).send({ participantId: answer.peerId, ...answer });
      } catch (error) {
        participants.discard(participant);
        throw error;
      }
    });

    /**
     * A route acting for a participant: its path, then its body (the query for DELETE) naming the
     * participant, then the protocol method with the request `toRequest` makes of the two.
     */
    const actFor = <P extends { roomId: string }, I extends { participantId: string }, M extends Method>(
      verb: 'post' | 'delete',
      url: string,
      paramsSchema: z.ZodType<P>,
      inputSchema: z.ZodType<I>,
      method: M,
      toRequest: (params: P, input: Omit<I, 'participantId'>) => RequestOf<M>,
    ): void => {
      scope[verb](url, verb === 'post' ? body : {}, async (request, reply) => {
        const key = requireApiKey(request, reply, keys);
        const params = parse(paramsSchema, request.params, 'path');
        const { participantId, ...input } = verb === 'post' ? parse(inputSchema, request.body, 'body') : parse(inputSchema, request.query, 'query');
        if (await redirected(request, reply, params.roomId)) return reply;
        const participant = await acting(key, params.roomId, participantId);
        const run = handlers[method] as (session: GatewayParticipant, request: RequestOf<M>, context: { receivedAt: number }) => Promise<unknown>;
        return counted(method, () => run(participant, toRequest(params, input), context()));
      });
    };
    actFor('post', '/api/rooms/:roomId/transports', roomParams, transportBody, 'createTransport', (_, input) => input);
    actFor('post', '/api/rooms/:roomId/transports/:transportId/connect', transportParams, connectBody, 'connectTransport', ({ transportId }, input) => ({ transportId, ...input }));
    actFor('post', '/api/rooms/:roomId/transports/:transportId/produce', transportParams, produceBody, 'produce', ({ transportId }, input) => ({ transportId, ...input }));
    actFor('post', '/api/rooms/:roomId/consume', roomParams, consumeBody, 'consume', (_, input) => input);
    actFor('post', '/api/rooms/:roomId/consumers/:consumerId/resume', consumerParams, resumeBody, 'resumeConsumer', ({ consumerId }) => ({ consumerId }));
    actFor('delete', '/api/rooms/:roomId/producers/:producerId', producerParams, actingQuery, 'closeProducer', ({ producerId }) => ({ producerId }));

    scope.post('/api/rooms/:roomId/participants/:participantId/leave', body, async (request, reply) => {
      const key = requireApiKey(request, reply, keys);
      const { roomId, participantId } = parse(participantParams, request.params, 'path');
      if (await redirected(request, reply, roomId)) return reply;
      const participant = await acting(key, roomId, participantId);
      try {
        return await counted('leave', () => handlers.leave(participant, {}, context()));
      } finally {
        participants.discard(participant);
      }
    });

    scope.get('/api/rooms/:roomId/participants/:participantId/events', { sse: 'only' }, async (request, reply) => {
      const key = requireApiKey(request, reply, keys);
      const { roomId, participantId } = parse(participantParams, request.params, 'path');
      if (await redirected(request, reply, roomId)) return reply;
      const participant = await acting(key, roomId, participantId);
      const header = reply.sse.lastEventId;
      const lastId = header === null ? null : /^\d{1,15}$/.test(header) ? Number(header) : -1;
      // Taken and subscribed in one turn of the loop: nothing falls between the two, nothing twice.
      const backlog = lastId === -1 ? undefined : participant.since(lastId);
      let chain = Promise.resolve();
      const send = (message: { id?: string; event: string; data: unknown }): void => {
        chain = chain.then(() => reply.sse.send(message)).catch(() => undefined);
      };
      if (backlog) for (const e of backlog) send({ id: String(e.id), event: e.event, data: e.data });
      // Some events it asked to resume from are no longer kept: read the room again.
      else send({ event: 'stream:gap', data: { lastEventId: header } });
      reply.sse.keepAlive();
      const unsubscribe = participant.subscribe({
        event: (e) => send({ id: String(e.id), event: e.event, data: e.data }),
        end: () => void chain.then(() => reply.sse.close()),
      });
      reply.sse.onClose(unsubscribe);
      return reply;
    });
  });
}
