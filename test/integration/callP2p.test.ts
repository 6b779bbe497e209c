/**
 * Calls of two peer-to-peer with the real SDK on Node WebRTC: two participants connect directly
 * (the node holds no consumers, yet each hears the other), a third moves the call to the SFU
 * (everyone hears everyone), and back to two it returns to the direct link after the delay.
 */
import wrtc from '@roamhq/wrtc';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { P2pFactory } from '../../src/client/p2pLink.js';
import { hears, joinCallPeer, type CallPeer } from '../support/callPeer.js';
import { mediaCounts } from '../support/mediaCounts.js';
import { startTestNode, until } from '../support/testNode.js';

const BACK_MS = 1000;
const p2p: P2pFactory = { RTCPeerConnection: wrtc.RTCPeerConnection as unknown as P2pFactory['RTCPeerConnection'] };
let node: ChorusNode;
const peers: CallPeer[] = [];

beforeAll(async () => {
  node = await startTestNode({ CHORUS_CALL_P2P_BACK_MS: String(BACK_MS) });
});
afterAll(async () => {
  for (const p of peers) await p.close();
  await node?.close();
});

const everyoneHears = (group: CallPeer[]): boolean => group.every((p) => group.every((q) => q === p || hears(p, q)));

test('two go peer-to-peer, a third moves the call to the SFU, and back to two it returns to the direct link', async () => {
  const room = 'p2p-call';
  const settled: Array<{ from: string; to: string; gaps: Record<string, number> }> = [];
  node.audit.on('event', (e) => {
    if (e.type === 'call.path.settled' && e.room === room) settled.push({ from: e.from, to: e.to, gaps: e.gaps });
  });
  const a = await joinCallPeer(node, room, 'a', 300, { extra: { p2p } });
  const b = await joinCallPeer(node, room, 'b', 500, { extra: { p2p } });
  peers.push(a, b);
  await until(() => node.rooms.get(room)?.mediaPath.path === 'p2p', 10_000, 'the call to go peer-to-peer');
  await until(async () => everyoneHears([a, b]) && (await mediaCounts(node)).consumers === 0, 20_000, 'a and b to hear each other with no consumer on the node');
  // The SFU path stays proven: both producers and all four transports are there.
  expect(await mediaCounts(node)).toMatchObject({ producers: 2, transports: 4, consumers: 0 });
  // Proven, not just made: every one of them finished ICE and DTLS with its client.
  const transports = [...node.rooms.get(room)!.peers.values()].flatMap((p) => [...p.transports.values()]) as unknown as Array<{ iceState: string; dtlsState: string }>;
  expect(transports.map((t) => `${t.iceState === 'completed' ? 'connected' : t.iceState}/${t.dtlsState}`)).toEqual(Array(4).fill('connected/connected'));
  for (const [p, q] of [[a, b], [b, a]] as const) {
    const mic = [...p.client.participants.get(q.client.peerId!)!.tracks.values()][0]!;
    expect(mic.consumerId).toBeUndefined();
  }

  const c = await joinCallPeer(node, room, 'c', 800, { extra: { p2p } });
  peers.push(c);
  await until(() => node.rooms.get(room)?.mediaPath.path === 'sfu', 10_000, 'the call to move to the SFU');
  await until(async () => everyoneHears([a, b, c]) && (await mediaCounts(node)).consumers === 6, 20_000, 'all three to hear each other through the SFU');

  await c.close();
  peers.pop();
  await until(() => node.rooms.get(room)?.mediaPath.path === 'p2p', 10_000, 'the call to return to peer-to-peer');
  await until(async () => everyoneHears([a, b]) && (await mediaCounts(node)).consumers === 0, 20_000, 'a and b to hear each other directly again');

  // Every switch was reported done by everyone in it.
  await until(() => settled.length === 3, 10_000, 'the three switches to be reported done');
  expect(settled.map((s) => `${s.from}>${s.to}`)).toEqual(['sfu>p2p', 'p2p>sfu', 'sfu>p2p']);
  // Each of the pair heard the other on the old path before the last two switches, and says how
  // long it had had nothing on it when the new path took over (the third had no old path).
  for (const switched of settled.slice(1)) {
    expect(Object.keys(switched.gaps).sort()).toEqual([a.client.peerId, b.client.peerId].sort());
    for (const gap of Object.values(switched.gaps)) expect(gap).toBeGreaterThanOrEqual(0);
  }
  console.log(JSON.stringify({ test: 'p2p-call', gapsMs: settled.map((s) => ({ [`${s.from}>${s.to}`]: Object.values(s.gaps) })) }));
});

test('a direct connection that cannot be made (relay only, no TURN) moves the call to the SFU by itself, and it stays there', async () => {
  const room = 'p2p-blocked';
  // Only relay candidates allowed for the direct link, and no TURN server: it cannot connect,
  // as behind a firewall that drops direct UDP. The SFU path (not relay-only) works.
  const blocked: P2pFactory = {
    RTCPeerConnection: class extends (wrtc.RTCPeerConnection as unknown as P2pFactory['RTCPeerConnection']) {
      constructor(configuration?: RTCConfiguration) {
        super({ ...configuration, iceServers: [], iceTransportPolicy: 'relay' });
      }
    },
  };
  const reasons: string[] = [];
  const a = await joinCallPeer(node, room, 'a', 300, { extra: { p2p: blocked } });
  const b = await joinCallPeer(node, room, 'b', 500, { extra: { p2p } });
  peers.push(a, b);
  a.client.on('path', (path, reason) => reasons.push(`${path}:${reason}`));
  await until(() => node.rooms.get(room)?.mediaPath.path === 'p2p', 10_000, 'the call to try peer-to-peer');
  // Meanwhile the SFU carries the call: nothing was torn down before the direct link worked.
  await until(() => everyoneHears([a, b]), 20_000, 'a and b to hear each other through the SFU while the direct link tries');
  await until(() => node.rooms.get(room)?.mediaPath.path === 'sfu', 20_000, 'the failed direct link to be reported');
  expect(a.client.mediaPath).toBe('sfu');
  await until(async () => everyoneHears([a, b]) && (await mediaCounts(node)).consumers === 2, 10_000, 'both to hear each other through the SFU');
  // That pair is not tried again.
  expect(node.rooms.get(room)?.mediaPath.path).toBe('sfu');
  expect(reasons).toEqual([]);
  await a.close();
  await b.close();
  peers.length = 0;
});
