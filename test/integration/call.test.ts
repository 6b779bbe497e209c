/**
 * Calls end to end with the real SDK over Node WebRTC: every participant decodes every other's
 * tone (each sends its own frequency), mute shows at once and silences, a leave removes the
 * participant and its tracks everywhere, and nothing is left on the node afterwards.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { callToken, hears, joinCallPeer, type CallPeer } from '../support/callPeer.js';
import { mediaCounts } from '../support/mediaCounts.js';
import { toneTrack } from '../support/nodePeer.js';
import { TcpProxy } from '../support/tcpProxy.js';
import { nodeClient, startTestNode, until } from '../support/testNode.js';

let node: ChorusNode;
beforeAll(async () => {
  node = await startTestNode();
});
afterAll(async () => {
  await node?.close();
});

describe('a call of three on one node', () => {
  const peers: CallPeer[] = [];
  afterAll(async () => {
    for (const p of peers) await p.close();
  });

  test('everyone hears everyone else, never themselves; the active speaker and levels are pushed', async () => {
    const frequencies = [300, 500, 800];
    const speakers: Array<string | null> = [];
    const levels: number[] = [];
    for (const [i, f] of frequencies.entries()) {
      const peer = await joinCallPeer(node, 'call-3', `p${i}`, f);
      if (i === 0) {
        peer.client.on('activespeaker', (id) => speakers.push(id));
        peer.client.on('levels', (l) => levels.push(l.length));
      }
      peers.push(peer);
    }
    await until(() => peers.every((p) => peers.every((q) => q === p || hears(p, q))), 20_000, 'every participant to hear the two others');
    for (const p of peers) {
      expect([...p.client.participants.keys()].sort()).toEqual(peers.filter((q) => q !== p).map((q) => q.client.peerId).sort());
      expect(p.heard.has(p.client.peerId!)).toBe(false);
      for (const remote of p.client.participants.values()) {
        expect([...remote.tracks.values()].map((t) => t.source)).toEqual(['microphone']);
      }
    }
    // mediasoup's observers see the tones: a dominant speaker among the three, and levels.
    await until(() => speakers.some((id) => id !== null) && levels.some((n) => n > 0), 10_000, 'a speaker change and audio levels');
    const ids = peers.map((p) => p.client.peerId);
    for (const id of speakers) if (id !== null) expect(ids).toContain(id);
  });

  test('each participant learns its own connection quality and everyone else\'s, from the SFU\'s scores', async () => {
    // Loopback: every stream arrives whole, so the node reports every participant at its best
    // levels, each to itself and to the others.
    const good = new Set(['excellent', 'good']);
    await until(
      () => peers.every((p) => p.client.quality !== undefined && [...p.client.participants.values()].every((r) => r.quality !== undefined)),
      20_000,
      'every participant to know its own quality and the two others\'',
    );
    for (const p of peers) {
      expect(good.has(p.client.quality!), `${p.identity} sees itself ${p.client.quality}`).toBe(true);
      for (const r of p.client.participants.values()) expect(good.has(r.quality!), `${p.identity} sees ${r.identity} ${r.quality}`).toBe(true);
    }
  });

  test('a participant mutes: everyone sees it at once and the tone stops; unmuted, it is back', async () => {
    const [a, b, c] = peers as [CallPeer, CallPeer, CallPeer];
    const seen: boolean[] = [];
    b.client.on('trackmuted', (track) => {
      if (track.peerId === a.client.peerId) seen.push(track.muted);
    });
    await a.client.setMuted('microphone', true);
    await until(() => seen.at(-1) === true, 5000, 'b to see a muted');
    const track = [...c.client.participants.get(a.client.peerId!)!.tracks.values()][0]!;
    await until(() => track.muted, 5000, 'c to see a muted');
    await until(() => !hears(b, a) && (b.heard.get(a.client.peerId!)?.rms ?? 0) < 0.01, 5000, 'a to fall silent at b');
    // The others are still heard.
    expect(hears(b, c)).toBe(true);
    await a.client.setMuted('microphone', false);
    await until(() => seen.at(-1) === false && hears(b, a), 10_000, 'a to be heard again');
  });

  test('a moderator mutes a participant, who cannot unmute until the moderator allows it', async () => {
    const [a] = peers as [CallPeer];
    const mod = await joinCallPeer(node, 'call-3', 'mod', 1100, { role: 'moderator' });
    peers.push(mod);
    const asked: string[] = [];
    mod.client.on('muterequested', (r) => asked.push(r.peerId));
    const muted: Array<[boolean, string | undefined]> = [];
    a.client.on('muted', (m, source) => muted.push([m, source]));

    await mod.client.moderate({ action: 'mute', peerId: a.client.peerId!, source: 'microphone' });
    await until(() => muted.length === 1, 5000, 'a to be told');
    expect(muted[0]).toEqual([true, 'microphone']);
    await expect(a.client.setMuted('microphone', false)).rejects.toMatchObject({ code: 'MUTED' });
    await a.client.requestUnmute('microphone');
    await until(() => asked.includes(a.client.peerId!), 5000, 'the moderator to hear the request');

    await mod.client.moderate({ action: 'unmute', peerId: a.client.peerId!, source: 'microphone' });
    await until(() => muted.length === 2, 5000, 'a to be told it may unmute');
    await a.client.setMuted('microphone', false);
    await until(() => hears(mod, a), 10_000, 'the moderator to hear a again');
  });

  test('a participant leaves: it and its tracks disappear everywhere; nothing is left on the node', async () => {
    const [a, b] = peers as [CallPeer, CallPeer];
    const leaving = peers.pop()!;
    const gone = leaving.client.peerId!;
    await leaving.close();
    await until(() => peers.every((p) => !p.client.participants.has(gone) && !p.heard.has(gone)), 5000, 'everyone to drop the moderator');
    expect(hears(a, b)).toBe(true);
    for (const p of peers.splice(0)) await p.close();
    await until(async () => (await mediaCounts(node)).transports === 0, 5000, 'every transport to close');
    expect(await mediaCounts(node)).toMatchObject({ transports: 0, producers: 0, consumers: 0 });
  });
});

describe('joining a call', () => {
  test('a listener token is refused in a call', async () => {
    const token = await node.tokens.mint({ room: 'call-l', identity: 'l', role: 'listener', kind: 'call' });
    const peer = joinCallPeer(node, 'call-l', 'l', 400, { token });
    await expect(peer).rejects.toMatchObject({ code: 'FORBIDDEN_ROLE' });
    expect(await callToken(node, 'call-l', 'x')).toBeTypeOf('string');
  });

  test('the broadcast SDK refuses a call with a clear error, and leaves nothing behind', async () => {
    const client = nodeClient(node, 'call-b', await callToken(node, 'call-b', 'b'));
    await expect(client.join()).rejects.toMatchObject({ code: 'WRONG_ROOM_KIND', message: expect.stringContaining('CallClient') });
    await until(() => node.rooms.get('call-b') === undefined, 5000, 'the room to close');
  });
});

describe('a participant whose connection drops', () => {
  test('rejoins by itself, republishes (a muted source stays muted) and resubscribes; the others see and hear it again', async () => {
    const proxy = await TcpProxy.start(Number(new URL(node.url).port));
    const steady = await joinCallPeer(node, 'call-net', 'steady', 400);
    const flaky = await joinCallPeer(node, 'call-net', 'flaky', 700, { extra: { url: proxy.url } });
    const screen = toneTrack(200);
    try {
      // A second source, muted before the drop: it must come back muted.
      await flaky.client.publish(screen.track, 'screen-audio');
      await flaky.client.setMuted('screen-audio', true);
      await until(() => hears(steady, flaky) && hears(flaky, steady), 10_000, 'both to hear each other');
      const before = flaky.client.peerId!;
      const states: string[] = [];
      flaky.client.on('state', (s) => states.push(s));

      expect(proxy.cut()).toBeGreaterThan(0);
      await until(() => flaky.client.state === 'joined' && flaky.client.peerId !== before, 15_000, 'the participant to rejoin');
      expect(states).toContain('reconnecting');
      await until(() => hears(steady, flaky) && hears(flaky, steady), 15_000, 'both to hear each other again');
      // The old session went, the new one is shown with both sources, the second still muted.
      await until(() => !steady.client.participants.has(before), 15_000, 'the old session to be gone');
      const shown = steady.client.participants.get(flaky.client.peerId!)!;
      await until(() => shown.tracks.size === 2, 5000, 'both of its tracks to be shown again');
      const bySource = new Map([...shown.tracks.values()].map((t) => [t.source, t.muted]));
      expect(bySource).toEqual(new Map([['microphone', false], ['screen-audio', true]]));
    } finally {
      await flaky.close();
      await steady.close();
      screen.stop();
      await proxy.close();
    }
  });
});

describe('a node whose per-session message rate is low', () => {
  test('participants past it still publish and subscribe to every track: the SDK paces its requests and waits as the node asks', async () => {
    // Four messages a second and no burst: each joiner here sends more than that at once (join,
    // connect, produce, connect, one consume per other participant).
    const slow = await startTestNode({ CHORUS_LIMIT_MESSAGES_PER_CONNECTION_PER_SECOND: '4', CHORUS_LIMIT_MESSAGE_BURST_PER_CONNECTION: '0' });
    const refusals: string[] = [];
    slow.audit.on('event', (e) => {
      if (e.type === 'limit.exceeded' && e.limit === 'messagesPerConnection') refusals.push(e.key);
    });
    const peers: CallPeer[] = [];
    try {
      for (const [i, f] of [300, 400, 500, 600, 700].entries()) peers.push(await joinCallPeer(slow, 'call-paced', `p${i}`, f));
      await until(() => peers.every((p) => peers.every((q) => q === p || hears(p, q))), 30_000, 'every participant to hear the four others');
      // The limit was met (so the pacing is what carried them), and nothing was lost to it.
      expect(refusals.length).toBeGreaterThan(0);
      for (const p of peers) expect(p.client.participants.size).toBe(4);
    } finally {
      for (const p of peers) await p.close();
      await slow.close();
    }
  });
});
