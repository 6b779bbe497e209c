/**
 * HTTP: the built web pages, health endpoints, the demo token endpoint, and JSON errors that
 * never carry a stack trace.
 */
import { existsSync, readFileSync } from 'node:fs';
import fastifyCors from '@fastify/cors';
import fastifyHelmet from '@fastify/helmet';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { ApiKeyring } from '../auth/apiKeys.js';
import { grantSchema, type TokenService } from '../auth/tokens.js';
import type { AuditSink } from '../observability/audit.js';
import type { Limits } from '../limits/limits.js';
import type { Logger } from '../observability/logger.js';
import { ChorusError } from '../protocol/errors.js';
import { displayName, roomId } from '../protocol/messages.js';
import { requireApiKey } from './apiKeyAuth.js';
import { registerHlsRoutes, type HlsRouteDeps } from '../hls/routes.js';
import { registerRecordingRoutes, type RecordingRouteDeps } from '../recording/routes.js';

export interface HttpDeps {
  log: Logger;
  tokens: TokenService;
  keys: ApiKeyring;
  audit: AuditSink;
  demo: boolean;
  webDir: string;
  limits: Limits;
  trustProxy: boolean;
  /** Origins allowed cross-origin; undefined allows any. */
  corsOrigins: string[] | undefined;
  tls: { certPath: string; keyPath: string } | undefined;
  /** Where others reach this node (its LAN or public URL), for the links the pages hand out. */
  publicUrl?: (() => string) | undefined;
  /** The HLS fallback (/hls/<room>/…), when enabled. */
  hls?: HlsRouteDeps | undefined;
  /** Class recordings (/recordings/<room>/<id>/…, /api/admin/recordings). */
  recordings?: RecordingRouteDeps | undefined;
  /** Readiness: workers alive and the node accepting work. */
  ready(): { ready: boolean; detail: Record<string, unknown> };
  /** Prometheus exposition for /metrics; `token`, when set, is the bearer token it asks for. */
  metrics?: { contentType: string; render(): Promise<string>; token: string | undefined } | undefined;
  /** What /health/info shows: node id, version, uptime, rooms, peers, workers. */
  info?: (() => Record<string, unknown>) | undefined;
}

/** A caller's (or proxy's) request id is kept when it looks like one; otherwise a fresh one is made. */
const requestIdPattern = /^[A-Za-z0-9._:-]{1,128}$/;

function requestId(header: string | string[] | undefined): string {
  return typeof header === 'string' && requestIdPattern.test(header) ? header : randomBytes(8).toString('hex');
}

function bearerMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from(/^Bearer (.+)$/.exec(header ?? '')?.[1] ?? '');
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

const tokenBody = grantSchema.extend({ ttlSeconds: z.number().int().positive().optional() });

const demoBroadcastBody = z.strictObject({
  roomId: roomId.optional(),
  name: displayName.max(64).optional(),
});

const demoClassBody = z.strictObject({
  roomId: roomId.optional(),
  name: displayName.max(64).optional(),
  role: z.enum(['teacher', 'student']),
});

