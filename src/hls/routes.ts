/**
 * GET /hls/<room>/index.m3u8 and /hls/<room>/seg-<run>-<n>.ts: the HLS fallback over HTTP.
 *
 * Checked in this order, each with a typed JSON error, before any file is looked at:
 *  1. the raw path has exactly that shape (no encoded slashes or dots, no `..`, a valid room id,
 *     one of the two file name forms) — BAD_REQUEST;
 *  2. a room token (`?token=` or `Authorization: Bearer`) that verifies — UNAUTHORIZED,
 *     TOKEN_INVALID, TOKEN_EXPIRED;
 *  3. the token is for this room and a receiving role — TOKEN_WRONG_ROOM, FORBIDDEN_ROLE;
 *  4. for playlists (which players reload every segment, so segments need not repeat it), the
 *     room was not ended and the identity not kicked since the token was issued — ROOM_ENDED, KICKED.
 * A segment is read only when the room's playlist lists it (or just did), by the name matched in 1,
 * from the room's own directory: no request can name any other file. A request refused in 1-3
 * costs its address a point of the per-address HTTP budget (LIMIT_REACHED once spent); accepted
 * ones do not, as a neighbourhood's players may share one carrier-NAT address.
 */
import { readFile } from 'node:fs/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { TokenService, VerifiedGrant } from '../auth/tokens.js';
import { ChorusError } from '../protocol/errors.js';
import { roomId as roomIdSchema } from '../protocol/messages.js';
import { segmentName } from './ffmpegRun.js';
import type { HlsService } from './hlsService.js';

export interface HlsRouteDeps {
  hls: HlsService;
  tokens: TokenService;
  /** Why a token must not play (kicked, room ended, another tenant's room), if it must not. */
  refusal(roomId: string, identity: string, issuedAtMs: number, tenant: string): Promise<ChorusError | undefined>;
  /**
   * Charges a request refused before its token was accepted against the address's HTTP budget
   * (throws LIMIT_REACHED once it is spent). Accepted HLS requests are not charged: players behind
   * one carrier NAT share an address.
   */
  chargeRefused?(ip: string): Promise<void>;
  /**
   * An SDK session of `identity` (a resume token) asked this node for the room's playlist: it
   * listens over HLS (its session may be on another node).
   */
  sessionPlaysHls?(roomId: string, identity: string): void;
}

const PLAYLIST = 'index.m3u8';
/** Set on requests one node proxies to another, so a request is proxied at most once. */
const PROXY_HEADER = 'x-chorus-hls-proxied';
/** The player's address as the node it reached saw it, on proxied requests (viewer counting). */
const CLIENT_HEADER = 'x-chorus-hls-client';
const receivingRoles = new Set(['listener', 'moderator']);

const query = z.object({ token: z.string().min(1).max(4096).optional() });

/** Room and file from the raw request path, or BAD_REQUEST saying what is wrong. */
export function parseHlsPath(rawUrl: string): { roomId: string; file: string } {
  const path = rawUrl.split('?')[0] ?? '';
  const parts = path.split('/');
  if (parts.length !== 4 || parts[0] !== '' || parts[1] !== 'hls') {
    throw new ChorusError('BAD_REQUEST', 'malformed HLS path: expected /hls/<room>/index.m3u8 or /hls/<room>/seg-<run>-<n>.ts');
  }
  const [, , roomId = '', file = ''] = parts;
  if (!roomIdSchema.safeParse(roomId).success) throw new ChorusError('BAD_REQUEST', 'malformed HLS path: room ids are 1-64 of A-Z a-z 0-9 _ -');
  if (file !== PLAYLIST && !segmentName.test(file)) {
    throw new ChorusError('BAD_REQUEST', 'not an HLS file: expected index.m3u8 or seg-<run>-<n>.ts');
  }
  return { roomId, file };
}

function bearer(header: string | undefined): string | undefined {
  const match = /^Bearer ([A-Za-z0-9._~+/=-]{1,4096})$/.exec(header ?? '');
  return match?.[1];
}

