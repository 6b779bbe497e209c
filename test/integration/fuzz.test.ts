/**
 * Property-based fuzzing of the signaling protocol against a live node.
 *
 * A real broadcaster publishes a tone into a victim room and a real listener hears it. Attack
 * sockets then throw well over 10,000 messages at the node: (a) random event names and payloads,
 * (b) valid requests built from real ids and then mutated, (c) out-of-order flows as fast-check
 * commands with the refusal each step must get, (d) a flood under the default rate limits, (e)
 * connections of every kind (bare TCP, half-sent headers, requests, Engine.IO WebSockets that never
 * connect, sessions) from one address past its cap, and (f) joins through one shared link from one
 * address past its budget.
 *
 * Every acknowledged message must be answered in time with `ok` or a known refusal code, never
 * INTERNAL; the node must stay healthy and log no errors; per-session limits must hold; the victim's
 * listener must keep hearing the tone; and once the attackers are gone every room, peer, seat and
 * mediasoup object they made must be gone too.
 *
 * Reproduce a failure with the seed printed at the start (FUZZ_SEED=n), shrink it with FUZZ_SHRINK=1,
 * replay a counterexample with FUZZ_PATH, size the run with FUZZ_SCALE (1 = the CI size).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { ChorusClient } from '../../src/client/chorusClient.js';
import { requests, roles, type Role } from '../../src/protocol/messages.js';
import {
  Attacker,
  FuzzContext,
  TokenForge,
  brief,
  codeOf,
  mutate,
  pick,
  prng,
  replyProblem,
  tokenKinds,
  type Mutation,
  type Outcome,
  type TokenKind,
} from '../support/fuzzKit.js';
import { joinListener, type TestListener } from '../support/listener.js';
import { mediaCounts } from '../support/mediaCounts.js';
import { getFrom, RawSocket, rawConnection, rawEngineWebSocket, type RawReply } from '../support/rawSocket.js';
import { toneTrack, type ToneSource } from '../support/nodePeer.js';
import { nodeClient, startTestNode, tokenFor, until } from '../support/testNode.js';
import { TEST_KEY_BASIC, awkwardText, handSignedToken, isPrintableText } from '../support/fuzzKit.js';

const SEED = process.env['FUZZ_SEED'] ? Number(process.env['FUZZ_SEED']) : 20_250_611;
const SCALE = process.env['FUZZ_SCALE'] ? Number(process.env['FUZZ_SCALE']) : 1;
const SHRINK = process.env['FUZZ_SHRINK'] === '1';
const MIN_MESSAGES = Math.round(10_000 * Math.min(1, SCALE));

/**
 * Reports a failure with what it takes to replay it, and a counterexample short enough to read
 * (fast-check's own printer recurses through the deeply nested payloads and overflows the stack).
 */
function report<T>(out: fc.RunDetails<T>): void {
  if (!out.failed) return;
  const shown = Array.isArray(out.counterexample)
    ? out.counterexample.map((v: unknown) =>
        typeof v === 'object' && v !== null && !Array.isArray(v) && Symbol.iterator in v ? String(v) : brief(v, 6000),
      )
    : [];
  const e = out.errorInstance;
  const error = e instanceof Error ? (e.name === 'FuzzFailure' ? e.message : `${e.stack}`) : String(e);
  throw new Error(
    `property failed after ${out.numRuns} runs; replay it alone (vitest -t "${expect.getState().currentTestName ?? ''}") ` +
      `with FUZZ_SEED=${SEED} FUZZ_PATH=${out.counterexamplePath}, and add FUZZ_SHRINK=1 to shrink it\n` +
      `${error}\ncounterexample: ${shown.join('\n  ')}`,
  );
}

/** fast-check settings for the property numbered `n`: its own seed, sized runs, no shrinking in CI. */
function settings<T>(n: number, runs: number): fc.Parameters<T> {
  const p: fc.Parameters<T> = { seed: SEED + n, numRuns: Math.max(1, Math.round(runs * SCALE)), endOnFailure: !SHRINK, reporter: report };
  if (process.env['FUZZ_PATH']) p.path = process.env['FUZZ_PATH'];
  return p;
}

const VICTIM = 'victim';
const TONE_HZ = 1000;
const RAISED_LIMITS = {
  CHORUS_LIMIT_MESSAGES_PER_CONNECTION_PER_SECOND: '1000000',
  CHORUS_LIMIT_MESSAGES_PER_IP_PER_SECOND: '1000000',
  CHORUS_LIMIT_JOINS_PER_ROOM_PER_SECOND: '1000000',
  CHORUS_LIMIT_JOINS_PER_IDENTITY_PER_MINUTE: '1000000',
  CHORUS_LIMIT_CONNECTIONS_PER_IP: '100000',
};

let node: ChorusNode;
let ctx: FuzzContext;
let forge: TokenForge;
let tone: ToneSource;
let broadcaster: ChorusClient;
let listener: TestListener;
let baseline: Awaited<ReturnType<typeof mediaCounts>>;
let listenerEventsAtStart = 0;
/** Ids the real sessions hold, so attackers can try them as their own. */
const legit = { broadcasterPeer: '', listenerPeer: '', sendTransport: '', recvTransport: '', producer: '', consumer: '' };
/** Every room an attacker could have opened; all must be gone at the end. */
const attackerRooms = new Set<string>();
/** Error-level lines the nodes logged: each one is a server bug unless proven otherwise. */
const errorLogs: string[] = [];
const perProperty: Record<string, number> = {};
let runNo = 0;


/** Wraps a node's error/fatal log methods (child loggers inherit them) to collect what they log. */
function captureErrorLogs(n: ChorusNode): void {
  const log = n.log as unknown as Record<'error' | 'fatal', (...args: unknown[]) => void>;
  for (const level of ['error', 'fatal'] as const) {
    const original = log[level];
    log[level] = function (this: unknown, ...args: unknown[]) {
      const shown = args.map((a) => {
        if (a instanceof Error) return a.stack;
        if (typeof a === 'object' && a !== null && 'err' in a) {
          const err = (a as { err: unknown }).err;
          return { ...a, err: err instanceof Error ? err.stack : err };
        }
        return a;
      });
      errorLogs.push(`${level}: ${brief(shown, 4000)}`);
      original.apply(this, args);
    };
  }
}

function counted<T>(name: string, body: () => Promise<T>): () => Promise<T> {
  return async () => {
    const before = ctx.stats.sent;
    try {
      return await body();
    } finally {
      perProperty[name] = (perProperty[name] ?? 0) + ctx.stats.sent - before;
    }
  };
}

/**
 * What must hold between any two waves of messages: workers up, the victim's two sessions and
 * broadcast untouched, and no session holding more than the protocol allows.
 */
async function checkInvariants(where: string, c: FuzzContext = ctx, n: ChorusNode = node, victim = true): Promise<void> {
  if (!n.workers.healthy) c.fail(`${where}: a media worker is down`);
  if (victim) {
    const room = n.rooms.get(VICTIM);
    if (!room || room.closed) c.fail(`${where}: the victim room is gone`);
    for (const id of [legit.broadcasterPeer, legit.listenerPeer]) {
      const peer = room.peers.get(id);
      if (!peer || peer.closed) c.fail(`${where}: legit session ${id} was removed from the victim room`);
    }
    // Awaited: on a clustered node the broadcast state may have to be looked up.
    const state = await room.broadcastState();
    if (!state.live || state.producerId !== legit.producer) c.fail(`${where}: the victim broadcast changed: ${brief(state)}`);
    if (!room.peers.get(legit.listenerPeer)?.consumers.has(legit.consumer)) c.fail(`${where}: the legit listener lost its consumer`);
  }
  for (const room of n.rooms.rooms.values()) {
    for (const peer of room.peers.values()) {
      if (peer.transports.size > 2) {
        c.fail(`${where}: session limit broken: ${peer.role} ${peer.id} in ${room.id} holds ${peer.transports.size} transports (at most 2)`);
      }
      const kinds = [...peer.producers.values()].map((p) => p.kind);
      if (new Set(kinds).size !== kinds.length) c.fail(`${where}: ${peer.role} ${peer.id} in ${room.id} publishes ${kinds.join('+')} (one per kind)`);
      const consumed = [...peer.consumers.values()].filter((x) => !x.closed).map((x) => x.producerId);
      if (new Set(consumed).size !== consumed.length) c.fail(`${where}: ${peer.id} in ${room.id} consumes one producer ${consumed.length - new Set(consumed).size + 1} times`);
    }
  }
}

/** Rooms other than the victim, with who is still in them: the evidence when something leaks. */
function describeRooms(n: ChorusNode = node): string {
  return [...n.rooms.rooms.values()]
    .filter((room) => room.id !== VICTIM)
    .map((room) => {
      const peers = [...room.peers.values()].map((p) => `${p.role} ${p.identity} ${p.id} closed=${p.closed} transports=${p.transports.size}`);
      return `${room.id} (closed=${room.closed}, peers: ${peers.join('; ') || 'none'})`;
    })
    .join(' | ');
}