export function createHttpServer(deps: HttpDeps): FastifyInstance {
  const https = deps.tls && { cert: readFileSync(deps.tls.certPath), key: readFileSync(deps.tls.keyPath) };
  const app = Fastify({
    loggerInstance: deps.log.child({ component: 'http' }) as FastifyBaseLogger,
    bodyLimit: 16 * 1024,
    // Every request carries an id, logged as reqId and echoed as x-request-id, so a client's
    // report, the proxy's log and this node's log can be matched.
    genReqId: (request) => requestId(request.headers['x-request-id']),
    trustProxy: deps.trustProxy,
    // Requests the router cannot even parse (bad percent-encoding, an over-long path segment, a
    // body of another type) get the same JSON error shape as everything else, with a code.
    frameworkErrors: (error, request, reply) => {
      const status = (error as { statusCode?: number }).statusCode ?? 400;
      const message =
        error.code === 'FST_ERR_BAD_URL'
          ? 'the request path is not valid percent-encoding'
          : error.code === 'FST_ERR_MAX_PARAM_LENGTH'
            ? 'a segment of the request path is too long'
            : 'the request could not be parsed';
      void reply.header('x-request-id', request.id);
      void (reply as unknown as FastifyReply).status(status).send({ error: { code: status === 413 ? 'LIMIT_REACHED' : 'BAD_REQUEST', message, retryable: false } });
    },
    // Refused by Node's HTTP parser before any request exists (a request line or headers over
    // 16 KiB, garbage on the socket): still the JSON error shape, then the connection closes.
    clientErrorHandler: (error, socket) => {
      if ((error as NodeJS.ErrnoException).code === 'ECONNRESET' || socket.destroyed) return;
      const tooLarge = (error as NodeJS.ErrnoException).code === 'HPE_HEADER_OVERFLOW';
      const status = tooLarge ? 431 : 400;
      const body = JSON.stringify({
        error: { code: 'BAD_REQUEST', message: tooLarge ? 'the request line or headers are too large' : 'the request could not be parsed', retryable: false },
      });
      if (socket.writable) {
        socket.write(`HTTP/1.1 ${status} ${tooLarge ? 'Request Header Fields Too Large' : 'Bad Request'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      }
      socket.destroy();
    },
    ...(https ? { https } : {}),
  }) as unknown as FastifyInstance;

  app.addHook('onRequest', async (request, reply) => {
    void reply.header('x-request-id', request.id);
  });

  // Refused before any routing or body parsing, so a flood costs a map lookup per request.
  app.addHook('onRequest', async (request, reply) => {
    // An HLS player fetches about two files a second, and a neighbourhood behind one carrier NAT
    // shares an address: per-address budgets would cut it off after a handful of players. HLS
    // requests carry a room token instead, checked before any file is touched; those refused
    // before their token is accepted are charged to the address there (src/hls/routes.ts).
    if (request.url.startsWith('/hls/') || request.url.startsWith('/recordings/')) return;
    try {
      await deps.limits.take('http', request.ip);
    } catch (error) {
      if (error instanceof ChorusError && error.retryAfterMs !== undefined) {
        void reply.header('retry-after', Math.ceil(error.retryAfterMs / 1000));
      }
      throw error;
    }
  });

  void app.register(fastifyHelmet, {
    contentSecurityPolicy: {
      directives: {
        // Pages talk to this node only (signaling is same-origin WebSocket). Media elements play
        // MediaStreams, blob: URLs (HLS) and, on the watch page, any http(s) video the room
        // points at (what its protocol accepts: src/protocol/watch.ts isAllowedVideoUrl).
        'connect-src': ["'self'"],
        'media-src': ["'self'", 'blob:', 'https:', 'http:'],
        // Plain HTTP on a LAN must keep working for phones: only ask for upgrades on TLS.
        'upgrade-insecure-requests': https ? [] : null,
      },
    },
    strictTransportSecurity: https ? { maxAge: 15552000 } : false,
  });
  // WHIP and WHEP clients in a page read where their session is and which ICE servers to use.
  // PATCH and DELETE too (the plugin allows only GET, HEAD and POST by default): a WHIP or WHEP
  // client on another site trickles, restarts and ends its session with them.
  void app.register(fastifyCors, { origin: deps.corsOrigins ?? true, methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'], exposedHeaders: ['Location', 'Link', 'ETag'] });

  app.setErrorHandler((error, request, reply) => {
    if (error instanceof ChorusError) {
      return reply.status(error.status).send({ error: error.toWire() });
    }
    const status = (error as { statusCode?: number }).statusCode ?? 500;
    if (status >= 500) request.log.error({ err: error }, 'request failed');
    const code = status === 413 ? 'LIMIT_REACHED' : status < 500 ? 'BAD_REQUEST' : 'INTERNAL';
    const message = status < 500 ? (error as Error).message : 'internal error';
    return reply.status(status).send({ error: { code, message, retryable: status >= 500 } });
  });

  app.setNotFoundHandler((request, reply) =>
    // The path is echoed for whoever mistyped it, but not a 16 KiB one.
    reply.status(404).send({ error: { code: 'NOT_FOUND', message: `no route ${request.method} ${truncate(request.url.split('?')[0] ?? '', 200)}`, retryable: false } }),
  );

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const { ready, detail } = deps.ready();
    return reply.status(ready ? 200 : 503).send({ ready, ...detail });
  });

  const metrics = deps.metrics;
  if (metrics) {
    app.get('/metrics', async (request, reply) => {
      if (metrics.token !== undefined && !bearerMatches(request.headers.authorization, metrics.token)) {
        void reply.header('www-authenticate', 'Bearer realm="chorus-metrics"');
        throw new ChorusError('UNAUTHORIZED', 'a bearer token is required for /metrics');
      }
      return reply.header('content-type', metrics.contentType).send(await metrics.render());
    });
  }

  const info = deps.info;
  if (info) app.get('/health/info', async () => info());

  // The pages build shareable links on publicUrl when opened on loopback: a link to 127.0.0.1
  // sent to a phone leads nowhere.
  app.get('/api/config', async () => ({ demo: deps.demo, ...(deps.publicUrl?.() ? { publicUrl: deps.publicUrl() } : {}) }));

  if (deps.hls) registerHlsRoutes(app, deps.hls);
  if (deps.recordings) registerRecordingRoutes(app, deps.recordings);

  // Token minting for applications holding an API key and secret (HTTP Basic, over TLS in
  // production). The application decides who may join which room with which role.
  app.post('/api/tokens', async (request, reply) => {
    const key = requireApiKey(request, reply, deps.keys);
    await deps.limits.take('tokensPerKey', key.id);
    const parsed = tokenBody.safeParse(request.body ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ChorusError('BAD_REQUEST', `${issue?.path.join('.') || 'body'}: ${issue?.message}`);
    }
    const { ttlSeconds, ...grant } = parsed.data;
    const minted = await deps.tokens.issue(grant, { ttlSeconds, keyId: key.id });
    deps.audit.record({ type: 'token.minted', keyId: key.id, room: grant.room, identity: grant.identity, role: grant.role, tokenId: minted.tokenId, via: 'http' });
    return reply.status(201).send({ token: minted.token, tokenId: minted.tokenId, expiresAt: new Date(minted.expiresAtMs).toISOString() });
  });

  if (deps.demo) {
    // Demo only: anyone reaching the node may mint a broadcast. A configured secret turns this
    // off unless CHORUS_DEMO=true; the security issue replaces it with API-key minting.
    app.post('/api/demo/broadcasts', async (request) => {
      const parsed = demoBroadcastBody.safeParse(request.body ?? {});
      if (!parsed.success) throw new ChorusError('BAD_REQUEST', parsed.error.issues[0]?.message ?? 'invalid body');
      const room = parsed.data.roomId ?? randomBytes(6).toString('base64url');
      // The broadcaster link is single-use (the page keeps its resume token for reloads); the
      // listener link is reusable, for sharing, and lives a day.
      const grants = [
        { room, identity: `broadcaster-${randomBytes(4).toString('hex')}`, role: 'broadcaster' as const, name: parsed.data.name },
        { room, identity: 'listener', role: 'listener' as const, grants: { reusable: true } },
      ];
      const [broadcaster, listener] = await Promise.all(grants.map((grant) => deps.tokens.issue(grant, { ttlSeconds: 24 * 3600 })));
      grants.forEach((grant, i) => {
        const minted = [broadcaster, listener][i]!;
        deps.audit.record({ type: 'token.minted', keyId: minted.keyId, room, identity: grant.identity, role: grant.role, tokenId: minted.tokenId, via: 'demo' });
      });
      return { roomId: room, broadcasterToken: broadcaster!.token, listenerToken: listener!.token };
    });

    // Demo only: a call. A call link carries no token: in demo mode each visitor asks for a
    // participant token of its own for the room (named, or a new one), single-use like any.
    app.post('/api/demo/calls', async (request) => {
      const parsed = demoBroadcastBody.safeParse(request.body ?? {});
      if (!parsed.success) throw new ChorusError('BAD_REQUEST', parsed.error.issues[0]?.message ?? 'invalid body');
      const room = parsed.data.roomId ?? randomBytes(6).toString('base64url');
      const grant = { room, kind: 'call' as const, identity: `guest-${randomBytes(4).toString('hex')}`, role: 'participant' as const, name: parsed.data.name };
      const minted = await deps.tokens.issue(grant, { ttlSeconds: 24 * 3600 });
      deps.audit.record({ type: 'token.minted', keyId: minted.keyId, room, identity: grant.identity, role: grant.role, tokenId: minted.tokenId, via: 'demo' });
      return { roomId: room, token: minted.token, identity: grant.identity };
    });

    // Demo only: a class. A class link carries no token: in demo mode each visitor asks for a
    // token of its own, a teacher's or a student's as the link says.
    app.post('/api/demo/classes', async (request) => {
      const parsed = demoClassBody.safeParse(request.body ?? {});
      if (!parsed.success) throw new ChorusError('BAD_REQUEST', parsed.error.issues[0]?.message ?? 'invalid body');
      const room = parsed.data.roomId ?? randomBytes(6).toString('base64url');
      const grant = { room, kind: 'class' as const, identity: `${parsed.data.role}-${randomBytes(4).toString('hex')}`, role: parsed.data.role, name: parsed.data.name };
      const minted = await deps.tokens.issue(grant, { ttlSeconds: 24 * 3600 });
      deps.audit.record({ type: 'token.minted', keyId: minted.keyId, room, identity: grant.identity, role: grant.role, tokenId: minted.tokenId, via: 'demo' });
      return { roomId: room, token: minted.token, identity: grant.identity };
    });

    // Demo only: a watch party. The host link is single-use (the page keeps its resume token);
    // the guest link is reusable, for sharing.
    app.post('/api/demo/watch', async (request) => {
      const parsed = demoBroadcastBody.safeParse(request.body ?? {});
      if (!parsed.success) throw new ChorusError('BAD_REQUEST', parsed.error.issues[0]?.message ?? 'invalid body');
      const room = parsed.data.roomId ?? randomBytes(6).toString('base64url');
      const grants = [
        { room, kind: 'watch' as const, identity: `host-${randomBytes(4).toString('hex')}`, role: 'host' as const, name: parsed.data.name },
        { room, kind: 'watch' as const, identity: 'guest', role: 'listener' as const, grants: { reusable: true } },
      ];
      const minted = await Promise.all(grants.map((grant) => deps.tokens.issue(grant, { ttlSeconds: 24 * 3600 })));
      grants.forEach((grant, i) => {
        deps.audit.record({ type: 'token.minted', keyId: minted[i]!.keyId, room, identity: grant.identity, role: grant.role, tokenId: minted[i]!.tokenId, via: 'demo' });
      });
      return { roomId: room, hostToken: minted[0]!.token, guestToken: minted[1]!.token };
    });
  }

  if (existsSync(deps.webDir)) {
    void app.register(fastifyStatic, { root: deps.webDir, extensions: ['html'], index: ['index.html'] });
  } else {
    deps.log.warn({ webDir: deps.webDir }, 'web pages not built (npm run build); serving the API only');
  }
  return app;
}
