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
  node = await startTestNode({ CHORUS_PING_INTERVAL_MS: '1000', CHORUS_PING_TIMEOUT_MS: '1000' });
});

afterAll(async () => {
  await node?.close();
});

interface RawEngine {
  open: { pingInterval: number; pingTimeout: number };
  pings: number;
  openedAt: number;
  closedAt: number | undefined;
  ws: WebSocket;
}

/** An engine.io session over a WebSocket; `answer`: whether it replies to the server's pings. */
async function engine(answer: boolean): Promise<RawEngine> {
  const ws = new WebSocket(`${node.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
  const session = { pings: 0, closedAt: undefined as number | undefined, ws } as RawEngine;
  ws.on('close', () => (session.closedAt = Date.now()));
  ws.on('message', (data: Buffer) => {
    const text = data.toString('utf8');
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

test('the defaults: a ping every 15 s, 10 s to answer it', () => {
  const { pingIntervalMs, pingTimeoutMs } = loadConfig({}).http;
  expect({ pingIntervalMs, pingTimeoutMs }).toEqual({ pingIntervalMs: 15_000, pingTimeoutMs: 10_000 });
  expect(() => loadConfig({ CHORUS_PING_INTERVAL_MS: '10' })).toThrow(/CHORUS_PING_INTERVAL_MS/);
});

test('the handshake announces the configured heartbeat; a client that stops answering is dropped after it, one that answers stays', async () => {
  const silent = await engine(false);
  const answering = await engine(true);
  expect(silent.open).toMatchObject({ pingInterval: 1000, pingTimeout: 1000 });
  await until(() => silent.closedAt !== undefined, 10_000, 'the silent client to be dropped');
  // Dropped no earlier than one interval and one timeout (2 s) after its handshake.
  expect(silent.closedAt! - silent.openedAt).toBeGreaterThanOrEqual(1800);
  expect(silent.pings).toBeGreaterThanOrEqual(1);
  await until(() => answering.pings >= 3, 10_000, 'three pings to the answering client');
  expect(answering.closedAt).toBeUndefined();
  answering.ws.close();
});
