/**
 * Class recordings over HTTP:
 *
 *   GET /recordings/:roomId/:recordingId/index.m3u8   the playlist (live while recording, then the replay)
 *   GET /recordings/:roomId/:recordingId/seg-N.ts     its segments
 *   GET /api/admin/recordings                         the API key's recordings (HTTP Basic)
 *
 * Playing takes a token of that room (any role; `?token=` or `Authorization: Bearer`) or the
 * API key of the room's tenant. A recording is served by the node that made it (the list says
 * which); elsewhere it is NOT_FOUND. As for HLS, a request refused before its credentials are
 * accepted costs its address a point of the HTTP budget; accepted ones do not (a school's
 * students behind one address replay the same class).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ApiKeyring } from '../auth/apiKeys.js';
import type { TokenService } from '../auth/tokens.js';
import { basicCredentials, requireApiKey } from '../http/apiKeyAuth.js';
import { ChorusError } from '../protocol/errors.js';
import { roomId } from '../protocol/messages.js';
import type { Recordings } from './recordings.js';
import { PLAYLIST, recordingFile } from './stageRun.js';

export interface RecordingRouteDeps {
  recordings: Recordings;
  tokens: TokenService;
  keys: ApiKeyring;
  nodeId: string;
  chargeRefused?(ip: string): Promise<void>;
}

const params = z.strictObject({
  roomId,
  recordingId: z.uuid(),
  file: z.string().regex(recordingFile, 'not a recording file: expected index.m3u8 or seg-N.ts'),
});
const query = z.object({ token: z.string().min(1).max(4096).optional() });

function bearer(header: string | undefined): string | undefined {
  return /^Bearer ([A-Za-z0-9._~+/=-]{1,4096})$/.exec(header ?? '')?.[1];
}

export function registerRecordingRoutes(app: FastifyInstance, deps: RecordingRouteDeps): void {
  /** The tenant whose recordings these credentials may play, and the token to carry in segment addresses. */
  const admit = async (request: FastifyRequest, room: string): Promise<{ tenant: string; carry?: string | undefined }> => {
    const parsedQuery = query.safeParse(request.query ?? {});
    if (!parsedQuery.success) throw new ChorusError('BAD_REQUEST', 'token: one token, 1-4096 characters');
    const token = parsedQuery.data.token ?? bearer(request.headers.authorization);
    if (token) {
      const grant = await deps.tokens.verify(token);
      if (grant.room !== room) throw new ChorusError('TOKEN_WRONG_ROOM', 'token is for another room');
      return { tenant: grant.tenant, carry: parsedQuery.data.token };
    }
    const credentials = basicCredentials(request.headers.authorization);
    const key = credentials && deps.keys.authenticate(credentials.id, credentials.secret);
    if (!key) throw new ChorusError('UNAUTHORIZED', 'a room token (?token= or Authorization: Bearer) or an API key (HTTP Basic) is required');
    return { tenant: key.tenant };
  };

  app.get('/recordings/:roomId/:recordingId/:file', { logLevel: 'warn' }, async (request, reply) => {
    const parsed = params.safeParse(request.params);
    let admitted: { tenant: string; carry?: string | undefined };
    try {
      if (!parsed.success) throw new ChorusError('BAD_REQUEST', `path ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
      admitted = await admit(request, parsed.data.roomId);
    } catch (refusal) {
      await deps.chargeRefused?.(request.ip);
      throw refusal;
    }
    const { roomId: room, recordingId, file } = parsed.data;
    const info = await deps.recordings.find(admitted.tenant, room, recordingId);
    if (!info) throw new ChorusError('NOT_FOUND', `no recording ${recordingId} of room ${room}`);
    if (info.node !== deps.nodeId) throw new ChorusError('NOT_FOUND', `recording ${recordingId} is held by node ${info.node}`);
    const body = await readFile(join(deps.recordings.dirOf(room, recordingId), file)).catch(() => undefined);
    if (!body) throw new ChorusError('NOT_FOUND', file === PLAYLIST ? 'the recording has no segment yet' : `no segment ${file} in this recording`);
    if (file !== PLAYLIST) return reply.header('content-type', 'video/mp2t').header('cache-control', 'private, max-age=3600').send(body);
    // Players that got the token in the address send no header: segment addresses carry it too.
    const carry = admitted.carry;
    let text = carry ? body.toString('utf8').replace(/^(seg-\d+\.ts)$/gm, `$1?token=${encodeURIComponent(carry)}`) : body.toString('utf8');
    // Between two runs of a recording that follows the stage, the playlist is briefly ended: a
    // player reading it then must not take the class for over.
    if (info.endedAt === undefined) text = text.replace(/^#EXT-X-ENDLIST\r?\n?/m, '');
    return reply
      .header('content-type', 'application/vnd.apple.mpegurl')
      .header('cache-control', info.endedAt ? 'private, max-age=60' : 'no-cache, no-store')
      .send(text);
  });

  app.get('/api/admin/recordings', async (request, reply) => {
    const key = requireApiKey(request, reply, deps.keys);
    return { recordings: await deps.recordings.list(key.tenant) };
  });
}
