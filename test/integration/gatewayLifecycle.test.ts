/**
 * The media REST API's participants over time and across nodes: one whose gateway stops calling
 * (no request, no event stream) is dropped after the stale timeout like a socket that went away,
 * while one with its stream open stays; in a cluster, a request reaching a node that does not
 * hold the room is redirected (307) to the one that does, which serves it.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { joinCallPeer, type CallPeer } from '../support/callPeer.js';
import { roomOwnedBy } from '../support/placement.js';
import { startRedis, type RedisServer } from '../support/redisServer.js';
import { restCall, RestPeer } from '../support/restPeer.js';
import { startTestNode, startTestNodes, until } from '../support/testNode.js';

const KEY = `Basic ${Buffer.from(`test:${'t'.repeat(40)}`).toString('base64')}`;
const STALE_MS = 1500;
let node: ChorusNode;
let redis: RedisServer | undefined;
let cluster: ChorusNode[] = [];
const peers: RestPeer[] = [];
const sdks: CallPeer[] = [];

beforeAll(async () => {
  node = await startTestNode({ CHORUS_STALE_PEER_MS: String(STALE_MS) });
});
afterAll(async () => {
  for (const p of peers) p.close();
  for (const s of sdks) await s.close();
  await node?.close();
  for (const n of cluster) await n.close();
  await redis?.stop();
});

test('a participant whose gateway went quiet is dropped after the stale timeout; one with its event stream open stays', async () => {
  const room = 'gw-quiet';
  // Nobody publishes, so no media is due on the REST participants' transports: what removes one is
  // its gateway going quiet, not the room's own check of dead media.
  const sdk = await joinCallPeer(node, room, 'gw-quiet-sdk', 440, { receiveOnly: true });
  sdks.push(sdk);
  const streaming = await RestPeer.join(node.url, KEY, room, 'call', 'streaming', 'participant');
  const quiet = await RestPeer.join(node.url, KEY, room, 'call', 'quiet', 'participant');
  peers.push(streaming, quiet);
  // A session that sets up no transport at all is removed by the room after the same window.
  await streaming.call('POST', '/transports', { direction: 'recv' });
  await quiet.call('POST', '/transports', { direction: 'recv' });
  await until(() => sdk.client.participants.has(quiet.participantId), 5000, 'the SDK participant to see the REST ones');
  quiet.closeEvents();
  const inRoom = (peerId: string): boolean => node.rooms.get(room)?.peers.has(peerId) ?? false;
  expect(inRoom(quiet.participantId) && inRoom(streaming.participantId)).toBe(true);
  const quietSince = Date.now();
  await until(() => !inRoom(quiet.participantId), STALE_MS * 4, 'the quiet participant to be dropped');
  expect(Date.now() - quietSince).toBeGreaterThanOrEqual(STALE_MS - 100);
  // Its gateway is told as a socket's client would be: it is gone.
  await expect(quiet.call('POST', '/transports', { direction: 'recv' })).rejects.toMatchObject({ status: 404 });
  // The other one called no more than the quiet one, but its stream is open.
  expect(inRoom(streaming.participantId)).toBe(true);
  // The SDK participant saw the quiet one leave.
  await until(() => !sdk.client.participants.has(quiet.participantId), 5000, 'the SDK participant to see it leave');
  // Its stream closed, the streaming one goes the same way.
  streaming.closeEvents();
  await until(() => !inRoom(streaming.participantId), STALE_MS * 4, 'the participant whose stream closed to be dropped');
}, 30_000);

test('in a cluster, a request reaching a node that does not hold the room is redirected there (307), and served there', async () => {
  redis = await startRedis();
  cluster = await startTestNodes(['gw-alpha', 'gw-beta'], { REDIS_URL: redis.url });
  const [alpha, beta] = cluster as [ChorusNode, ChorusNode];
  await until(async () => (await alpha.store.listNodes()).length === 2 && (await beta.store.listNodes()).length === 2, 10_000, 'both nodes listed');
  const room = await roomOwnedBy('gw-beta', ['gw-alpha', 'gw-beta'], 'gw-redirect');
  const asked = await fetch(`${alpha.url}/api/rooms/${room}/create`, {
    method: 'POST',
    headers: { authorization: KEY, 'content-type': 'application/json' },
    body: JSON.stringify({ kind: 'call' }),
    redirect: 'manual',
  });
  expect(asked.status).toBe(307);
  expect(asked.headers.get('location')).toBe(`${beta.url}/api/rooms/${room}/create`);
  // Followed (fetch repeats a 307 with its method and body), beta serves it and every later call.
  const rest = await RestPeer.join(beta.url, KEY, room, 'call', 'gw-cluster', 'participant');
  peers.push(rest);
  expect(beta.rooms.get(room)?.peers.has(rest.participantId)).toBe(true);
  expect(alpha.rooms.get(room)).toBeUndefined();
  const asAlpha = await fetch(`${alpha.url}/api/rooms/${room}/transports`, {
    method: 'POST',
    headers: { authorization: KEY, 'content-type': 'application/json' },
    body: JSON.stringify({ participantId: rest.participantId, direction: 'recv' }),
    redirect: 'manual',
  });
  expect(asAlpha.status).toBe(307);
  // Followed with the credentials (fetch drops them on a redirect to another origin; a gateway re-sends them).
  const followed = await restCall<{ id: string }>(alpha.url, KEY, 'POST', `/api/rooms/${room}/transports`, { participantId: rest.participantId, direction: 'recv' });
  expect(followed.id).toMatch(/^[0-9a-f-]{36}$/);
  expect(beta.rooms.get(room)?.peers.get(rest.participantId)).toBeDefined();

  // A class whose students are on the other node: a REST assistant on the class's node gets the
  // hand queue and the questions of a student on alpha (hands and chat cross nodes by the roster).
  const classRoom = await roomOwnedBy('gw-beta', ['gw-alpha', 'gw-beta'], 'gw-class');
  const assistant = await RestPeer.join(alpha.url, KEY, classRoom, 'class', 'assistant', 'assistant');
  peers.push(assistant);
  expect(beta.rooms.get(classRoom)?.peers.has(assistant.participantId)).toBe(true);
  await assistant.call('POST', '/transports', { direction: 'recv' });
  const studentToken = await alpha.tokens.mint({ room: classRoom, identity: 'student-alpha', role: 'student', kind: 'class', name: 'student-alpha' });
  const student = await joinCallPeer(alpha, classRoom, 'student-alpha', 0, { token: studentToken, receiveOnly: true });
  sdks.push(student);
  expect(alpha.rooms.get(classRoom)?.peers.has(student.client.peerId!)).toBe(true);
  await student.client.moveHand('raise');
  await student.client.sendChat('a question from alpha', 'staff');
  const named = (event: string): unknown[] => assistant.events.filter((e) => e.event === event).map((e) => e.data);
  await until(() => named('hand:queue').some((d) => (d as { queue: { hands: Array<{ peerId: string; state: string }> } }).queue.hands.some((h) => h.peerId === student.client.peerId && h.state === 'raised')), 10_000, 'the REST assistant to see the hand raised on alpha');
  await until(() => named('chat:message').some((d) => (d as { message: { text: string } }).message.text === 'a question from alpha'), 10_000, 'the REST assistant to get the question from alpha');
}, 60_000);
