/**
 * A Socket.IO relay in front of a real node: it passes every request, answer and event through,
 * one upstream connection per client connection. Tests use it to play a node that differs from
 * the real one (`refuse`: answer some requests itself) or a network that reorders what a client
 * sees (`holdNextReply`: keep one answer back while the events after it go through).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { io as connect } from 'socket.io-client';

type Ack = (reply: unknown) => void;

export interface HeldReply {
  /** The node's answer, as it will reach the client. */
  reply: unknown;
  /** Delivers it now. */
  release(): void;
}

export interface SignalingRelay {
  url: string;
  /** Resolves when the next answer to `method` comes back from the node; it reaches the client only on release(). */
  holdNextReply(method: string): Promise<HeldReply>;
  close(): Promise<void>;
}

export interface RelayOptions {
  /** Answers a request itself instead of passing it on (return undefined to pass it on). */
  refuse?(method: string, payload: unknown): unknown;
  /** Changes the node's answer to a request before the client gets it (a node of another version). */
  rewrite?(method: string, reply: unknown): unknown;
}

export async function signalingRelay(target: string, options: RelayOptions = {}): Promise<SignalingRelay> {
  const http = createServer();
  const io = new Server(http, { serveClient: false });
  const holds = new Map<string, (held: HeldReply) => void>();
  io.on('connection', (socket) => {
    const upstream = connect(target, { transports: ['websocket'], forceNew: true, reconnection: false });
    upstream.onAny((event: string, ...args: unknown[]) => socket.emit(event, ...args));
    upstream.on('disconnect', () => socket.disconnect(true));
    socket.on('disconnect', () => upstream.disconnect());
    socket.onAny((event: string, payload: unknown, ack?: Ack) => {
      const own = options.refuse?.(event, payload);
      if (own !== undefined) {
        ack?.(own);
        return;
      }
      if (!ack) {
        upstream.emit(event, payload);
        return;
      }
      upstream.timeout(10_000).emit(event, payload, (error: Error | null, answer: unknown) => {
        const reply = error ? { ok: false, error: { code: 'TIMEOUT', message: error.message, retryable: true } } : (options.rewrite?.(event, answer) ?? answer);
        const hold = holds.get(event);
        if (!hold) return ack(reply);
        holds.delete(event);
        hold({ reply, release: () => ack(reply) });
      });
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    holdNextReply: (method) => new Promise((resolve) => holds.set(method, resolve)),
    async close() {
      io.disconnectSockets(true);
      await new Promise<void>((resolve) => io.close(() => resolve()));
    },
  };
}
