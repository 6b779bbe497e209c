/**
 * Which sessions the stale-session reaper removes, and which sessions count as listening. A
 * session is alive while its socket is; once media is due on its transport (it carries a stream,
 * or was told a broadcast is live) that transport must connect within CHORUS_STALE_PEER_MS. A
 * session that set no media up while something is live is not a listener, and one that sets up
 * neither a transport nor HLS within the window is removed (in a cluster too, where the count
 * comes from the shared session records).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { AuditEvent } from '../../src/observability/audit.js';
import type { ChorusClient } from '../../src/client/chorusClient.js';
import { pollPlaylist, type PollingPlayer } from '../support/hls.js';
import { joinListener, type TestListener } from '../support/listener.js';
import { toneTrack } from '../support/nodePeer.js';
import { RawSocket } from '../support/rawSocket.js';
import { startRedis, type RedisServer } from '../support/redisServer.js';
import { nodeClient, startTestNode, startTestNodes, tokenFor, toneBroadcaster, until } from '../support/testNode.js';

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

async function raw(on: ChorusNode = node): Promise<RawSocket> {
  const socket = await RawSocket.connect(on);
  cleanup.push(() => socket.close());
  return socket;
}

/**
 * An SDK listener on HLS (whose WebRTC cannot connect: relay-only with no TURN server), with a
 * player reloading its playlist about once a second (as hls.js does, or every few seconds while
 * the playlist is not there) from `playFrom`. `asked`: on HLS from the start (a room waiting for
 * a broadcast has nothing to time out on).
 */
async function hlsListener(on: ChorusNode, roomId: string, playFrom: ChorusNode, asked = false): Promise<{ client: ChorusClient; player: PollingPlayer }> {
  const client = nodeClient(on, roomId, await tokenFor(on, roomId, 'listener'), { iceTransportPolicy: 'relay', hlsFallback: { afterMs: 300 } });
  cleanup.push(() => client.close());
  if (asked) client.useHls();
  await client.join();
  await until(() => client.mode === 'hls' && client.state === 'joined', 15_000, 'the listener to be joined over HLS');
  const url = new URL(client.hlsUrl);
  const player = pollPlaylist(playFrom.url, `${url.pathname}${url.search}`, { everyMs: 1000 });
  cleanup.push(() => player.stop());
  return { client, player };
}