export function registerHlsRoutes(app: FastifyInstance, deps: HlsRouteDeps): void {
  /** Steps 1-3: the path, and a token of this room with a receiving role. */
  const admit = async (request: FastifyRequest): Promise<{ roomId: string; file: string; grant: VerifiedGrant; queryToken: string | undefined }> => {
    const { roomId, file } = parseHlsPath(request.raw.url ?? '');
    const parsed = query.safeParse(request.query ?? {});
    if (!parsed.success) throw new ChorusError('BAD_REQUEST', 'token: one token, 1-4096 characters');
    const token = parsed.data.token ?? bearer(request.headers.authorization);
    if (!token) throw new ChorusError('UNAUTHORIZED', 'a room token is required (?token= or Authorization: Bearer)');
    const grant = await deps.tokens.verify(token);
    if (grant.room !== roomId) throw new ChorusError('TOKEN_WRONG_ROOM', 'token is for another room');
    if (!receivingRoles.has(grant.role)) throw new ChorusError('FORBIDDEN_ROLE', `a ${grant.role} token cannot listen over HLS`);
    return { roomId, file, grant, queryToken: parsed.data.token };
  };

  const serve = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    let admitted: Awaited<ReturnType<typeof admit>>;
    try {
      admitted = await admit(request);
    } catch (refusal) {
      // A flood of bad or foreign tokens is cut off like any other per-address flood.
      try {
        await deps.chargeRefused?.(request.ip);
      } catch (limited) {
        if (limited instanceof ChorusError && limited.retryAfterMs !== undefined) void reply.header('retry-after', Math.ceil(limited.retryAfterMs / 1000));
        throw limited;
      }
      throw refusal;
    }
    const { roomId, file, grant, queryToken } = admitted;
    if (file === PLAYLIST) {
      const refusal = await deps.refusal(roomId, grant.identity, grant.issuedAtMs, grant.tenant);
      if (refusal) throw refusal;
      // A resume token is an SDK session that fell back to HLS: this fetch is what shows it
      // listens (it has no WebRTC media), and it keeps the session from being removed as one that
      // set no media up. Before the playlist is there: its player asks while nothing is
      // broadcast too, and a session waiting for a broadcast over HLS is a listener all the same.
      if (grant.resume) deps.sessionPlaysHls?.(roomId, grant.identity);
    }

    const proxied = request.headers[PROXY_HEADER] !== undefined;
    const place = await deps.hls.place(roomId, !proxied);
    if (place.kind === 'elsewhere') return proxy(request, reply, `${place.url}/hls/${roomId}/${file}`, deps.hls.settings.startTimeoutMs + 5000);
    const session = place.session;
    session.touch();
    if (file === PLAYLIST) {
      await session.ready(deps.hls.settings.startTimeoutMs);
      // A resume token's session counts in the audience as that session, once (marked above). A
      // reusable link is many players under one identity: one viewer per address.
      if (!grant.resume) {
        const client = proxied ? String(request.headers[CLIENT_HEADER] ?? request.ip) : request.ip;
        deps.hls.viewer(roomId, grant.grants.reusable ? `${grant.identity}\0${client}` : grant.identity);
      }
      // Players that got the token in the address (hls.js, radio apps) send no header: segment
      // addresses carry it too.
      const carry = queryToken ? `token=${encodeURIComponent(queryToken)}` : undefined;
      return reply
        .header('content-type', 'application/vnd.apple.mpegurl')
        .header('cache-control', 'no-cache, no-store')
        .send(session.playlist.render(carry));
    }
    const path = session.segmentPath(file);
    const body = path && (await readFile(path).catch(() => undefined));
    if (!body) throw new ChorusError('NOT_FOUND', `segment ${file} is not (or no longer) in the playlist`);
    return reply.header('content-type', 'video/mp2t').header('cache-control', 'private, max-age=60').send(body);
  };

  // Players fetch about twice a second each, with the token in the address: no per-request
  // info logs (errors are still logged).
  app.get('/hls/:room/:file', { logLevel: 'warn' }, serve);
  // Any other shape under /hls gets the same typed BAD_REQUEST instead of a bare 404.
  app.get('/hls/*', { logLevel: 'warn' }, serve);
}

async function proxy(request: FastifyRequest, reply: FastifyReply, target: string, timeoutMs: number): Promise<unknown> {
  const search = (request.raw.url ?? '').includes('?') ? `?${(request.raw.url ?? '').split('?').slice(1).join('?')}` : '';
  const headers: Record<string, string> = { [PROXY_HEADER]: '1', [CLIENT_HEADER]: request.ip };
  if (request.headers.authorization) headers['authorization'] = request.headers.authorization;
  let response: Response;
  try {
    response = await fetch(`${target}${search}`, { headers, signal: AbortSignal.timeout(timeoutMs) });
  } catch {
    throw new ChorusError('UNAVAILABLE', 'the node holding this broadcast did not answer');
  }
  const body = Buffer.from(await response.arrayBuffer());
  for (const name of ['content-type', 'cache-control']) {
    const value = response.headers.get(name);
    if (value) void reply.header(name, value);
  }
  return reply.status(response.status).send(body);
}
