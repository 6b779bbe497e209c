import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { toneTrack } from '../support/nodePeer.js';
import { joinListener } from '../support/listener.js';
import { mediaCounts } from '../support/mediaCounts.js';
import { RawSocket } from '../support/rawSocket.js';
import { nodeClient, startTestNode, tokenFor, until } from '../support/testNode.js';

let node: ChorusNode;
const sockets: RawSocket[] = [];

beforeAll(async () => {
  node = await startTestNode();
});
afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  await until(() => node.rooms.rooms.size === 0, 5000, 'rooms to close');
});
afterAll(async () => {
  await node?.close();
});

async function raw(): Promise<RawSocket> {
  const s = await RawSocket.connect(node);
  sockets.push(s);
  return s;
}

async function joined(roomId: string, role: 'broadcaster' | 'listener'): Promise<RawSocket> {
  const s = await raw();
  await s.ok('join', { roomId, token: await tokenFor(node, roomId, role) });
  return s;
}

const rtpCapabilities = { codecs: [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2, preferredPayloadType: 100 }] };

describe('requests that must be refused, each with its code, leaving the socket usable', () => {
  test('before joining: consume, create transport and produce are NOT_JOINED', async () => {
    const s = await raw();
    expect(await s.code('consume', { transportId: 't', rtpCapabilities })).toBe('NOT_JOINED');
    expect(await s.code('createTransport', { direction: 'recv' })).toBe('NOT_JOINED');
    expect(await s.code('leave', {})).toBe('NOT_JOINED');
    await s.ok('join', { roomId: 'r1', token: await tokenFor(node, 'r1', 'listener') });
  });

  test('malformed payloads are BAD_REQUEST and name the field; the socket still works', async () => {
    const s = await raw();
    const reply = await s.call('join', { roomId: 'r2', token: 42 });
    expect(reply.error?.code).toBe('BAD_REQUEST');
    expect(reply.error?.message).toMatch(/token/);
    expect(await s.code('join', 'just a string')).toBe('BAD_REQUEST');
    expect(await s.code('join', null)).toBe('BAD_REQUEST');
    expect(await s.code('join', { roomId: '../../etc', token: 'x' })).toBe('BAD_REQUEST');
    expect(await s.code('join', { roomId: 'r2', token: 't', isAdmin: true })).toBe('BAD_REQUEST');
    await s.ok('join', { roomId: 'r2', token: await tokenFor(node, 'r2', 'listener') });
  });

  test('unknown methods are UNKNOWN_METHOD; a request without a callback gets request:error', async () => {
    const s = await raw();
    expect(await s.code('deleteEverything', {})).toBe('UNKNOWN_METHOD');
    s.socket.emit('consume', { transportId: 'x', rtpCapabilities });
    await until(() => s.events.some((e) => e.event === 'request:error'), 5000, 'request:error');
    expect(s.events.find((e) => e.event === 'request:error')?.payload).toMatchObject({
      method: 'consume',
      error: { code: 'NOT_JOINED' },
    });
  });

  test('tokens: forged is TOKEN_INVALID, another room\'s is TOKEN_WRONG_ROOM, joining twice is ALREADY_JOINED', async () => {
    const s = await raw();
    expect(await s.code('join', { roomId: 'r3', token: 'eyJhbGciOiJIUzI1NiJ9.e30.AAAA' })).toBe('TOKEN_INVALID');
    expect(await s.code('join', { roomId: 'r3', token: await tokenFor(node, 'other-room', 'broadcaster') })).toBe('TOKEN_WRONG_ROOM');
    expect(node.rooms.get('other-room')).toBeUndefined();
    await s.ok('join', { roomId: 'r3', token: await tokenFor(node, 'r3', 'listener') });
    expect(await s.code('join', { roomId: 'r3', token: await tokenFor(node, 'r3', 'listener') })).toBe('ALREADY_JOINED');
  });

  test('a listener can create neither a send transport nor a producer', async () => {
    const s = await joined('r4', 'listener');
    expect(await s.code('createTransport', { direction: 'send' })).toBe('FORBIDDEN_ROLE');
    const recv = await s.ok('createTransport', { direction: 'recv' });
    const rtpParameters = { codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2 }], encodings: [{ ssrc: 1234 }] };
    expect(await s.code('produce', { transportId: recv['id'], kind: 'audio', rtpParameters })).toBe('FORBIDDEN_ROLE');
    expect(await mediaCounts(node)).toMatchObject({ transports: 1, producers: 0 });
  });

  test('unknown ids and another peer\'s transport are all "not found" for this session', async () => {
    const a = await joined('r5', 'listener');
    const b = await joined('r5', 'listener');
    const aTransport = await a.ok('createTransport', { direction: 'recv' });
    const dtlsParameters = { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: 'AA:BB' }] };
    expect(await b.code('connectTransport', { transportId: 'nope', dtlsParameters })).toBe('TRANSPORT_NOT_FOUND');
    expect(await b.code('connectTransport', { transportId: aTransport['id'], dtlsParameters })).toBe('TRANSPORT_NOT_FOUND');
    expect(await b.code('restartIce', { transportId: aTransport['id'] })).toBe('TRANSPORT_NOT_FOUND');
    expect(await b.code('resumeConsumer', { consumerId: 'nope' })).toBe('CONSUMER_NOT_FOUND');
    expect(await b.code('pauseProducer', { producerId: 'nope' })).toBe('PRODUCER_NOT_FOUND');
    expect(await b.code('consume', { transportId: aTransport['id'], rtpCapabilities })).toBe('TRANSPORT_NOT_FOUND');
  });

  test('consuming with nothing live is NOTHING_TO_CONSUME; a transport limit holds', async () => {
    const s = await joined('r6', 'listener');
    const t = await s.ok('createTransport', { direction: 'recv' });
    expect(await s.code('consume', { transportId: t['id'], rtpCapabilities })).toBe('NOTHING_TO_CONSUME');
    await s.ok('createTransport', { direction: 'recv' });
    expect(await s.code('createTransport', { direction: 'recv' })).toBe('LIMIT_REACHED');
  });

  test('nonsense RTP parameters from a broadcaster are MEDIA_REJECTED and create nothing', async () => {
    const s = await joined('r7', 'broadcaster');
    const t = await s.ok('createTransport', { direction: 'send' });
    const unknownCodec = { codecs: [{ mimeType: 'audio/nonsense', payloadType: 111, clockRate: 48000 }], encodings: [{ ssrc: 1 }] };
    expect(await s.code('produce', { transportId: t['id'], kind: 'audio', rtpParameters: unknownCodec })).toBe('MEDIA_REJECTED');
    const video = { codecs: [{ mimeType: 'video/VP8', payloadType: 96, clockRate: 90000 }], encodings: [{ ssrc: 2 }] };
    expect(await s.code('produce', { transportId: t['id'], kind: 'video', rtpParameters: video })).toBe('MEDIA_REJECTED');
    // A transport connects once; a second connect (a replay, or a confused client) is refused.
    const dtlsParameters = { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: 'AA:BB' }] };
    await s.ok('connectTransport', { transportId: t['id'], dtlsParameters });
    expect(await s.code('connectTransport', { transportId: t['id'], dtlsParameters })).toBe('MEDIA_REJECTED');
    expect(await mediaCounts(node)).toMatchObject({ producers: 0 });
  });

  test('media blobs are strict: an unknown field anywhere in them is BAD_REQUEST naming it, and nothing is created', async () => {
    const s = await joined('r-strict', 'broadcaster');
    const t = await s.ok('createTransport', { direction: 'send' });
    const codec = { mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2 };
    const produce = (rtpParameters: unknown) => s.call('produce', { transportId: t['id'], kind: 'audio', rtpParameters });
    const refusals = [
      await produce({ codecs: [codec], encodings: [{ ssrc: 1 }], isAdmin: true }),
      await produce({ codecs: [{ ...codec, extra: 1 }], encodings: [{ ssrc: 1 }] }),
      await produce({ codecs: [codec], encodings: [{ ssrc: 1, extra: 1 }] }),
      await produce({ codecs: [codec], encodings: [{ ssrc: 1, rtx: { ssrc: 2, extra: 1 } }] }),
      await produce({ codecs: [codec], encodings: [{ ssrc: 1 }], rtcp: { cname: 'x', extra: 1 } }),
      await produce({ codecs: [codec], encodings: [{ ssrc: 1 }], headerExtensions: [{ uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', id: 1, extra: 1 }] }),
      await produce({ codecs: [{ ...codec, rtcpFeedback: [{ type: 'nack', extra: 1 }] }], encodings: [{ ssrc: 1 }] }),
      await s.call('connectTransport', { transportId: t['id'], dtlsParameters: { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: 'AA:BB' }], extra: 1 } }),
      await s.call('connectTransport', { transportId: t['id'], dtlsParameters: { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: 'AA:BB', extra: 1 }] } }),
    ];
    for (const reply of refusals) {
      expect(reply.error?.code).toBe('BAD_REQUEST');
      expect(reply.error?.message).toMatch(/extra|isAdmin/);
    }
    const l = await joined('r-strict', 'listener');
    const recv = await l.ok('createTransport', { direction: 'recv' });
    for (const caps of [
      { ...rtpCapabilities, extra: 1 },
      { codecs: [{ ...rtpCapabilities.codecs[0], extra: 1 }] },
      { codecs: rtpCapabilities.codecs, headerExtensions: [{ kind: 'audio', uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', preferredId: 1, extra: 1 }] },
    ]) {
      expect(await l.code('consume', { transportId: recv['id'], rtpCapabilities: caps })).toBe('BAD_REQUEST');
    }
    expect(await mediaCounts(node)).toMatchObject({ producers: 0, consumers: 0 });
    // Exactly what mediasoup-client sends is still accepted (broadcast.test.ts runs the real SDK).
    await s.ok('produce', {
      transportId: t['id'],
      kind: 'audio',
      rtpParameters: {
        mid: '0',
        codecs: [{ ...codec, parameters: { minptime: 10, useinbandfec: 1 }, rtcpFeedback: [{ type: 'transport-cc', parameter: '' }] }],
        headerExtensions: [{ uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', id: 1, encrypt: false, parameters: {} }],
        encodings: [{ ssrc: 4_294_967_295, dtx: true, active: true, maxBitrate: 24000, priority: 'high', networkPriority: 'high', adaptivePtime: false }],
        rtcp: { cname: 'c', reducedSize: true, mux: true },
        msid: 'stream track',
      },
    });
  });

  test('an SSRC outside 32 bits is BAD_REQUEST', async () => {
    const s = await joined('r-ssrc', 'broadcaster');
    const t = await s.ok('createTransport', { direction: 'send' });
    const codecs = [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2 }];
    for (const encodings of [[{ ssrc: 2 ** 32 }], [{ ssrc: 1, rtx: { ssrc: 2 ** 32 + 5 } }], [{ ssrc: -1 }], [{ ssrc: 1.5 }]]) {
      const reply = await s.call('produce', { transportId: t['id'], kind: 'audio', rtpParameters: { codecs, encodings } });
      expect(reply.error?.code).toBe('BAD_REQUEST');
      expect(reply.error?.message).toMatch(/ssrc/);
    }
    expect(await mediaCounts(node)).toMatchObject({ producers: 0 });
  });

  test('an RTX codec whose apt names itself is MEDIA_REJECTED in our words, not a JavaScript TypeError', async () => {
    const s = await joined('r-rtx', 'broadcaster');
    const t = await s.ok('createTransport', { direction: 'send' });
    const rtpParameters = {
      codecs: [
        { mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2 },
        { mimeType: 'audio/rtx', payloadType: 112, clockRate: 48000, parameters: { apt: 112 } },
      ],
      encodings: [{ ssrc: 1 }],
    };
    const reply = await s.call('produce', { transportId: t['id'], kind: 'audio', rtpParameters });
    expect(reply.error?.code).toBe('MEDIA_REJECTED');
    expect(reply.error?.message).toMatch(/^cannot produce: rtpParameters are inconsistent/);
    expect(reply.error?.message).not.toMatch(/undefined|Cannot read|properties/);
    expect(await mediaCounts(node)).toMatchObject({ producers: 0 });
  });

  test('an oversized message closes only that connection; the room and its audio carry on', async () => {
    const tone = toneTrack(1000);
    const broadcaster = nodeClient(node, 'big', await tokenFor(node, 'big', 'broadcaster'));
    await broadcaster.join();
    await broadcaster.publish(tone.track);
    const listener = await joinListener(node, 'big');
    await listener.hears(1000);
    const s = await joined('big', 'listener');
    const disconnected = new Promise((resolve) => s.socket.once('disconnect', resolve));
    s.socket.emit('join', { roomId: 'big', token: 'x'.repeat(200_000) });
    await disconnected;
    await listener.hears(1000);
    expect(node.rooms.get('big')?.peers.size).toBe(2);
    await listener.close();
    await broadcaster.close();
    tone.stop();
  });

  test('after all of the above the node is healthy and holds no stray media objects', async () => {
    await until(() => node.rooms.rooms.size === 0, 5000, 'rooms to close');
    expect(await mediaCounts(node)).toEqual({ routers: 0, transports: 0, producers: 0, consumers: 0 });
    expect(node.workers.healthy).toBe(true);
    const response = await fetch(`${node.url}/readyz`);
    expect(response.status).toBe(200);
  });
});
