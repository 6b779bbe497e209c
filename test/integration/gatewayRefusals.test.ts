/**
 * The media REST API's refusals: each a typed error with its HTTP status, and none of them leaves
 * anything behind on the node (transports, producers, consumers, participants).
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { mediaCounts } from '../support/mediaCounts.js';
import { restCall, RestApiError, RestPeer } from '../support/restPeer.js';
import { startTestNode } from '../support/testNode.js';

const basic = (id: string, secret: string): string => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
const SECRET = 't'.repeat(40);
const OTHER_SECRET = 'o'.repeat(40);
const KEY = basic('test', SECRET);
const OTHER = basic('other', OTHER_SECRET);
let node: ChorusNode;
const peers: RestPeer[] = [];

beforeAll(async () => {
  node = await startTestNode({ CHORUS_API_KEYS: `test:${SECRET},other:${OTHER_SECRET}` });
});
afterAll(async () => {
  for (const p of peers) p.close();
  await node?.close();
});

/** The status and error code of a call that must fail. */
async function refusal(auth: string, method: string, path: string, body?: unknown): Promise<[number, string | undefined]> {
  try {
    await restCall(node.url, auth, method, path, body);
  } catch (error) {
    if (error instanceof RestApiError) return [error.status, error.body?.error?.code];
    throw error;
  }
  throw new Error(`${method} ${path} was accepted`);
}

async function raw(method: string, path: string, body: string, headers: Record<string, string> = {}): Promise<[number, string | undefined]> {
  const response = await fetch(`${node.url}${path}`, { method, headers: { authorization: KEY, 'content-type': 'application/json', ...headers }, body });
  const parsed = (await response.json()) as { error?: { code: string } };
  return [response.status, parsed.error?.code];
}

const gatewayCount = (): number => node.gatewayParticipants.size;

