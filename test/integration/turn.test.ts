/**
 * TURN against a real coturn on loopback: a relay-only listener hears the broadcast through the
 * relay, the join hands out TURN REST credentials coturn accepts, and coturn refuses forged and
 * expired ones.
 */
import { createHmac } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { turnCredentials, turnUserTag } from '../../src/auth/turn.js';
import { startCoturn, uclient, type Coturn } from '../support/coturn.js';
import type { P2pFactory } from '../../src/client/p2pLink.js';
import { hears, joinCallPeer } from '../support/callPeer.js';
import { joinListener } from '../support/listener.js';
import { toneTrack } from '../support/nodePeer.js';
import { nodeClient, startTestNode, tokenFor, until } from '../support/testNode.js';

const TTL = 600;

let turn: Coturn;
let node: ChorusNode;
const cleanup: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  turn = await startCoturn();
  node = await startTestNode({ TURN_URLS: turn.url, TURN_SECRET: turn.secret, TURN_TTL_SECONDS: String(TTL) });
});
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
  await until(() => node.rooms.rooms.size === 0, 5000, 'rooms to close after the test');
});
afterAll(async () => {
  await node?.close();
  await turn?.stop();
});

const escape = (s: string): RegExp => new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
/** coturn's verbose log line for a request from this user with this outcome (newer coturn adds `remote <addr>`). */
const logged = (username: string | RegExp, outcome: string): RegExp =>
  new RegExp(`user <${(typeof username === 'string' ? escape(username) : username).source}>(?: remote <[^>]*>)?: incoming packet ${outcome}`);

async function broadcaster(roomId: string, frequency: number): Promise<void> {
  const tone = toneTrack(frequency);
  const client = nodeClient(node, roomId, await tokenFor(node, roomId, 'broadcaster', `imam-${roomId}`));
  cleanup.push(async () => {
    await client.close();
    tone.stop();
  });
  await client.join();
  await client.publish(tone.track);
}

describe('TURN with coturn (use-auth-secret)', () => {
  test('a relay-only listener hears the broadcast, and the media really goes through coturn', async () => {
    await broadcaster('relayed', 1000);
    const l = await joinListener(node, 'relayed', { iceTransportPolicy: 'relay' });
    cleanup.push(() => l.close());
    await l.hears(1000);

    // Server side: the listener's transport talks to a coturn relay address, not to the
    // client's own host candidate (which would be an ephemeral port on the client's interface).
    const listenerPeer = [...node.rooms.get('relayed')!.peers.values()].find((p) => p.role === 'listener')!;
    const [transport] = [...listenerPeer.transports.values()];
    const tuple = transport!.iceSelectedTuple!;
    expect(tuple.protocol).toBe('udp');
    expect(tuple.remoteIp).toBe(turn.host);
    expect(tuple.remotePort).toBeGreaterThanOrEqual(turn.relayPorts.min);
    expect(tuple.remotePort).toBeLessThanOrEqual(turn.relayPorts.max);

    // Client side: the selected candidate pair's local candidate is a relay candidate.
    const report = (await l.client.transport!.getStats()) as Map<string, Record<string, unknown>>;
    const stats = [...report.values()];
    const selectedId = stats.find((s) => s['type'] === 'transport' && s['selectedCandidatePairId'])?.['selectedCandidatePairId'];
    const pair =
      stats.find((s) => s['type'] === 'candidate-pair' && s['id'] === selectedId) ??
      stats.find((s) => s['type'] === 'candidate-pair' && s['nominated'] === true && s['state'] === 'succeeded');
    expect(pair, 'a selected candidate pair in the listener\'s stats').toBeDefined();
    const local = report.get(pair!['localCandidateId'] as string);
    expect(local?.['candidateType']).toBe('relay');

    // coturn side: it allocated a relay for this session's minted credential.
    await turn.waitForLog(logged(new RegExp(`\\d+:${turnUserTag(listenerPeer.identity)}`), 'ALLOCATE processed, success'));
  });

  test('the join hands out TURN REST credentials: `<expiry>:<identity tag>`, expiry = now + TURN_TTL_SECONDS, HMAC-SHA1 of the secret', async () => {
    const client = nodeClient(node, 'creds', await tokenFor(node, 'creds', 'listener', 'ops:alice'));
    cleanup.push(() => client.close());
    const before = Math.floor(Date.now() / 1000);
    const info = await client.join();
    const after = Math.floor(Date.now() / 1000);

    expect(info.iceServers).toHaveLength(1);
    const [server] = info.iceServers;
    expect(server!.urls).toEqual([turn.url]);
    const match = /^(\d+):(.+)$/.exec(server!.username ?? '');
    expect(match, `username ${server!.username}`).not.toBeNull();
    const expiry = Number(match![1]);
    // The identity travels as an opaque digest: coturn refuses spaces, quotes and extra colons.
    expect(match![2]).toBe(turnUserTag('ops:alice'));
    expect(expiry).toBeGreaterThanOrEqual(before + TTL);
    expect(expiry).toBeLessThanOrEqual(after + TTL);
    expect(server!.credential).toBe(createHmac('sha1', turn.secret).update(server!.username!).digest('base64'));
  });

  test('coturn accepts the credential a join hands out, and refuses a forged one and an expired one', async () => {
    const client = nodeClient(node, 'refuse', await tokenFor(node, 'refuse', 'listener', 'checker'));
    cleanup.push(() => client.close());
    const [server] = (await client.join()).iceServers;

    // Valid: the very credential the node minted gets allocations and relays messages.
    const ok = await uclient(turn, server!.username!, server!.credential!);
    expect(ok.code, ok.output).toBe(0);
    expect(ok.received, ok.output).toBeGreaterThan(0);
    await turn.waitForLog(logged(server!.username!, 'ALLOCATE processed, success'));

    // Forged: right shape, live expiry, HMAC under another secret.
    const forged = turnCredentials('not-the-coturn-secret-at-all', 'forger', TTL);
    const bad = await uclient(turn, forged.username, forged.credential);
    expect(bad.code, bad.output).not.toBe(0);
    expect(bad.output).toContain('Cannot complete Allocation');
    expect(bad.received).toBe(0);
    await turn.waitForLog(logged(forged.username, 'message processed, error 401'));

    // Expired: HMAC under the right secret, but the expiry is an hour ago.
    const expired = turnCredentials(turn.secret, 'late', TTL, Date.now() - 3600_000);
    expect(Number(expired.username.split(':')[0])).toBeLessThan(Date.now() / 1000);
    const old = await uclient(turn, expired.username, expired.credential);
    expect(old.code, old.output).not.toBe(0);
    expect(old.output).toContain('Cannot complete Allocation');
    expect(old.received).toBe(0);
    await turn.waitForLog(logged(expired.username, 'message processed, error 401'));
  });
});