// ---------------------------------------------------------------------------------------------
// Payload building blocks
// ---------------------------------------------------------------------------------------------

const methods = Object.keys(requests) as Array<keyof typeof requests>;
/** socket.io-client refuses to emit these itself. */
const RESERVED = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']);
const identity = (tag: string) => `atk-${tag}-${randomUUID().slice(0, 8)}`;

function fingerprint(r: () => number): string {
  return Array.from({ length: 32 }, () => Math.floor(r() * 256).toString(16).padStart(2, '0').toUpperCase()).join(':');
}

const dtls = (r: () => number) => ({ role: pick(r, ['client', 'server', 'client', 'auto']), fingerprints: [{ algorithm: pick(r, ['sha-256', 'sha-256', 'sha-1', 'sha-512']), value: fingerprint(r) }] });

function opus(ssrc: number): Record<string, unknown> {
  return {
    mid: '0',
    codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: { minptime: 10, useinbandfec: 1 }, rtcpFeedback: [{ type: 'transport-cc' }] }],
    headerExtensions: [
      { uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', id: 1 },
      { uri: 'http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time', id: 2 },
    ],
    encodings: [{ ssrc, dtx: true }],
    rtcp: { cname: 'fuzz', reducedSize: true },
  };
}

/** RTP parameters a confused or hostile client might send; mutations take them further. */
function rtpParameters(r: () => number): { kind: string; rtpParameters: unknown } {
  const ssrc = 1 + Math.floor(r() * 4_000_000_000);
  const variants: Array<() => { kind: string; rtpParameters: unknown }> = [
    () => ({ kind: 'audio', rtpParameters: opus(ssrc) }),
    () => ({ kind: 'audio', rtpParameters: opus(ssrc) }),
    () => ({ kind: 'video', rtpParameters: { codecs: [{ mimeType: 'video/VP8', payloadType: 96, clockRate: 90000 }], encodings: [{ ssrc }] } }),
    () => ({ kind: 'audio', rtpParameters: { codecs: [{ mimeType: 'audio/PCMU', payloadType: 0, clockRate: 8000 }], encodings: [{ ssrc }] } }),
    () => ({ kind: 'audio', rtpParameters: { codecs: [{ mimeType: 'video/VP8', payloadType: 96, clockRate: 90000 }], encodings: [{ ssrc }] } }),
    () => ({ kind: 'audio', rtpParameters: { ...opus(ssrc), encodings: [{ rid: 'h', maxBitrate: 1 }, { rid: 'l', scalabilityMode: 'L3T3_KEY' }, { rid: 'h' }] } }),
    () => ({ kind: 'audio', rtpParameters: { ...opus(ssrc), encodings: [{ ssrc: 0, rtx: { ssrc: 0 } }, { ssrc: 0 }] } }),
    () => ({ kind: 'audio', rtpParameters: { ...opus(ssrc), encodings: [] } }),
    () => ({ kind: 'audio', rtpParameters: { ...opus(ssrc), encodings: [{ ssrc, scalabilityMode: 'S9T9', codecPayloadType: 77 }] } }),
    () => ({
      kind: 'audio',
      rtpParameters: {
        ...opus(ssrc),
        codecs: [
          { mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2 },
          { mimeType: 'audio/rtx', payloadType: 112, clockRate: 48000, parameters: { apt: 111 } },
          { mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 8 },
        ],
      },
    }),
    () => ({ kind: 'audio', rtpParameters: { ...opus(ssrc), headerExtensions: [{ uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', id: 0 }, { uri: 'urn:x', id: 300, encrypt: true }, { uri: '', id: -1 }] } }),
    () => ({ kind: 'audio', rtpParameters: { ...opus(ssrc), mid: '', rtcp: { cname: '', reducedSize: false } } }),
    () => ({ kind: 'audio', rtpParameters: { codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 1, channels: 1, parameters: { 'sprop-stereo': 'yes', maxplaybackrate: -5, '': '' } }] } }),
  ];
  return pick(r, variants)();
}

function rtpCapabilities(r: () => number, a: Attacker): unknown {
  const x = r();
  if (x < 0.55 && a.routerRtpCapabilities) return a.routerRtpCapabilities;
  return pick(r, [
    { codecs: [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2, preferredPayloadType: 100 }] },
    { codecs: [] },
    {},
    { codecs: [{ kind: 'video', mimeType: 'video/VP8', clockRate: 90000, preferredPayloadType: 96 }] },
    { codecs: [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2, preferredPayloadType: 100, rtcpFeedback: [{ type: 'nack' }, { type: 'transport-cc' }] }], headerExtensions: [{ kind: 'audio', uri: 'urn:ietf:params:rtp-hdrext:ssrc-audio-level', preferredId: 255, direction: 'inactive' }] },
    { codecs: [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 8, preferredPayloadType: 0 }, { kind: 'audio', mimeType: 'audio/rtx', clockRate: 48000, preferredPayloadType: 101, parameters: { apt: 100 } }] },
  ]);
}

/** Another session's id, usually a real one of that kind. */
function someId(r: () => number, kind: 'transports' | 'producers' | 'consumers' | 'peers'): string {
  const legitIds = { transports: [legit.sendTransport, legit.recvTransport], producers: [legit.producer], consumers: [legit.consumer], peers: [legit.broadcasterPeer, legit.listenerPeer] }[kind];
  return r() < 0.3 ? pick(r, legitIds) : ctx.pool.any(r, ctx.pool[kind]);
}

function transportId(r: () => number, a: Attacker, direction: 'send' | 'recv'): string {
  const x = r();
  const own = a.transport(direction);
  if (own && x < 0.6) return own;
  if (a.transports.length > 0 && x < 0.7) return pick(r, a.transports).id;
  return someId(r, 'transports');
}

function ownOr(r: () => number, mine: readonly string[], kind: 'producers' | 'consumers'): string {
  return mine.length > 0 && r() < 0.6 ? pick(r, mine) : someId(r, kind);
}

const badRoomIds = ['', '../victim', 'a'.repeat(65), 'room with spaces', 'vïctim', 'victim\u0000', 'VICTIM', '*', 'victim/'];

/** A valid-looking payload for `method` from `a`'s point of view: real ids, fresh tokens, sane blobs. */
async function validPayload(method: string, a: Attacker, ownRoom: string, r: () => number): Promise<unknown> {
  switch (method) {
    case 'join': {
      const x = r();
      const roomId =
        x < 0.35 ? ownRoom : x < 0.6 ? VICTIM : x < 0.75 ? `${ownRoom}-${Math.floor(r() * 3)}` : x < 0.85 ? `atk-b${Math.max(1, runNo - 1)}` : pick(r, badRoomIds);
      const valid = /^[A-Za-z0-9_-]{1,64}$/.test(roomId);
      if (valid && roomId !== VICTIM) attackerRooms.add(roomId);
      const role = pick(r, roles) as Role;
      const grants = { publish: r() < 0.2 ? [pick(r, ['audio', 'video'] as const)] : undefined, moderate: r() < 0.15, replace: r() < 0.15, reusable: r() < 0.15 };
      const kind: TokenKind = r() < 0.35 ? 'fresh' : pick(r, tokenKinds);
      const tokenRoom = valid ? roomId : ownRoom;
      const token = await forge.make(kind, { room: tokenRoom, identity: identity('j'), role, grants }, pick(r, [VICTIM, ownRoom, `${ownRoom}-x`]), r);
      if (kind === 'fresh' || kind === 'freshNoKid') ctx.pool.add(ctx.pool.usedTokens, token);
      const payload: Record<string, unknown> = { roomId, token };
      if (r() < 0.25) payload['previousPeerId'] = r() < 0.5 && a.peerId ? a.peerId : someId(r, 'peers');
      return payload;
    }
    case 'getRouterRtpCapabilities':
    case 'leave':
      return {};
    case 'createTransport':
      return r() < 0.3 ? { direction: pick(r, ['send', 'recv']), forceTcp: r() < 0.5 } : { direction: pick(r, ['send', 'recv']) };
    case 'connectTransport':
      return { transportId: transportId(r, a, pick(r, ['send', 'recv'])), dtlsParameters: dtls(r) };
    case 'restartIce':
      return { transportId: transportId(r, a, pick(r, ['send', 'recv'])) };
    case 'produce':
      return { transportId: transportId(r, a, 'send'), ...rtpParameters(r) };
    case 'pauseProducer':
    case 'resumeProducer':
    case 'closeProducer':
      return { producerId: ownOr(r, a.producers, 'producers') };
    case 'consume': {
      const payload: Record<string, unknown> = { transportId: transportId(r, a, 'recv'), rtpCapabilities: rtpCapabilities(r, a) };
      if (r() < 0.4) payload['producerId'] = someId(r, 'producers');
      return payload;
    }
    case 'resumeConsumer':
      return { consumerId: ownOr(r, a.consumers, 'consumers') };
    case 'listPeers':
      return r() < 0.5 ? {} : { limit: pick(r, [1, 2, 200, 1000]) };
    case 'moderate': {
      const action = pick(r, ['mute', 'unmute', 'kick', 'mute', 'unmute', 'kick', 'end']);
      return action === 'end' ? { action } : { action, peerId: r() < 0.2 && a.peerId ? a.peerId : someId(r, 'peers') };
    }
    default:
      return {};
  }
}

