/**
 * A client's way into a cluster: one Socket.IO connection to one node at a time. It starts at
 * the entry URL (a load balancer, or any node) and can be moved to a node a server named — a
 * room's node answering WRONG_NODE, or the node that stays in a drain notice. A client that was
 * moved and then loses that node goes back to the entry URL, which places it again.
 */
import type { ManagerOptions, SocketOptions } from 'socket.io-client';
import { openSocket, type ClientSocket } from './signaling.js';

/** An http(s) URL a server named for us to move to, or undefined for anything else. */
export function nodeUrl(value: unknown): string | undefined {
  if (typeof value !== 'string' || !URL.canParse(value)) return undefined;
  return /^https?:$/.test(new URL(value).protocol) ? value : undefined;
}

export class NodeLink {
  #socket: ClientSocket;
  #url: string;

  constructor(
    readonly entryUrl: string,
    private readonly socketOptions: Partial<ManagerOptions & SocketOptions> | undefined,
    /** Attaches the client's handlers to each new connection. */
    private readonly wire: (socket: ClientSocket) => void,
  ) {
    this.#url = entryUrl;
    this.#socket = openSocket(entryUrl, socketOptions);
    wire(this.#socket);
  }

  get socket(): ClientSocket {
    return this.#socket;
  }

  /** Connected somewhere other than the entry URL: a node a server sent us to. */
  get redirected(): boolean {
    return this.#url !== this.entryUrl;
  }

  /**
   * Drops the current connection for a new one to `url`, wired but not yet connected. The old
   * connection's handlers go first: nothing it reports while closing reaches the client.
   */
  switchTo(url: string): ClientSocket {
    const old = this.#socket;
    old.off();
    old.disconnect();
    this.#url = url;
    this.#socket = openSocket(url, this.socketOptions);
    this.wire(this.#socket);
    return this.#socket;
  }
}
