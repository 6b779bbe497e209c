import { io, type Socket } from 'socket.io-client';
import type { ChorusNode } from '../../src/app.js';

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

  static async connect(node: ChorusNode): Promise<RawSocket> {
    const socket = io(node.url, { transports: ['websocket'], forceNew: true, reconnection: false });
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