// ---------------------------------------------------------------------------------------------
// Attack sockets in known states
// ---------------------------------------------------------------------------------------------

async function joinAs(label: string, room: string, role: Role): Promise<Attacker> {
  if (room !== VICTIM) attackerRooms.add(room);
  const a = await ctx.connect(label);
  await a.must('join', { roomId: room, token: await forge.mint({ room, identity: identity(label), role }) });
  return a;
}

async function consuming(label: string, room: string): Promise<Attacker> {
  const a = await joinAs(label, room, 'listener');
  const t = await a.must('createTransport', { direction: 'recv' });
  await a.must('consume', { transportId: t['id'], rtpCapabilities: a.routerRtpCapabilities });
  return a;
}

async function publishing(label: string, room: string): Promise<Attacker> {
  const a = await joinAs(label, room, 'broadcaster');
  const t = await a.must('createTransport', { direction: 'send' });
  const r = prng(label.length + runNo);
  await a.must('connectTransport', { transportId: t['id'], dtlsParameters: { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: fingerprint(r) }] } });
  await a.must('produce', { transportId: t['id'], kind: 'audio', rtpParameters: opus(1000 + runNo) });
  return a;
}

async function moderating(label: string, room: string): Promise<Attacker> {
  const a = await joinAs(label, room, 'moderator');
  await a.must('createTransport', { direction: 'recv' });
  return a;
}

/** Waits for every acknowledged message of a wave, then checks what the sockets were pushed. */
async function settle(pending: Array<Promise<Outcome>>, sockets: Iterable<Attacker>, where: string): Promise<void> {
  await Promise.all(pending.splice(0));
  for (const a of sockets) a.checkEvents();
  await checkInvariants(where);
}

/** A socket that was not cut off for an oversized message still answers. */
async function probe(a: Attacker): Promise<void> {
  a.checkStillConnected();
  if (a.connected) await a.call('getRouterRtpCapabilities', [{}]);
}

// ---------------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------------

const jsonBytes = (ch: string) => Buffer.byteLength(JSON.stringify(ch)) - 2;
/** A long string whose JSON encoding takes about `min`..`max` bytes. */
const bigString = (min: number, max: number) =>
  fc
    .record({ ch: fc.constantFrom('a', 'é', '€', '𝄞', '"', '\u0001', '\\', 'ab'), bytes: fc.integer({ min, max }) })
    .map(({ ch, bytes }) => ch.repeat(Math.max(1, Math.floor(bytes / jsonBytes(ch)))));

const deep = fc.record({ depth: fc.integer({ min: 20, max: 1500 }), array: fc.boolean() }).map(({ depth, array }) => {
  let v: unknown = 'bottom';
  for (let i = 0; i < depth; i++) v = array ? [v] : { a: v };
  return v;
});

const wide = fc.integer({ min: 50, max: 3000 }).map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i])));

const fieldNames = ['roomId', 'token', 'previousPeerId', 'direction', 'forceTcp', 'transportId', 'dtlsParameters', 'kind', 'rtpParameters', 'producerId', 'consumerId', 'rtpCapabilities', 'limit', 'action', 'peerId'];
const shaped = fc.dictionary(fc.constantFrom(...fieldNames), fc.anything({ maxDepth: 2 }), { maxKeys: 4 });

const pollution = fc.constantFrom(
  JSON.parse('{"__proto__": {"isAdmin": true, "ok": true}}') as unknown,
  JSON.parse('{"constructor": {"prototype": {"polluted": 1}}, "roomId": "victim", "token": "x"}') as unknown,
  JSON.parse('{"roomId": "victim", "token": "x", "__proto__": {"roomId": "other"}}') as unknown,
  JSON.parse('{"direction": "recv", "__proto__": {"forceTcp": true}}') as unknown,
  JSON.parse('{"action": "end", "__proto__": {"action": "end"}}') as unknown,
  { toJSON: 'not a function', then: 'not a function', valueOf: 1 },
);

const payloadArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.anything({ maxDepth: 3, maxKeys: 6, withNullPrototype: true, withSparseArray: true, withDate: true, withMap: true, withSet: true, withBoxedValues: true }) },
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  { weight: 4, arbitrary: shaped },
  { weight: 1, arbitrary: bigString(1000, 60_000) },
  { weight: 1, arbitrary: bigString(1000, 40_000).map((s) => ({ roomId: VICTIM, token: s })) },
  { weight: 1, arbitrary: deep },
  { weight: 1, arbitrary: wide },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 2048 }) },
  { weight: 2, arbitrary: fc.constantFrom<unknown>(null, undefined, 0, -0, Number.NaN, Infinity, '', [], {}, true, false, 'undefined', [null], [[]], Object.create(null)) },
  { weight: 1, arbitrary: pollution },
);

const eventArb: fc.Arbitrary<unknown> = fc
  .oneof(
    { weight: 6, arbitrary: fc.constantFrom<unknown>(...methods) },
    {
      weight: 2,
      arbitrary: fc.constantFrom<unknown>('constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'JOIN', 'join ', ' join', 'consume\u0000', 'request:error', 'room:ended', 'broadcast:started', 'session:kicked', '', 'leave'.repeat(20)),
    },
    { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
    { weight: 1, arbitrary: fc.string({ minLength: 65, maxLength: 3000 }) },
    { weight: 1, arbitrary: fc.integer() },
  )
  .filter((e) => typeof e !== 'string' || !RESERVED.has(e));

interface RandomMessage {
  event: unknown;
  args: unknown[];
  ack: boolean;
  newWave: boolean;
}

const randomMessage: fc.Arbitrary<RandomMessage> = fc
  .record({
    event: eventArb,
    payload: payloadArb,
    form: fc.constantFrom('payload', 'payload', 'payload', 'payload', 'none', 'extra'),
    extra: fc.array(fc.jsonValue({ maxDepth: 2 }), { minLength: 1, maxLength: 3 }),
    ack: fc.integer({ min: 0, max: 99 }).map((n) => n < 85),
    newWave: fc.integer({ min: 0, max: 99 }).map((n) => n < 15),
  })
  .map(({ event, payload, form, extra, ack, newWave }) => ({
    event,
    args: form === 'none' ? [] : form === 'extra' ? [payload, ...extra] : [payload],
    ack,
    newWave,
  }));

const outOfRange = fc.oneof(
  fc.constantFrom(-1, 0, 0.5, 1.5, 127, 128, 255, 256, 1000, 1001, 65535, 65536, 2 ** 31, 2 ** 32, 2 ** 53 + 2, 1e308, -1e308, Number.MIN_VALUE, Number.NaN, Infinity, -Infinity, -0),
  fc.double(),
  fc.integer(),
);

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('drop' as const), at: fc.nat() }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('addKey' as const),
      at: fc.nat(),
      key: fc.oneof(fc.constantFrom('__proto__', 'constructor', 'prototype', 'isAdmin', 'role', 'roomId', 'transportId', 'then', 'toJSON', 'peerId'), fc.string({ maxLength: 10 })),
      value: fc.jsonValue({ maxDepth: 2 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('replace' as const), at: fc.nat(), value: fc.oneof(fc.anything({ maxDepth: 2 }), fc.constantFrom<unknown>(null, [], {}, '', 0, -1, true)) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('number' as const), at: fc.nat(), value: outOfRange }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('string' as const),
      at: fc.nat(),
      value: fc.oneof(fc.constantFrom('', ' ', 'AUDIO', 'video', 'audio/OPUS', 'sha-256 ', '\u0000', 'x'.repeat(300), 'recv', 'send', 'end'), fc.string({ unit: 'binary', maxLength: 20 }), bigString(200, 20_000)),
    }),
  },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('swapId' as const), at: fc.nat(), seed: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('wrap' as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('whole' as const), value: fc.oneof(fc.constantFrom<unknown>(null, [], 'join', 42), fc.jsonValue({ maxDepth: 2 })) }) },
);

const CAST = 5;
interface MutatedMessage {
  sender: number;
  method: string;
  seed: number;
  mutations: Mutation[];
  ack: boolean;
  newWave: boolean;
}

