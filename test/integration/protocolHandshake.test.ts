/**
 * The protocol handshake: a node answers a join with the protocol version it speaks, and each SDK
 * client refuses a node of another version with PROTOCOL_MISMATCH, undoing its join, instead of
 * misreading what the node sends (here a relay stands in for a newer node: it rewrites the real
 * node's join answer to name protocol 2).
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { CallClient } from '../../src/client/callClient.js';
import { ChorusClient } from '../../src/client/chorusClient.js';
import { WatchClient } from '../../src/client/watchClient.js';
import { PROTOCOL_VERSION } from '../../src/protocol/messages.js';
import { webrtcHandlerFactory } from '../support/nodePeer.js';
import { signalingRelay, type SignalingRelay } from '../support/signalingRelay.js';
import { startTestNode, until } from '../support/testNode.js';

let node: ChorusNode;
let newer: SignalingRelay;

beforeAll(async () => {
  node = await startTestNode();
  newer = await signalingRelay(node.url, {
    rewrite: (method, reply) => (method === 'join' && (reply as { ok: boolean }).ok ? { ...(reply as object), data: { ...(reply as { data: object }).data, protocol: PROTOCOL_VERSION + 1 } } : undefined),
  });
});
afterAll(async () => {
  await newer?.close();
  await node?.close();
});

test('every SDK client refuses a node of another protocol version with a clear error, and leaves nothing joined', async () => {
  const mint = (room: string, role: 'participant' | 'listener' | 'host', kind: 'call' | 'broadcast' | 'watch'): Promise<string> => node.tokens.mint({ room, identity: `${role}-${kind}`, role, kind });
  const socket = { transports: ['websocket'] as string[] };
  const clients = [
    new CallClient({ url: newer.url, roomId: 'proto-call', token: await mint('proto-call', 'participant', 'call'), handlerFactory: webrtcHandlerFactory(), socket }),
    new ChorusClient({ url: newer.url, roomId: 'proto-broadcast', token: await mint('proto-broadcast', 'listener', 'broadcast'), handlerFactory: webrtcHandlerFactory(), socket }),
    new WatchClient({ url: newer.url, roomId: 'proto-watch', token: await mint('proto-watch', 'host', 'watch'), socket }),
  ];
  for (const client of clients) {
    const refused = await client.join().then(
      () => undefined,
      (error: unknown) => error as { code: string; message: string; retryable: boolean },
    );
    expect(refused, client.constructor.name).toMatchObject({ code: 'PROTOCOL_MISMATCH', retryable: false });
    expect(refused!.message).toContain(`protocol ${PROTOCOL_VERSION + 1}`);
    await client.close();
  }
  // Each join was undone on the node.
  await until(() => ['proto-call', 'proto-broadcast', 'proto-watch'].every((room) => (node.rooms.get(room)?.peers.size ?? 0) === 0), 5000, 'the joins to be undone');
  // The same clients join the node itself.
  const direct = new CallClient({ url: node.url, roomId: 'proto-call', token: await node.tokens.mint({ room: 'proto-call', identity: 'direct', role: 'participant', kind: 'call' }), handlerFactory: webrtcHandlerFactory(), socket });
  expect((await direct.join()).protocol).toBe(PROTOCOL_VERSION);
  await direct.close();
});
