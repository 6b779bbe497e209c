/**
 * Socket.IO transport for the protocol: validates every incoming message against the shared
 * schemas, dispatches it to its handler and answers through the acknowledgement callback with
 * either `{ ok: true, data }` or `{ ok: false, error: { code, message, retryable } }`.
 */
import type { Server as HttpServer } from 'node:http';
import { Server, type Socket } from 'socket.io';
import type { ZodError } from 'zod';
import type { RefusalReason } from '../limits/connectionGuard.js';
import type { Logger } from '../observability/logger.js';
import { LogThrottle } from '../observability/logThrottle.js';
import { ChorusError, type WireError } from '../protocol/errors.js';
import { requests, wireLimits, type Method, type ServerEvents } from '../protocol/messages.js';
import { peerAddress, roomAddress } from './channel.js';
import { createHandlers, type HandlerDeps, type Session } from './handlers.js';
import { HeartbeatGrid } from './heartbeatGrid.js';

export type SignalingServer = Server<Record<string, never>, ServerEvents>;

export interface SignalingOptions {
  pingIntervalMs: number;
  pingTimeoutMs: number;
  /** Pings due within one step of this grid go out together (HeartbeatGrid); 0: engine.io's own timers. */
  pingAlignMs: number;
  corsOrigins: string[] | true;
  /** Believe X-Forwarded-For (only behind a proxy you run). */
  trustProxy: boolean;
  /**
   * How long an Engine.IO connection may go without the Socket.IO connect packet (or finishing
   * a transport upgrade). A real client sends it at once; the 45 s default let idle handshakes
   * pile up.
   */
  handshakeTimeoutMs: number;
}

/** Refusals in a row after which a connection is cut: a client that ignores LIMIT_REACHED. */
const FLOOD_DISCONNECT_AFTER = 200;

function clientIp(socket: Socket, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = socket.handshake.headers['x-forwarded-for'];
    const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
    if (first) return first;
  }
  return socket.handshake.address;
}

const methods = new Set<string>(Object.keys(requests));
const isMethod = (name: string): name is Method => methods.has(name);

function describe(error: ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || 'payload'}: ${i.message}`)
    .join('; ');
}

/**
 * The page was served by this node: its Origin names the host the request came to. The scheme is
 * left out because a TLS proxy in front turns https pages into plain requests here.
 */
function sameHost(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  try {
    return new URL(origin).host === new URL(`http://${host}`).host;
  } catch {
    return false;
  }
}

export function createSignalingServer(httpServer: HttpServer, options: SignalingOptions, log: Logger): SignalingServer {
  const io = new Server<Record<string, never>, ServerEvents>(httpServer, {
    maxHttpBufferSize: wireLimits.maxMessageBytes,
    pingInterval: options.pingIntervalMs,
    pingTimeout: options.pingTimeoutMs,
    cors: { origin: options.corsOrigins },
    serveClient: false,
    connectTimeout: options.handshakeTimeoutMs,
    upgradeTimeout: options.handshakeTimeoutMs,
    // CORS headers do not bind WebSocket upgrades, so the allow-list is enforced on the
    // handshake itself. Clients that send no Origin (servers, native apps) authenticate by token.
    // The node's own pages are never foreign: browsers send Origin on every WebSocket upgrade,
    // and refusing it would push the node's own pages onto long-polling.
    allowRequest: (request, callback) => {
      const origin = request.headers.origin;
      const allowed =
        options.corsOrigins === true || origin === undefined || options.corsOrigins.includes(origin) || sameHost(origin, request.headers.host);
      callback(allowed ? null : 'origin not allowed', allowed);
    },
  });
  // Socket.IO drops a connection that never connected to the namespace politely: a WebSocket
  // close frame, after which ws waits up to 30 s for the peer's answer, which an idle client
  // never sends. Those are cut outright instead, so an idle handshake is gone after the timeout.
  const joined = new WeakSet<object>();
  io.on('connection', (socket) => joined.add(socket.conn));
  io.engine.on('connection', (conn: { once(event: 'close', listener: () => void): unknown; transport: unknown }) => {
    conn.once('close', () => {
      if (!joined.has(conn)) (conn.transport as { socket?: { terminate?: () => void } }).socket?.terminate?.();
    });
  });
  if (options.pingAlignMs > 0) {
    const grid = new HeartbeatGrid(io.engine, options.pingIntervalMs, options.pingAlignMs, log);
    httpServer.once('close', () => grid.close());
  }
  return io;
}

/** Told of every answered request (for metrics): `code` is undefined on success. */
export type RequestObserver = (method: string, seconds: number, code: string | undefined) => void;

