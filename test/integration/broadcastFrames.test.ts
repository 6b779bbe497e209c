/**
 * How long a broadcaster's audio packets are. A broadcast is one-way, so the node asks its
 * publisher for 60 ms of Opus per packet (CHORUS_BROADCAST_FRAME_MS) instead of 20: a third of
 * the packets for every listener. Read where it lands: the RTP timestamps of the packets the
 * node's producer receives (48 kHz: 2880 ticks per 60 ms packet), from a real libwebrtc sender.
 */
import wrtc from '@roamhq/wrtc';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { ChorusClientOptions } from '../../src/client/chorusClient.js';
import { pinnedLocalDescription } from '../../src/client/node.js';
import { toneTrack } from '../support/nodePeer.js';
import { io } from 'socket.io-client';
import { request } from '../../src/client/signaling.js';
import { callToken } from '../support/callPeer.js';
import { joinListener } from '../support/listener.js';
import { microphoneProducer, timestampSteps } from '../support/rtpSteps.js';
import { nodeClient, startTestNode, tokenFor, until } from '../support/testNode.js';

let node: ChorusNode;
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  node = await startTestNode();
});
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
  await until(() => node.rooms.rooms.size === 0, 5000, 'rooms to close after the test');
});
afterAll(async () => {
  await node?.close();
});

/** Steps in the middle of the stream: the encoder's first packets may differ while it settles. */
const settled = (steps: number[]): number[] => steps.slice(5);

async function publishTone(roomId: string, extra: Partial<ChorusClientOptions> = {}): Promise<void> {
  const tone = toneTrack(700);
  const client = nodeClient(node, roomId, await tokenFor(node, roomId, 'broadcaster'), extra);
  cleanup.push(async () => {
    await client.close();
    tone.stop();
  });
  const info = await client.join();
  expect(info.opus).toEqual({ bitrate: 24000, frameMs: 60 });
  await client.publish(tone.track);
}

test('a broadcaster is asked for 60 ms packets and sends them; its listener still hears it', async () => {
  await publishTone('frames-60');
  const listener = await joinListener(node, 'frames-60');
  cleanup.push(() => listener.close());
  const steps = settled(await timestampSteps(await microphoneProducer(node, 'frames-60'), 25));
  expect(new Set(steps)).toEqual(new Set([2880]));
  await listener.hears(700);
});

test('an SDK that sets its own packet length keeps it (20 ms: 960 ticks a packet)', async () => {
  await publishTone('frames-20', { opusFrameMs: 20 });
  const steps = settled(await timestampSteps(await microphoneProducer(node, 'frames-20'), 25));
  expect(new Set(steps)).toEqual(new Set([960]));
});

test('only a one-way room\'s publisher is asked: not its listeners, not a call\'s participants (who converse: 20 ms)', async () => {
  const asked = async (roomId: string, token: string): Promise<unknown> => {
    const socket = io(node.url, { transports: ['websocket'] });
    cleanup.push(() => socket.close());
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    return (await request(socket, 'join', { roomId, token })).opus;
  };
  expect(await asked('frames-listen', await tokenFor(node, 'frames-listen', 'listener'))).toBeUndefined();
  expect(await asked('frames-call', await callToken(node, 'frames-call', 'ada'))).toBeUndefined();
});

const PeerConnection = pinnedLocalDescription(wrtc.RTCPeerConnection, wrtc.RTCSessionDescription);

test('a WHIP publisher into a broadcast is answered with a=ptime:60, and libwebrtc follows it', async () => {
  const roomId = 'frames-whip';
  const token = await tokenFor(node, roomId, 'broadcaster');
  const pc = new PeerConnection({ bundlePolicy: 'max-bundle' });
  const tone = toneTrack(700);
  cleanup.push(() => pc.close(), () => tone.stop());
  pc.addTransceiver(tone.track as never, { direction: 'sendonly' });
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  const response = await fetch(`${node.url}/whip/${roomId}`, {
    method: 'POST',
    headers: { 'content-type': 'application/sdp', authorization: `Bearer ${token}` },
    body: offer.sdp!,
  });
  expect(response.status).toBe(201);
  const answer = await response.text();
  expect(answer).toMatch(/^a=ptime:60\r?$/m);
  cleanup.push(() => fetch(`${node.url}${response.headers.get('location')!}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } }));
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  const steps = settled(await timestampSteps(await microphoneProducer(node, roomId), 25));
  expect(new Set(steps)).toEqual(new Set([2880]));
});
