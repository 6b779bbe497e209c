/**
 * The node's Socket.IO server alone (the project's `createSignalingServer`, no rooms, no media),
 * for `bench:heartbeat`: its CPU is then the heartbeat's and the idle connections'.
 * Arguments: the ping interval (ms) and the grid pings are aligned to (ms, 0: engine.io's own
 * per-connection timers). Prints `{"port":N}` once listening.
 */
import { createServer } from 'node:http';
import pino from 'pino';
import { createSignalingServer } from '../../src/signaling/server.js';

const pingIntervalMs = Number(process.argv[2]);
const pingAlignMs = Number(process.argv[3] ?? 0);
const http = createServer();
createSignalingServer(http, { pingIntervalMs, pingTimeoutMs: 10_000, pingAlignMs, corsOrigins: true, trustProxy: false, handshakeTimeoutMs: 10_000 }, pino({ level: 'warn' }));
http.listen(0, '127.0.0.1', () => {
  const address = http.address();
  process.stdout.write(`${JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 })}\n`);
});
