/**
 * The media REST API's requests, defined once: the routes validate with these and the OpenAPI
 * document is generated from them. Bodies reuse the socket protocol's schemas, so a request means
 * the same over either.
 */
import { z } from 'zod';
import { grantSchema } from '../auth/tokens.js';
import { entityId } from '../protocol/media.js';
import { requests, roomId, roomKinds } from '../protocol/messages.js';

/** A gateway participant: its peer id, as the join answered. */
export const participantId = z.uuid().meta({ description: 'The participant (its peer id, from the join answer)' });

export const roomParams = z.strictObject({ roomId });
export const transportParams = z.strictObject({ roomId, transportId: entityId });
export const consumerParams = z.strictObject({ roomId, consumerId: entityId });
export const producerParams = z.strictObject({ roomId, producerId: entityId });
export const participantParams = z.strictObject({ roomId, participantId });
export const actingQuery = z.strictObject({ participantId });

export const createBody = z.strictObject({ kind: z.enum(roomKinds).meta({ description: 'The kind of room; a room keeps its kind' }) });

/**
 * A participant joins with its own join token (minted by the application or by `POST /api/tokens`),
 * or the key names one and the node mints its token (the key's tenant; the room's kind).
 */
export const joinBody = z.union([
  z.strictObject({ token: requests.join.shape.token, previousPeerId: entityId.optional() }),
  grantSchema.pick({ identity: true, role: true, name: true }).extend({ previousPeerId: entityId.optional() }),
]);

export const transportBody = requests.createTransport.extend({ participantId });
export const connectBody = requests.connectTransport.omit({ transportId: true }).extend({ participantId });
export const produceBody = requests.produce.omit({ transportId: true }).extend({ participantId });
export const consumeBody = requests.consume.extend({ participantId });
export const resumeBody = z.strictObject({ participantId });

export const errorBody = z
  .strictObject({ error: z.strictObject({ code: z.string(), message: z.string(), retryable: z.boolean(), retryAfterMs: z.number().optional(), redirectUrl: z.string().optional() }) })
  .meta({ id: 'Error', description: 'Every refusal: a stable code (the socket protocol\'s), a message, whether trying again may work' });