export function attachProtocol(
  io: SignalingServer,
  deps: HandlerDeps,
  options: SignalingOptions,
  log: Logger,
  observe: RequestObserver = () => undefined,
  refused: (reason: RefusalReason) => void = () => undefined,
  throttle: LogThrottle = new LogThrottle(10_000),
): void {
  const handlers = createHandlers(deps);
  const { limits } = deps;

  // Connections per IP are counted before the handshake completes, so a refused client costs
  // one map lookup and never gets a session.
  io.use((socket, next) => {
    const ip = clientIp(socket, options.trustProxy);
    if (!limits.openConnection(ip)) {
      refused('signaling_cap');
      throttle.run(`signaling ${ip}`, (suppressed) =>
        log.warn({ ip, limit: limits.settings.connectionsPerIp, suppressed }, 'signaling connection refused: this address holds its share'),
      );
      const refusal = new ChorusError('LIMIT_REACHED', 'too many connections from your address');
      return next(Object.assign(new Error(refusal.message), { data: refusal.toWire() }));
    }
    socket.data.ip = ip;
    socket.once('disconnect', () => limits.closeConnection(ip));
    next();
  });

  io.on('connection', (socket: Socket<Record<string, never>, ServerEvents>) => {
    let socketLog = log.child({ socket: socket.id });
    const ip = String(socket.data.ip);
    let refusedInARow = 0;
    const session: Session = {
      ip,
      joining: false,
      isConnected: () => socket.connected,
      onJoined(room, peer) {
        socketLog = log.child({ socket: socket.id, room: room.id, peer: peer.id });
        void socket.join([roomAddress(room.id), peerAddress(peer.id)]);
      },
      onLeft(room, peer) {
        void socket.leave(roomAddress(room.id));
        void socket.leave(peerAddress(peer.id));
      },
    };

    const run = async (method: string, args: unknown[]): Promise<void> => {
      const started = performance.now();
      // Unknown names are not echoed into metric labels (their number would be unbounded).
      const done = (code: string | undefined): void => observe(isMethod(method) ? method : 'unknown', (performance.now() - started) / 1000, code);
      const receivedAt = Date.now();
      const last = args.at(-1);
      const ack = typeof last === 'function' ? (last as (reply: unknown) => void) : undefined;
      const payload = ack ? args.slice(0, -1)[0] : args[0];
      const fail = (error: WireError): void => {
        if (ack) ack({ ok: false, error });
        else socket.emit('request:error', { method: method.slice(0, 64), error });
      };
      try {
        await limits.take('messagesPerConnection', socket.id);
        await limits.take('messagesPerIp', ip);
        refusedInARow = 0;
        if (!isMethod(method)) throw new ChorusError('UNKNOWN_METHOD', `unknown method "${method.slice(0, 64)}"`);
        const parsed = requests[method].safeParse(payload ?? {});
        if (!parsed.success) throw new ChorusError('BAD_REQUEST', describe(parsed.error));
        const handler = handlers[method] as (s: Session, r: unknown, c: { receivedAt: number }) => Promise<unknown>;
        const data = await handler(session, parsed.data, { receivedAt });
        done(undefined);
        ack?.({ ok: true, data });
      } catch (error) {
        if (error instanceof ChorusError && error.code === 'LIMIT_REACHED' && ++refusedInARow >= FLOOD_DISCONNECT_AFTER) {
          done(error.code);
          // Messages already in flight when it was cut end here, unanswered and unlogged: one
          // flooding connection once wrote a warning for each of them.
          if (!socket.connected) return;
          refused('flood');
          // One line per address and interval: a flood over many connections is one offender.
          throttle.run(`flood ${ip}`, (suppressed) => socketLog.warn({ ip, suppressed }, 'connection kept flooding past its limit; closing it'));
          socket.disconnect(true);
          return;
        }
        if (error instanceof ChorusError) {
          socketLog.debug({ method, code: error.code, msg: error.message }, 'request refused');
          done(error.code);
          fail(error.toWire());
        } else {
          socketLog.error({ method, err: error }, 'request failed');
          done('INTERNAL');
          fail(new ChorusError('INTERNAL', 'internal error').toWire());
        }
      }
    };

    // Every event goes through one path, so unknown names are answered as carefully as known ones.
    socket.onAny((event: unknown, ...args: unknown[]) => {
      void run(typeof event === 'string' ? event : String(event), args);
    });

    socket.on('disconnect', (reason) => {
      const { room, peer } = session;
      session.room = undefined;
      session.peer = undefined;
      if (room && peer && !peer.closed) {
        socketLog.info({ reason }, 'connection dropped');
        room.leave(peer, 'dropped').catch((error: unknown) => socketLog.error({ err: error }, 'leave after drop failed'));
      }
    });
  });
}