/** The node's audit events that removed `peerId` as stale. */
const staleLeaves = (events: AuditEvent[], peerId: unknown): AuditEvent[] =>
  events.filter((e) => e.type === 'participant.left' && e.peer === peerId && e.reason === 'stale');

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
    expect(await room.audienceCount()).toBe(2);
    await until(() => b.client.audience === 2 && first.client.audience === 2 && second.client.audience === 2, 5000, 'everyone to be told 2 listen');
  });

  test('waiting for a broadcast, a live socket is enough to count; once it starts, only sessions whose media connects count', async () => {
    const waiting = await raw();
    await waiting.ok('join', { roomId: 'lit-wait-count', token: await tokenFor(node, 'lit-wait-count', 'listener') });
    // A transport made and, with nothing to carry yet, not connected (as the SDK leaves it).
    await waiting.ok('createTransport', { direction: 'recv' });
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

describe('a session that sets up no media', () => {
  test('is removed a window after it joined and never counted; an HLS listener and waiting listeners (WebRTC or HLS) are kept', async () => {
    const b = await toneBroadcaster(node, 'lit-setup', 810);
    cleanup.push(() => b.stop());
    const first = await listener('lit-setup');
    await first.hears(810);
    const room = node.rooms.get('lit-setup')!;
    const fallback = await hlsListener(node, 'lit-setup', node);
    const waiting = await listener('lit-setup-wait');
    const waitingOverHls = await hlsListener(node, 'lit-setup-wait', node, true);
    const kept = [first.client.peerId, fallback.client.peerId, waiting.client.peerId, waitingOverHls.client.peerId];
    // A watch party carries no media: its members never have transports (their own heartbeat is
    // position reports, see watch.test.ts).
    const viewer = await raw();
    const viewerPeer = (await viewer.ok('join', { roomId: 'lit-setup-watch', token: await node.tokens.mint({ room: 'lit-setup-watch', identity: 'viewer', role: 'listener', kind: 'watch' }) }))['peerId'];

    // Joins on a public link that never ask for a transport nor fetch the playlist.
    const link = await node.tokens.mint({ room: 'lit-setup', identity: 'joins-only', role: 'listener', grants: { reusable: true } });
    const ghosts: Array<{ socket: RawSocket; peerId: unknown }> = [];
    for (let i = 0; i < 3; i++) {
      const socket = await raw();
      ghosts.push({ socket, peerId: (await socket.ok('join', { roomId: 'lit-setup', token: link }))['peerId'] });
    }
    expect(ghosts.every((g) => room.peers.has(String(g.peerId)))).toBe(true);

    // The kept sessions joined before the ghosts: their windows closed before the ghosts' did.
    await until(() => ghosts.every((g) => staleLeaves(audit, g.peerId).length === 1), STALE_MS + 10_000, 'the joins that set nothing up to be removed');
    for (const g of ghosts) expect(room.peers.has(String(g.peerId))).toBe(false);
    // Each is told over its socket, which can arrive after the node has recorded the removal.
    await until(() => ghosts.every((g) => g.socket.events.some((e) => e.event === 'session:reset')), 5000, 'each removed session to be told to reset');
    expect([first.client.peerId, fallback.client.peerId, waiting.client.peerId, waitingOverHls.client.peerId]).toEqual(kept);
    for (const id of kept) expect(audit.filter((e) => e.type === 'participant.left' && e.peer === id)).toEqual([]);
    expect(node.rooms.get('lit-setup-wait')!.peers.size).toBe(2);
    expect(node.rooms.get('lit-setup-watch')!.peers.has(String(viewerPeer))).toBe(true);
    expect(staleLeaves(audit, viewerPeer)).toEqual([]);
    // The playlist is not there while nobody broadcasts; the player asked all the same.
    expect(waitingOverHls.player.answers.length).toBeGreaterThan(0);
    expect(await room.audienceCount()).toBe(2);
    await until(() => b.client.audience === 2 && first.client.audience === 2, 5000, 'everyone to be told 2 listen');
  });
});

describe('in a cluster (shared state in Redis)', () => {
  let redis: RedisServer;
  let a: ChorusNode;
  let other: ChorusNode;
  const auditB: AuditEvent[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    // The broadcaster stays on the node it connects to: a listener on the other node is an edge.
    const shared = { REDIS_URL: redis.url, CHORUS_ORIGIN_PLACEMENT: 'local', CHORUS_STALE_PEER_MS: String(STALE_MS), CHORUS_ROOM_IDLE_MS: '0' };
    [a, other] = (await startTestNodes(['live-a', 'live-b'], shared)) as [ChorusNode, ChorusNode];
    other.audit.on('event', (e) => auditB.push(e));
  }, 60_000);
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
    await until(() => a.rooms.rooms.size === 0 && other.rooms.rooms.size === 0, 5000, 'rooms to close on both nodes');
  });
  afterAll(async () => {
    await a?.close();
    await other?.close();
    await redis?.stop();
  });

  test('joins that set no media up on one node stop counting cluster-wide once the window passed; an HLS listener playing from the other node is kept', async () => {
    const b = await toneBroadcaster(a, 'lit-cluster', 830);
    cleanup.push(() => b.stop());
    const onA = await joinListener(a, 'lit-cluster');
    cleanup.push(() => onA.close());
    const onB = await joinListener(other, 'lit-cluster');
    cleanup.push(() => onB.close());
    await Promise.all([onA.hears(830), onB.hears(830)]);
    // Its session on the edge, its player asking the origin (any node serves HLS).
    const fallback = await hlsListener(other, 'lit-cluster', a);
    const fallbackPeer = fallback.client.peerId!;

    const link = await a.tokens.mint({ room: 'lit-cluster', identity: 'joins-only', role: 'listener', grants: { reusable: true } });
    const ghosts: unknown[] = [];
    for (let i = 0; i < 3; i++) ghosts.push((await (await raw(other)).ok('join', { roomId: 'lit-cluster', token: link }))['peerId']);
    // Joins alone are in the shared records the count comes from, for now.
    expect(await a.store.countPeers('lit-cluster', 'listener')).toBe(6);

    await until(() => ghosts.every((g) => staleLeaves(auditB, g).length === 1), STALE_MS + 10_000, 'the joins that set nothing up to be removed');
    // The same session, never removed: its node learnt from the shared state that it plays HLS.
    expect(fallback.client.peerId).toBe(fallbackPeer);
    expect(auditB.filter((e) => e.type === 'participant.left' && e.peer === fallbackPeer)).toEqual([]);
    expect(other.rooms.get('lit-cluster')!.peers.get(fallbackPeer)!.playsHls).toBe(true);
    // What every client is told, on either node: the three that listen.
    expect(await a.rooms.get('lit-cluster')!.audienceCount()).toBe(3);
    expect(await other.rooms.get('lit-cluster')!.audienceCount()).toBe(3);
    await until(
      () => [b.client, onA.client, onB.client, fallback.client].every((c) => c.audience === 3),
      10_000,
      'everyone on both nodes to be told 3 listen',
    );
  });
});
