/**
 * Video in calls, end to end with the real SDK over Node WebRTC: each participant sends a camera
 * of its own colour in three VP8 simulcast layers, and every other participant decodes that
 * colour; a small tile gets the low layer (its frame width), an enlarged one the top layer, a
 * hidden one nothing; a shared screen arrives at full resolution.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { hears, joinCallPeer, videoOf, type CallPeer } from '../support/callPeer.js';
import { colourMatches, colourTrack, palette } from '../support/nodeVideo.js';
import { startTestNode, until } from '../support/testNode.js';

let node: ChorusNode;
const peers: CallPeer[] = [];

beforeAll(async () => {
  // Loopback has no bandwidth limit: start the estimate high enough for the top layer at once.
  node = await startTestNode({ RTC_INITIAL_BITRATE: '3000000' });
});
afterAll(async () => {
  for (const p of peers) await p.close();
  await node?.close();
});

test('everyone decodes everyone else\'s colour and tone; tile size picks the layer; hidden pauses; a screen share arrives whole', async () => {
  const colours = [palette.red, palette.green, palette.blue];
  for (const [i, colour] of colours.entries()) {
    peers.push(await joinCallPeer(node, 'video-call', `v${i}`, 300 + i * 200, { camera: { colour, width: 1280, height: 720 } }));
  }
  const [a, b, c] = peers as [CallPeer, CallPeer, CallPeer];
  await until(
    () => peers.every((p, i) => peers.every((q, j) => p === q || (hears(p, q) && colourMatches(videoOf(p, q) ?? ({ frames: 0 } as never), colours[j]!)))),
    30_000,
    'every participant to hear and see every other in its own colour',
  );
  // Nobody's colour is taken for another's.
  expect(colourMatches(videoOf(a, b)!, palette.blue)).toBe(false);
  expect(colourMatches(videoOf(a, c)!, palette.green)).toBe(false);

  // a shows b's camera as a thumbnail: the 320-wide layer.
  const bCamera = [...a.client.participants.get(b.client.peerId!)!.tracks.values()].find((t) => t.source === 'camera')!;
  await a.client.setView(bCamera.trackId, { visible: true, width: 320, height: 180 });
  await until(() => videoOf(a, b)?.width === 320, 20_000, 'the low layer at a small tile');
  // Enlarged: the full 1280.
  await a.client.setView(bCamera.trackId, { visible: true, width: 1280, height: 720 });
  await until(() => videoOf(a, b)?.width === 1280, 20_000, 'the top layer at a large tile');
  expect(colourMatches(videoOf(a, b)!, palette.green)).toBe(true);

  // Hidden: the node pauses that consumer (a paused mediasoup consumer sends nothing); shown
  // again at a middle size, frames come back on the middle layer.
  await a.client.setView(bCamera.trackId, { visible: false, width: 1280, height: 720 });
  const consumer = [...node.rooms.get('video-call')!.peers.get(a.client.peerId!)!.consumers.values()].find((x) => x.producerId === bCamera.trackId)!;
  expect(consumer.paused).toBe(true);
  await until(async () => ((await consumer.getStats()).find((s) => s.type === 'outbound-rtp')?.byteCount ?? 0) > 0, 5000, 'consumer stats');
  const sentWhileHidden = async (): Promise<number> => (await consumer.getStats()).find((s) => s.type === 'outbound-rtp')?.packetCount ?? 0;
  const before = await sentWhileHidden();
  const framesBefore = videoOf(a, b)!.frames;
  await a.client.setView(bCamera.trackId, { visible: true, width: 640, height: 360 });
  await until(() => videoOf(a, b)!.frames > framesBefore + 5 && videoOf(a, b)!.width === 640, 20_000, 'frames to resume at the middle layer');
  expect(await sentWhileHidden()).toBeGreaterThan(before);

  // c shares a screen of another colour: a and b get it at full size, next to c's camera.
  const screen = colourTrack(palette.yellow, 1280, 720);
  try {
    await c.client.publish(screen.track, 'screen', { video: { width: 1280, height: 720 } });
    await until(
      () => [a, b].every((p) => colourMatches(videoOf(p, c, 'screen') ?? ({ frames: 0 } as never), palette.yellow) && videoOf(p, c, 'screen')!.width === 1280),
      20_000,
      'the screen share at full resolution everywhere',
    );
    expect(colourMatches(videoOf(a, c)!, palette.blue)).toBe(true);
    await c.client.unpublish('screen');
    await until(() => videoOf(a, c, 'screen') === undefined && videoOf(b, c, 'screen') === undefined, 10_000, 'the screen share to go');
  } finally {
    screen.stop();
  }
});