test('every refusal is a typed error with its status, and nothing is left behind', async () => {
  const room = 'gw-refusals';
  const owner = await RestPeer.join(node.url, KEY, room, 'call', 'owner', 'participant');
  peers.push(owner);
  const me = owner.participantId;
  const before = await mediaCounts(node);
  const participantsBefore = gatewayCount();
  const fake = '00000000-0000-4000-8000-000000000000';
  const dtlsParameters = { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: 'AB:CD' }] };
  const routes: Array<[string, string, Record<string, unknown> | undefined]> = [
    ['POST', `/api/rooms/${room}/create`, { kind: 'call' }],
    ['GET', `/api/rooms/${room}`, undefined],
    ['POST', `/api/rooms/${room}/participants`, { identity: 'x', role: 'participant' }],
    ['POST', `/api/rooms/${room}/transports`, { participantId: me, direction: 'send' }],
    ['POST', `/api/rooms/${room}/transports/${fake}/connect`, { participantId: me, dtlsParameters }],
    ['POST', `/api/rooms/${room}/transports/${fake}/produce`, { participantId: me, kind: 'audio', rtpParameters: { codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2 }] } }],
    ['POST', `/api/rooms/${room}/consume`, { participantId: me, transportId: fake, producerId: fake, rtpCapabilities: { codecs: [] } }],
    ['POST', `/api/rooms/${room}/consumers/${fake}/resume`, { participantId: me }],
    ['DELETE', `/api/rooms/${room}/producers/${fake}?participantId=${me}`, undefined],
    ['POST', `/api/rooms/${room}/participants/${me}/leave`, undefined],
    ['GET', `/api/rooms/${room}/participants/${me}/events`, undefined],
  ];

  // No key, or a wrong secret: 401 everywhere, before anything else is looked at.
  for (const [method, path, body] of routes) {
    expect(await refusal('', method, path, body), `${method} ${path} without a key`).toEqual([401, 'UNAUTHORIZED']);
    expect(await refusal(basic('test', 'x'.repeat(40)), method, path, body), `${method} ${path} with a wrong secret`).toEqual([401, 'UNAUTHORIZED']);
  }

  // Another tenant's key: the room is not theirs, the participant unknown to them.
  expect(await refusal(OTHER, 'POST', `/api/rooms/${room}/create`, { kind: 'call' })).toEqual([403, 'TOKEN_WRONG_ROOM']);
  expect(await refusal(OTHER, 'GET', `/api/rooms/${room}`)).toEqual([404, 'NOT_FOUND']);
  expect(await refusal(OTHER, 'POST', `/api/rooms/${room}/participants`, { identity: 'intruder', role: 'participant' })).toEqual([403, 'TOKEN_WRONG_ROOM']);
  for (const [method, path, body] of routes.slice(3)) {
    expect(await refusal(OTHER, method, path, body), `${method} ${path} with another tenant's key`).toEqual([404, 'NOT_FOUND']);
  }
  // A token signed by another tenant's key cannot be carried in by this one.
  const foreignToken = await (await fetch(`${node.url}/api/tokens`, { method: 'POST', headers: { authorization: OTHER, 'content-type': 'application/json' }, body: JSON.stringify({ room: 'elsewhere', identity: 'x', role: 'participant', kind: 'call' }) })).json() as { token: string };
  expect(await refusal(KEY, 'POST', `/api/rooms/${room}/participants`, { token: foreignToken.token })).toEqual([403, 'TOKEN_WRONG_ROOM']);

  // Unknown ids.
  expect(await refusal(KEY, 'GET', '/api/rooms/no-such-room')).toEqual([404, 'NOT_FOUND']);
  expect(await refusal(KEY, 'POST', '/api/rooms/no-such-room/participants', { identity: 'x', role: 'participant' })).toEqual([404, 'NOT_FOUND']);
  expect(await refusal(KEY, 'POST', `/api/rooms/${room}/transports`, { participantId: fake, direction: 'send' })).toEqual([404, 'NOT_FOUND']);
  expect(await refusal(KEY, 'POST', `/api/rooms/other-room/transports`, { participantId: me, direction: 'send' })).toEqual([404, 'NOT_FOUND']);
  expect(await refusal(KEY, 'POST', `/api/rooms/${room}/transports/${fake}/connect`, { participantId: me, dtlsParameters })).toEqual([404, 'TRANSPORT_NOT_FOUND']);
  expect(await refusal(KEY, 'POST', `/api/rooms/${room}/transports/${fake}/produce`, { participantId: me, kind: 'audio', rtpParameters: { codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2 }] } })).toEqual([404, 'TRANSPORT_NOT_FOUND']);
  expect(await refusal(KEY, 'POST', `/api/rooms/${room}/consumers/${fake}/resume`, { participantId: me })).toEqual([404, 'CONSUMER_NOT_FOUND']);
  expect(await refusal(KEY, 'DELETE', `/api/rooms/${room}/producers/${fake}?participantId=${me}`)).toEqual([404, 'PRODUCER_NOT_FOUND']);

  // Malformed: not JSON, wrong types, unknown fields, a bad room id or kind, a missing participant.
  expect(await raw('POST', `/api/rooms/${room}/transports`, '{"participantId":')).toEqual([400, 'BAD_REQUEST']);
  expect(await refusal(KEY, 'POST', `/api/rooms/${room}/transports`, { participantId: me, direction: 'sideways' })).toEqual([400, 'BAD_REQUEST']);
  expect(await refusal(KEY, 'POST', `/api/rooms/${room}/transports`, { participantId: me, direction: 'send', admin: true })).toEqual([400, 'BAD_REQUEST']);
  expect(await refusal(KEY, 'POST', `/api/rooms/${room}/transports`, { direction: 'send' })).toEqual([400, 'BAD_REQUEST']);
  expect(await refusal(KEY, 'POST', '/api/rooms/bad%20room/create', { kind: 'call' })).toEqual([400, 'BAD_REQUEST']);
  expect(await refusal(KEY, 'POST', `/api/rooms/${room}/create`, { kind: 'party' })).toEqual([400, 'BAD_REQUEST']);
  expect(await refusal(KEY, 'POST', `/api/rooms/${room}/participants`, { identity: 'x', role: 'participant', token: 'y' })).toEqual([400, 'BAD_REQUEST']);
  expect(await refusal(KEY, 'DELETE', `/api/rooms/${room}/producers/${fake}`)).toEqual([400, 'BAD_REQUEST']);
  expect(await refusal(KEY, 'POST', `/api/rooms/${room}/participants/not-a-uuid/leave`)).toEqual([400, 'BAD_REQUEST']);
  // A room keeps its kind.
  expect(await refusal(KEY, 'POST', `/api/rooms/${room}/create`, { kind: 'class' })).toEqual([409, 'WRONG_ROOM_KIND']);

  // Oversized: over 64 KiB.
  expect(await raw('POST', `/api/rooms/${room}/transports`, JSON.stringify({ participantId: me, direction: 'send', pad: 'x'.repeat(70_000) }))).toEqual([413, 'LIMIT_REACHED']);

  expect(await mediaCounts(node)).toEqual(before);
  expect(gatewayCount()).toBe(participantsBefore);
});

test('a class\'s rules hold over REST: a student gets no send transport, so it cannot produce; a bad join token is refused', async () => {
  const room = 'gw-class';
  const student = await RestPeer.join(node.url, KEY, room, 'class', 'student-1', 'student');
  peers.push(student);
  const before = await mediaCounts(node);
  expect(await refusal(KEY, 'POST', `/api/rooms/${room}/transports`, { participantId: student.participantId, direction: 'send' })).toEqual([403, 'FORBIDDEN_ROLE']);
  expect(await refusal(KEY, 'POST', `/api/rooms/${room}/participants`, { token: 'not-a-token' })).toEqual([401, 'TOKEN_INVALID']);
  expect(await refusal(KEY, 'POST', `/api/rooms/${room}/participants`, { identity: 'y', role: 'broadcaster' })).toEqual([403, 'FORBIDDEN_ROLE']);
  expect(await mediaCounts(node)).toEqual(before);
  // Counted in the signaling metrics as the same refusal over a socket is.
  const metrics = await (await fetch(`${node.url}/metrics`)).text();
  expect(Number(/chorus_signaling_requests_total\{method="createTransport",code="FORBIDDEN_ROLE",node="[^"]+"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
  expect(Number(/chorus_signaling_requests_total\{method="join",code="ok",node="[^"]+"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
  // Receiving is what a student does.
  const info = await student.call<{ id: string }>('POST', '/transports', { direction: 'recv' });
  expect(info.id).toMatch(/^[0-9a-f-]{36}$/);
});