const mutatedMessage: fc.Arbitrary<MutatedMessage> = fc.record({
  sender: fc.nat({ max: CAST - 1 }),
  method: fc.oneof({ weight: 40, arbitrary: fc.constantFrom<string>(...methods) }, { weight: 1, arbitrary: fc.constant('$reconnect') }),
  seed: fc.nat(),
  mutations: fc.oneof({ weight: 2, arbitrary: fc.constant<Mutation[]>([]) }, { weight: 5, arbitrary: fc.array(mutationArb, { minLength: 1, maxLength: 3 }) }),
  ack: fc.integer({ min: 0, max: 99 }).map((n) => n < 90),
  newWave: fc.integer({ min: 0, max: 99 }).map((n) => n < 25),
});

// ---------------------------------------------------------------------------------------------
// Out-of-order flows: a model of three sockets and the refusal each step must get
// ---------------------------------------------------------------------------------------------

type Where = 'flow' | 'victim';
interface SockModel {
  joined?: { where: Where; role: 'listener' | 'broadcaster' };
  transports: Array<{ direction: 'send' | 'recv'; connected: boolean }>;
  producing: boolean;
  /** Broadcasts consumed, as `victim` or `flow#<generation>`. */
  consumed: string[];
  lastJoin?: { where: Where; role: 'listener' | 'broadcaster' };
}
interface FlowModel {
  socks: SockModel[];
  /** The socket holding the flow room's broadcaster seat. */
  seat: number | undefined;
  live: boolean;
  /** Bumped for every new broadcast producer in the flow room. */
  generation: number;
}
interface FlowReal {
  room: string;
  socks: Attacker[];
  lastToken: Array<string | undefined>;
  consumers: Array<Array<{ id: string; key: string }>>;
}
const FLOW_SOCKS = 2;
const emptySock = (lastJoin?: SockModel['lastJoin']): SockModel => ({ transports: [], producing: false, consumed: [], ...(lastJoin ? { lastJoin } : {}) });

function expectCode(outcome: Outcome, allowed: readonly string[], what: string): string {
  const code = codeOf(outcome);
  if (!allowed.includes(code)) {
    const message = outcome.kind === 'reply' && !outcome.reply.ok ? ` (${outcome.reply.error?.message})` : '';
    ctx.fail(`${what}: expected ${allowed.join(' or ')}, got ${code}${message}`);
  }
  return code;
}

/** The model's step for a socket that left, dropped or was replaced. */
function resetSock(m: FlowModel, real: FlowReal, i: number): void {
  const s = m.socks[i]!;
  if (m.seat === i) m.seat = undefined;
  if (s.producing) m.live = false;
  m.socks[i] = emptySock(s.lastJoin);
  real.consumers[i] = [];
}

abstract class Step implements fc.AsyncCommand<FlowModel, FlowReal> {
  constructor(readonly i: number) {}
  check(_m: Readonly<FlowModel>): boolean {
    return true;
  }
  abstract run(m: FlowModel, real: FlowReal): Promise<void>;
  abstract toString(): string;
  protected sock(real: FlowReal): Attacker {
    return real.socks[this.i]!;
  }
  protected transportFor(m: FlowModel, real: FlowReal, target: number | 'other' | 'legit'): { id: string; own?: { direction: 'send' | 'recv'; connected: boolean } } {
    if (target === 'legit') return { id: this.i % 2 === 0 ? legit.recvTransport : legit.sendTransport };
    if (target === 'other') {
      const other = real.socks.filter((_, j) => j !== this.i).flatMap((s) => s.transports);
      return { id: other[0]?.id ?? legit.recvTransport };
    }
    const own = m.socks[this.i]!.transports[target];
    return own ? { id: this.sock(real).transports[target]!.id, own } : { id: randomUUID() };
  }
}

class Join extends Step {
  constructor(
    i: number,
    readonly where: Where,
    readonly role: 'listener' | 'broadcaster',
    readonly token: 'fresh' | 'reused' | 'otherRoom' | 'expired' | 'forged' | 'garbage',
  ) {
    super(i);
  }
  override check(m: Readonly<FlowModel>): boolean {
    return this.token !== 'reused' || m.socks[this.i]!.lastJoin !== undefined;
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const s = m.socks[this.i]!;
    const target = this.token === 'reused' ? s.lastJoin! : { where: this.where, role: this.role };
    const room = target.where === 'victim' ? VICTIM : real.room;
    const grant = { room, identity: identity(`c${this.i}`), role: target.role };
    const token =
      this.token === 'reused' ? real.lastToken[this.i]! : this.token === 'fresh' ? await forge.mint(grant) : await forge.make(this.token, grant, `${real.room}-other`, prng(this.i));
    const seatTaken = target.where === 'victim' || m.seat !== undefined;
    const refusedToken: Record<string, string> = { forged: 'TOKEN_INVALID', garbage: 'TOKEN_INVALID', expired: 'TOKEN_EXPIRED', otherRoom: 'TOKEN_WRONG_ROOM' };
    const expected = s.joined
      ? 'ALREADY_JOINED'
      : (refusedToken[this.token] ?? (target.role === 'broadcaster' && seatTaken ? 'BROADCASTER_PRESENT' : this.token === 'reused' ? 'TOKEN_USED' : 'OK'));
    const outcome = await this.sock(real).call('join', [{ roomId: room, token }]);
    expectCode(outcome, [expected], this.toString());
    if (expected === 'OK') {
      m.socks[this.i] = { ...emptySock(target), joined: target };
      real.lastToken[this.i] = token;
      real.consumers[this.i] = [];
      if (target.role === 'broadcaster') m.seat = this.i;
    }
  }
  toString(): string {
    return `join#${this.i}(${this.where} ${this.role}, ${this.token} token)`;
  }
}

class Leave extends Step {
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const joined = m.socks[this.i]!.joined !== undefined;
    expectCode(await this.sock(real).call('leave', [{}]), [joined ? 'OK' : 'NOT_JOINED'], this.toString());
    if (joined) resetSock(m, real, this.i);
  }
  toString(): string {
    return `leave#${this.i}`;
  }
}

class Reconnect extends Step {
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const old = this.sock(real);
    const peerId = old.peerId;
    old.close();
    if (peerId) await until(() => ![...node.rooms.rooms.values()].some((room) => room.peers.has(peerId)), 10_000, 'the server to drop a closed socket');
    real.socks[this.i] = await ctx.connect(`c${this.i}'`);
    resetSock(m, real, this.i);
  }
  toString(): string {
    return `reconnect#${this.i}`;
  }
}

class CreateTransport extends Step {
  constructor(
    i: number,
    readonly direction: 'send' | 'recv',
    readonly burst: number,
  ) {
    super(i);
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const s = m.socks[this.i]!;
    const outcomes = await Promise.all(Array.from({ length: this.burst }, () => this.sock(real).call('createTransport', [{ direction: this.direction }])));
    const codes = outcomes.map(codeOf);
    if (!s.joined) return void outcomes.forEach((o) => expectCode(o, ['NOT_JOINED'], this.toString()));
    if (this.direction === 'send' && s.joined.role === 'listener') return void outcomes.forEach((o) => expectCode(o, ['FORBIDDEN_ROLE'], this.toString()));
    const free = Math.max(0, 2 - s.transports.length);
    const ok = codes.filter((c) => c === 'OK').length;
    if (ok !== Math.min(free, this.burst) || codes.some((c) => c !== 'OK' && c !== 'LIMIT_REACHED')) {
      ctx.fail(`${this.toString()} with ${s.transports.length} transports already: expected ${Math.min(free, this.burst)} OK and the rest LIMIT_REACHED, got ${codes.join(', ')}`);
    }
    for (let k = 0; k < ok; k++) s.transports.push({ direction: this.direction, connected: false });
  }
  toString(): string {
    return `createTransport#${this.i}(${this.direction}${this.burst > 1 ? ` x${this.burst} at once` : ''})`;
  }
}

class Connect extends Step {
  constructor(
    i: number,
    readonly target: 0 | 1 | 'other' | 'legit',
  ) {
    super(i);
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const s = m.socks[this.i]!;
    const { id, own } = this.transportFor(m, real, this.target);
    const expected = !s.joined ? 'NOT_JOINED' : !own ? 'TRANSPORT_NOT_FOUND' : own.connected ? 'MEDIA_REJECTED' : 'OK';
    expectCode(await this.sock(real).call('connectTransport', [{ transportId: id, dtlsParameters: dtls(() => 0.1) }]), [expected], this.toString());
    if (own && expected === 'OK') own.connected = true;
  }
  toString(): string {
    return `connectTransport#${this.i}(${this.target})`;
  }
}

class RestartIce extends Step {
  constructor(
    i: number,
    readonly target: 0 | 1 | 'other' | 'legit',
  ) {
    super(i);
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const { id, own } = this.transportFor(m, real, this.target);
    const expected = !m.socks[this.i]!.joined ? 'NOT_JOINED' : own ? 'OK' : 'TRANSPORT_NOT_FOUND';
    expectCode(await this.sock(real).call('restartIce', [{ transportId: id }]), [expected], this.toString());
  }
  toString(): string {
    return `restartIce#${this.i}(${this.target})`;
  }
}

