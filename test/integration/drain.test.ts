import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { toneTrack } from '../support/nodePeer.js';
import { joinListener } from '../support/listener.js';
import { TcpProxy } from '../support/tcpProxy.js';
import { nodeClient, startTestNode, tokenFor, until } from '../support/testNode.js';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

test('a draining node refuses new connections, tells its clients to move, and they resume on the next node', async () => {
  // Two independent nodes sharing an API key behind a failover proxy: what a load balancer does
  // during a rolling restart. (Shared room state across nodes is the cluster's job.)
  const a = await startTestNode({ RTC_MIN_PORT: '20000', RTC_MAX_PORT: '24999' });
  const b = await startTestNode({ RTC_MIN_PORT: '25000', RTC_MAX_PORT: '29999' });
  cleanup.push(() => b.close(), () => a.close());
  const port = (n: ChorusNode) => Number(new URL(n.url).port);
  const proxy = await TcpProxy.start([port(a), port(b)]);
  cleanup.push(() => proxy.close());

  const tone = toneTrack(1000);
  cleanup.push(() => tone.stop());
  const broadcaster = nodeClient(a, 'move', await tokenFor(a, 'move', 'broadcaster', 'imam'), { url: proxy.url });
  cleanup.push(() => broadcaster.close());
  await broadcaster.join();
  await broadcaster.publish(tone.track);
  const listener = await joinListener(a, 'move', { url: proxy.url });
  cleanup.push(() => listener.close());
  await listener.hears(1000);
  expect(a.rooms.get('move')?.peers.size).toBe(2);

  const drained = a.drain(15_000);
  await until(async () => (await fetch(`${a.url}/readyz`).catch(() => undefined))?.status !== 200, 5000, 'readyz to stop saying ready');
  const { remaining } = await drained;
  expect(remaining).toBe(0);
  // Both sessions resumed on the other node with their identities, and the audio is back.
  await until(() => b.rooms.get('move')?.peers.size === 2, 15_000, 'sessions to arrive on node b');
  expect([...b.rooms.get('move')!.peers.values()].map((p) => p.identity)).toContain('imam');
  await listener.hears(1000, 15_000);
});

test('npm start\'s process drains on SIGTERM and exits 0', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: {
      ...process.env,
      CHORUS_HOST: '127.0.0.1',
      CHORUS_PORT: '0',
      MEDIASOUP_WORKERS: '1',
      RTC_LISTEN_IP: '127.0.0.1',
      CHORUS_DATA_DIR: mkdtempSync(join(tmpdir(), 'chorus-data-')),
      CHORUS_DRAIN_DEADLINE_MS: '2000',
      // A first PGlite start (initdb in WebAssembly) can take longer than this test waits; the
      // records tests cover records on their own.
      CHORUS_RECORDS: 'false',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  cleanup.push(() => child.kill('SIGKILL'));
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await until(() => output.includes('chorus node listening'), 20_000, 'the node to start');
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  expect(code).toBe(0);
  expect(output).toContain('drained');
});
