/**
 * Typed request/response over the Socket.IO connection, using the shared protocol. Rejections
 * are ChorusClientError with the server's stable code.
 */
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import type { ErrorCode, WireError } from '../protocol/errors.js';
import { PROTOCOL_VERSION } from '../protocol/basics.js';
import type { Method, Reply, RequestOf, Responses, ServerEvents } from '../protocol/messages.js';

export class ChorusClientError extends Error {
  override readonly name = 'ChorusClientError';

  constructor(
    readonly code: ErrorCode | 'TIMEOUT' | 'DISCONNECTED' | 'PROTOCOL_MISMATCH',
    message: string,
    readonly retryable: boolean,
    /** For LIMIT_REACHED: wait at least this long before trying again. */
    readonly retryAfterMs?: number,
    /** For WRONG_NODE: where to connect instead. */
    readonly redirectUrl?: string,
  ) {
    super(message);
  }

  static from(error: WireError): ChorusClientError {
    return new ChorusClientError(error.code, error.message, error.retryable, error.retryAfterMs, error.redirectUrl);
  }
}

export type ClientSocket = Socket<ServerEvents, Record<string, (...args: never[]) => void>>;

/**
 * A signaling connection, not yet connected: WebSocket first with long-polling as the fallback
 * (tried when WebSocket fails), and Socket.IO's own reconnection with jittered backoff.
 */
export function openSocket(url: string, overrides: Partial<ManagerOptions & SocketOptions> = {}): ClientSocket {
  return io(url, {
    autoConnect: false,
    transports: ['websocket', 'polling'],
    tryAllTransports: true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
    randomizationFactor: 0.5,
    ...overrides,
  }) as ClientSocket;
}

/**
 * The node's protocol version (in its join answer) against this SDK's: a node of another version
 * would misread requests and events, so the join is undone and refused with a clear error, not
 * retried.
 */
export async function requireProtocol(socket: ClientSocket, info: Pick<Responses['join'], 'protocol'>): Promise<void> {
  if (info.protocol === PROTOCOL_VERSION) return;
  await request(socket, 'leave', {}).catch(() => undefined);
  throw new ChorusClientError(
    'PROTOCOL_MISMATCH',
    `this node speaks Chorus protocol ${String(info.protocol)} and this SDK protocol ${PROTOCOL_VERSION}: use an SDK release made for the node's protocol (or upgrade the node)`,
    false,
  );
}

export async function request<M extends Method>(
  socket: ClientSocket,
  method: M,
  payload: RequestOf<M>,
  timeoutMs = 10_000,
): Promise<Responses[M]> {
  if (!socket.connected) throw new ChorusClientError('DISCONNECTED', 'not connected', true);
  let reply: Reply<M>;
  try {
    reply = (await (socket as unknown as { timeout(ms: number): { emitWithAck(e: string, p: unknown): Promise<unknown> } })
      .timeout(timeoutMs)
      .emitWithAck(method, payload)) as Reply<M>;
  } catch {
    throw new ChorusClientError('TIMEOUT', `${method} got no answer in ${timeoutMs} ms`, true);
  }
  if (!reply.ok) throw ChorusClientError.from(reply.error);
  return reply.data;
}

/**
 * `request`, waiting out the node's per-session rate when it answers LIMIT_REACHED (it says how
 * long), a few times: a burst of a client's own making (subscribing to a full call) must slow
 * it down, not fail what it was doing.
 */
export async function pacedRequest<M extends Method>(socket: ClientSocket, method: M, payload: RequestOf<M>, timeoutMs = 10_000, retries = 3): Promise<Responses[M]> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await request(socket, method, payload, timeoutMs);
    } catch (error) {
      if (!(error instanceof ChorusClientError) || error.code !== 'LIMIT_REACHED' || attempt >= retries) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(2000, error.retryAfterMs ?? 500)));
    }
  }
}