class Produce extends Step {
  constructor(
    i: number,
    readonly target: 0 | 1 | 'other',
    readonly burst: number,
  ) {
    super(i);
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const s = m.socks[this.i]!;
    const { id, own } = this.transportFor(m, real, this.target);
    const outcomes = await Promise.all(
      Array.from({ length: this.burst }, (_, k) => this.sock(real).call('produce', [{ transportId: id, kind: 'audio', rtpParameters: opus(5000 + k) }])),
    );
    const expected = !s.joined
      ? 'NOT_JOINED'
      : s.joined.role === 'listener'
        ? 'FORBIDDEN_ROLE'
        : !own
          ? 'TRANSPORT_NOT_FOUND'
          : own.direction === 'recv'
            ? 'BAD_REQUEST'
            : s.producing
              ? 'MEDIA_REJECTED'
              : 'OK';
    if (expected !== 'OK') return void outcomes.forEach((o) => expectCode(o, [expected], this.toString()));
    const codes = outcomes.map(codeOf);
    if (codes.filter((c) => c === 'OK').length !== 1 || codes.some((c) => c !== 'OK' && c !== 'MEDIA_REJECTED')) {
      ctx.fail(`${this.toString()}: expected one OK and the rest MEDIA_REJECTED (one audio producer per session), got ${codes.join(', ')}`);
    }
    s.producing = true;
    m.live = true;
    m.generation++;
  }
  toString(): string {
    return `produce#${this.i}(${this.target}${this.burst > 1 ? ` x${this.burst} at once` : ''})`;
  }
}

class Consume extends Step {
  constructor(
    i: number,
    readonly target: 0 | 1 | 'other',
    readonly producer: 'default' | 'legit' | 'random',
    readonly burst: number,
  ) {
    super(i);
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const s = m.socks[this.i]!;
    const a = this.sock(real);
    const { id, own } = this.transportFor(m, real, this.target);
    const payload: Record<string, unknown> = { transportId: id, rtpCapabilities: a.routerRtpCapabilities ?? { codecs: [] } };
    if (this.producer === 'legit') payload['producerId'] = legit.producer;
    if (this.producer === 'random') payload['producerId'] = randomUUID();
    const outcomes = await Promise.all(Array.from({ length: this.burst }, () => a.call('consume', [payload])));
    let expected: string;
    let key = '';
    if (!s.joined) expected = 'NOT_JOINED';
    else if (!own) expected = 'TRANSPORT_NOT_FOUND';
    else if (own.direction === 'send') expected = 'BAD_REQUEST';
    else {
      const inVictim = s.joined.where === 'victim';
      const live = inVictim || m.live;
      key = inVictim ? 'victim' : `flow#${m.generation}`;
      if (this.producer === 'random' || (this.producer === 'legit' && !inVictim)) expected = 'PRODUCER_NOT_FOUND';
      else if (!live) expected = 'NOTHING_TO_CONSUME';
      else expected = s.consumed.includes(key) ? 'BAD_REQUEST' : 'OK';
    }
    if (expected !== 'OK') return void outcomes.forEach((o) => expectCode(o, [expected], this.toString()));
    const codes = outcomes.map(codeOf);
    if (codes.filter((c) => c === 'OK').length !== 1 || codes.some((c) => c !== 'OK' && c !== 'BAD_REQUEST')) {
      ctx.fail(`${this.toString()}: expected one OK and the rest BAD_REQUEST (already consuming), got ${codes.join(', ')}`);
    }
    s.consumed.push(key);
    for (const o of outcomes) if (o.kind === 'reply' && o.reply.ok) real.consumers[this.i]!.push({ id: String(o.reply.data?.['consumerId']), key });
  }
  toString(): string {
    return `consume#${this.i}(${this.target}, ${this.producer}${this.burst > 1 ? ` x${this.burst} at once` : ''})`;
  }
}

class ResumeConsumer extends Step {
  constructor(
    i: number,
    readonly which: 'own' | 'other',
  ) {
    super(i);
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const s = m.socks[this.i]!;
    const mine = real.consumers[this.i]!.at(-1);
    const others = real.consumers.filter((_, j) => j !== this.i).flat();
    const id = this.which === 'own' && mine ? mine.id : (others[0]?.id ?? legit.consumer);
    let expected: string[];
    if (!s.joined) expected = ['NOT_JOINED'];
    else if (this.which === 'other' || !mine) expected = ['CONSUMER_NOT_FOUND'];
    else if (mine.key === 'victim' || (m.live && mine.key === `flow#${m.generation}`)) expected = ['OK'];
    // Its producer is gone: the consumer is closing, and may or may not be closed yet.
    else expected = ['OK', 'CONSUMER_NOT_FOUND'];
    expectCode(await this.sock(real).call('resumeConsumer', [{ consumerId: id }]), expected, this.toString());
  }
  toString(): string {
    return `resumeConsumer#${this.i}(${this.which})`;
  }
}

class ProducerOp extends Step {
  constructor(
    i: number,
    readonly op: 'pauseProducer' | 'resumeProducer' | 'closeProducer',
    readonly which: 'own' | 'legit',
  ) {
    super(i);
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const s = m.socks[this.i]!;
    const mine = this.sock(real).producers[0];
    const useOwn = this.which === 'own' && s.producing && mine !== undefined;
    const id = useOwn ? mine : this.which === 'legit' ? legit.producer : randomUUID();
    const expected = !s.joined ? 'NOT_JOINED' : useOwn ? 'OK' : 'PRODUCER_NOT_FOUND';
    expectCode(await this.sock(real).call(this.op, [{ producerId: id }]), [expected], this.toString());
    if (useOwn && this.op === 'closeProducer') {
      s.producing = false;
      m.live = false;
    }
  }
  toString(): string {
    return `${this.op}#${this.i}(${this.which})`;
  }
}

/** leave (if joined), join with a fresh token, create a transport: a shortcut to the deeper states. */
class Ready extends Step {
  constructor(
    i: number,
    readonly where: Where,
    readonly role: 'listener' | 'broadcaster',
    readonly direction: 'send' | 'recv',
  ) {
    super(i);
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    if (m.socks[this.i]!.joined) await new Leave(this.i).run(m, real);
    await new Join(this.i, this.where, this.role, 'fresh').run(m, real);
    if (m.socks[this.i]!.joined) await new CreateTransport(this.i, this.direction, 1).run(m, real);
  }
  toString(): string {
    return `ready#${this.i}(${this.where} ${this.role}, ${this.direction} transport)`;
  }
}

class Privileged extends Step {
  constructor(
    i: number,
    readonly request: 'listPeers' | 'kick' | 'end' | 'mute',
  ) {
    super(i);
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const payload =
      this.request === 'listPeers' ? {} : this.request === 'end' ? { action: 'end' } : { action: this.request, peerId: this.i % 2 === 0 ? legit.listenerPeer : legit.broadcasterPeer };
    const outcome = await this.sock(real).call(this.request === 'listPeers' ? 'listPeers' : 'moderate', [payload]);
    expectCode(outcome, [m.socks[this.i]!.joined ? 'FORBIDDEN_ROLE' : 'NOT_JOINED'], this.toString());
  }
  toString(): string {
    return `${this.request}#${this.i}`;
  }
}

class Malformed extends Step {
  constructor(
    i: number,
    readonly event: string,
    readonly payload: unknown,
    readonly code: string,
  ) {
    super(i);
  }
  async run(_m: FlowModel, real: FlowReal): Promise<void> {
    expectCode(await this.sock(real).call(this.event, [this.payload]), [this.code], this.toString());
  }
  toString(): string {
    return `${this.event}#${this.i}(${brief(this.payload, 60)})`;
  }
}

const sockArb = fc.nat({ max: FLOW_SOCKS - 1 });
const transportTarget = fc.constantFrom<0 | 1 | 'other' | 'legit'>(0, 1, 0, 1, 'other', 'legit');
// Listed twice below: the steps that lead into the deeper states come up more often.
const ready = fc
  .tuple(sockArb, fc.constantFrom<[Where, 'listener' | 'broadcaster', 'send' | 'recv']>(['flow', 'broadcaster', 'send'], ['flow', 'listener', 'recv'], ['victim', 'listener', 'recv'], ['flow', 'broadcaster', 'recv']))
  .map(([i, [w, role, d]]) => new Ready(i, w, role, d));
