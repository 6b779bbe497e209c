/**
 * The short join path: `join` can bring the session's media transport, and an audio `consume`
 * can start flowing, so a listener needs join → consume → connectTransport instead of five
 * requests. The policy stays the same as on the long path, which keeps working.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { ChorusClient } from '../../src/client/chorusClient.js';
import { joinListener, type TestListener } from '../support/listener.js';
import { mediaCounts } from '../support/mediaCounts.js';
import { toneTrack, type ToneSource } from '../support/nodePeer.js';
import { freePort } from '../support/ports.js';
import { olderNode } from '../support/olderNode.js';
import { RawSocket } from '../support/rawSocket.js';
import { nodeClient, startTestNode, tokenFor, until } from '../support/testNode.js';

let node: ChorusNode;
const sockets: RawSocket[] = [];
const clients: Array<ChorusClient | TestListener> = [];
const tones: ToneSource[] = [];

beforeAll(async () => {
  node = await startTestNode();
});
afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  for (const c of clients.splice(0)) await c.close();
  for (const t of tones.splice(0)) t.stop();
  await until(() => node.rooms.rooms.size === 0, 5000, 'rooms to close');
});
afterAll(async () => {
  await node?.close();
});

async function raw(on: ChorusNode = node): Promise<RawSocket> {
  const s = await RawSocket.connect(on);
  sockets.push(s);
  return s;
}

/** A broadcaster (the real SDK on Node WebRTC) publishing a tone in `roomId`. */
async function broadcasting(roomId: string, on: ChorusNode = node): Promise<void> {
  const tone = toneTrack(660);
  tones.push(tone);
  const broadcaster = nodeClient(on, roomId, await tokenFor(on, roomId, 'broadcaster'));
  clients.push(broadcaster);
  await broadcaster.join();
  await broadcaster.publish(tone.track);
  await until(() => on.rooms.get(roomId)?.localBroadcast !== undefined, 10_000, 'the broadcast to start');
}

/** Signaling requests the node answered with `ok`, by method, from its own metrics. */
async function answered(method: string): Promise<number> {
  const text = await node.metrics.render();
  const line = text.split('\n').find((l) => l.startsWith('chorus_signaling_requests_total{') && l.includes(`method="${method}"`) && l.includes('code="ok"'));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

function serverConsumer(roomId: string, peerId: string, consumerId: string) {
  return node.rooms.get(roomId)?.peers.get(peerId)?.consumers.get(consumerId);
}

const dtlsParameters = { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: 'AA:BB' }] };

