/**
 * The operator's side of a node: the admin API (list, inspect, close, remove, mute), signed
 * webhooks with retries, and the cleanup of stale sessions and idle rooms.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { ChorusClient } from '../../src/client/chorusClient.js';
import type { AuditEvent } from '../../src/observability/audit.js';
import { verifyWebhook } from '../../src/webhooks/signature.js';
import type { WebhookEvent } from '../../src/webhooks/webhooks.js';
import { joinListener, type TestListener } from '../support/listener.js';
import { toneTrack } from '../support/nodePeer.js';
import { freePort } from '../support/ports.js';
import { RawSocket } from '../support/rawSocket.js';
import { RestPeer } from '../support/restPeer.js';
import { nodeClient, startTestNode, tokenFor, until } from '../support/testNode.js';

const SECRET = 't'.repeat(40);
const OTHER = 'o'.repeat(40);
const basic = (id: string, secret: string): string => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

/** A real HTTP receiver: answers each delivery with the next status in `plan` (then 200). */
class Receiver {
  readonly received: Array<{ body: string; event: WebhookEvent; signature: string | undefined; id: string | undefined }> = [];
  readonly plan: number[] = [];
  server!: Server;
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const status = this.plan.shift() ?? 200;
        if (status === 200) {
          this.received.push({ body, event: JSON.parse(body) as WebhookEvent, signature: req.headers['chorus-signature'] as string | undefined, id: req.headers['chorus-webhook-id'] as string | undefined });
        }
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks`;
    return this;
  }

  events(room: string): string[] {
    return this.received.filter((r) => r.event.room === room).map((r) => r.event.event);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

let node: ChorusNode;
let receiver: Receiver;
/** Nothing listens here: every delivery to it fails by connection refused. */
let deadUrl = '';
const audit: Array<AuditEvent & { at: number }> = [];
const cleanup: Array<() => Promise<void> | void> = [];

async function api(method: string, path: string, options: { auth?: string | null; body?: unknown } = {}): Promise<{ status: number; json: Record<string, any> }> {
  const auth = options.auth === undefined ? basic('test', SECRET) : options.auth;
  const response = await fetch(`${node.url}${path}`, {
    method,
    headers: { ...(auth ? { authorization: auth } : {}), ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  return { status: response.status, json: (await response.json()) as Record<string, any> };
}

async function broadcaster(roomId: string): Promise<ChorusClient> {
  const tone = toneTrack(440);
  const client = nodeClient(node, roomId, await tokenFor(node, roomId, 'broadcaster', `speaker-${roomId}`));
  await client.join();
  await client.publish(tone.track);
  cleanup.push(async () => {
    await client.close();
    tone.stop();
  });
  return client;
}

async function listener(roomId: string): Promise<TestListener> {
  const l = await joinListener(node, roomId);
  cleanup.push(() => l.close());
  return l;
}

beforeAll(async () => {
  receiver = await new Receiver().start();
  deadUrl = `http://127.0.0.1:${await freePort()}/hooks`;
  node = await startTestNode({
    CHORUS_API_KEYS: `test:${SECRET},other:${OTHER}`,
    CHORUS_WEBHOOK_URLS: `${receiver.url},${deadUrl}`,
    CHORUS_WEBHOOK_BACKOFF_MS: '20',
    CHORUS_WEBHOOK_MAX_ATTEMPTS: '4',
    CHORUS_STALE_PEER_MS: '1500',
    CHORUS_ROOM_IDLE_MS: '1500',
  });
  node.audit.on('event', (e) => audit.push(e));
});
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
  await until(() => node.rooms.rooms.size === 0, 5000, 'rooms to close after the test');
});
afterAll(async () => {
  await node?.close();
  await receiver?.close();
});

