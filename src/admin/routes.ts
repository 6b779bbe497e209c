/**
 * The admin API over HTTP, for an operator's backend holding an API key (HTTP Basic):
 *
 *   GET    /api/admin/rooms                                   rooms with peer counts per node
 *   GET    /api/admin/rooms/:roomId                           one room and its participants
 *   DELETE /api/admin/rooms/:roomId                           close the room everywhere
 *   DELETE /api/admin/rooms/:roomId/participants/:peerId      remove a session
 *   POST   /api/admin/rooms/:roomId/participants/:peerId/mute {"muted": true|false, "source"?: "camera"|...}
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ApiKeyring } from '../auth/apiKeys.js';
import { requireApiKey } from '../http/apiKeyAuth.js';
import { parse } from '../http/validate.js';
import { ChorusError } from '../protocol/errors.js';
import { roomId } from '../protocol/messages.js';
import { trackSource } from '../protocol/room.js';
import type { RoomAdmin } from './roomAdmin.js';

const roomParams = z.strictObject({ roomId });
const peerParams = z.strictObject({ roomId, peerId: z.uuid() });
const muteBody = z.strictObject({ muted: z.boolean().default(true), source: trackSource.optional() });


export function registerAdminRoutes(app: FastifyInstance, admin: RoomAdmin, keys: ApiKeyring): void {
  app.get('/api/admin/rooms', async (request, reply) => {
    const key = requireApiKey(request, reply, keys);
    return admin.listRooms(key.tenant);
  });

  app.get('/api/admin/rooms/:roomId', async (request, reply) => {
    const key = requireApiKey(request, reply, keys);
    const { roomId: id } = parse(roomParams, request.params, 'path');
    return admin.getRoom(key.tenant, id);
  });

  app.delete('/api/admin/rooms/:roomId', async (request, reply) => {
    const key = requireApiKey(request, reply, keys);
    const { roomId: id } = parse(roomParams, request.params, 'path');
    return { closed: true, ...(await admin.closeRoom(key.tenant, id, `api:${key.id}`)) };
  });

  app.delete('/api/admin/rooms/:roomId/participants/:peerId', async (request, reply) => {
    const key = requireApiKey(request, reply, keys);
    const p = parse(peerParams, request.params, 'path');
    await admin.removePeer(key.tenant, p.roomId, p.peerId, `api:${key.id}`);
    return { removed: true };
  });

  app.post('/api/admin/rooms/:roomId/participants/:peerId/mute', async (request, reply) => {
    const key = requireApiKey(request, reply, keys);
    const p = parse(peerParams, request.params, 'path');
    const { muted, source } = parse(muteBody, request.body, 'body');
    await admin.mutePeer(key.tenant, p.roomId, p.peerId, muted, `api:${key.id}`, source);
    return { muted, ...(source ? { source } : {}) };
  });
}
