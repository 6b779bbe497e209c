import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { Grants } from '../../src/auth/tokens.js';
import type { Role } from '../../src/protocol/messages.js';
import type { TrackSource } from '../../src/protocol/room.js';
import { toneTrack } from '../support/nodePeer.js';
import { joinListener } from '../support/listener.js';
import { mediaCounts } from '../support/mediaCounts.js';
import { RawSocket } from '../support/rawSocket.js';
import { rtpFor } from '../support/roomHarness.js';
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

// ---------------------------------------------------------------------------------------------
// Call rooms over the real socket: the rules test/rooms/callRoom.test.ts checks on Room directly,
// here with the codes a client actually receives, each refusal leaving the session usable and
// creating nothing. Media never flows: mediasoup accepts produce on a transport that never
// connected, which is all these rules need.

describe('call rooms: refusals over the socket, each with its code, leaving the session usable', () => {
  const CAP = 3;
  let callNode: ChorusNode;
  const callSockets: RawSocket[] = [];
  let rooms = 0;

  beforeAll(async () => {
    // The per-connection message rate raised: the floods below meet the call limits, not that one.
    // No burst on track controls: the flood below meets the steady rate (test/unit/limits.test.ts
    // covers the burst).
    // An estimate above every layer: these tests are about refusals, not the layer policy's budget.
    callNode = await startTestNode({ RTC_INITIAL_BITRATE: '10000000', CHORUS_CALL_MAX_PARTICIPANTS: String(CAP), CHORUS_LIMIT_MESSAGES_PER_CONNECTION_PER_SECOND: '1000', CHORUS_LIMIT_TRACK_CONTROL_BURST: '0' });
  });
  afterEach(async () => {
    for (const s of callSockets.splice(0)) s.close();
    await until(() => callNode.rooms.rooms.size === 0, 5000, 'call rooms to close');
    expect(await mediaCounts(callNode)).toEqual({ routers: 0, transports: 0, producers: 0, consumers: 0 });
  });
  afterAll(async () => {
    await callNode?.close();
  });

  const newRoom = () => `call-${++rooms}`;

  interface CallSession {
    s: RawSocket;
    peerId: string;
    send: string;
    recv: string;
    caps: unknown;
  }

  async function callToken(room: string, role: Role, grants?: Grants): Promise<string> {
    return callNode.tokens.mint({ room, identity: `${role}-${randomUUID().slice(0, 8)}`, role, kind: 'call', ...(grants ? { grants } : {}) });
  }

  async function callRaw(): Promise<RawSocket> {
    const s = await RawSocket.connect(callNode);
    callSockets.push(s);
    return s;
  }

  /** Joined with a send and a receive transport. */
  async function inCall(room: string, role: 'participant' | 'moderator' = 'participant', grants?: Grants): Promise<CallSession> {
    const s = await callRaw();
    const joinedReply = await s.ok('join', { roomId: room, token: await callToken(room, role, grants) });
    const send = await s.ok('createTransport', { direction: 'send' });
    const recv = await s.ok('createTransport', { direction: 'recv' });
    return { s, peerId: String(joinedReply['peerId']), send: String(send['id']), recv: String(recv['id']), caps: joinedReply['routerRtpCapabilities'] };
  }

  function produce(c: CallSession, source: TrackSource, kind: 'audio' | 'video' = source === 'microphone' || source === 'screen-audio' ? 'audio' : 'video') {
    const rtpParameters = rtpFor(kind === 'audio' ? 'microphone' : source === 'screen' ? 'screen' : 'camera');
    return c.s.call('produce', { transportId: c.send, kind, rtpParameters, source, ...(kind === 'video' ? { video: { width: 1280, height: 720 } } : {}) });
  }

  async function published(c: CallSession, source: TrackSource): Promise<string> {
    const reply = await produce(c, source);
    if (!reply.ok) throw new Error(`produce ${source} failed: ${reply.error?.code} ${reply.error?.message}`);
    return String(reply.data?.['producerId']);
  }

  async function consumed(c: CallSession, producerId: string): Promise<string> {
    return String((await c.s.ok('consume', { transportId: c.recv, producerId, rtpCapabilities: c.caps }))['consumerId']);
  }

  test('publishing a source twice is MEDIA_REJECTED; a source of the wrong kind is BAD_REQUEST; neither creates anything', async () => {
    const a = await inCall(newRoom());
    await published(a, 'microphone');
    const before = await mediaCounts(callNode);
    expect((await produce(a, 'microphone')).error?.code).toBe('MEDIA_REJECTED');
    // A microphone of video, a camera of audio: a source carries one kind.
    expect((await produce(a, 'microphone', 'video')).error?.code).toBe('BAD_REQUEST');
    expect((await produce(a, 'camera', 'audio')).error?.code).toBe('BAD_REQUEST');
    expect((await produce(a, 'screen-audio', 'video')).error?.code).toBe('BAD_REQUEST');
    expect(await mediaCounts(callNode)).toEqual(before);
    // Still usable: every other source publishes.
    await published(a, 'camera');
    await published(a, 'screen');
    await published(a, 'screen-audio');
    expect(await mediaCounts(callNode)).toMatchObject({ producers: 4 });
  });

  test("a source the token's publish grant does not list is FORBIDDEN_ROLE; what it lists publishes", async () => {
    const a = await inCall(newRoom(), 'participant', { publish: ['microphone'] });
    const before = await mediaCounts(callNode);
    for (const source of ['camera', 'screen', 'screen-audio'] as const) expect((await produce(a, source)).error?.code).toBe('FORBIDDEN_ROLE');
    expect(await mediaCounts(callNode)).toEqual(before);
    await published(a, 'microphone');
  });

  test("consuming one's own track is BAD_REQUEST; another room's producer is PRODUCER_NOT_FOUND; another participant's track is consumed", async () => {
    const room = newRoom();
    const a = await inCall(room);
    const b = await inCall(room);
    const mic = await published(a, 'microphone');
    const elsewhere = await inCall(newRoom());
    const foreign = await published(elsewhere, 'microphone');
    const before = await mediaCounts(callNode);
    expect(await a.s.code('consume', { transportId: a.recv, producerId: mic, rtpCapabilities: a.caps })).toBe('BAD_REQUEST');
    expect(await b.s.code('consume', { transportId: b.recv, producerId: foreign, rtpCapabilities: b.caps })).toBe('PRODUCER_NOT_FOUND');
    // No "the broadcast" in a call: every track is named.
    expect(await b.s.code('consume', { transportId: b.recv, rtpCapabilities: b.caps })).toBe('NOTHING_TO_CONSUME');
    expect(await mediaCounts(callNode)).toEqual(before);
    await consumed(b, mic);
    await consumed(a, await published(b, 'microphone'));
  });

  test('layers out of range, layers of an unlayered track and a view of audio are BAD_REQUEST and change nothing; valid ones are applied', async () => {
    const room = newRoom();
    const a = await inCall(room);
    const b = await inCall(room);
    const cam = await consumed(b, await published(a, 'camera'));
    const mic = await consumed(b, await published(a, 'microphone'));
    const consumer = () => callNode.rooms.get(room)!.peers.get(b.peerId)!.consumers.get(cam)!;
    expect(consumer().preferredLayers).toEqual({ spatialLayer: 1, temporalLayer: 2 });
    // Three simulcast layers of three temporal layers each: 0-2 and 0-2.
    expect(await b.s.code('setPreferredLayers', { consumerId: cam, spatialLayer: 3 })).toBe('BAD_REQUEST');
    expect(await b.s.code('setPreferredLayers', { consumerId: cam, spatialLayer: 0, temporalLayer: 3 })).toBe('BAD_REQUEST');
    expect(await b.s.code('setPreferredLayers', { consumerId: mic, spatialLayer: 0 })).toBe('BAD_REQUEST');
    expect(await b.s.code('track.view', { consumerId: mic, visible: true, width: 320, height: 180 })).toBe('BAD_REQUEST');
    // Beyond what the schema allows at all.
    expect(await b.s.code('setPreferredLayers', { consumerId: cam, spatialLayer: 16 })).toBe('BAD_REQUEST');
    expect(await b.s.code('setPreferredLayers', { consumerId: cam, spatialLayer: -1 })).toBe('BAD_REQUEST');
    expect(await b.s.code('track.view', { consumerId: cam, visible: true, width: 16_385, height: 180 })).toBe('BAD_REQUEST');
    expect(await a.s.code('setPreferredLayers', { consumerId: cam, spatialLayer: 0 })).toBe('CONSUMER_NOT_FOUND');
    expect(consumer().preferredLayers).toEqual({ spatialLayer: 1, temporalLayer: 2 });
    await b.s.ok('setPreferredLayers', { consumerId: cam, spatialLayer: 2, temporalLayer: 1 });
    expect(consumer().preferredLayers).toEqual({ spatialLayer: 2, temporalLayer: 1 });
    expect(await b.s.ok('track.view', { consumerId: cam, visible: true, width: 320, height: 180 })).toEqual({ paused: true, spatialLayer: 0 });
  });

  test(`the participant over the cap (${CAP} here) is LIMIT_REACHED; a listener, a broadcaster or a broadcast token is refused; a refused join may retry`, async () => {
    const room = newRoom();
    const members = [await inCall(room), await inCall(room, 'moderator')];
    const s = await callRaw();
    expect(await s.code('join', { roomId: room, token: await callToken(room, 'listener') })).toBe('FORBIDDEN_ROLE');
    expect(await s.code('join', { roomId: room, token: await callToken(room, 'broadcaster') })).toBe('FORBIDDEN_ROLE');
    expect(await s.code('join', { roomId: room, token: await callNode.tokens.mint({ room, identity: 'b', role: 'participant' }) })).toBe('WRONG_ROOM_KIND');
    members.push(await inCall(room));
    const before = await mediaCounts(callNode);
    const token = await callToken(room, 'participant');
    expect(await s.code('join', { roomId: room, token })).toBe('LIMIT_REACHED');
    expect(callNode.rooms.get(room)!.peers.size).toBe(CAP);
    expect(await mediaCounts(callNode)).toEqual(before);
    // A seat frees: the refused token was not spent, and the same socket joins with it.
    await members[0]!.s.ok('leave', {});
    await s.ok('join', { roomId: room, token });
    expect(callNode.rooms.get(room)!.peers.size).toBe(CAP);
  });

  test('a flood of track.view (and of moderator mutes) past 30 a second is LIMIT_REACHED with a retry delay; the session carries on', async () => {
    const room = newRoom();
    const a = await inCall(room);
    const b = await inCall(room, 'moderator');
    const cam = await consumed(b, await published(a, 'camera'));
    const before = await mediaCounts(callNode);
    const views = await Promise.all(Array.from({ length: 45 }, (_, i) => b.s.call('track.view', { consumerId: cam, visible: true, width: 320 + i, height: 180 })));
    expect(views.filter((r) => r.ok)).toHaveLength(30);
    for (const r of views.filter((x) => !x.ok)) {
      expect(r.error?.code).toBe('LIMIT_REACHED');
      expect((r.error as { retryAfterMs?: number }).retryAfterMs).toBeGreaterThan(0);
    }
    // The same budget: layers and moderator mutes are refused too until it refills.
    expect(await b.s.code('setPreferredLayers', { consumerId: cam, spatialLayer: 0 })).toBe('LIMIT_REACHED');
    expect(await b.s.code('moderate', { action: 'mute', peerId: a.peerId, source: 'camera' })).toBe('LIMIT_REACHED');
    expect(await mediaCounts(callNode)).toEqual(before);
    // Other requests are served meanwhile, and the controls again once the second has passed.
    expect(((await b.s.ok('room.sync', {})) as { participants: unknown[] }).participants).toHaveLength(2);
    await b.s.ok('resumeConsumer', { consumerId: cam });
    await until(async () => (await b.s.call('track.view', { consumerId: cam, visible: true, width: 1280, height: 720 })).ok, 3000, 'track.view to be served again');
    const mutes = await Promise.all(Array.from({ length: 35 }, (_, i) => b.s.call('moderate', { action: i % 2 === 0 ? 'mute' : 'unmute', peerId: a.peerId, source: 'camera' })));
    expect(mutes.filter((r) => r.ok).length).toBeLessThanOrEqual(30);
    expect(mutes.filter((r) => !r.ok).map((r) => r.error?.code)).toContain('LIMIT_REACHED');
    expect(new Set(mutes.filter((r) => !r.ok).map((r) => r.error?.code))).toEqual(new Set(['LIMIT_REACHED']));
    expect(await mediaCounts(callNode)).toEqual(before);
  });

  test('peer-to-peer relays: only within the pair, only while direct, oversized or malformed ones refused, floods rate limited', async () => {
    const room = newRoom();
    const join = async (p2p: boolean, roomId = room): Promise<{ s: RawSocket; peerId: string }> => {
      const s = await callRaw();
      const reply = await s.ok('join', { roomId, token: await callToken(roomId, 'participant'), ...(p2p ? { p2p: true } : {}) });
      return { s, peerId: String(reply['peerId']) };
    };
    const a = await join(true);
    const b = await join(true);
    const pathOf = (s: RawSocket) => s.events.filter((e) => e.event === 'call:path').map((e) => e.payload as { path: string; peerId?: string; polite?: boolean });
    await until(() => pathOf(a.s).length === 1 && pathOf(b.s).length === 1, 5000, 'both to be told the call is peer-to-peer');
    expect(pathOf(a.s)[0]).toMatchObject({ path: 'p2p', peerId: b.peerId, polite: false });
    expect(callNode.rooms.get(room)!.mediaPath.path).toBe('p2p');

    const offer = { type: 'offer', sdp: 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n' };
    await a.s.ok('p2p.signal', { to: b.peerId, description: offer });
    await until(() => b.s.events.some((e) => e.event === 'p2p:signal'), 5000, 'b to get the offer');
    expect(b.s.events.find((e) => e.event === 'p2p:signal')?.payload).toEqual({ from: a.peerId, description: offer });
    // Oversized or malformed: refused, the session usable.
    expect(await a.s.code('p2p.signal', { to: b.peerId, description: { type: 'offer', sdp: 'v'.repeat(48 * 1024 + 1) } })).toBe('BAD_REQUEST');
    expect(await a.s.code('p2p.signal', { to: b.peerId, description: { type: 'pranswer', sdp: 'v=0' } })).toBe('BAD_REQUEST');
    // Someone in another call cannot reach b, nor can anyone reach themselves.
    const elsewhere = await join(true, newRoom());
    expect(await elsewhere.s.code('p2p.signal', { to: b.peerId, description: offer })).toBe('NOT_PEER_TO_PEER');
    expect(await a.s.code('p2p.signal', { to: a.peerId, description: offer })).toBe('NOT_PEER_TO_PEER');
    expect(b.s.events.filter((e) => e.event === 'p2p:signal')).toHaveLength(1);

    // A flood: 20 a second and 40 more once; past that, LIMIT_REACHED with a retry delay.
    const candidate = { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 };
    const flood = await Promise.all(Array.from({ length: 80 }, () => a.s.call('p2p.signal', { to: b.peerId, candidate })));
    expect(flood.filter((r) => r.ok).length).toBeLessThanOrEqual(60);
    expect(new Set(flood.filter((r) => !r.ok).map((r) => r.error?.code))).toEqual(new Set(['LIMIT_REACHED']));

    // A third participant: the call is on the SFU, and relays stop.
    await join(true);
    await until(() => pathOf(a.s).at(-1)?.path === 'sfu', 5000, 'a to be told the call is on the SFU');
    expect(await b.s.code('p2p.signal', { to: a.peerId, description: offer })).toBe('NOT_PEER_TO_PEER');
  });

  test('a flood of unmute requests past 6 a minute is LIMIT_REACHED with a retry delay; moderators hear only the admitted ones; the session carries on', async () => {
    const room = newRoom();
    const a = await inCall(room);
    const mod = await inCall(room, 'moderator');
    const mic = await published(a, 'microphone');
    // Nothing muted by a moderator yet: nothing to ask for.
    expect(await a.s.code('mute.request', { source: 'microphone' })).toBe('BAD_REQUEST');
    await mod.s.ok('moderate', { action: 'mute', peerId: a.peerId, source: 'microphone' });
    expect(await a.s.code('resumeProducer', { producerId: mic })).toBe('MUTED');
    const before = await mediaCounts(callNode);
    const asks = await Promise.all(Array.from({ length: 10 }, () => a.s.call('mute.request', { source: 'microphone' })));
    // The refused ask above spent one of the six.
    expect(asks.filter((r) => r.ok)).toHaveLength(5);
    for (const r of asks.filter((x) => !x.ok)) {
      expect(r.error?.code).toBe('LIMIT_REACHED');
      expect((r.error as { retryAfterMs?: number }).retryAfterMs).toBeGreaterThan(0);
    }
    await until(() => mod.s.events.filter((e) => e.event === 'mute:requested').length === 5, 5000, 'the moderator to be told of each admitted request');
    expect(mod.s.events.filter((e) => e.event === 'mute:requested').map((e) => e.payload)).toEqual(Array(5).fill({ peerId: a.peerId, identity: expect.any(String), source: 'microphone' }));
    expect(await mediaCounts(callNode)).toEqual(before);
    // Still usable: the moderator lifts the ban and the participant turns its microphone back on.
    await mod.s.ok('moderate', { action: 'unmute', peerId: a.peerId, source: 'microphone' });
    await a.s.ok('resumeProducer', { producerId: mic });
    await published(a, 'camera');
  });
});