describe('a call participant whose path goes dead for a while', () => {
  test('gets an ICE restart on the same session, not a rejoin, and is heard again', async () => {
    const room = 'ice-restart';
    const steady = await joinCallPeer(node, room, 'steady', 400);
    cleanup.push(() => steady.close());
    // Relay-only: all its media goes through coturn, so freezing coturn cuts its path and
    // nothing else (signaling stays up, as when a phone changes network).
    const relayed = await joinCallPeer(node, room, 'relayed', 700, { extra: { iceTransportPolicy: 'relay' } });
    cleanup.push(() => relayed.close());
    await until(() => hears(steady, relayed) && hears(relayed, steady), 20_000, 'both to hear each other through the relay');
    const session = relayed.client.peerId!;
    const transports = [...node.rooms.get(room)!.peers.get(session)!.transports.values()];
    const ufrags = transports.map((t) => (t as { iceParameters: { usernameFragment: string } }).iceParameters.usernameFragment);
    const states: string[] = [];
    relayed.client.on('transport', (direction, state) => states.push(`${direction}:${state}`));

    turn.freeze();
    try {
      await until(() => states.some((s) => s.endsWith(':disconnected') || s.endsWith(':failed')), 30_000, 'the relayed transports to lose their path');
    } finally {
      turn.thaw();
    }
    const lost = states.length;
    await until(() => states.slice(lost).some((s) => s.endsWith(':connected')), 20_000, 'the relayed transports to connect again');
    await until(() => hears(steady, relayed) && hears(relayed, steady), 20_000, 'both to hear each other again');
    // The same session, on new ICE credentials: an ICE restart brought it back, not a rejoin.
    expect(relayed.client.peerId).toBe(session);
    expect(relayed.client.state).toBe('joined');
    const now = transports.map((t) => (t as { iceParameters: { usernameFragment: string } }).iceParameters.usernameFragment);
    expect(now.some((u, i) => u !== ufrags[i])).toBe(true);
  });
});

describe('a peer-to-peer call whose path to the node goes dead', () => {
  test('goes on directly: the participant is warned, not rejoined, and the node path comes back by itself', async () => {
    const room = 'p2p-sfu-down';
    const wrtcPc = (await import('@roamhq/wrtc')).default.RTCPeerConnection as unknown as P2pFactory['RTCPeerConnection'];
    // The node's path relay-only (through coturn, which the test freezes); the direct link not.
    const direct: P2pFactory = {
      RTCPeerConnection: class extends wrtcPc {
        constructor(configuration?: RTCConfiguration) {
          super({ ...configuration, iceTransportPolicy: 'all' });
        }
      },
    };
    const a = await joinCallPeer(node, room, 'a', 300, { extra: { iceTransportPolicy: 'relay', p2p: direct } });
    cleanup.push(() => a.close());
    const b = await joinCallPeer(node, room, 'b', 700, { extra: { p2p: { RTCPeerConnection: wrtcPc } } });
    cleanup.push(() => b.close());
    await until(() => a.client.mediaPath === 'p2p' && b.client.mediaPath === 'p2p' && hears(a, b) && hears(b, a), 20_000, 'the pair to talk directly');
    const session = a.client.peerId;
    const warnings: string[] = [];
    const states: string[] = [];
    a.client.on('warning', (w) => warnings.push(w.message));
    a.client.on('transport', (direction, state) => states.push(`${direction}:${state}`));

    turn.freeze();
    try {
      await until(() => warnings.length > 0, 40_000, 'a warning that the node path is down');
      // Still the same session, still talking directly.
      expect(a.client.peerId).toBe(session);
      expect(a.client.state).toBe('joined');
      expect(a.client.mediaPath).toBe('p2p');
      await until(() => hears(a, b) && hears(b, a), 5000, 'the pair to still hear each other');
    } finally {
      turn.thaw();
    }
    expect(warnings[0]).toMatch(/path to the node is down/);
    const before = states.length;
    await until(() => states.slice(before).some((s) => s.endsWith(':connected')), 30_000, 'the node path to come back');
    expect(a.client.peerId).toBe(session);
  });
});
