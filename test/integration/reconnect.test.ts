import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { toneTrack } from '../support/nodePeer.js';
import { joinListener } from '../support/listener.js';
import { TcpProxy } from '../support/tcpProxy.js';
import { nodeClient, startTestNode, tokenFor, until } from '../support/testNode.js';

let node: ChorusNode;
beforeAll(async () => {
  node = await startTestNode();
});
afterAll(async () => {
  await node?.close();
});

test('when the signaling connection drops, the SDK reconnects, rejoins and plays again by itself', async () => {
  const proxy = await TcpProxy.start(Number(new URL(node.url).port));
  const tone = toneTrack(1000);
  const broadcaster = nodeClient(node, 'net', await tokenFor(node, 'net', 'broadcaster'));
  await broadcaster.join();
  await broadcaster.publish(tone.track);
  const listener = await joinListener(node, 'net', { url: proxy.url });
  await listener.hears(1000);
  const firstPeer = listener.client.peerId;

  expect(proxy.cut()).toBeGreaterThan(0);
  await until(() => listener.events.includes('state:reconnecting'), 5000, 'SDK to notice the drop');
  await until(() => listener.client.state === 'joined', 15_000, 'SDK to rejoin');
  await listener.hears(1000);
  // The old session is gone from the room; only the new one remains.
  const room = node.rooms.get('net')!;
  await until(() => !room.peers.has(firstPeer!), 15_000, 'old session to be removed');
  expect([...room.peers.values()].filter((p) => p.role === 'listener').map((p) => p.id)).toEqual([listener.client.peerId]);

  await listener.close();
  await broadcaster.close();
  tone.stop();
  await proxy.close();
});

test('a paused broadcaster that reconnects comes back paused, and a new microphone track replaces the old live', async () => {
  const proxy = await TcpProxy.start(Number(new URL(node.url).port));
  const first = toneTrack(1000);
  const broadcaster = nodeClient(node, 'paused', await tokenFor(node, 'paused', 'broadcaster'), { url: proxy.url });
  await broadcaster.join();
  await broadcaster.publish(first.track);
  const listener = await joinListener(node, 'paused');
  await listener.hears(1000);

  const second = toneTrack(600);
  await broadcaster.publish(second.track);
  await listener.hears(600);

  await broadcaster.setPaused(true);
  await until(() => listener.client.broadcast.paused, 5000, 'listener to see the pause');
  const producerBefore = broadcaster.producer!.id;
  proxy.cut();
  await until(() => broadcaster.producer !== undefined && broadcaster.producer.id !== producerBefore, 15_000, 'broadcaster to republish');
  await until(() => listener.client.broadcast.live && listener.client.broadcast.paused, 10_000, 'listener to see the new broadcast paused');
  await broadcaster.setPaused(false);
  await listener.hears(600);

  await listener.close();
  await broadcaster.close();
  first.stop();
  second.stop();
  await proxy.close();
});