describe('join with its transport, consume flowing', () => {
  test('a listener asking for a transport in join gets a receive transport, and a consumer that flows without resumeConsumer', async () => {
    await broadcasting('s1');
    // Receive transports of the room (not mediaCounts: the listener may open the room's router on
    // the other worker, with its pipe transports).
    const receiving = (): number => node.rooms.get('s1')!.requireMedia().slots.reduce((sum, slot) => sum + slot.recvTransports, 0);
    const before = receiving();
    const s = await raw();
    const info = await s.ok('join', { roomId: 's1', token: await tokenFor(node, 's1', 'listener'), transport: {} });
    const transport = info['transport'] as Record<string, unknown>;
    expect(transport).toMatchObject({ direction: 'recv', id: expect.any(String), iceParameters: expect.any(Object), dtlsParameters: expect.any(Object) });
    expect((transport['iceCandidates'] as unknown[]).length).toBeGreaterThan(0);
    expect(receiving()).toBe(before + 1);
    const peer = node.rooms.get('s1')?.peers.get(String(info['peerId']));
    expect(peer?.transports.get(String(transport['id']))?.appData['direction']).toBe('recv');

    // Still a listener: no sending over it, no send transport on the side.
    const rtpParameters = { codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2 }], encodings: [{ ssrc: 1234 }] };
    expect(await s.code('produce', { transportId: transport['id'], kind: 'audio', rtpParameters })).toBe('FORBIDDEN_ROLE');
    expect(await s.code('createTransport', { direction: 'send' })).toBe('FORBIDDEN_ROLE');

    const consumed = await s.ok('consume', { transportId: transport['id'], rtpCapabilities: info['routerRtpCapabilities'], paused: false });
    expect(consumed).toMatchObject({ kind: 'audio', paused: false });
    expect(serverConsumer('s1', String(info['peerId']), String(consumed['consumerId']))?.paused).toBe(false);
    await s.ok('connectTransport', { transportId: transport['id'], dtlsParameters });
    // The join's transport counts against the per-session limit like any other.
    await s.ok('createTransport', { direction: 'recv' });
    expect(await s.code('createTransport', { direction: 'recv' })).toBe('LIMIT_REACHED');
  });

  test('a broadcaster asking for a transport in join gets a send transport it can publish on', async () => {
    const s = await raw();
    const info = await s.ok('join', { roomId: 's2', token: await tokenFor(node, 's2', 'broadcaster'), transport: { forceTcp: true } });
    const transport = info['transport'] as { direction: string; id: string; iceCandidates: Array<{ protocol: string }> };
    expect(transport.direction).toBe('send');
    // forceTcp is honoured as in createTransport.
    expect(transport.iceCandidates.every((c) => c.protocol === 'tcp')).toBe(true);
    const rtpParameters = { codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2 }], encodings: [{ ssrc: 4321 }] };
    expect(await s.ok('produce', { transportId: transport.id, kind: 'audio', rtpParameters })).toMatchObject({ producerId: expect.any(String) });
  });

  test('the long path is unchanged: no transport unless asked, consumers start paused until resumed', async () => {
    await broadcasting('s3');
    const s = await raw();
    const info = await s.ok('join', { roomId: 's3', token: await tokenFor(node, 's3', 'listener') });
    expect(info).not.toHaveProperty('transport');
    expect(await mediaCounts(node)).toMatchObject({ transports: 1 });
    const t = await s.ok('createTransport', { direction: 'recv' });
    const consumed = await s.ok('consume', { transportId: t['id'], rtpCapabilities: info['routerRtpCapabilities'] });
    expect(consumed['paused']).toBe(true);
    const consumer = serverConsumer('s3', String(info['peerId']), String(consumed['consumerId']));
    expect(consumer?.paused).toBe(true);
    await s.ok('resumeConsumer', { consumerId: consumed['consumerId'] });
    expect(consumer?.paused).toBe(false);
    // Asking for paused explicitly is the same as not asking.
    const other = await raw();
    const otherInfo = await other.ok('join', { roomId: 's3', token: await tokenFor(node, 's3', 'listener'), transport: {} });
    const otherTransport = otherInfo['transport'] as { id: string };
    expect(await other.ok('consume', { transportId: otherTransport.id, rtpCapabilities: otherInfo['routerRtpCapabilities'], paused: true })).toMatchObject({ paused: true });
  });

  test('malformed transport and paused fields are BAD_REQUEST and create nothing; a refused join makes no transport', async () => {
    const s = await raw();
    const token = await tokenFor(node, 's4', 'listener');
    for (const transport of [true, { direction: 'send' }, { forceTcp: 'yes' }, 'recv', null]) {
      const reply = await s.call('join', { roomId: 's4', token, transport });
      expect(reply.error?.code, JSON.stringify(transport)).toBe('BAD_REQUEST');
      expect(reply.error?.message).toMatch(/transport/);
    }
    expect(node.rooms.get('s4')).toBeUndefined();
    // The token was not spent by the refusals.
    expect(await s.code('join', { roomId: 's4', token: await tokenFor(node, 'elsewhere', 'listener'), transport: {} })).toBe('TOKEN_WRONG_ROOM');
    expect(node.rooms.get('elsewhere')).toBeUndefined();
    const info = await s.ok('join', { roomId: 's4', token, transport: {} });
    const transport = info['transport'] as { id: string };
    expect(await s.code('consume', { transportId: transport.id, rtpCapabilities: info['routerRtpCapabilities'], paused: 'no' })).toBe('BAD_REQUEST');
    expect(await s.code('consume', { transportId: transport.id, rtpCapabilities: info['routerRtpCapabilities'], paused: false })).toBe('NOTHING_TO_CONSUME');
    expect(await mediaCounts(node)).toMatchObject({ transports: 1, consumers: 0 });
  });

  test('the SDK takes the short path: its listener hears the broadcast without createTransport or resumeConsumer', async () => {
    await broadcasting('s5');
    const created = await answered('createTransport');
    const resumed = await answered('resumeConsumer');
    const consumed = await answered('consume');
    const listener = await joinListener(node, 's5');
    clients.push(listener);
    await listener.hears(660);
    expect(await answered('consume')).toBe(consumed + 1);
    expect(await answered('createTransport')).toBe(created);
    expect(await answered('resumeConsumer')).toBe(resumed);
  });
});

describe('when the join cannot make the transport', () => {
  let tight: ChorusNode;
  beforeAll(async () => {
    // One RTC port: the broadcaster's transport takes it, so no listener transport can be made.
    const port = String(await freePort());
    tight = await startTestNode({ RTC_MIN_PORT: port, RTC_MAX_PORT: port, RTC_ENABLE_TCP: 'false' });
  });
  afterAll(async () => {
    await tight?.close();
  });

  test('the join still succeeds without a transport, and createTransport reports why', async () => {
    const b = await raw(tight);
    const bInfo = await b.ok('join', { roomId: 't1', token: await tokenFor(tight, 't1', 'broadcaster'), transport: {} });
    expect(bInfo['transport']).toMatchObject({ direction: 'send' });
    const s = await raw(tight);
    const info = await s.ok('join', { roomId: 't1', token: await tokenFor(tight, 't1', 'listener'), transport: {} });
    expect(info).not.toHaveProperty('transport');
    expect(info['resumeToken']).toEqual(expect.any(String));
    const reply = await s.call('createTransport', { direction: 'recv' });
    expect(reply.ok).toBe(false);
    expect(reply.error?.code).toEqual(expect.any(String));
    expect(await mediaCounts(tight)).toMatchObject({ transports: 1 });
    b.close();
    s.close();
    await until(() => tight.rooms.rooms.size === 0, 5000, 'rooms to close');
  });
});

describe('an SDK meeting a node from before the short path', () => {
  test('the older node refuses the new fields; the SDK joins the classic way there and hears', async () => {
    await broadcasting('older');
    const older = await olderNode(node.url);
    try {
      const listener = await joinListener(node, 'older', { url: older.url });
      clients.push(listener);
      await listener.hears(660);
      // Refused once, at join; from then on the SDK spoke the classic protocol to that node.
      expect(older.refused).toEqual(['join']);
      await listener.close();
    } finally {
      await older.close();
    }
  });
});
