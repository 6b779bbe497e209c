/**
 * The per-address cap at the bottom of the stack: every TCP connection counts against its
 * address from its first byte, whatever it turns out to be (a page, an Engine.IO poll, a
 * WebSocket upgrade, or nothing at all), and is released when it closes. Counting higher up
 * (Socket.IO's handshake, a route) leaves room for connections that never get that far: a few
 * hundred of those from one address exhausted the node's file descriptors and /healthz with it.
 *
 * The key is the socket's own address: X-Forwarded-For is a header, and a header can be forged.
 */
import { isIPv6, type Server, type Socket } from 'node:net';
import type { Logger } from '../observability/logger.js';
import type { LogThrottle } from '../observability/logThrottle.js';

/** Why a connection was turned away or cut (the label of chorus_connections_refused_total). */
export type RefusalReason = 'address_cap' | 'idle' | 'signaling_cap' | 'flood';

export interface ConnectionGuardOptions {
  /** TCP connections one address may hold at once. */
  perAddress: number;
  /** A connection that has not sent a complete HTTP request (or upgrade) by then is closed. */
  firstRequestTimeoutMs: number;
  log: Logger;
  throttle: LogThrottle;
  onOpen?: (open: number) => void;
  onRefused?: (reason: RefusalReason) => void;
}

/**
 * The address a connection is counted under: IPv4 as is (IPv4-mapped IPv6 unwrapped), IPv6 by
 * its /64, since one subscriber is routinely handed a whole /64 to pick addresses from.
 */
export function addressKey(address: string | undefined): string {
  if (!address) return 'unknown';
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  if (!isIPv6(address)) return address;
  const [head = '', tail = ''] = address.split('%')[0]!.split('::');
  const front = head ? head.split(':') : [];
  const back = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...front, ...Array<string>(8 - front.length - back.length).fill('0'), ...back] : front;
  return `${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

export class ConnectionGuard {
  readonly #open = new Map<string, number>();
  /** Connections that have not yet sent a whole request, by remote address and port. */
  readonly #waiting = new Map<string, NodeJS.Timeout>();
  #total = 0;

  constructor(private readonly options: ConnectionGuardOptions) {}

  /**
   * Attach after Socket.IO: Engine.IO takes over the server's 'request' listeners when it
   * attaches, and would hide its own requests from one attached before it.
   */
  attach(server: Server): void {
    server.on('connection', (socket: Socket) => this.#admit(socket));
    // A TLS server hands requests over on a TLSSocket wrapping the counted one: both carry the
    // same remote address and port, which is what the waiting connections are found by.
    const spoke = (request: { socket: Socket }): void => {
      const id = `${request.socket.remoteAddress}|${request.socket.remotePort}`;
      clearTimeout(this.#waiting.get(id));
      this.#waiting.delete(id);
    };
    server.on('request', spoke);
    server.on('upgrade', spoke);
  }

  /** Connections open on this node (all addresses). */
  get open(): number {
    return this.#total;
  }

  openFrom(address: string): number {
    return this.#open.get(addressKey(address)) ?? 0;
  }

  #admit(socket: Socket): void {
    const address = addressKey(socket.remoteAddress);
    const held = this.#open.get(address) ?? 0;
    if (held >= this.options.perAddress) {
      socket.destroy();
      this.options.onRefused?.('address_cap');
      this.options.throttle.run(`tcp ${address}`, (suppressed) =>
        this.options.log.warn(
          { address, open: held, limit: this.options.perAddress, suppressed },
          'connection refused: this address holds its share of connections',
        ),
      );
      return;
    }
    this.#open.set(address, held + 1);
    this.#total++;
    this.options.onOpen?.(this.#total);
    const id = `${socket.remoteAddress}|${socket.remotePort}`;
    this.#waiting.set(
      id,
      setTimeout(() => {
        this.#waiting.delete(id);
        socket.destroy();
        this.options.onRefused?.('idle');
        this.options.throttle.run(`idle ${address}`, (suppressed) =>
          this.options.log.info(
            { address, timeoutMs: this.options.firstRequestTimeoutMs, suppressed },
            'connection closed: no request in time',
          ),
        );
      }, this.options.firstRequestTimeoutMs).unref(),
    );
    socket.once('close', () => {
      clearTimeout(this.#waiting.get(id));
      this.#waiting.delete(id);
      const n = (this.#open.get(address) ?? 1) - 1;
      if (n <= 0) this.#open.delete(address);
      else this.#open.set(address, n);
      this.#total--;
      this.options.onOpen?.(this.#total);
    });
  }
}