const produce = fc.tuple(sockArb, fc.constantFrom<0 | 1 | 'other'>(0, 0, 0, 1, 'other'), fc.constantFrom(1, 2, 3)).map(([i, t, b]) => new Produce(i, t, b));
const consume = fc
  .tuple(sockArb, fc.constantFrom<0 | 1 | 'other'>(0, 0, 0, 1, 'other'), fc.constantFrom<'default' | 'legit' | 'random'>('default', 'default', 'legit', 'random'), fc.constantFrom(1, 2, 3))
  .map(([i, t, p, b]) => new Consume(i, t, p, b));
const flowCommands = fc.commands<FlowModel, FlowReal, false>(
  [
    fc
      .tuple(sockArb, fc.constantFrom<Where>('flow', 'flow', 'victim'), fc.constantFrom<'listener' | 'broadcaster'>('listener', 'broadcaster'), fc.constantFrom('fresh', 'fresh', 'fresh', 'reused', 'otherRoom', 'expired', 'forged', 'garbage') as fc.Arbitrary<Join['token']>)
      .map(([i, w, role, t]) => new Join(i, w, role, t)),
    fc
      .tuple(sockArb, fc.constantFrom<Where>('flow', 'victim'), fc.constantFrom<'listener' | 'broadcaster'>('listener', 'broadcaster'))
      .map(([i, w, role]) => new Join(i, w, role, 'fresh')),
    ready,
    ready,
    sockArb.map((i) => new Leave(i)),
    sockArb.map((i) => new Reconnect(i)),
    fc.tuple(sockArb, fc.constantFrom<'send' | 'recv'>('send', 'recv'), fc.constantFrom(1, 1, 1, 2, 3)).map(([i, d, b]) => new CreateTransport(i, d, b)),
    fc.tuple(sockArb, transportTarget).map(([i, t]) => new Connect(i, t)),
    fc.tuple(sockArb, transportTarget).map(([i, t]) => new RestartIce(i, t)),
    produce,
    produce,
    consume,
    consume,
    fc.tuple(sockArb, fc.constantFrom<'own' | 'other'>('own', 'own', 'other')).map(([i, w]) => new ResumeConsumer(i, w)),
    fc
      .tuple(sockArb, fc.constantFrom<ProducerOp['op']>('pauseProducer', 'resumeProducer', 'closeProducer'), fc.constantFrom<'own' | 'legit'>('own', 'own', 'legit'))
      .map(([i, op, w]) => new ProducerOp(i, op, w)),
    fc.tuple(sockArb, fc.constantFrom<Privileged['request']>('listPeers', 'kick', 'end', 'mute')).map(([i, r]) => new Privileged(i, r)),
    fc
      .tuple(
        sockArb,
        fc.constantFrom<[string, unknown, string]>(
          ['createTransport', { direction: 'sideways' }, 'BAD_REQUEST'],
          ['consume', { transportId: 'x' }, 'BAD_REQUEST'],
          ['join', { roomId: 'flow', token: 't', isAdmin: true }, 'BAD_REQUEST'],
          ['produce', null, 'BAD_REQUEST'],
          ['moderate', { action: 'end', peerId: 'x' }, 'BAD_REQUEST'],
          ['listPeers', { limit: 1001 }, 'BAD_REQUEST'],
          ['becomeModerator', {}, 'UNKNOWN_METHOD'],
        ),
      )
      .map(([i, [e, p, c]]) => new Malformed(i, e, p, c)),
  ],
  { maxCommands: 45, size: 'max' },
);

// ---------------------------------------------------------------------------------------------

