/**
 * A call's media path, driven on Room directly (real one-worker pool, recording channel): two
 * participants that can go peer-to-peer do at once; a third, a call spreading over nodes or a
 * failed direct connection puts it on the SFU; back to two it returns after the hysteresis
 * delay. Offers, answers and candidates are relayed only between the pair, only while direct.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Room } from '../../src/rooms/room.js';
import type { AuditEvent } from '../../src/observability/audit.js';
import { deviceCaps, errorCode, type Harness, joined, publish, type RecordingChannel, startHarness } from '../support/roomHarness.js';
import { until } from '../support/testNode.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});


const BACK_MS = 500;
const offer = { type: 'offer' as const, sdp: 'v=0\r\n' };

async function call(enabled = true, backMs = BACK_MS): Promise<{ room: Room; channel: RecordingChannel; audit: AuditEvent[] }> {
  return h.room('call', { callP2p: { enabled, backMs } });
}

async function capable(room: Room, p2p = true): Promise<Awaited<ReturnType<typeof joined>>> {
  const who = await joined(room, 'participant');
  room.declareP2p(who.peer, p2p);
  return who;
}

type PathEvent = { id: string; path: string; reason: string; peerId?: string; polite?: boolean };
const paths = (channel: RecordingChannel, peerId: string): PathEvent[] => channel.to(peerId, 'call:path') as PathEvent[];

describe('call media path', () => {
  test('two that can go peer-to-peer do at once; a third puts the call on the SFU; back to two, it returns after the delay', async () => {
    const { room, channel, audit } = await call();
    const a = await capable(room);
    expect(room.mediaPath.path).toBe('sfu');
    expect(paths(channel, a.peer.id)).toEqual([]);
    const b = await capable(room);
    expect(room.mediaPath).toEqual({ path: 'p2p', pair: [a.peer.id, b.peer.id] });
    // The earlier joiner offers; the other is polite.
    const [toA] = paths(channel, a.peer.id);
    const [toB] = paths(channel, b.peer.id);
    expect(toA).toMatchObject({ path: 'p2p', reason: 'two_participants', peerId: b.peer.id, polite: false });
    expect(toB).toMatchObject({ path: 'p2p', reason: 'two_participants', peerId: a.peer.id, polite: true, id: toA!.id });

    // Offers, answers and candidates go between the two.
    room.relayP2p(a.peer, { to: b.peer.id, description: offer });
    room.relayP2p(b.peer, { to: a.peer.id, candidate: { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 } });
    expect(channel.to(b.peer.id, 'p2p:signal')).toEqual([{ from: a.peer.id, description: offer }]);
    expect(channel.to(a.peer.id, 'p2p:signal')).toEqual([{ from: b.peer.id, candidate: expect.objectContaining({ sdpMid: '0' }) }]);

    const c = await capable(room);
    expect(room.mediaPath.path).toBe('sfu');
    for (const who of [a, b, c]) expect(paths(channel, who.peer.id).at(-1)).toMatchObject({ path: 'sfu', reason: 'third_participant' });
    expect(await errorCode(() => room.relayP2p(a.peer, { to: b.peer.id, description: offer }))).toBe('NOT_PEER_TO_PEER');

    await room.leave(c.peer, 'left');
    // Not at once: someone dropping and rejoining must not flap the call.
    expect(room.mediaPath.path).toBe('sfu');
    await until(() => room.mediaPath.path === 'p2p', 5000, 'the call to return to peer-to-peer');
    expect(paths(channel, a.peer.id).at(-1)).toMatchObject({ path: 'p2p', reason: 'back_to_two', peerId: b.peer.id, polite: false });
    expect(audit.filter((e) => e.type === 'call.path').map((e) => (e as { reason: string }).reason)).toEqual(['two_participants', 'third_participant', 'back_to_two']);
  });

  test('a rejoin within the delay does not flap the call; one of the two leaving ends peer-to-peer', async () => {
    // A delay no test run outlasts: the return must not happen while it runs.
    const { room, channel } = await call(true, 600_000);
    const a = await capable(room);
    await capable(room);
    const c = await capable(room);
    await room.leave(c.peer, 'dropped');
    expect(room.mediaPath.path).toBe('sfu');
    const c2 = await capable(room);
    await room.leave(c2.peer, 'left');
    expect(room.mediaPath.path).toBe('sfu');
    expect(paths(channel, a.peer.id).map((e) => e.path)).toEqual(['p2p', 'sfu']);

    const pair = await call();
    const d = await capable(pair.room);
    const e = await capable(pair.room);
    expect(pair.room.mediaPath.path).toBe('p2p');
    await pair.room.leave(e.peer, 'left');
    expect(pair.room.mediaPath.path).toBe('sfu');
    expect(paths(pair.channel, d.peer.id).at(-1)).toMatchObject({ path: 'sfu', reason: 'participant_left' });
  });

  test('a failed direct connection puts the call on the SFU for good for that pair', async () => {
    const { room, channel } = await call();
    const a = await capable(room);
    const b = await capable(room);
    const [switchToP2p] = paths(channel, a.peer.id);
    room.reportPath(b.peer, switchToP2p!.id, 'failed');
    expect(room.mediaPath.path).toBe('sfu');
    expect(paths(channel, a.peer.id).at(-1)).toMatchObject({ path: 'sfu', reason: 'p2p_failed' });
    // Asked again (a re-declaration decides afresh): the pair that failed stays on the SFU.
    room.declareP2p(a.peer, true);
    expect(room.mediaPath.path).toBe('sfu');
    expect(await errorCode(() => room.reportPath(a.peer, switchToP2p!.id, 'failed'))).toBe('NOT_PEER_TO_PEER');
  });

  test('a switch is done when everyone in it renders media on the new path; unknown switches are refused', async () => {
    const { room, channel, audit } = await call();
    const a = await capable(room);
    const b = await capable(room);
    const [{ id }] = paths(channel, a.peer.id) as [PathEvent];
    room.reportPath(a.peer, id, 'ready');
    expect(audit.some((e) => e.type === 'call.path.settled')).toBe(false);
    room.reportPath(b.peer, id, 'ready');
    room.reportPath(b.peer, id, 'ready');
    const settled = audit.filter((e) => e.type === 'call.path.settled');
    expect(settled).toEqual([expect.objectContaining({ id, from: 'sfu', to: 'p2p', reason: 'two_participants', durationMs: expect.any(Number) })]);
    expect(await errorCode(() => room.reportPath(a.peer, 'not-a-switch', 'ready'))).toBe('BAD_REQUEST');
  });

  test('settling tells both, records each gap, and quiets their video: back on the SFU its consumers resume only once it sends', async () => {
    const quietMs = 300;
    const { room, channel, audit } = await h.room('call', { callP2p: { enabled: true, backMs: BACK_MS }, uplinkBackWaitMs: quietMs });
    const a = await capable(room);
    const b = await capable(room);
    const camera = await publish(room, a, 'camera');
    const [{ id }] = paths(channel, a.peer.id) as [PathEvent];
    room.reportPath(a.peer, id, 'ready', 12);
    room.reportPath(b.peer, id, 'ready', 30);
    expect(audit.filter((e) => e.type === 'call.path.settled')).toEqual([expect.objectContaining({ id, to: 'p2p', gaps: { [a.peer.id]: 12, [b.peer.id]: 30 } })]);
    for (const who of [a, b]) expect(channel.to(who.peer.id, 'call:settled')).toEqual([{ id }]);

    // A third: back on the SFU. a's camera sent nothing while direct (its SDK detached it), so a
    // consumer of it waits for its RTP (none comes here: the bound) before it resumes and asks
    // for a keyframe; a camera that never went quiet resumes at once.
    const c = await capable(room);
    expect(room.mediaPath.path).toBe('sfu');
    const other = await publish(room, c, 'camera');
    const quiet = await room.consume(c.peer, c.recv.id, camera.id, deviceCaps(room));
    const loud = await room.consume(b.peer, b.recv.id, other.id, deviceCaps(room));
    const order: string[] = [];
    const started = performance.now();
    await Promise.all([
      room.resumeConsumer(c.peer, quiet.id).then(() => order.push('quiet')),
      room.resumeConsumer(b.peer, loud.id).then(() => order.push('loud')),
    ]);
    expect(order).toEqual(['loud', 'quiet']);
    expect(performance.now() - started).toBeGreaterThanOrEqual(quietMs - 5);
    expect([quiet.paused, loud.paused]).toEqual([false, false]);
    // Waited once: the next consumer of it is not held again.
    const again = await room.consume(b.peer, b.recv.id, camera.id, deviceCaps(room));
    const before = performance.now();
    await room.resumeConsumer(b.peer, again.id);
    expect(performance.now() - before).toBeLessThan(quietMs);
  });

  test('no peer-to-peer when a client cannot, when it is off, or when the call spans nodes', async () => {
    const mixed = await call();
    const a = await capable(mixed.room);
    await capable(mixed.room, false);
    expect(mixed.room.mediaPath.path).toBe('sfu');
    expect(paths(mixed.channel, a.peer.id)).toEqual([]);

    const off = await call(false);
    const c = await capable(off.room);
    await capable(off.room);
    expect(off.room.mediaPath.path).toBe('sfu');
    expect(paths(off.channel, c.peer.id)).toEqual([]);

    const spread = await call();
    const d = await capable(spread.room);
    await capable(spread.room);
    expect(spread.room.mediaPath.path).toBe('p2p');
    // A participant of the call shows up on another node (a drain, a failover).
    spread.room.remoteChanged('node-elsewhere', [{ type: 'joined', participant: { peerId: 'remote-peer', identity: 'r', role: 'participant', tracks: [] } }]);
    expect(spread.room.mediaPath.path).toBe('sfu');
    expect(paths(spread.channel, d.peer.id).at(-1)).toMatchObject({ path: 'sfu', reason: 'spans_nodes' });
  });

  test('relays reach only the other of the pair: not oneself, not a third, not another room', async () => {
    const { room } = await call();
    const a = await capable(room);
    const b = await capable(room);
    const other = await call();
    const x = await capable(other.room);
    await capable(other.room);
    expect(await errorCode(() => room.relayP2p(a.peer, { to: a.peer.id, description: offer }))).toBe('NOT_PEER_TO_PEER');
    expect(await errorCode(() => room.relayP2p(a.peer, { to: x.peer.id, description: offer }))).toBe('NOT_PEER_TO_PEER');
    expect(await errorCode(() => other.room.relayP2p(x.peer, { to: b.peer.id, description: offer }))).toBe('NOT_PEER_TO_PEER');
    expect(other.channel.to(b.peer.id, 'p2p:signal')).toEqual([]);
    // A broadcast has no peer-to-peer path at all.
    const cast = await h.room('broadcast');
    const speaker = await joined(cast.room, 'broadcaster');
    expect(await errorCode(() => cast.room.relayP2p(speaker.peer, { to: a.peer.id, description: offer }))).toBe('NOT_PEER_TO_PEER');
    expect(cast.room.mediaPath).toEqual({ path: 'sfu' });
  });
});