describe('admin API', () => {
  test('needs an API key: none, a wrong secret and an unknown key are UNAUTHORIZED', async () => {
    for (const auth of [null, basic('test', 'x'.repeat(40)), basic('nobody', SECRET), 'Bearer abc']) {
      const { status, json } = await api('GET', '/api/admin/rooms', { auth });
      expect(status).toBe(401);
      expect(json['error'].code).toBe('UNAUTHORIZED');
    }
  });

  test('lists rooms with peer counts per node and role; another key sees none of them', async () => {
    await broadcaster('adm-list');
    await listener('adm-list');
    await listener('adm-list');
    const { status, json } = await api('GET', '/api/admin/rooms');
    expect(status).toBe(200);
    const room = json['rooms'].find((r: { id: string }) => r.id === 'adm-list');
    expect(room).toMatchObject({ kind: 'broadcast', peers: 3, broadcasting: true });
    expect(room.nodes).toEqual([{ node: node.config.nodeId, peers: 3, byRole: { broadcaster: 1, listener: 2 }, hlsViewers: 0 }]);

    expect((await api('GET', '/api/admin/rooms', { auth: basic('other', OTHER) })).json['rooms']).toEqual([]);
    const hidden = await api('GET', '/api/admin/rooms/adm-list', { auth: basic('other', OTHER) });
    expect([hidden.status, hidden.json['error'].code]).toEqual([404, 'NOT_FOUND']);
  });

  test('one room shows its participants; bad and unknown ids are clear errors', async () => {
    const b = await broadcaster('adm-get');
    const { status, json } = await api('GET', '/api/admin/rooms/adm-get');
    expect(status).toBe(200);
    expect(json['participants']).toEqual([
      expect.objectContaining({ id: b.peerId, identity: 'speaker-adm-get', role: 'broadcaster', publishing: true, muted: false, node: node.config.nodeId }),
    ]);
    expect((await api('GET', '/api/admin/rooms/no-such-room')).status).toBe(404);
    const bad = await api('GET', `/api/admin/rooms/${encodeURIComponent('../etc')}`);
    expect([bad.status, bad.json['error'].code]).toEqual([400, 'BAD_REQUEST']);
    const badPeer = await api('DELETE', '/api/admin/rooms/adm-get/participants/not-a-uuid');
    expect([badPeer.status, badPeer.json['error'].code]).toEqual([400, 'BAD_REQUEST']);
    const badBody = await api('POST', `/api/admin/rooms/adm-get/participants/${b.peerId}/mute`, { body: { muted: 'yes' } });
    expect([badBody.status, badBody.json['error'].code]).toEqual([400, 'BAD_REQUEST']);
    // Nothing above changed the room.
    expect((await api('GET', '/api/admin/rooms/adm-get')).json['participants'][0]).toMatchObject({ publishing: true, muted: false });
  });

  test('mute pauses the broadcaster (who is told) and unmute lets it resume', async () => {
    const b = await broadcaster('adm-mute');
    const l = await listener('adm-mute');
    await l.hears(440);
    const told: boolean[] = [];
    b.on('muted', (m) => told.push(m));
    const muted = await api('POST', `/api/admin/rooms/adm-mute/participants/${b.peerId}/mute`, { body: { muted: true } });
    expect(muted).toEqual({ status: 200, json: { muted: true } });
    await until(() => told.includes(true), 5000, 'the broadcaster to be told it is muted');
    const room = node.rooms.get('adm-mute')!;
    expect(room.localBroadcast?.paused).toBe(true);
    expect(audit).toContainEqual(expect.objectContaining({ type: 'moderator.action', action: 'mute', moderator: 'api:test', room: 'adm-mute' }));
    await api('POST', `/api/admin/rooms/adm-mute/participants/${b.peerId}/mute`, { body: { muted: false } });
    await until(() => told.at(-1) === false, 5000, 'unmute to reach the broadcaster');
  });

  test('removing a participant ends its session and it cannot come back by resuming', async () => {
    await broadcaster('adm-kick');
    const l = await listener('adm-kick');
    const errors: string[] = [];
    l.client.on('error', (e) => errors.push(e.code));
    const raw = await RawSocket.connect(node);
    cleanup.push(() => raw.close());
    const joined = await raw.ok('join', { roomId: 'adm-kick', token: await tokenFor(node, 'adm-kick', 'listener', 'to-remove') });
    const peerId = String(joined['peerId']);

    const { status } = await api('DELETE', `/api/admin/rooms/adm-kick/participants/${peerId}`);
    expect(status).toBe(200);
    await until(() => raw.events.some((e) => e.event === 'session:kicked'), 5000, 'the session to be told it was removed');
    const room = await api('GET', '/api/admin/rooms/adm-kick');
    expect(room.json['participants'].map((p: { id: string }) => p.id)).not.toContain(peerId);
    expect(room.json['peers']).toBe(2);
    const again = await RawSocket.connect(node);
    cleanup.push(() => again.close());
    expect(await again.code('join', { roomId: 'adm-kick', token: joined['resumeToken'], previousPeerId: peerId })).toBe('KICKED');
    expect((await api('DELETE', `/api/admin/rooms/adm-kick/participants/${peerId}`)).status).toBe(404);
    // Only that session went: the SDK listener was not touched.
    expect(errors).toEqual([]);
  });

  test('closing a room ends it for everyone, records why, and another key cannot close it', async () => {
    const b = await broadcaster('adm-close');
    const l = await listener('adm-close');
    const ended: string[] = [];
    for (const c of [b, l.client]) c.on('error', (e) => ended.push(e.code));
    expect((await api('DELETE', '/api/admin/rooms/adm-close', { auth: basic('other', OTHER) })).status).toBe(404);
    expect(node.rooms.get('adm-close')).toBeDefined();
    const { status, json } = await api('DELETE', '/api/admin/rooms/adm-close');
    expect(status).toBe(200);
    expect(json).toEqual({ closed: true, nodes: [node.config.nodeId] });
    await until(() => ended.filter((c) => c === 'ROOM_ENDED').length === 2, 5000, 'both clients to be told the room ended');
    expect(node.rooms.get('adm-close')).toBeUndefined();
    expect(audit).toContainEqual(expect.objectContaining({ type: 'room.finished', room: 'adm-close', reason: 'ended' }));
    expect((await api('DELETE', '/api/admin/rooms/adm-close')).status).toBe(404);
  });
});

