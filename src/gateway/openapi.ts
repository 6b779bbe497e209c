/**
 * The media REST API as an OpenAPI 3.1 document, generated from the same zod schemas the routes
 * validate with (served at /api/openapi.json).
 */
import { z } from 'zod';
import { createDocument, type ZodOpenApiOperationObject, type ZodOpenApiPathsObject } from 'zod-openapi';
import { PROTOCOL_VERSION } from '../protocol/messages.js';
import {
  actingQuery,
  connectBody,
  consumeBody,
  consumerParams,
  createBody,
  errorBody,
  joinBody,
  participantParams,
  produceBody,
  producerParams,
  resumeBody,
  roomParams,
  transportBody,
  transportParams,
} from './api.js';

const json = (schema: z.ZodType) => ({ content: { 'application/json': { schema } } });
const answer = (description: string) => ({ description, ...json(z.looseObject({})) });
const refusals = {
  '400': { description: 'A malformed path, query or body (BAD_REQUEST)', ...json(errorBody) },
  '401': { description: 'No or a wrong API key (UNAUTHORIZED), or a bad join token', ...json(errorBody) },
  '403': { description: 'Another tenant\'s room or token (TOKEN_WRONG_ROOM), or the role may not do this (FORBIDDEN_ROLE)', ...json(errorBody) },
  '404': { description: 'No such room, participant (of this key), transport, producer or consumer', ...json(errorBody) },
  '409': { description: 'A state that refuses it (NOT_JOINED, ALREADY_JOINED, a seat taken)', ...json(errorBody) },
  '413': { description: 'A body over 64 KiB (LIMIT_REACHED)', ...json(errorBody) },
  '429': { description: 'Over a rate limit (LIMIT_REACHED, with retryAfterMs)', ...json(errorBody) },
};
const redirect = { '307': { description: 'The room is held by another node of the cluster: the same request there (Location)' } };

function op(summary: string, parts: Omit<ZodOpenApiOperationObject, 'responses' | 'summary'> & { ok?: ZodOpenApiOperationObject['responses'] }): ZodOpenApiOperationObject {
  const { ok, ...rest } = parts;
  return { summary, ...rest, responses: { ...(ok ?? { '200': answer('Done: the socket protocol\'s answer to the same request') }), ...redirect, ...refusals } };
}

export function gatewayDocument(): ReturnType<typeof createDocument> {
  const paths: ZodOpenApiPathsObject = {
    '/api/rooms/{roomId}/create': {
      post: op('Open a room of a kind (or find it open); its router\'s RTP capabilities', {
        requestParams: { path: roomParams },
        requestBody: json(createBody),
        ok: { '200': answer('`{roomId, kind, node, rtpCapabilities}`') },
      }),
    },
    '/api/rooms/{roomId}': {
      get: op('The room: its participants and their tracks, the nodes serving it', { requestParams: { path: roomParams } }),
    },
    '/api/rooms/{roomId}/participants': {
      post: op('Join a participant: with its join token, or an identity and role the node mints a token for', {
        requestParams: { path: roomParams },
        requestBody: json(joinBody),
        ok: { '201': answer('The join answer (`participantId` = `peerId`, routerRtpCapabilities, the room, ICE servers)') },
      }),
    },
    '/api/rooms/{roomId}/transports': {
      post: op('A WebRTC transport for the participant (send or receive, as its role allows)', { requestParams: { path: roomParams }, requestBody: json(transportBody) }),
    },
    '/api/rooms/{roomId}/transports/{transportId}/connect': {
      post: op('Connect the transport with the participant\'s DTLS parameters', { requestParams: { path: transportParams }, requestBody: json(connectBody) }),
    },
    '/api/rooms/{roomId}/transports/{transportId}/produce': {
      post: op('Publish a track on the transport', { requestParams: { path: transportParams }, requestBody: json(produceBody) }),
    },
    '/api/rooms/{roomId}/consume': {
      post: op('Receive a track (video starts paused: resume it)', { requestParams: { path: roomParams }, requestBody: json(consumeBody) }),
    },
    '/api/rooms/{roomId}/consumers/{consumerId}/resume': {
      post: op('Start a consumer', { requestParams: { path: consumerParams }, requestBody: json(resumeBody) }),
    },
    '/api/rooms/{roomId}/producers/{producerId}': {
      delete: op('Stop publishing a track', { requestParams: { path: producerParams, query: actingQuery } }),
    },
    '/api/rooms/{roomId}/participants/{participantId}/leave': {
      post: op('The participant leaves', { requestParams: { path: participantParams } }),
    },
    '/api/rooms/{roomId}/participants/{participantId}/events': {
      get: op('The participant\'s room events as Server-Sent Events (`event:` the socket event\'s name, `data:` its JSON); Last-Event-ID resumes', {
        requestParams: { path: participantParams, header: z.strictObject({ 'last-event-id': z.string().max(32).optional() }) },
        ok: { '200': { description: 'An event stream; `stream:gap` when events it asked to resume from are no longer kept', content: { 'text/event-stream': { schema: z.string() } } } },
      }),
    },
  };
  return createDocument({
    openapi: '3.1.0',
    info: { title: 'Chorus media REST API', version: String(PROTOCOL_VERSION), description: 'For applications that keep their own signaling gateway. HTTP Basic with an API key id and secret.' },
    components: { securitySchemes: { apiKey: { type: 'http', scheme: 'basic' } } },
    security: [{ apiKey: [] }],
    paths,
  });
}
