/**
 * Watch parties across two nodes sharing one real Redis: members on either node follow the host's
 * play/pause/seek, late joiners land where the room is, non-hosts are refused, hosting passes on
 * when the host leaves, silent members are removed, bad input changes nothing, and an empty room
 * is archived. Members are the real SDK (WatchClient) with a clock-driven player, or raw sockets
 * where a test needs to send exactly what it wants.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { ChorusClient } from '../../src/client/chorusClient.js';
import { WatchClient } from '../../src/client/watchClient.js';
import type { AuditEvent } from '../../src/observability/audit.js';
import type { Role } from '../../src/protocol/messages.js';
import { positionAt, type WatchState } from '../../src/protocol/watch.js';
import { mediaCounts } from '../support/mediaCounts.js';
import { RawSocket } from '../support/rawSocket.js';
import { startRedis, type RedisServer } from '../support/redisServer.js';
import { startTestNode, startTestNodes, until } from '../support/testNode.js';
import { VirtualPlayer } from '../support/virtualPlayer.js';

const REPORT_MS = 400;
let redis: RedisServer;
let a: ChorusNode;
let b: ChorusNode;
const clients: WatchClient[] = [];
const sockets: RawSocket[] = [];
const audits: AuditEvent[] = [];

beforeAll(async () => {
  redis = await startRedis();
  const watchEnv = { CHORUS_WATCH_REPORT_INTERVAL_MS: String(REPORT_MS), CHORUS_WATCH_ARCHIVE_AFTER_MS: '600' };
  [a, b] = (await startTestNodes(['watch-a', 'watch-b'], { ...watchEnv, REDIS_URL: redis.url })) as [ChorusNode, ChorusNode];
  for (const node of [a, b]) node.audit.on('event', (event) => audits.push(event));
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  for (const s of sockets.splice(0)) s.close();
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  await redis?.stop();
});

let seq = 0;
async function watchToken(node: ChorusNode, room: string, role: Role, grants: { control?: boolean } = {}, identity = `${role}-${++seq}`): Promise<string> {
  return node.tokens.mint({ room, identity, role, kind: 'watch', grants });
}

async function member(node: ChorusNode, room: string, role: Role, grants: { control?: boolean } = {}): Promise<{ client: WatchClient; player: VirtualPlayer }> {
  const client = new WatchClient({ url: node.url, roomId: room, token: await watchToken(node, room, role, grants), socket: { transports: ['websocket'] } });
  clients.push(client);
  const player = new VirtualPlayer();
  client.attach(player);
  await client.join();
  return { client, player };
}

async function raw(node: ChorusNode): Promise<RawSocket> {
  const s = await RawSocket.connect(node);
  sockets.push(s);
  return s;
}

async function stored(node: ChorusNode, room: string): Promise<WatchState | undefined> {
  const value = await node.store.getValue(`watch:${room}`);
  return value === undefined ? undefined : (JSON.parse(value) as WatchState);
}

const version = (c: WatchClient): number => c.playback?.version ?? -1;

describe('watch rooms across two nodes', () => {
  test('the host plays, pauses, seeks and loads on node a; a member on node b follows each change', async () => {
    const { client: host } = await member(a, 'film', 'host');
    const { client: guest, player } = await member(b, 'film', 'listener');
    expect(host.isHost).toBe(true);
    expect(guest.isHost).toBe(false);
    expect(guest.host?.identity).toBe(host.identity);
    await until(() => host.members.length === 2 && guest.members.length === 2, 5000, 'both to see two members');

    const loaded = await host.load('/sample.webm');
    await until(() => version(guest) === loaded.version, 5000, 'the load to reach node b');
    expect(player.src).toBe('/sample.webm');

    const played = await host.play(3);
    await until(() => version(guest) === played.version, 5000, 'play to reach node b');
    expect(player.paused).toBe(false);
    expect(Math.abs(player.currentTime - (guest.expectedPosition() ?? -1))).toBeLessThan(0.3);

    const sought = await host.seek(12);
    await until(() => version(guest) === sought.version, 5000, 'seek to reach node b');
    expect(Math.abs(player.currentTime - positionAt(sought, Date.now()))).toBeLessThan(0.3);

    const paused = await host.pause(12.5);
    await until(() => version(guest) === paused.version, 5000, 'pause to reach node b');
    expect(player.paused).toBe(true);
    expect(player.currentTime).toBeCloseTo(12.5, 3);

    // Every change was an audit event, in order.
    const actions = audits.filter((e) => e.type === 'watch.state' && e.room === 'film').map((e) => (e as { action: string }).action);
    expect(actions).toEqual(['create', 'load', 'play', 'seek', 'pause']);
    expect(await stored(b, 'film')).toMatchObject({ playing: false, position: 12.5, url: '/sample.webm', version: paused.version });
  });

  test('a late joiner on the other node starts where the room is now, computed from server time', async () => {
    const { client: host } = await member(a, 'late', 'host');
    await host.load('/sample.webm', { position: 40, playing: true });
    const start = Date.now();
    await until(() => Date.now() - start > 700, 2000, 'the room to play a while');
    const { client: late, player } = await member(b, 'late', 'participant');
    const expected = positionAt(host.playback!, Date.now());
    expect(expected).toBeGreaterThan(40.6);
    expect(Math.abs(player.currentTime - expected)).toBeLessThan(0.15);
    expect(player.paused).toBe(false);
    // Its clock estimate is sane on loopback: one machine, one clock.
    expect(Math.abs(late.clock!.offsetMs)).toBeLessThanOrEqual(late.clock!.rttMs / 2 + 2);
  });

  test('only the host steers: others get NOT_HOST and nothing changes; a control grant may steer', async () => {
    const { client: host } = await member(a, 'steer', 'host');
    const { client: guest } = await member(b, 'steer', 'participant');
    const before = await stored(a, 'steer');
    await expect(guest.seek(30)).rejects.toMatchObject({ code: 'NOT_HOST' });
    await expect(guest.play()).rejects.toMatchObject({ code: 'NOT_HOST' });
    expect(await stored(a, 'steer')).toEqual(before);
    expect(version(host)).toBe(before!.version);

    const { client: cohost } = await member(b, 'steer', 'participant', { control: true });
    expect(cohost.isHost).toBe(false);
    expect(cohost.canControl).toBe(true);
    const sought = await cohost.seek(30);
    await until(() => version(host) === sought.version && version(guest) === sought.version, 5000, 'the co-host seek to reach everyone');
    expect(host.playback?.host?.peerId).toBe(host.peerId);
  });

  test('the host leaving passes hosting to the longest-present member, and everyone is told', async () => {
    const { client: host } = await member(a, 'pass', 'host');
    const { client: first } = await member(b, 'pass', 'participant');
    const { client: second } = await member(a, 'pass', 'listener');
    await host.play(0);
    const hostEvents: string[] = [];
    second.on('host', (h) => hostEvents.push(h?.identity ?? 'nobody'));
    await host.close();
    await until(() => first.isHost && second.host?.peerId === first.peerId, 5000, 'hosting to pass to the first guest');
    expect(hostEvents).toEqual([first.identity]);
    expect(first.playback?.playing).toBe(true); // the film goes on
    const paused = await first.pause();
    await until(() => version(second) === paused.version, 5000, 'the new host to steer');
    await expect(second.play()).rejects.toMatchObject({ code: 'NOT_HOST' });
    expect(audits).toContainEqual(expect.objectContaining({ type: 'watch.host', room: 'pass', to: first.identity, reason: 'left' }));
  });

  test('the host\'s node shuts down: a node still serving the room notices and hands hosting over', async () => {
    const c = await startTestNode({ CHORUS_WATCH_REPORT_INTERVAL_MS: String(REPORT_MS), REDIS_URL: redis.url, CHORUS_NODE_ID: 'watch-c', RTC_MIN_PORT: '30000', RTC_MAX_PORT: '30999' });
    try {
      const { client: host } = await member(c, 'orphan', 'host');
      const { client: guest } = await member(b, 'orphan', 'listener');
      expect(guest.host?.peerId).toBe(host.peerId);
      await c.close(); // no leave reaches the room: the node is simply gone
      await until(() => guest.isHost, 10_000, 'node b to hand hosting to the member still there');
      expect(audits).toContainEqual(expect.objectContaining({ type: 'watch.host', room: 'orphan', to: guest.identity, reason: 'gone' }));
    } finally {
      await c.close();
    }
  });

  test('a draining node sends its members straight to a node that stays, with no balancer in front', async () => {
    // The members know only node c's own URL: reconnecting there after it drains would find
    // nothing. The drain notice names a node that stays; they rejoin there as themselves.
    const c = await startTestNode({ CHORUS_WATCH_REPORT_INTERVAL_MS: String(REPORT_MS), REDIS_URL: redis.url, CHORUS_NODE_ID: 'watch-c', RTC_MIN_PORT: '30000', RTC_MAX_PORT: '30999' });
    try {
      await until(async () => (await a.store.listNodes()).some((n) => n.id === 'watch-c'), 10_000, 'node c to register');
      const { client: host } = await member(c, 'moving-party', 'host');
      const { client: guest, player } = await member(c, 'moving-party', 'listener');
      const { client: far } = await member(b, 'moving-party', 'listener');
      await host.load('https://cdn.example.org/film.mp4', { position: 42, playing: true });
      await until(() => guest.playback?.url === 'https://cdn.example.org/film.mp4' && far.playback?.url === guest.playback.url, 5000, 'everyone to load the film');
      const identities = [host.identity, guest.identity];
      const states: string[] = [];
      guest.on('state', (state) => states.push(state));

      const { remaining } = await c.drain(15_000);
      expect(remaining).toBe(0);
      await until(() => host.state === 'joined' && guest.state === 'joined', 10_000, 'both members to rejoin on a node that stays');
      expect(states).toContain('reconnecting');
      // Same identities, the host still steers, and the room's playback carried on.
      expect([host.identity, guest.identity]).toEqual(identities);
      expect(host.isHost).toBe(true);
      const rejoined = [a, b].flatMap((node) => [...(node.rooms.get('moving-party')?.peers.values() ?? [])].map((p) => p.identity));
      expect(rejoined).toEqual(expect.arrayContaining([...identities, far.identity]));
      await host.pause(50);
      await until(() => guest.playback?.playing === false && far.playback?.playing === false && player.paused, 5000, 'the pause to reach the moved guest and the far one');
    } finally {
      await c.close();
    }
  });

  test('a member who drifts beyond the threshold is told to resync and follows', async () => {
    const { client: host } = await member(a, 'drift', 'host');
    await host.load('/sample.webm', { position: 30, playing: true });
    const { client: guest, player } = await member(b, 'drift', 'listener');
    const resyncs: Array<number | null> = [];
    guest.on('resync', (d) => resyncs.push(d));
    await until(() => guest.driftMs !== null && Math.abs(guest.driftMs) < 300, 5000, 'an in-sync report');
    expect(resyncs).toEqual([]);
    player.knock(-2); // a stall: two seconds behind
    await until(() => resyncs.length > 0, 5000, 'the server to ask for a resync');
    expect(resyncs[0]).toBeLessThan(-1500);
    expect(Math.abs(player.currentTime - (guest.expectedPosition() ?? -1))).toBeLessThan(0.3);
  });

  test('a member that misses two heartbeats is removed; other nodes hear it left; a silent host hands over', async () => {
    const silent = await raw(a);
    const joined = await silent.ok('join', { roomId: 'quiet', token: await watchToken(a, 'quiet', 'host') });
    const silentPeer = joined['peerId'] as string;
    expect((joined['watch'] as { state: WatchState }).state.host?.peerId).toBe(silentPeer);
    const { client: guest } = await member(b, 'quiet', 'listener');
    const started = Date.now();
    await until(() => silent.events.some((e) => e.event === 'watch:removed'), 5000, 'the silent member to be removed');
    expect(Date.now() - started).toBeGreaterThanOrEqual(REPORT_MS * 2 - 100);
    await until(() => guest.isHost, 5000, 'hosting to pass to the member who reports');
    expect(guest.members.map((m) => m.peerId)).toEqual([guest.peerId]);
    expect(await b.store.countPeers('quiet')).toBe(1);
    expect(audits).toContainEqual(expect.objectContaining({ type: 'watch.member.removed', room: 'quiet', peer: silentPeer }));
    // Removed means out: its requests are refused until it joins again.
    expect(await silent.code('watch.report', { position: 1, playing: false, version: 1 })).toBe('NOT_JOINED');
  });

  test('bad input gets typed errors and changes nothing', async () => {
    const { client: host } = await member(a, 'strict', 'host');
    const before = await stored(a, 'strict');
    const s = await raw(b);
    expect(await s.code('watch.control', { action: 'play' })).toBe('NOT_JOINED');
    await s.ok('join', { roomId: 'strict', token: await watchToken(b, 'strict', 'host', {}, 'second-host') });
    // A second host token does not displace a host: it is a member like the others.
    const cases: Array<[string, unknown]> = [
      ['watch.control', { action: 'load', url: 'javascript:alert(1)' }],
      ['watch.control', { action: 'load', url: '//evil.example/v.webm' }],
      ['watch.control', { action: 'load', url: `https://x.org/${'a'.repeat(3000)}` }],
      ['watch.control', { action: 'seek', position: -5 }],
      ['watch.control', { action: 'seek', position: '10' }],
      ['watch.control', { action: 'seek', position: 1e12 }],
      ['watch.control', { action: 'rate', rate: 100 }],
      ['watch.control', { action: 'rewind' }],
      ['watch.control', { action: 'play', host: 'me' }],
      ['watch.control', 'play'],
      ['watch.report', { position: -1, playing: true, version: 1 }],
      ['watch.report', { position: 1, playing: 'yes', version: 1 }],
      ['watch.report', { position: 1, playing: true }],
      ['time.sync', { clientSentAt: 'now' }],
    ];
    for (const [method, payload] of cases) expect(await s.code(method, payload), `${method} ${JSON.stringify(payload)}`).toBe('BAD_REQUEST');
    // Valid shape, but a sample time a minute off the server's clock.
    expect(await s.code('watch.report', { position: 1, playing: false, version: 1, sampledAt: Date.now() - 60_000 })).toBe('BAD_REQUEST');
    expect(await s.code('watch.control', { action: 'seek', position: 3 })).toBe('NOT_HOST');
    expect(await stored(a, 'strict')).toEqual(before);
    expect(version(host)).toBe(before!.version);

    // The host's own bad input is refused the same way.
    await expect(host.load('ftp://x/y')).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    await expect(host.seek(-1)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    expect(await stored(a, 'strict')).toEqual(before);
  });

  test('room kinds do not mix: a broadcast token cannot join a watch room, watch requests fail in a broadcast room', async () => {
    await member(a, 'kinds', 'host');
    const s = await raw(b);
    expect(await s.code('join', { roomId: 'kinds', token: await b.tokens.mint({ room: 'kinds', identity: 'x', role: 'listener' }) })).toBe('WRONG_ROOM_KIND');
    const c = await raw(a);
    expect(await c.code('join', { roomId: 'kinds', token: await a.tokens.mint({ room: 'kinds', identity: 'y', role: 'listener' }) })).toBe('WRONG_ROOM_KIND');
    const l = await raw(a);
    await l.ok('join', { roomId: 'plain-broadcast', token: await a.tokens.mint({ room: 'plain-broadcast', identity: 'z', role: 'listener' }) });
    expect(await l.code('watch.control', { action: 'play' })).toBe('WRONG_ROOM_KIND');
    expect(await l.code('watch.report', { position: 0, playing: false, version: 1 })).toBe('WRONG_ROOM_KIND');
    // A broadcast room refuses watch-only roles as before.
    expect(await (await raw(a)).code('join', { roomId: 'plain-broadcast', token: await a.tokens.mint({ room: 'plain-broadcast', identity: 'h', role: 'host' }) })).toBe('FORBIDDEN_ROLE');
  });

  test('a watch room takes no router from a worker; media requests in it get WRONG_ROOM_KIND and create nothing', async () => {
    const routers = async (): Promise<number> => (await mediaCounts(a)).routers;
    // Earlier tests' broadcast rooms close once their clients are gone: start from none.
    await until(async () => (await routers()) === 0, 5000, 'no router left on node a');
    await member(a, 'no-media', 'host');
    const s = await raw(a);
    const joined = await s.ok('join', { roomId: 'no-media', token: await watchToken(a, 'no-media', 'listener'), transport: {} });
    // The join succeeds without the transport it asked for, and names no router capabilities.
    expect(joined['transport']).toBeUndefined();
    expect(joined['routerRtpCapabilities']).toBeNull();
    expect(await s.code('createTransport', { direction: 'recv' })).toBe('WRONG_ROOM_KIND');
    expect(await s.code('getRouterRtpCapabilities', {})).toBe('WRONG_ROOM_KIND');
    expect(await routers()).toBe(0);
    expect(a.rooms.get('no-media')?.media).toBeUndefined();
    // The broadcast SDK is told plainly that this is a watch party, and leaves it.
    const wrongSdk = new ChorusClient({ url: a.url, roomId: 'no-media', token: await watchToken(a, 'no-media', 'listener'), socket: { transports: ['websocket'] } });
    await expect(wrongSdk.join()).rejects.toMatchObject({ code: 'WRONG_ROOM_KIND' });
    await wrongSdk.close();
    await until(() => a.rooms.get('no-media')?.peers.size === 2, 5000, 'the broadcast SDK to leave the watch room');
  });

  test('time.sync answers with the server receive and send times, joined or not', async () => {
    const s = await raw(a);
    const t0 = Date.now();
    const reply = await s.ok('time.sync', { clientSentAt: t0 });
    const t3 = Date.now();
    expect(reply['clientSentAt']).toBe(t0);
    expect(reply['receivedAt'] as number).toBeGreaterThanOrEqual(t0);
    expect(reply['sentAt'] as number).toBeGreaterThanOrEqual(reply['receivedAt'] as number);
    expect(reply['sentAt'] as number).toBeLessThanOrEqual(t3);
  });

  test('an empty room is archived after the timeout; coming back before it keeps the state', async () => {
    const { client: host } = await member(a, 'archive', 'host');
    await host.load('/sample.webm', { position: 5 });
    await host.close();
    // Back before the timeout: the state is still there, with a new host.
    const { client: back } = await member(b, 'archive', 'participant');
    expect(back.playback).toMatchObject({ url: '/sample.webm', position: 5 });
    expect(back.isHost).toBe(true);
    await back.close();
    await until(() => audits.some((e) => e.type === 'watch.archived' && e.room === 'archive'), 5000, 'the archive event');
    expect(await stored(a, 'archive')).toBeUndefined();
    expect(audits.filter((e) => e.type === 'watch.archived' && e.room === 'archive')).toHaveLength(1);
    // A new party in the same room starts afresh.
    const { client: fresh } = await member(a, 'archive', 'host');
    expect(fresh.playback).toMatchObject({ url: '', position: 0, version: 1 });
  });
});