describe('webhooks', () => {
  test('room, participant and broadcast events arrive signed, each once, retried through receiver errors', async () => {
    // The first two deliveries meet a failing receiver; the retries must still get them through.
    receiver.plan.push(500, 503);
    const b = await broadcaster('hooks');
    const l = await listener('hooks');
    await l.hears(440);
    await l.close();
    await b.close();
    await until(() => receiver.events('hooks').includes('room_finished'), 10_000, 'room_finished to be delivered');
    const events = receiver.events('hooks');
    expect(events.filter((e) => e === 'participant_joined')).toHaveLength(2);
    expect(events.filter((e) => e === 'participant_left')).toHaveLength(2);
    for (const name of ['room_started', 'broadcast_started', 'broadcast_stopped', 'track_published', 'track_unpublished', 'room_finished']) {
      expect(events.filter((e) => e === name), name).toHaveLength(1);
    }
    const deliveries = receiver.received.filter((r) => r.event.room === 'hooks');
    for (const d of deliveries) {
      expect(verifyWebhook(d.body, d.signature, SECRET), d.event.event).toBe(true);
      expect(verifyWebhook(d.body.replace('hooks', 'hookz'), d.signature, SECRET)).toBe(false);
      expect(d.id).toBe(d.event.id);
    }
    expect(new Set(deliveries.map((d) => d.event.id)).size).toBe(deliveries.length);
    // The broadcaster's microphone is a track like any: its source and kind come with it.
    const published = deliveries.find((d) => d.event.event === 'track_published')?.event;
    expect(published?.track).toEqual({ id: expect.any(String), source: 'microphone', kind: 'audio' });
    expect(deliveries.find((d) => d.event.event === 'track_unpublished')?.event.track).toEqual({ id: published?.track?.id, source: 'microphone' });
    const left = deliveries.find((d) => d.event.event === 'participant_left' && d.event.participant?.role === 'listener');
    expect(left?.event.reason).toBe('left');
    // The two refused attempts show in the record of the deliveries that needed them.
    const extraAttempts = (): number =>
      audit.reduce((n, e) => n + (e.type === 'webhook.delivered' && e.url === receiver.url ? e.attempts - 1 : 0), 0);
    await until(() => extraAttempts() === 2, 5000, 'the retried deliveries to be recorded');
  });

  test('a participant driven over the media REST API gives the same signed webhooks as a socket\'s', async () => {
    const auth = `Basic ${Buffer.from(`test:${SECRET}`).toString('base64')}`;
    const rest = await RestPeer.join(node.url, auth, 'hooks-rest', 'call', 'gateway-user', 'participant');
    const tone = toneTrack(500);
    cleanup.push(() => tone.stop(), () => rest.close());
    const mic = await rest.publish(tone.track, 'microphone');
    await rest.call('DELETE', `/producers/${mic.id}?participantId=${rest.participantId}`);
    await rest.leave();
    await until(() => receiver.events('hooks-rest').includes('room_finished'), 10_000, 'room_finished to be delivered');
    const deliveries = receiver.received.filter((r) => r.event.room === 'hooks-rest');
    // Each once (delivery order is not promised: a retried one may come later).
    expect(deliveries.map((d) => d.event.event).sort()).toEqual(['participant_joined', 'participant_left', 'room_finished', 'room_started', 'track_published', 'track_unpublished']);
    expect(deliveries.find((d) => d.event.event === 'participant_joined')?.event.participant).toMatchObject({ identity: 'gateway-user', role: 'participant' });
    expect(deliveries.find((d) => d.event.event === 'participant_left')?.event.reason).toBe('left');
    for (const d of deliveries) expect(verifyWebhook(d.body, d.signature, SECRET), d.event.event).toBe(true);
  });

  test('a receiver that cannot be reached is given up on after the configured attempts, and that is recorded', async () => {
    const before = audit.length;
    const b = await broadcaster('hooks-down');
    const failedFor = (): Array<AuditEvent & { at: number }> => audit.slice(before).filter((e) => e.type === 'webhook.failed' && e.url === deadUrl && e.event === 'room_started');
    await until(() => failedFor().length === 1, 10_000, 'the failed delivery to be recorded');
    expect(failedFor()[0]).toMatchObject({ attempts: 4, error: expect.stringContaining('POST failed') });
    await b.close();
  });

  test('a 4xx answer is final: no retries', async () => {
    receiver.plan.push(410);
    const before = audit.length;
    const b = await broadcaster('hooks-gone');
    const refused = (): Array<AuditEvent & { at: number }> => audit.slice(before).filter((e) => e.type === 'webhook.failed' && e.url === receiver.url);
    await until(() => refused().length > 0, 10_000, 'the refused delivery to be recorded');
    expect(refused()[0]).toMatchObject({ attempts: 1, error: 'receiver answered 410' });
    await b.close();
  });
});

