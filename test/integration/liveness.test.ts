/**
 * Which sessions the stale-session reaper removes, and which sessions count as listening. A
 * session is alive while its socket is; once media is due on its transport (it carries a stream,
 * or was told a broadcast is live) that transport must connect within CHORUS_STALE_PEER_MS. A
 * session that set no media up while something is live is not a listener.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { AuditEvent } from '../../src/observability/audit.js';
import { joinListener, type TestListener } from '../support/listener.js';
import { toneTrack } from '../support/nodePeer.js';
import { RawSocket } from '../support/rawSocket.js';
import { nodeClient, startTestNode, tokenFor, toneBroadcaster, until } from '../support/testNode.js';

const STALE_MS = 1000;

let node: ChorusNode;
const audit: AuditEvent[] = [];
const cleanup: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  node = await startTestNode({ CHORUS_STALE_PEER_MS: String(STALE_MS), CHORUS_ROOM_IDLE_MS: '0' });
  node.audit.on('event', (e) => audit.push(e));
});
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
  await until(() => node.rooms.rooms.size === 0, 5000, 'rooms to close after the test');
});
afterAll(async () => {
  await node?.close();
});

async function listener(roomId: string): Promise<TestListener> {
  const l = await joinListener(node, roomId);
  cleanup.push(() => l.close());
  return l;
}

async function raw(): Promise<RawSocket> {
  const socket = await RawSocket.connect(node);
  cleanup.push(() => socket.close());
  return socket;
}

/**
 * Lets the reaper's own clock show that stale windows passed: a ghost session in `roomId` (which
 * has a live broadcast) makes a receive transport and never connects it, and is removed one
 * window later. Anything made before it and due for removal would have gone by then too.
 */
async function staleWindowPasses(roomId: string): Promise<void> {
  const ghost = await raw();
  const joined = await ghost.ok('join', { roomId, token: await tokenFor(node, roomId, 'listener', 'ghost') });
  await ghost.ok('createTransport', { direction: 'recv' });
  await until(() => ghost.events.some((e) => e.event === 'session:reset'), STALE_MS + 10_000, 'the ghost to be removed as stale');
  expect(audit).toContainEqual(expect.objectContaining({ type: 'participant.left', peer: joined['peerId'], reason: 'stale' }));
  ghost.close();
}

describe('stale-session reaper', () => {
  test('a listener waiting for a broadcast and a broadcaster who has not pressed Start stay through several windows; their rooms stay open', async () => {
    const alone = await listener('lit-waiting');
    const waitingRoom = node.rooms.get('lit-waiting')!;
    const tone = toneTrack(520);
    cleanup.push(() => tone.stop());
    const speaker = nodeClient(node, 'lit-unstarted', await tokenFor(node, 'lit-unstarted', 'broadcaster', 'speaker'));
    cleanup.push(() => speaker.close());
    await speaker.join();
    const audience = await listener('lit-unstarted');
    const ids = [alone.client.peerId, speaker.peerId, audience.client.peerId];
    // Both hold the transport their join brought, not connected: nothing is due on it yet.
    expect(waitingRoom.peers.get(alone.client.peerId!)!.transports.size).toBe(1);

    const clock = await toneBroadcaster(node, 'lit-clock', 440);
    cleanup.push(() => clock.stop());
    for (let i = 0; i < 3; i++) await staleWindowPasses('lit-clock');

    // Same sessions, never reset, never rejoined; the lone listener's room never closed.
    expect([alone.client.peerId, speaker.peerId, audience.client.peerId]).toEqual(ids);
    expect(alone.events.filter((e) => e.startsWith('state:'))).toEqual(['state:connecting', 'state:joined']);
    expect(audience.events.filter((e) => e.startsWith('state:'))).toEqual(['state:connecting', 'state:joined']);
    expect(node.rooms.get('lit-waiting')).toBe(waitingRoom);
    const lifecycle = audit.filter((e) => 'room' in e && (e.room === 'lit-waiting' || e.room === 'lit-unstarted'));
    expect(lifecycle.filter((e) => e.type === 'participant.left' || e.type === 'room.finished')).toEqual([]);
    expect(lifecycle.filter((e) => e.type === 'room.started')).toHaveLength(2);

    // Pressing Start later works on the transport it kept, and the waiting listener hears it.
    await speaker.publish(tone.track);
    await audience.hears(520);
    expect(speaker.peerId).toBe(ids[1]);
  });

  test('a listener whose transport dies after media flowed is removed and starts over', async () => {
    const b = await toneBroadcaster(node, 'lit-dies', 600);
    cleanup.push(() => b.stop());
    const l = await listener('lit-dies');
    await l.hears(600);
    const before = l.client.peerId;
    // The media path goes away under a live socket: the peer connection is closed without a word
    // on signaling (what a browser that lost its network path looks like to the node).
    l.client.transport!.close();
    await until(
      () => audit.some((e) => e.type === 'participant.left' && e.peer === before && e.reason === 'stale'),
      STALE_MS + 15_000,
      'the dead session to be removed as stale',
    );
    await until(() => l.client.peerId !== before && l.client.state === 'joined', 10_000, 'the listener to rejoin');
    await l.hears(600);
  });
});

describe('who counts as listening', () => {
  test('a session that joins while a broadcast is live and sets no media up is not counted; one that connects is', async () => {
    const b = await toneBroadcaster(node, 'lit-count', 700);
    cleanup.push(() => b.stop());
    const first = await listener('lit-count');
    await first.hears(700);
    // One public listening link, joined again and again within its rate limits, never making a
    // transport: the way to inflate "N listening" if joins alone counted.
    const link = await node.tokens.mint({ room: 'lit-count', identity: 'public-link', role: 'listener', grants: { reusable: true } });
    for (let i = 0; i < 3; i++) {
      const ghost = await raw();
      await ghost.ok('join', { roomId: 'lit-count', token: link });
    }
    const second = await listener('lit-count');
    await second.hears(700);
    const room = node.rooms.get('lit-count')!;
    expect(room.peers.size).toBe(6);
    expect(await room.audienceCount()).toBe(2);
    await until(() => b.client.audience === 2 && first.client.audience === 2 && second.client.audience === 2, 5000, 'everyone to be told 2 listen');
  });

  test('waiting for a broadcast, a live socket is enough to count; once it starts, only sessions whose media connects count', async () => {
    const waiting = await raw();
    await waiting.ok('join', { roomId: 'lit-wait-count', token: await tokenFor(node, 'lit-wait-count', 'listener') });
    const room = node.rooms.get('lit-wait-count')!;
    expect(await room.audienceCount()).toBe(1);
    const l = await listener('lit-wait-count');
    expect(await room.audienceCount()).toBe(2);

    const b = await toneBroadcaster(node, 'lit-wait-count', 750);
    cleanup.push(() => b.stop());
    await l.hears(750);
    // The raw session was told the broadcast started and set nothing up: only the SDK listener counts.
    expect(await room.audienceCount()).toBe(1);
    await until(() => b.client.audience === 1 && l.client.audience === 1, 5000, 'the count of 1 to be pushed');
  });
});
