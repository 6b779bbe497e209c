import { randomBytes } from 'node:crypto';
import { get as httpGet } from 'node:http';
import { connect as netConnect, type Socket as NetSocket } from 'node:net';
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import type { ChorusNode } from '../../src/app.js';
import { until } from './testNode.js';

export interface RawReply {
  ok: boolean;
  data?: Record<string, unknown>;
  error?: { code: string; message: string; retryable: boolean };
}

/** A bare protocol connection that can send anything, for exercising the server's refusals. */
export class RawSocket {
  readonly socket: Socket;
  readonly events: Array<{ event: string; payload: unknown }> = [];

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.onAny((event: string, payload: unknown) => this.events.push({ event, payload }));
  }

  static async connect(node: ChorusNode, options: Partial<ManagerOptions & SocketOptions> = {}): Promise<RawSocket> {
    const socket = io(node.url, { transports: ['websocket'], forceNew: true, reconnection: false, ...options });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });
    return new RawSocket(socket);
  }

  call(method: string, ...args: unknown[]): Promise<RawReply> {
    return this.socket.timeout(5000).emitWithAck(method, ...args) as Promise<RawReply>;
  }

  async ok(method: string, payload: unknown = {}): Promise<Record<string, unknown>> {
    const reply = await this.call(method, payload);
    if (!reply.ok) throw new Error(`${method} failed: ${reply.error?.code} ${reply.error?.message}`);
    return reply.data ?? {};
  }

  async code(method: string, payload: unknown = {}): Promise<string | undefined> {
    return (await this.call(method, payload)).error?.code;
  }

  close(): void {
    this.socket.disconnect();
  }
}

/**
 * A TCP connection below the protocol: opened, optionally sent some bytes, then left alone, the
 * way a client that holds sockets without ever finishing a handshake does. `closed` resolves when
 * the server (or anything) closes it.
 */
export interface RawConnection {
  readonly socket: NetSocket;
  readonly closed: Promise<void>;
  isClosed(): boolean;
  /** Everything received so far. */
  received(): string;
  close(): void;
}

export async function rawConnection(node: Pick<ChorusNode, 'url'>, options: { localAddress?: string; send?: string } = {}): Promise<RawConnection> {
  const { hostname, port } = new URL(node.url);
  const socket = netConnect({ host: hostname, port: Number(port), ...(options.localAddress ? { localAddress: options.localAddress } : {}) });
  let data = '';
  socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
  socket.on('error', () => undefined); // a reset is one way the server closes it
  let isClosed = false;
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      isClosed = true;
      resolve();
    }),
  );
  await new Promise<void>((resolve) => {
    socket.once('connect', resolve);
    socket.once('close', resolve);
  });
  if (options.send !== undefined && !socket.destroyed) socket.write(options.send);
  return { socket, closed, isClosed: () => isClosed, received: () => data, close: () => socket.destroy() };
}

/**
 * An Engine.IO WebSocket that completes the upgrade (101) and then never sends the Socket.IO
 * connect packet: held open by the server until its handshake timeout.
 */
export async function rawEngineWebSocket(node: ChorusNode, options: { localAddress?: string } = {}): Promise<RawConnection & { upgraded: boolean }> {
  const { host } = new URL(node.url);
  const request = [
    'GET /socket.io/?EIO=4&transport=websocket HTTP/1.1',
    `Host: ${host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    '',
    '',
  ].join('\r\n');
  const conn = await rawConnection(node, { ...options, send: request });
  // Upgraded once the 101 and the Engine.IO open packet arrived; refused when closed first.
  const upgraded = (): boolean => /^HTTP\/1\.1 101/.test(conn.received()) && conn.received().includes('"sid"');
  await until(() => upgraded() || conn.isClosed(), 5000, 'an Engine.IO WebSocket to open or be refused');
  return { ...conn, upgraded: upgraded() && !conn.isClosed() };
}

/** GET from a given local address (127.0.0.0/8 is all loopback on Linux: another client address). */
export function getFrom(url: string, localAddress: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    httpGet(url, { localAddress }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}
