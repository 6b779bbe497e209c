/**
 * The node's Socket.IO server alone (the project's `createSignalingServer`, no rooms, no media),
 * for `bench:heartbeat`: its CPU is then the heartbeat's and the idle connections'.
 * Argument: the ping interval (ms). Prints `{"port":N}` once listening.
 */
import { createServer } from 'node:http';
import { createSignalingServer } from '../../src/signaling/server.js';

const pingIntervalMs = Number(process.argv[2]);
const http = createServer();
createSignalingServer(http, { pingIntervalMs, pingTimeoutMs: 10_000, corsOrigins: true, trustProxy: false, handshakeTimeoutMs: 10_000 });
http.listen(0, '127.0.0.1', () => {
  const address = http.address();
  process.stdout.write(`${JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 })}\n`);
});
