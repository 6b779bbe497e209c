/**
 * A node from before the short join path, for version-skew tests: a Socket.IO relay in front of
 * a real node that passes every request and event through, except that its strict schemas do
 * not know `join.transport` or `consume.paused` and refuse them with BAD_REQUEST, as the older
 * node's zod schemas did. Rolling upgrades serve new pages while some nodes are still older.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { io as connect } from 'socket.io-client';

type Ack = (reply: unknown) => void;

export interface OlderNode {
  url: string;
  /** Requests refused for carrying fields the older node did not know. */
  refused: string[];
  close(): Promise<void>;
}

const unknownTo: Record<string, string> = { join: 'transport', consume: 'paused' };

export async function olderNode(target: string): Promise<OlderNode> {
  const http = createServer();
  const io = new Server(http, { serveClient: false });
  const refused: string[] = [];
  io.on('connection', (socket) => {
    const upstream = connect(target, { transports: ['websocket'], forceNew: true, reconnection: false });
    upstream.onAny((event: string, ...args: unknown[]) => socket.emit(event, ...args));
    upstream.on('disconnect', () => socket.disconnect(true));
    socket.on('disconnect', () => upstream.disconnect());
    socket.onAny((event: string, payload: unknown, ack?: Ack) => {
      const field = unknownTo[event];
      if (field && typeof payload === 'object' && payload !== null && field in payload) {
        refused.push(event);
        ack?.({ ok: false, error: { code: 'BAD_REQUEST', message: `payload: Unrecognized key: "${field}"`, retryable: false } });
        return;
      }
      if (ack) upstream.timeout(10_000).emit(event, payload, (error: Error | null, reply: unknown) => ack(error ? { ok: false, error: { code: 'TIMEOUT', message: error.message, retryable: true } } : reply));
      else upstream.emit(event, payload);
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`,
    refused,
    async close() {
      io.disconnectSockets(true);
      await new Promise<void>((resolve) => io.close(() => resolve()));
    },
  };
}