describe('stale cleanup', () => {
  test('a session whose media transport never connects is removed and told to start over; a connected one stays', async () => {
    await broadcaster('stale');
    const healthy = await listener('stale');
    await healthy.hears(440);
    const raw = await RawSocket.connect(node);
    cleanup.push(() => raw.close());
    const joined = await raw.ok('join', { roomId: 'stale', token: await tokenFor(node, 'stale', 'listener', 'ghost') });
    await raw.ok('createTransport', { direction: 'recv' });
    const ghost = String(joined['peerId']);
    await until(() => raw.events.some((e) => e.event === 'session:reset'), 10_000, 'the ghost to be told to start over');
    expect(node.rooms.get('stale')!.peers.has(ghost)).toBe(false);
    expect(audit).toContainEqual(expect.objectContaining({ type: 'participant.left', peer: ghost, reason: 'stale' }));
    // The healthy listener's transport connected: it is still there and still hearing.
    expect(node.rooms.get('stale')!.peers.has(healthy.client.peerId!)).toBe(true);
    await healthy.hears(440);
  });

  test('a room where nobody broadcasts is ended after the idle time; a live broadcast is not', async () => {
    await broadcaster('live-room');
    const waiting = await listener('idle-room');
    const errors: string[] = [];
    waiting.client.on('error', (e) => errors.push(e.code));
    await until(() => errors.includes('ROOM_ENDED'), 10_000, 'the waiting listener to be told the room ended');
    expect(node.rooms.get('idle-room')).toBeUndefined();
    expect(audit).toContainEqual(expect.objectContaining({ type: 'room.finished', room: 'idle-room', reason: 'idle' }));
    // Created before the idle room, so its idle clock would have run out too had it been armed.
    expect(node.rooms.get('live-room')?.localBroadcast).toBeDefined();
  });
});
