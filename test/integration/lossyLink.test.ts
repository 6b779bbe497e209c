/**
 * Broadcast listeners on a lossy link: their downlink (a network namespace of their own) drops a
 * tenth of the UDP datagrams reaching them, at random. They keep playing, and Opus in-band FEC,
 * which the node asks every broadcaster for (`useinbandfec=1`), makes up most of what is lost:
 * a lost packet's audio travels again, coarser, in the next one, and NetEq plays it instead of
 * inventing it. Browsers do not negotiate NACK for audio, so FEC is all a listener has.
 *
 * The broadcast here uses 20 ms packets, where each packet carries the whole of the previous
 * one's redundancy; at 60 ms (the default) a lost packet is only partly recovered, which
 * `npm run bench:loss` measures (bench/README.md).
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { audioWindow, type AudioCounters } from '../support/audioCounters.js';
import { createNetns, type Netns } from '../support/netns.js';
import { startRemoteListeners, type RemoteListeners } from '../support/remoteListeners.js';
import { startTestNode, tokenFor, toneBroadcaster, until, type ToneBroadcaster } from '../support/testNode.js';

const room = 'lossy-link';
let netns: Netns;
let node: ChorusNode;
let speaker: ToneBroadcaster | undefined;
let listeners: RemoteListeners | undefined;

beforeAll(async () => {
  netns = await createNetns();
  // Signaling and media on the host end of the veth: reachable from the namespace and from here.
  node = await startTestNode({ CHORUS_HOST: netns.hostIp, RTC_LISTEN_IP: netns.hostIp, RTC_ANNOUNCED_ADDRESS: netns.hostIp, CHORUS_BROADCAST_FRAME_MS: '20' });
  speaker = await toneBroadcaster(node, room, 440);
});

afterAll(async () => {
  await listeners?.close();
  await speaker?.stop();
  await node?.close();
  await netns?.close();
});

test('listeners losing 10 % of their datagrams keep playing, and in-band FEC covers most of the loss', async () => {
  const tokens = await Promise.all([1, 2, 3].map((i) => tokenFor(node, room, 'listener', `lossy-${i}`)));
  listeners = await startRemoteListeners(netns, { url: node.url, roomId: room, tokens, maxLifetimeMs: 120_000 });
  await netns.loss(10);
  // NetEq first meets the loss with a shallow buffer (20-30 ms here), where a lost packet's
  // playout time passes before the next packet, with its FEC, arrives; it then deepens its
  // buffer (to ~40 ms) and recovers nearly every loss. Measured after that: the first 120 losses
  // (about 8 s) are its adaptation, the next 120 the steady state.
  const start = await listeners.sample();
  await until(async () => audioWindow(start, await listeners!.sample()).lost >= 120, 40_000, 'the first 120 packets lost');
  const before = await listeners.sample();
  const from = performance.now();
  let window: AudioCounters | undefined;
  // 150 packets a second reach the three listeners: 120 lost takes about 8 s.
  await until(async () => (window = audioWindow(before, await listeners!.sample())).lost >= 120, 40_000, '120 packets lost');
  const seconds = (performance.now() - from) / 1000;
  const w = window!;
  console.log(JSON.stringify({ test: 'lossy-link', seconds: Math.round(seconds * 10) / 10, ...w }));
  const lostShare = w.lost / (w.received + w.lost);
  expect(lostShare).toBeGreaterThan(0.05);
  expect(lostShare).toBeLessThan(0.2);
  // Every listener kept playing: NetEq's output is a continuous 48 kHz, real or concealed.
  expect(w.samples).toBeGreaterThan(3 * 48_000 * seconds * 0.8);
  // Without FEC each lost packet (but those lost back to back) is one concealment, ~10 % of the
  // audio (measured with useinbandfec=0: 121 concealments for 121 lost, 9.9 % of the audio, the
  // buffer left at 22 ms); with it, 8-12 concealments for 120 lost and 0.9-1.5 % of the audio.
  expect(w.concealmentEvents).toBeLessThan(w.lost / 2);
  expect(w.concealed / w.samples).toBeLessThan(0.05);
});
