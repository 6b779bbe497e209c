import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A loopback TCP proxy whose connections a test can cut, like a network that drops. With
 * several targets it behaves like a load balancer with failover: each new connection goes to
 * the first target that accepts it.
 */
export class TcpProxy {
  readonly #sockets = new Set<Socket>();
  private constructor(readonly server: Server) {}

  static async start(targets: number | number[]): Promise<TcpProxy> {
    const ports = Array.isArray(targets) ? targets : [targets];
    const server = createServer();
    const proxy = new TcpProxy(server);
    server.on('connection', (client) => {
      client.pause();
      client.on('error', () => client.destroy());
      const attempt = (index: number): void => {
        const port = ports[index];
        if (port === undefined) return void client.destroy();
        const upstream = connect(port, '127.0.0.1');
        upstream.once('error', () => {
          upstream.destroy();
          if (!upstream.readyState.includes('open')) attempt(index + 1);
        });
        upstream.once('connect', () => {
          for (const s of [client, upstream]) {
            proxy.#sockets.add(s);
            s.on('close', () => proxy.#sockets.delete(s));
            s.on('error', () => s.destroy());
          }
          client.pipe(upstream).pipe(client);
          client.resume();
          client.on('close', () => upstream.destroy());
          upstream.on('close', () => client.destroy());
        });
      };
      attempt(0);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Drops every open connection at once (new ones are still accepted). */
  cut(): number {
    const n = this.#sockets.size;
    for (const s of this.#sockets) s.destroy();
    return n;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
