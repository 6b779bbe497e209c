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
