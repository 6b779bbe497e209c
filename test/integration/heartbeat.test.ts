/**
 * The Socket.IO heartbeat as configured: the server announces its interval and timeout in the
 * handshake, and a client that stops answering pings is disconnected once they have passed,
 * while one that answers stays. Raw engine.io over a WebSocket, so the test decides whether
 * pings get an answer.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import WebSocket from 'ws';
import type { ChorusNode } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import { startTestNode, until } from '../support/testNode.js';

let node: ChorusNode;

beforeAll(async () => {
  node = await startTestNode({ CHORUS_PING_INTERVAL_MS: '1000', CHORUS_PING_TIMEOUT_MS: '2000' });
});

afterAll(async () => {
  await node?.close();
});

interface RawEngine {
  open: { pingInterval: number; pingTimeout: number };
  pings: number;
  /** When each ping arrived (performance.now()). */
  pingTimes: number[];
  openedAt: number;
  closedAt: number | undefined;
  ws: WebSocket;
}

/** An engine.io session over a WebSocket; `answer`: whether it replies to the server's pings. */
async function engine(answer: boolean): Promise<RawEngine> {
  const ws = new WebSocket(`${node.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
  const session = { pings: 0, pingTimes: [] as number[], closedAt: undefined as number | undefined, ws } as RawEngine;
  ws.on('close', () => (session.closedAt = Date.now()));
  ws.on('message', (data: Buffer) => {
    const text = data.toString('utf8');
    if (text === '2') session.pingTimes.push(performance.now());
    if (text.startsWith('0')) {
      session.open = JSON.parse(text.slice(1)) as RawEngine['open'];
      session.openedAt = Date.now();
      // Connect to the default namespace: a session that never does is closed by the handshake guard instead.
      ws.send('40');
    }
    if (text === '2') {
      session.pings++;
      if (answer) ws.send('3');
    }
  });
  await until(() => session.open !== undefined || session.closedAt !== undefined, 5000, 'the engine.io handshake');
  return session;
}

test('the defaults: a ping every 15 s, 10 s to answer it, pings aligned to a 1 s grid', () => {
  const { pingIntervalMs, pingTimeoutMs, pingAlignMs } = loadConfig({}).http;
  expect({ pingIntervalMs, pingTimeoutMs, pingAlignMs }).toEqual({ pingIntervalMs: 15_000, pingTimeoutMs: 10_000, pingAlignMs: 1000 });
  expect(() => loadConfig({ CHORUS_PING_INTERVAL_MS: '10' })).toThrow(/CHORUS_PING_INTERVAL_MS/);
  expect(() => loadConfig({ CHORUS_PING_ALIGN_MS: '-1' })).toThrow(/CHORUS_PING_ALIGN_MS/);
  expect(loadConfig({ CHORUS_PING_ALIGN_MS: '0' }).http.pingAlignMs).toBe(0);
  expect(() => loadConfig({ CHORUS_PING_TIMEOUT_MS: '1500' })).toThrow(/CHORUS_PING_ALIGN_MS must be at most half of CHORUS_PING_TIMEOUT_MS/);
});

test('the handshake announces the configured heartbeat; a client that stops answering is dropped after it, one that answers stays', async () => {
  const silent = await engine(false);
  const answering = await engine(true);
  expect(silent.open).toMatchObject({ pingInterval: 1000, pingTimeout: 2000 });
  await until(() => silent.closedAt !== undefined, 10_000, 'the silent client to be dropped');
  // Dropped no earlier than one interval and one timeout (3 s) after its handshake.
  expect(silent.closedAt! - silent.openedAt).toBeGreaterThanOrEqual(2800);
  expect(silent.pings).toBeGreaterThanOrEqual(1);
  await until(() => answering.pings >= 3, 10_000, 'three pings to the answering client');
  expect(answering.closedAt).toBeUndefined();
  answering.ws.close();
});

test('pings due within one step of the grid go out together: clients that connected 200 ms apart are pinged in batches a step apart, and all stay', async () => {
  const clients: RawEngine[] = [];
  for (let i = 0; i < 4; i++) {
    clients.push(await engine(true));
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await until(() => clients.every((c) => c.pings >= 3), 15_000, 'three pings to every client');
  // On engine.io's own timers each client keeps its own phase: pings 200 ms apart. On the grid,
  // every ping goes out at a step, so pings come in batches (sent in one go, arriving together)
  // and batches at least a step apart, less the timer's lateness.
  const times = clients.flatMap((c) => c.pingTimes).sort((a, b) => a - b);
  const batches: number[][] = [];
  for (const t of times) {
    const last = batches.at(-1);
    if (last && t - last.at(-1)! < 100) last.push(t);
    else batches.push([t]);
  }
  const gaps = batches.slice(1).map((b, i) => b[0]! - batches[i]!.at(-1)!);
  expect(Math.min(...gaps)).toBeGreaterThan(600);
  expect(batches.some((b) => b.length >= 2)).toBe(true);
  expect(clients.every((c) => c.closedAt === undefined)).toBe(true);
  for (const c of clients) c.ws.close();
});