describe('fuzzing the signaling protocol against a live node', () => {
  beforeAll(async () => {
    console.log(`[fuzz] seed ${SEED} (FUZZ_SEED to change it, FUZZ_SHRINK=1 to shrink a failure, FUZZ_PATH to replay one, FUZZ_SCALE=${SCALE})`);
    node = await startTestNode(RAISED_LIMITS);
    captureErrorLogs(node);
    ctx = new FuzzContext(node);
    forge = new TokenForge(node, ctx.pool, VICTIM);

    tone = toneTrack(TONE_HZ);
    broadcaster = nodeClient(node, VICTIM, await tokenFor(node, VICTIM, 'broadcaster', 'victim-broadcaster'));
    await broadcaster.join();
    await broadcaster.publish(tone.track);
    listener = await joinListener(node, VICTIM);
    await listener.hears(TONE_HZ);

    const room = node.rooms.get(VICTIM)!;
    for (const peer of room.peers.values()) {
      const transport = [...peer.transports.keys()][0]!;
      if (peer.role === 'broadcaster') Object.assign(legit, { broadcasterPeer: peer.id, sendTransport: transport, producer: [...peer.producers.keys()][0]! });
      else Object.assign(legit, { listenerPeer: peer.id, recvTransport: transport, consumer: [...peer.consumers.keys()][0]! });
    }
    baseline = await mediaCounts(node);
    expect(baseline).toEqual({ routers: 1, transports: 2, producers: 1, consumers: 1 });
    listenerEventsAtStart = listener.events.length;
  });

  afterAll(async () => {
    try {
      ctx?.closeAll();
    } catch {
      // Already reported by the test that left it open.
    }
    await listener?.close();
    await broadcaster?.close();
    tone?.stop();
    await node?.close();
    console.log(`[fuzz] messages per property: ${JSON.stringify(perProperty)}; totals ${JSON.stringify(ctx?.stats)}`);
  });

  test(
    '(a) random event names and payloads are answered with a known refusal, never INTERNAL',
    counted('random', async () => {
      const states = ['fresh', 'victimListener', 'ownBroadcaster', 'ownListener', 'ownModerator'] as const;
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...states),
          fc.array(randomMessage, { minLength: 40, maxLength: 110 }),
          fc.option(fc.record({ at: fc.nat(), bytes: fc.integer({ min: 70_000, max: 160_000 }) }), { freq: 5 }),
          async (state, messages, oversize) => {
            const n = ++runNo;
            const room = `atk-a${n}`;
            const helpers: Attacker[] = [];
            let a: Attacker;
            if (state === 'fresh') a = await ctx.connect(`a${n}`);
            else if (state === 'victimListener') a = await consuming(`a${n}`, VICTIM);
            else if (state === 'ownBroadcaster') a = await publishing(`a${n}`, room);
            else if (state === 'ownModerator') a = await moderating(`a${n}`, room);
            else {
              helpers.push(await publishing(`a${n}-b`, room));
              a = await consuming(`a${n}`, room);
            }
            const pending: Array<Promise<Outcome>> = [];
            const bigAt = oversize ? oversize.at % messages.length : -1;
            try {
              for (const [k, m] of messages.entries()) {
                if (m.newWave) await settle(pending, [a, ...helpers], `run ${n}`);
                if (!a.connected && a.mayBeDropped) {
                  // Cut off for an oversized message, as Socket.IO does: carry on from a fresh socket.
                  await settle(pending, [a, ...helpers], `run ${n}`);
                  a.close();
                  a = await ctx.connect(`a${n}'`);
                }
                if (k === bigAt && oversize) {
                  pending.push(a.call(pick(prng(k), methods), [{ roomId: VICTIM, token: 'o'.repeat(oversize.bytes) }]));
                }
                pending.push(a.call(m.event, m.args, m.ack));
              }
              await settle(pending, [a, ...helpers], `run ${n}`);
              if (a.overLimitSent) await until(() => !a.connected, 5000, 'Socket.IO to close a connection that sent more than 64 KiB');
              await probe(a);
              for (const h of helpers) await probe(h);
              a.close();
              for (const h of helpers) h.close();
            } finally {
              await Promise.allSettled(pending);
              ctx.closeAll();
            }
          },
        ),
        settings(1, 75),
      );
    }),
    90_000,
  );

  test(
    '(b) valid messages built from real ids, then mutated, never break the server or another session',
    counted('mutated', async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(mutatedMessage, { minLength: 60, maxLength: 150 }), async (messages) => {
          const n = ++runNo;
          const room = `atk-b${n}`;
          const cast: Attacker[] = [
            await consuming(`b${n}.0`, VICTIM),
            await publishing(`b${n}.1`, room),
            await consuming(`b${n}.2`, room),
            await moderating(`b${n}.3`, room),
            await ctx.connect(`b${n}.4`),
          ];
          const allIds = () => [...ctx.pool.transports, ...ctx.pool.producers, ...ctx.pool.consumers, ...ctx.pool.peers, legit.producer, legit.recvTransport];
          const pending: Array<Promise<Outcome>> = [];
          try {
            for (const m of messages) {
              if (m.newWave) await settle(pending, cast, `run ${n}`);
              const r = prng(m.seed);
              if (m.method === '$reconnect') {
                // Closed with its requests still in flight: the server must clean up after them too.
                cast[m.sender]!.close();
                cast[m.sender] = await ctx.connect(`b${n}.${m.sender}'`);
                continue;
              }
              const a = cast[m.sender]!;
              const payload = mutate(await validPayload(m.method, a, room, r), m.mutations, (seed) => ctx.pool.any(prng(seed), allIds()));
              pending.push(a.call(m.method, [payload], m.ack));
            }
            await settle(pending, cast, `run ${n}`);
            for (const a of cast) await probe(a);
            for (const a of cast) a.close();
          } finally {
            await Promise.allSettled(pending);
            ctx.closeAll();
          }
        }),
        settings(2, 40),
      );
    }),
    90_000,
  );

  test(
    '(c) out-of-order flows get exactly the refusal the protocol promises',
    counted('flows', async () => {
      await fc.assert(
        fc.asyncProperty(flowCommands, async (commands) => {
          const n = ++runNo;
          const real: FlowReal = {
            room: `atk-c${n}`,
            socks: await Promise.all(Array.from({ length: FLOW_SOCKS }, (_, i) => ctx.connect(`c${n}.${i}`))),
            lastToken: [],
            consumers: Array.from({ length: FLOW_SOCKS }, () => []),
          };
          attackerRooms.add(real.room);
          const model: FlowModel = { socks: Array.from({ length: FLOW_SOCKS }, () => emptySock()), seat: undefined, live: false, generation: 0 };
          try {
            await fc.asyncModelRun(() => ({ model, real }), commands);
            for (const a of real.socks) a.checkEvents();
            await checkInvariants(`flow ${n}`);
            for (const a of real.socks) a.close();
          } finally {
            ctx.closeAll();
          }
        }),
        settings(3, 60),
      );
    }),
    90_000,
  );

  test(
    '(d) under the default limits a flood is refused with LIMIT_REACHED or cut off, and nothing else breaks',
    counted('limits', async () => {
      const limited = await startTestNode();
      captureErrorLogs(limited);
      const lctx = new FuzzContext(limited);
      const lforge = new TokenForge(limited, lctx.pool, VICTIM);
      const sameIdentity = `same-${randomUUID().slice(0, 8)}`;
      let sameIdentityJoined = 0;
      try {
        await fc.assert(
          fc.asyncProperty(
            fc.array(fc.record({ count: fc.integer({ min: 20, max: 320 }), messages: fc.array(randomMessage, { minLength: 5, maxLength: 20 }) }), { minLength: 1, maxLength: 3 }),
            fc.integer({ min: 0, max: 14 }),
            async (floods, joins) => {
              const n = ++runNo;
              const flooders = await Promise.all(floods.map((_, i) => lctx.connect(`d${n}.${i}`)));
              const joiners = await Promise.all(Array.from({ length: joins }, (_, i) => lctx.connect(`d${n}.j${i}`)));
              const tokens = await Promise.all(joiners.map(() => lforge.mint({ room: 'limits', identity: sameIdentity, role: 'listener' })));
              const joined = Promise.all(joiners.map((j, i) => j.send('join', [{ roomId: 'limits', token: tokens[i] }])));
              await Promise.all(
                floods.map(async (flood, i) => {
                  const a = flooders[i]!;
                  const outcomes = await Promise.all(Array.from({ length: flood.count }, (_, k) => {
                    const m = flood.messages[k % flood.messages.length]!;
                    return a.send(m.event, m.args, true);
                  }));
                  const cutOff = a.disconnectReason === 'io server disconnect';
                  const refusedForRate = outcomes.filter((o) => codeOf(o) === 'LIMIT_REACHED').length;
                  for (const o of outcomes) {
                    if (o.kind === 'reply') {
                      const problem = replyProblem(o.reply);
                      if (problem) lctx.fail(`${a.label}: ${problem}`);
                    } else if (!cutOff) {
                      lctx.fail(`${a.label}: a message got ${o.kind} though the connection was not cut off (${a.disconnectReason})`);
                    }
                  }
                  // The server cuts a connection only after 200 refusals in a row.
                  if (cutOff && refusedForRate < 199) lctx.fail(`${a.label} was cut off after only ${refusedForRate} LIMIT_REACHED replies`);
                  if (flood.count >= 200 && refusedForRate === 0) lctx.fail(`${a.label} sent ${flood.count} messages at once and none was rate limited`);
                }),
              );
              for (const [i, o] of (await joined).entries()) {
                const code = codeOf(o);
                if (code !== 'OK' && code !== 'LIMIT_REACHED') lctx.fail(`same-identity join ${i}: expected OK or LIMIT_REACHED, got ${code} ${brief(o)}`);
                if (code === 'OK') sameIdentityJoined++;
              }
              for (const a of [...flooders, ...joiners]) a.checkEvents();
              await checkInvariants(`limits run ${n}`, lctx, limited, false);
              lctx.closeAll();
            },
          ),
          settings(4, 8),
        );
        expect(sameIdentityJoined, 'joins per identity per minute (default 30)').toBeLessThanOrEqual(30);
        console.log(`[fuzz] default limits: ${lctx.stats.sent} messages; replies by code: ${JSON.stringify(lctx.stats.byCode)}; cut off: ${lctx.stats.dropped} unanswered`);
        // After the flood a new connection is served again once the one-second windows pass.
        const fresh = await lctx.connect('after-flood');
        await until(async () => codeOf(await fresh.send('getRouterRtpCapabilities', [{}])) === 'NOT_JOINED', 5000, 'a new connection to be served after the flood');
        fresh.close();
        await until(() => limited.rooms.rooms.size === 0, 10_000, 'rooms of the limits node to close');
        expect(await mediaCounts(limited)).toEqual({ routers: 0, transports: 0, producers: 0, consumers: 0 });
        expect(limited.workers.healthy).toBe(true);
      } finally {
        lctx.closeAll();
        ctx.stats.sent += lctx.stats.sent;
        await limited.close();
      }
    }),
    90_000,
  );

  test(
    '(e) one address opening connections of every kind holds at most its cap; the rest are closed at once and other addresses are served',
    async () => {
      const CAP = 12;
      // Handshakes are not timed out: whatever stays open here is held by the cap alone.
      const guarded = await startTestNode({ CHORUS_LIMIT_CONNECTIONS_PER_IP: String(CAP), CHORUS_HANDSHAKE_TIMEOUT_MS: '60000' });
      captureErrorLogs(guarded);
      let refusedInTotal = 0;
      const kinds = ['bare', 'partial', 'request', 'engine', 'session'] as const;
      type Held = { kind: (typeof kinds)[number]; served: boolean; closed: () => boolean; close: () => void; check?: () => Promise<string | undefined> };
      const open = async (kind: (typeof kinds)[number]): Promise<Held> => {
        if (kind === 'session') {
          const s = await RawSocket.connect(guarded).catch(() => undefined);
          if (!s) return { kind, served: false, closed: () => true, close: () => undefined };
          return { kind, served: true, closed: () => !s.socket.connected, close: () => s.close(), check: () => s.code('getRouterRtpCapabilities', {}) };
        }
        if (kind === 'engine') {
          const ws = await rawEngineWebSocket(guarded);
          return { kind, served: ws.upgraded, closed: ws.isClosed, close: ws.close };
        }
        const send = { bare: undefined, partial: 'GET /healthz HTTP/1.1\r\nHost: x\r\n', request: 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' }[kind];
        const c = await rawConnection(guarded, send === undefined ? {} : { send });
        // A whole request is answered or the connection closed; the others show nothing either way.
        if (kind === 'request') await until(() => c.isClosed() || c.received().includes('\r\n\r\n'), 5000, 'an answer or a close');
        return { kind, served: c.received().startsWith('HTTP/1.1 200'), closed: c.isClosed, close: c.close };
      };
      try {
        await fc.assert(
          fc.asyncProperty(fc.array(fc.constantFrom(...kinds), { minLength: 1, maxLength: 3 * CAP }), async (plan) => {
            const held: Held[] = [];
            try {
              // One at a time, so the node accepts them in this order and the first CAP are the ones kept.
              for (const kind of plan) held.push(await open(kind));
              const kept = Math.min(CAP, plan.length);
              await until(() => held.slice(kept).every((h) => h.closed()), 5000, 'connections over the cap to be closed');
              if (guarded.connections.openFrom('127.0.0.1') !== kept) throw new Error(`${guarded.connections.openFrom('127.0.0.1')} connections counted, ${kept} expected`);
              for (const [i, h] of held.entries()) {
                if (i < kept && h.closed()) throw new Error(`connection ${i} (${h.kind}) within the cap was closed`);
                if (i < kept && h.kind !== 'bare' && h.kind !== 'partial' && !h.served) throw new Error(`connection ${i} (${h.kind}) within the cap was not served`);
                if (i >= kept && h.served) throw new Error(`connection ${i} (${h.kind}) over the cap was served`);
                const code = i < kept ? await h.check?.() : undefined;
                if (code !== undefined && code !== 'NOT_JOINED') throw new Error(`session ${i} answered ${code}`);
              }
              refusedInTotal += plan.length - kept;
              const health = await getFrom(`${guarded.url}/healthz`, '127.0.0.2');
              if (health.status !== 200) throw new Error(`/healthz from another address answered ${health.status}`);
            } finally {
              for (const h of held) h.close();
              await until(() => guarded.connections.openFrom('127.0.0.1') === 0, 5000, 'the address to hold nothing after closing');
            }
          }),
          settings(5, 12),
        );
        const metrics = (await getFrom(`${guarded.url}/metrics`, '127.0.0.2')).body;
        const refused = Number(/^chorus_connections_refused_total\{reason="address_cap"[^}]*\} (\d+)/m.exec(metrics)?.[1]);
        expect(refused, 'connections refused for the address cap, as counted on /metrics').toBe(refusedInTotal);
        expect(guarded.workers.healthy).toBe(true);
      } finally {
        await guarded.close();
      }
    },
    120_000,
  );

  test(
    '(f) joins through one shared link from one address: the budget admits exactly its share, the rest get LIMIT_REACHED with a retry delay and change nothing',
    async () => {
      const BUDGET = 25;
      const venue = await startTestNode({ CHORUS_LIMIT_JOINS_PER_SHARED_LINK_PER_MINUTE: String(BUDGET), CHORUS_LIMIT_JOINS_PER_ROOM_PER_SECOND: '1000000' });
      captureErrorLogs(venue);
      let run = 0;
      try {
        await fc.assert(
          fc.asyncProperty(fc.integer({ min: 1, max: 3 * BUDGET }), fc.integer({ min: 1, max: 20 }), async (joins, concurrency) => {
            // A room per run: the budget is per room, link and address, and lasts a minute.
            const room = `venue-${++run}`;
            const link = await venue.tokens.mint({ room, identity: 'public', role: 'listener', grants: { reusable: true } }, 3600);
            const sockets: RawSocket[] = [];
            try {
              const replies: RawReply[] = [];
              for (let i = 0; i < joins; i += concurrency) {
                const wave = Array.from({ length: Math.min(concurrency, joins - i) }, async () => {
                  const s = await RawSocket.connect(venue);
                  sockets.push(s);
                  return s.call('join', { roomId: room, token: link });
                });
                replies.push(...(await Promise.all(wave)));
              }
              const ok = replies.filter((r) => r.ok).length;
              if (ok !== Math.min(BUDGET, joins)) throw new Error(`${ok} of ${joins} joins admitted, ${Math.min(BUDGET, joins)} expected`);
              for (const r of replies.filter((x) => !x.ok)) {
                const e = r.error as { code: string; retryAfterMs?: number } | undefined;
                if (e?.code !== 'LIMIT_REACHED' || !(Number(e.retryAfterMs) > 0)) throw new Error(`a join over the budget got ${brief(r)}`);
              }
              const peers = venue.rooms.get(room)?.peers.size ?? 0;
              if (peers !== ok) throw new Error(`${peers} sessions in the room after ${ok} admitted joins`);
            } finally {
              for (const s of sockets) s.close();
            }
          }),
          settings(6, 6),
        );
        await until(() => venue.rooms.rooms.size === 0, 10_000, 'venue rooms to close');
        expect(await mediaCounts(venue)).toEqual({ routers: 0, transports: 0, producers: 0, consumers: 0 });
      } finally {
        await venue.close();
      }
    },
    120_000,
  );

  test('afterwards: node healthy, nothing leaked, the victim still hears the tone, over 10,000 messages sent', async () => {
    ctx.closeAll();
    await until(() => [...node.rooms.rooms.keys()].join() === VICTIM, 15_000, 'attacker rooms to close').catch((error: unknown) => {
      throw new Error(`${(error as Error).message}; still open: ${describeRooms()}`);
    });
    let counts = await mediaCounts(node);
    await until(async () => JSON.stringify((counts = await mediaCounts(node))) === JSON.stringify(baseline), 15_000, `media objects back to the legit sessions' (now ${JSON.stringify(counts)})`);
    expect(counts).toEqual(baseline);

    const room = node.rooms.get(VICTIM)!;
    expect([...room.peers.keys()].sort()).toEqual([legit.broadcasterPeer, legit.listenerPeer].sort());
    expect(await room.broadcastState()).toMatchObject({ live: true, producerId: legit.producer });
    expect(await node.store.countPeers(VICTIM)).toBe(2);
    expect(await node.store.seatHolder(VICTIM, 'broadcaster')).toBe(legit.broadcasterPeer);
    for (const r of attackerRooms) {
      expect(await node.store.getRoom(r), `store record of room ${r}`).toBeUndefined();
      expect(await node.store.countPeers(r), `store peers of room ${r}`).toBe(0);
      expect(await node.store.seatHolder(r, 'broadcaster'), `broadcaster seat of room ${r}`).toBeUndefined();
    }

    expect(node.workers.healthy).toBe(true);
    const health = await fetch(`${node.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    expect((await fetch(`${node.url}/readyz`)).status).toBe(200);

    await listener.hears(TONE_HZ);
    expect(listener.events.slice(listenerEventsAtStart), 'events of the legit listener during the fuzz (none expected)').toEqual([]);
    expect(listener.client.state).toBe('joined');
    expect(broadcaster.state).toBe('joined');

    expect(errorLogs, 'error-level logs from the nodes').toEqual([]);
    console.log(`[fuzz] ${ctx.stats.sent} messages sent (seed ${SEED}); replies by code: ${JSON.stringify(ctx.stats.byCode)}`);
    expect(ctx.stats.sent).toBeGreaterThanOrEqual(MIN_MESSAGES);
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------
// Identities and display names: kept apart from the protocol fuzzing above (its own node, with
// records going to PGlite, so whatever text gets through is also written to a real database).

describe('fuzzing identities and display names', () => {
  let textNode: ChorusNode;
  let textRun = 0;

  beforeAll(async () => {
    textNode = await startTestNode({
      CHORUS_RECORDS: 'true',
      CHORUS_DATA_DIR: mkdtempSync(join(tmpdir(), 'chorus-fuzz-text-')),
      CHORUS_RECORDS_FLUSH_MS: '100',
      // Short random strings repeat; the per-identity join rate is not what is tested here.
      CHORUS_LIMIT_JOINS_PER_IDENTITY_PER_MINUTE: '1000000',
    });
  }, 120_000);

  afterAll(async () => {
    await textNode?.close();
  });

  test('printable text is minted and admitted as itself; anything else gets BAD_REQUEST (API) or TOKEN_INVALID (join); every record is stored', async () => {
    const outcomes = { admitted: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(awkwardText(300), fc.constantFrom('identity', 'name'), async (text, field) => {
        const n = ++textRun;
        const room = `text-${n}`;
        const printable = isPrintableText(text, field === 'identity' ? 256 : 128);
        outcomes[printable ? 'admitted' : 'refused']++;
        const grant = field === 'identity' ? { identity: text } : { identity: `named-${n}`, name: text };
        const minted = await fetch(`${textNode.url}/api/tokens`, {
          method: 'POST',
          body: JSON.stringify({ room, role: 'listener', ...grant }),
          headers: { 'content-type': 'application/json', authorization: TEST_KEY_BASIC },
        });
        const body = (await minted.json()) as { token?: string; error?: { code: string; message: string } };
        if (printable) {
          expect(minted.status, brief(body)).toBe(201);
          const verified = await textNode.tokens.verify(body.token!);
          expect(field === 'identity' ? verified.identity : verified.name).toBe(text);
        } else {
          expect(minted.status).toBe(400);
          expect(body.error?.code).toBe('BAD_REQUEST');
          expect(body.error?.message.startsWith(`${field}: `)).toBe(true);
        }
        // The same text in a token signed with the key by hand, past every minting check.
        const claims = { room, role: 'listener', sub: grant.identity, ...(grant.name !== undefined ? { name: grant.name } : {}) };
        const socket = await RawSocket.connect(textNode);
        try {
          const reply = await socket.call('join', { roomId: room, token: await handSignedToken(claims) });
          if (printable) expect(reply.ok, brief(reply)).toBe(true);
          else expect(reply.error?.code, brief(reply)).toBe('TOKEN_INVALID');
        } finally {
          socket.close();
        }
      }),
      settings(60, 150),
    );
    // Both sides of the rule were exercised, not just one.
    expect(Math.min(outcomes.admitted, outcomes.refused), JSON.stringify(outcomes)).toBeGreaterThan(20 * SCALE);
    await until(() => textNode.rooms.rooms.size === 0, 10_000, 'the fuzzed rooms to close');
    await until(() => textNode.records!.flush(), 30_000, 'records to be written');
    expect(textNode.records!.status()).toMatchObject({ rejected: 0, queued: 0, spilledBytes: 0 });
    const [{ n } = { n: 0 }] = await textNode.records!.store.query<{ n: string }>(`SELECT count(*) AS n FROM sessions WHERE room LIKE 'text-%'`);
    expect(Number(n)).toBeGreaterThan(0);
  }, 300_000);
});
