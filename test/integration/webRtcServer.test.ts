import { afterEach, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { joinListener, type TestListener } from '../support/listener.js';
import { nodeClient, startTestNode, tokenFor, toneBroadcaster, until } from '../support/testNode.js';

// RTC_SERVER_PORT: one shared port per worker instead of one per transport. These fixed ports lie
// above Linux's ephemeral range (32768-60999), where any socket bound to port 0 elsewhere in the
// suite (an ffmpeg's RTP pair, a client's TCP connection) could hold them for a moment: CI once
// failed this file's start on 33400 that way. Also clear of the test nodes' RTC ranges
// (20000-32999) and of coturn's relay ports (61000-65019, test/support/coturn.ts).
const BASE = 65_400;

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** Every WebRTC transport of the node's rooms, with the worker it lives on. */
function transports(n: ChorusNode): Array<{ pid: number; ports: number[]; protocols: string[] }> {
  return [...n.rooms.rooms.values()].flatMap((room) =>
    [...room.peers.values()].flatMap((peer) =>
      [...peer.transports.values()].map((t) => ({
        pid: room.requireMedia().slots.find((s) => s.router.id === t.appData['routerId'])!.worker.pid,
        ports: t.iceCandidates.map((c) => c.port),
        protocols: t.iceCandidates.map((c) => c.protocol).sort(),
      })),
    ),
  );
}

test('with RTC_SERVER_PORT, worker i takes port + i for UDP and TCP, every transport on it shares that port, and listeners hear; a respawned worker listens there again', async () => {
  const n = await startTestNode({ MEDIASOUP_WORKERS: '2', RTC_SERVER_PORT: String(BASE) });
  cleanup.push(() => n.close());
  const portOf = new Map(n.workers.slots.map((s) => [s.worker.pid, BASE + s.index]));
  const broadcaster = await toneBroadcaster(n, 'shared-port', 880);
  cleanup.push(() => broadcaster.stop());
  const listeners: TestListener[] = [];
  cleanup.push(() => Promise.all(listeners.map((l) => l.close())).then(() => undefined));
  for (let i = 0; i < 4; i++) listeners.push(await joinListener(n, 'shared-port'));
  await Promise.all(listeners.map((l) => l.hears(880)));

  const all = transports(n);
  // The broadcaster's send transport and four receive transports, spread over both workers.
  expect(all).toHaveLength(5);
  expect(new Set(all.map((t) => t.pid)).size).toBe(2);
  for (const t of all) {
    expect(t.ports).toEqual(t.ports.map(() => portOf.get(t.pid)));
    expect(t.protocols).toEqual(['tcp', 'udp']);
  }

  // A worker killed: its replacement opens the same port, and a listener placed on it hears.
  const victim = n.workers.slots[1]!.worker;
  process.kill(victim.pid, 'SIGKILL');
  await until(() => n.workers.healthy && n.workers.slots[1]!.worker !== victim, 10_000, 'the worker to be respawned');
  expect(n.workers.slots[1]!.webRtcServer?.closed).toBe(false);
  await Promise.all(listeners.map((l) => l.hears(880, 20_000)));
  for (let i = 0; i < 2; i++) listeners.push(await joinListener(n, 'shared-port'));
  await Promise.all(listeners.slice(-2).map((l) => l.hears(880)));
  const respawned = n.workers.slots[1]!.worker.pid;
  const onRespawned = transports(n).filter((t) => t.pid === respawned);
  expect(onRespawned.length).toBeGreaterThan(0);
  for (const t of onRespawned) expect(t.ports.every((p) => p === BASE + 1)).toBe(true);
});

test('a peer that asks for TCP on a node without TCP gets a port of its own; a port already taken fails the start with the port named', async () => {
  const n = await startTestNode({ MEDIASOUP_WORKERS: '1', RTC_SERVER_PORT: String(BASE + 10), RTC_ENABLE_TCP: 'false' });
  cleanup.push(() => n.close());
  const broadcaster = await toneBroadcaster(n, 'tcp-only', 660);
  cleanup.push(() => broadcaster.stop());
  const udp = await joinListener(n, 'tcp-only');
  const tcp = await joinListener(n, 'tcp-only', { forceTcp: true });
  cleanup.push(() => udp.close(), () => tcp.close());
  await Promise.all([udp.hears(660), tcp.hears(660)]);
  const ports = transports(n).map((t) => ({ ports: t.ports, protocols: t.protocols }));
  expect(ports).toContainEqual({ ports: [BASE + 10], protocols: ['udp'] });
  const own = ports.find((p) => p.protocols.join() === 'tcp');
  expect(own?.ports[0]).toBeGreaterThanOrEqual(20_000);
  expect(own?.ports[0]).toBeLessThanOrEqual(29_999);

  await expect(startTestNode({ MEDIASOUP_WORKERS: '1', RTC_SERVER_PORT: String(BASE + 10), RTC_ENABLE_TCP: 'false' })).rejects.toThrow(
    new RegExp(`cannot listen on RTC port ${BASE + 10}`),
  );
});
