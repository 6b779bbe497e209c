/**
 * Property-based fuzzing of the signaling protocol against a live node.
 *
 * A real broadcaster publishes a tone into a victim room and a real listener hears it. Attack
 * sockets then throw well over 10,000 messages at the node: (a) random event names and payloads,
 * (b) valid requests built from real ids and then mutated, (c) out-of-order flows as fast-check
 * commands with the refusal each step must get, in broadcasts, in calls (tracks by source,
 * layers and views, moderator mutes and unmute requests, snapshots) and in classes (raised hands
 * against a versioned queue, the stage and its limit, a student's tracks on and off stage, chat
 * and its limit), (d) a flood under the default rate limits, (e)
 * connections of every kind (bare TCP, half-sent headers, requests, Engine.IO WebSockets that never
 * connect, sessions) from one address past its cap, and (f) joins through one shared link from one
 * address past its budget.
 *
 * Every acknowledged message must be answered in time with `ok` or a known refusal code, never
 * INTERNAL; the node must stay healthy and log no errors; per-session limits must hold (two
 * transports, one track per source, nobody sent their own track); the victim's
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
import { requests, roles, type Role, type RoomKind } from '../../src/protocol/messages.js';
import { defaultSource, handActions, kindOfSource, trackSources, type HandAction, type RoomSnapshot, type TrackSource } from '../../src/protocol/room.js';
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
import { rtpFor } from '../support/roomHarness.js';
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
/** CHORUS_CLASS_MAX_STAGE of the fuzz node: small, so the flows invite past it. */
const MAX_STAGE = 2;
/** CHORUS_LIMIT_CHAT_PER_MINUTE of the fuzz node: small, so the flows reach it. */
const CHAT_LIMIT = 4;
const RAISED_LIMITS = {
  CHORUS_LIMIT_MESSAGES_PER_CONNECTION_PER_SECOND: '1000000',
  CHORUS_LIMIT_MESSAGES_PER_IP_PER_SECOND: '1000000',
  CHORUS_LIMIT_JOINS_PER_ROOM_PER_SECOND: '1000000',
  CHORUS_LIMIT_JOINS_PER_IDENTITY_PER_MINUTE: '1000000',
  CHORUS_LIMIT_CONNECTIONS_PER_IP: '100000',
  // The flow model expects each step's own refusal; floods of these are (d)'s and badInput's.
  CHORUS_LIMIT_TRACK_CONTROLS_PER_SECOND: '1000000',
  CHORUS_LIMIT_MUTE_REQUESTS_PER_MINUTE: '1000000',
  // Small, so the class flows reach them (the model counts both).
  CHORUS_CLASS_MAX_STAGE: String(MAX_STAGE),
  CHORUS_LIMIT_CHAT_PER_MINUTE: String(CHAT_LIMIT),
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
/** Runs of (b) so far: each takes the next room shape in turn. */
let mutatedRuns = 0;


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
      // Whole strings (brief() cuts them short): an error's stack is the evidence.
      let text: string;
      try {
        text = JSON.stringify(shown);
      } catch {
        text = brief(shown, 4000);
      }
      errorLogs.push(`${level}: ${text.slice(0, 4000)}`);
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
      const producers = [...peer.producers.values()].filter((p) => !p.closed);
      const sources = producers.map((p) => String(p.appData['source']));
      if (new Set(sources).size !== sources.length) c.fail(`${where}: ${peer.role} ${peer.id} in ${room.id} publishes ${sources.join('+')} (one track per source)`);
      // Its role's sources, and a student's stage sources while it is on stage.
      if (!producers.every((p) => room.publishable(peer).includes(p.appData['source'] as TrackSource))) {
        c.fail(`${where}: a ${peer.role} in a ${room.kind} room publishes ${sources.join('+')}`);
      }
      const granted = peer.grants.publish;
      if (granted && !producers.every((p) => granted.includes(p.kind) || granted.includes(p.appData['source'] as TrackSource))) {
        c.fail(`${where}: ${peer.id} publishes ${sources.join('+')} though its token grants ${granted.join('+')}`);
      }
      const consumed = [...peer.consumers.values()].filter((x) => !x.closed).map((x) => x.producerId);
      if (new Set(consumed).size !== consumed.length) c.fail(`${where}: ${peer.id} in ${room.id} consumes one producer ${consumed.length - new Set(consumed).size + 1} times`);
      if (consumed.some((id) => producers.some((p) => p.id === id))) c.fail(`${where}: ${peer.id} in ${room.id} is sent its own track`);
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
      // A call (or class) token is usually for a role a call (or class) admits.
      const roomKind: RoomKind = a.kind === 'call' || a.kind === 'class' ? (r() < 0.8 ? a.kind : 'broadcast') : r() < 0.25 ? 'call' : 'broadcast';
      const role = (
        roomKind === 'call' && r() < 0.7 ? pick(r, ['participant', 'moderator']) : roomKind === 'class' && r() < 0.7 ? pick(r, ['teacher', 'assistant', 'student', 'student']) : pick(r, roles)
      ) as Role;
      const grants = {
        publish: r() < 0.2 ? [pick(r, ['audio', 'video', ...trackSources] as const)] : undefined,
        moderate: r() < 0.15,
        replace: r() < 0.15,
        reusable: r() < 0.15,
      };
      const kind: TokenKind = r() < 0.35 ? 'fresh' : pick(r, tokenKinds);
      const tokenRoom = valid ? roomId : ownRoom;
      const token = await forge.make(kind, { room: tokenRoom, identity: identity('j'), role, grants, kind: roomKind }, pick(r, [VICTIM, ownRoom, `${ownRoom}-x`]), r);
      if (kind === 'fresh' || kind === 'freshNoKid') ctx.pool.add(ctx.pool.usedTokens, token);
      const payload: Record<string, unknown> = { roomId, token };
      if (r() < 0.25) payload['previousPeerId'] = r() < 0.5 && a.peerId ? a.peerId : someId(r, 'peers');
      // Calls of two go peer-to-peer when both say they can.
      if (r() < 0.4) payload['p2p'] = r() < 0.8;
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
    case 'produce': {
      if (r() < 0.4) return { transportId: transportId(r, a, 'send'), ...rtpParameters(r) };
      // A source, mostly with the kind it carries, and the RTP parameters a browser sends for it.
      const source = pick(r, trackSources);
      const kind = r() < 0.85 ? kindOfSource(source) : pick(r, ['audio', 'video'] as const);
      const payload: Record<string, unknown> = { transportId: transportId(r, a, 'send'), kind, rtpParameters: kind === 'audio' ? rtpFor('microphone') : rtpFor(source === 'camera' ? 'camera' : 'screen'), source };
      if (kind === 'video' && r() < 0.8) payload['video'] = { width: pick(r, [1280, 640, 1920, 1, 16_384]), height: pick(r, [720, 360, 1080, 1, 16_384]) };
      return payload;
    }
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
    case 'closeConsumer':
      return { consumerId: ownOr(r, a.consumers, 'consumers') };
    case 'track.view':
      return { consumerId: ownOr(r, a.consumers, 'consumers'), visible: r() < 0.75, width: pick(r, [0, 160, 320, 640, 1280, 1920, 16_384]), height: pick(r, [0, 90, 180, 360, 720, 1080, 16_384]) };
    case 'setPreferredLayers': {
      const payload: Record<string, unknown> = { consumerId: ownOr(r, a.consumers, 'consumers'), spatialLayer: pick(r, [0, 1, 2, 2, 3, 15]) };
      if (r() < 0.6) payload['temporalLayer'] = pick(r, [0, 1, 2, 3, 15]);
      return payload;
    }
    case 'mute.request':
      return r() < 0.4 ? {} : { source: pick(r, trackSources) };
    case 'p2p.signal': {
      // To anyone: the pair's other, oneself, a victim, a made-up id.
      const to = r() < 0.2 && a.peerId ? a.peerId : someId(r, 'peers');
      const x = r();
      if (x < 0.4) return { to, description: { type: pick(r, ['offer', 'answer', 'rollback'] as const), sdp: pick(r, ['v=0\r\n', '', 'x'.repeat(60_000)]) } };
      if (x < 0.8) return { to, candidate: { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: pick(r, ['0', null]), sdpMLineIndex: pick(r, [0, null]) } };
      return { to, candidate: null };
    }
    case 'p2p.state':
      return { id: pick(r, ['x', crypto.randomUUID()]), state: pick(r, ['ready', 'failed'] as const) };
    case 'listPeers':
      return r() < 0.5 ? {} : { limit: pick(r, [1, 2, 200, 1000]) };
    case 'hand': {
      // Any move, on its own hand or another session's, naming some version or none.
      const payload: Record<string, unknown> = { action: pick(r, handActions) };
      if (r() < 0.6) payload['peerId'] = r() < 0.2 && a.peerId ? a.peerId : someId(r, 'peers');
      if (r() < 0.6) payload['version'] = Math.floor(r() * 12);
      return payload;
    }
    case 'chat':
      return { text: pick(r, ['hi', 'a question\nin two lines', 'ok 🎤', 'x'.repeat(2000)]), ...(r() < 0.6 ? { to: pick(r, ['class', 'staff']) } : {}) };
    case 'moderate': {
      const action = pick(r, ['mute', 'unmute', 'kick', 'mute', 'unmute', 'kick', 'end']);
      if (action === 'end') return { action };
      const payload: Record<string, unknown> = { action, peerId: r() < 0.2 && a.peerId ? a.peerId : someId(r, 'peers') };
      if (action !== 'kick' && r() < 0.5) payload['source'] = pick(r, trackSources);
      return payload;
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

/** A call (or class staff) session with both transports, publishing `sources` (a camera in three simulcast layers). */
async function calling(label: string, room: string, role: 'participant' | 'moderator' | 'teacher', sources: readonly TrackSource[]): Promise<Attacker> {
  attackerRooms.add(room);
  const a = await ctx.connect(label);
  await a.must('join', { roomId: room, token: await forge.mint({ room, identity: identity(label), role, kind: role === 'teacher' ? 'class' : 'call' }) });
  const send = await a.must('createTransport', { direction: 'send' });
  await a.must('createTransport', { direction: 'recv' });
  for (const source of sources) {
    const kind = kindOfSource(source);
    await a.must('produce', { transportId: send['id'], kind, rtpParameters: rtpFor(source), source, ...(kind === 'video' ? { video: { width: 1280, height: 720 } } : {}) });
  }
  return a;
}

/** A class student receiving every track of `from`; with `stage`, first brought on stage by `from` and publishing its microphone. */
async function studying(label: string, room: string, from: Attacker, stage: boolean): Promise<Attacker> {
  attackerRooms.add(room);
  const a = await ctx.connect(label);
  await a.must('join', { roomId: room, token: await forge.mint({ room, identity: identity(label), role: 'student', kind: 'class' }) });
  await a.must('createTransport', { direction: 'recv' });
  await consumingAll(a, from);
  if (!stage) return a;
  await a.must('hand', { action: 'raise' });
  const { queue } = (await from.must('hands', {})) as { queue: { version: number } };
  await from.must('hand', { action: 'invite', peerId: a.peerId, version: queue.version });
  await a.must('hand', { action: 'accept' });
  const send = await a.must('createTransport', { direction: 'send' });
  await a.must('produce', { transportId: send['id'], kind: 'audio', rtpParameters: rtpFor('microphone'), source: 'microphone' });
  return a;
}

/** `a` consumes every track `from` publishes. */
async function consumingAll(a: Attacker, from: Attacker): Promise<Attacker> {
  for (const producerId of from.producers) await a.must('consume', { transportId: a.transport('recv'), producerId, rtpCapabilities: a.routerRtpCapabilities });
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

const fieldNames = ['roomId', 'token', 'previousPeerId', 'direction', 'forceTcp', 'transportId', 'dtlsParameters', 'kind', 'rtpParameters', 'producerId', 'consumerId', 'rtpCapabilities', 'limit', 'action', 'peerId', 'source', 'video', 'visible', 'width', 'height', 'spatialLayer', 'temporalLayer'];
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
      arbitrary: fc.constantFrom<unknown>('constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'JOIN', 'join ', ' join', 'consume\u0000', 'request:error', 'room:ended', 'broadcast:started', 'session:kicked', 'room:delta', 'mute:requested', 'consumer:layers', 'track.View', 'room.sync.', '', 'leave'.repeat(20)),
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
// Out-of-order flows: a model of two sockets in three rooms (the victim broadcast, a broadcast
// of their own, a call of their own), or of five in a class of their own, and the refusal each
// step must get
// ---------------------------------------------------------------------------------------------

type Where = 'flow' | 'victim' | 'call' | 'class';
type FlowRole = 'listener' | 'broadcaster' | 'participant' | 'moderator' | 'teacher' | 'assistant' | 'student';
type HandState = 'raised' | 'invited' | 'onstage' | 'back';
interface SockModel {
  joined?: { where: Where; role: FlowRole };
  transports: Array<{ direction: 'send' | 'recv'; connected: boolean }>;
  /** What it publishes: source -> producer id. */
  published: Map<TrackSource, string>;
  /** Producer ids it consumes. */
  consumed: string[];
  /** Sources a moderator muted for this session. */
  muted: Set<TrackSource>;
  /** Classes: a student the staff brought on stage (it may publish microphone and camera). */
  onStage: boolean;
  /** Chat messages this session sent (valid ones, refused for the rate or not): LIMIT_REACHED from CHAT_LIMIT on. */
  chats: number;
  /** When its first chat message was counted (the limit's window is a minute from there). */
  chatsSince: number;
  lastJoin?: { where: Where; role: FlowRole };
}
/** A class's hand queue as the model knows it: its version and the hands in queue order (dropped students' included). */
interface HandsModel {
  version: number;
  hands: Array<{ peerId: string; state: HandState }>;
}
interface FlowModel {
  socks: SockModel[];
  /** The socket holding the flow room's broadcaster seat. */
  seat: number | undefined;
  /** The flow room's broadcast (its broadcaster's microphone). */
  broadcast: string | undefined;
  /** The source of every producer the sockets made. */
  sources: Map<string, TrackSource>;
  /** The class room's raised hands. */
  hands: HandsModel;
}
interface FlowReal {
  room: string;
  socks: Attacker[];
  lastToken: Array<string | undefined>;
  consumers: Array<Array<{ id: string; producerId: string }>>;
  /** Class chat messages to the staff, and the sockets they were for. */
  staffChats: Array<{ id: string; to: Set<Attacker> }>;
}
const FLOW_SOCKS = 2;
/** The class scene's sockets: a teacher, an assistant and three students to start with. */
const CLASS_SOCKS = 5;
const emptySock = (lastJoin?: SockModel['lastJoin']): SockModel => ({ transports: [], published: new Map(), consumed: [], muted: new Set(), onStage: false, chats: 0, chatsSince: 0, ...(lastJoin ? { lastJoin } : {}) });
const roomOf = (where: Where, real: FlowReal): string => (where === 'victim' ? VICTIM : where === 'flow' ? real.room : `${real.room}-${where}`);
const kindOf = (where: Where): RoomKind => (where === 'call' ? 'call' : where === 'class' ? 'class' : 'broadcast');
/** Whether the room is open: the victim always, the others while a socket of the model is in it. */
const isOpen = (m: Readonly<FlowModel>, where: Where): boolean => where === 'victim' || m.socks.some((s) => s.joined?.where === where);
const roomRoles: Record<Where, readonly FlowRole[]> = { flow: ['listener', 'broadcaster'], victim: ['listener', 'broadcaster'], call: ['participant', 'moderator'], class: ['teacher', 'assistant', 'student'] };
const admits = (where: Where, role: FlowRole): boolean => roomRoles[where].includes(role);
const moderates = (role: FlowRole | undefined): boolean => role === 'moderator' || role === 'teacher' || role === 'assistant';
const staffActions: readonly HandAction[] = ['invite', 'remove', 'lower'];
const studentActions: readonly HandAction[] = ['raise', 'lower', 'accept', 'decline'];
/** What a role publishes in a room by its role alone (a moderator's mute of "everything" covers these). */
function rolePublishable(where: Where, role: FlowRole): readonly TrackSource[] {
  if (where === 'call' || (where === 'class' && role !== 'student')) return allSources;
  return role === 'broadcaster' ? ['microphone'] : [];
}
/** What a session may publish now: its role's, and a student's microphone and camera while on stage. */
function publishableNow(s: SockModel): readonly TrackSource[] {
  if (!s.joined) return [];
  return s.onStage ? [...rolePublishable(s.joined.where, s.joined.role), 'microphone', 'camera'] : rolePublishable(s.joined.where, s.joined.role);
}
/** A producer that is still open: the victim's, or one a socket of the model still publishes. */
const isLive = (m: Readonly<FlowModel>, producerId: string): boolean => producerId === legit.producer || m.socks.some((s) => [...s.published.values()].includes(producerId));
const allSources = trackSources;

/** `step:code` -> how often a flow step got that answer: shows how deep the flows reach. */
const flowCoverage = new Map<string, number>();

function covered(what: string, codes: readonly string[]): void {
  const step = /^[\w.]+/.exec(what)?.[0] ?? what;
  for (const code of codes) flowCoverage.set(`${step}:${code}`, (flowCoverage.get(`${step}:${code}`) ?? 0) + 1);
}

function expectCode(outcome: Outcome, allowed: readonly string[], what: string): string {
  const code = codeOf(outcome);
  covered(what, [code]);
  if (!allowed.includes(code)) {
    const message = outcome.kind === 'reply' && !outcome.reply.ok ? ` (${outcome.reply.error?.message})` : '';
    ctx.fail(`${what}: expected ${allowed.join(' or ')}, got ${code}${message}`);
  }
  return code;
}

/**
 * The model's step for a socket that left, dropped or was replaced. A student who left takes its
 * hand along; one whose connection dropped keeps it (and its place on stage) for its return, and
 * a class nobody is in any more ends with its queue.
 */
function resetSock(m: FlowModel, real: FlowReal, i: number, peerId: string | undefined, dropped: boolean): void {
  const s = m.socks[i]!;
  if (m.seat === i) m.seat = undefined;
  if (m.broadcast !== undefined && [...s.published.values()].includes(m.broadcast)) m.broadcast = undefined;
  m.socks[i] = emptySock(s.lastJoin);
  real.consumers[i] = [];
  if (s.joined?.where !== 'class') return;
  const hand = m.hands.hands.findIndex((h) => h.peerId === peerId);
  if (hand >= 0 && !dropped) {
    m.hands.hands.splice(hand, 1);
    m.hands.version++;
  }
  if (!isOpen(m, 'class')) m.hands = { version: 0, hands: [] };
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
  /** The next socket of the flow (the other one of two). */
  protected other(m: Readonly<FlowModel>): number {
    return (this.i + 1) % m.socks.length;
  }
  /** A transport by index among this socket's own, its own of a direction, another socket's, or the victim's. */
  protected transportFor(m: FlowModel, real: FlowReal, target: number | 'send' | 'recv' | 'other' | 'legit'): { id: string; own?: { direction: 'send' | 'recv'; connected: boolean } } {
    if (target === 'send' || target === 'recv') {
      const at = m.socks[this.i]!.transports.findIndex((t) => t.direction === target);
      return this.transportFor(m, real, at < 0 ? m.socks[this.i]!.transports.length : at);
    }
    if (target === 'legit') return { id: this.i % 2 === 0 ? legit.recvTransport : legit.sendTransport };
    if (target === 'other') {
      const other = real.socks.filter((_, j) => j !== this.i).flatMap((s) => s.transports);
      return { id: other[0]?.id ?? legit.recvTransport };
    }
    const own = m.socks[this.i]!.transports[target];
    return own ? { id: this.sock(real).transports[target]!.id, own } : { id: randomUUID() };
  }
}

type JoinToken = 'fresh' | 'reused' | 'otherRoom' | 'expired' | 'forged' | 'garbage' | 'wrongKind';
class Join extends Step {
  constructor(
    i: number,
    readonly where: Where,
    readonly role: FlowRole,
    readonly token: JoinToken,
  ) {
    super(i);
  }
  override check(m: Readonly<FlowModel>): boolean {
    if (this.token === 'reused') return m.socks[this.i]!.lastJoin !== undefined;
    // A token of the other kind for a room nobody is in would open the room as that kind.
    if (this.token === 'wrongKind') return isOpen(m, this.where);
    return true;
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const s = m.socks[this.i]!;
    const target = this.token === 'reused' ? s.lastJoin! : { where: this.where, role: this.role };
    const room = roomOf(target.where, real);
    const natural = kindOf(target.where);
    const kind: RoomKind = this.token !== 'wrongKind' ? natural : natural === 'call' ? 'broadcast' : 'call';
    const grant = { room, identity: identity(`c${this.i}`), role: target.role, kind };
    const token =
      this.token === 'reused'
        ? real.lastToken[this.i]!
        : this.token === 'fresh' || this.token === 'wrongKind'
          ? await forge.mint(grant)
          : await forge.make(this.token, grant, `${real.room}-other`, prng(this.i));
    const seatTaken = target.where === 'victim' || m.seat !== undefined;
    const refusedToken: Partial<Record<JoinToken, string>> = { forged: 'TOKEN_INVALID', garbage: 'TOKEN_INVALID', expired: 'TOKEN_EXPIRED', otherRoom: 'TOKEN_WRONG_ROOM', wrongKind: 'WRONG_ROOM_KIND' };
    const expected = s.joined
      ? 'ALREADY_JOINED'
      : (refusedToken[this.token] ??
        (!admits(target.where, target.role)
          ? 'FORBIDDEN_ROLE'
          : target.role === 'broadcaster' && seatTaken
            ? 'BROADCASTER_PRESENT'
            : this.token === 'reused'
              ? 'TOKEN_USED'
              : 'OK'));
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
    const peerId = this.sock(real).peerId;
    expectCode(await this.sock(real).call('leave', [{}]), [joined ? 'OK' : 'NOT_JOINED'], this.toString());
    if (joined) resetSock(m, real, this.i, peerId, false);
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
    const inClass = m.socks[this.i]!.joined?.where === 'class';
    resetSock(m, real, this.i, peerId, true);
    if (inClass && !isOpen(m, 'class')) {
      // Its last member dropped: the class ends (its queue with it) before anyone opens it again.
      const room = roomOf('class', real);
      await until(async () => node.rooms.get(room) === undefined && (await node.store.getValue(`hands\0${room}`)) === undefined, 10_000, 'the emptied class to end');
    }
    covered(this.toString(), ['done']);
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
    if (this.direction === 'send' && publishableNow(s).length === 0) return void outcomes.forEach((o) => expectCode(o, ['FORBIDDEN_ROLE'], this.toString()));
    const free = Math.max(0, 2 - s.transports.length);
    const ok = codes.filter((c) => c === 'OK').length;
    if (ok !== Math.min(free, this.burst) || codes.some((c) => c !== 'OK' && c !== 'LIMIT_REACHED')) {
      ctx.fail(`${this.toString()} with ${s.transports.length} transports already: expected ${Math.min(free, this.burst)} OK and the rest LIMIT_REACHED, got ${codes.join(', ')}`);
    }
    covered(this.toString(), codes);
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

/** RTP parameters for `kind` as `source` would send it: Opus, VP8 in three layers for a camera, one layer otherwise. */
function flowRtp(kind: 'audio' | 'video', source: TrackSource | undefined): unknown {
  return kind === 'audio' ? rtpFor('microphone') : rtpFor(source === undefined || source === 'camera' ? 'camera' : 'screen');
}

class Produce extends Step {
  constructor(
    i: number,
    readonly target: 0 | 1 | 'send' | 'other',
    /** undefined: no source given (the default for the kind). */
    readonly source: TrackSource | undefined,
    readonly kind: 'audio' | 'video',
    readonly burst: number,
  ) {
    super(i);
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const s = m.socks[this.i]!;
    const { id, own } = this.transportFor(m, real, this.target);
    const outcomes = await Promise.all(
      Array.from({ length: this.burst }, () =>
        this.sock(real).call('produce', [
          {
            transportId: id,
            kind: this.kind,
            rtpParameters: flowRtp(this.kind, this.source),
            ...(this.source ? { source: this.source } : {}),
            ...(this.kind === 'video' ? { video: { width: 1280, height: 720 } } : {}),
          },
        ]),
      ),
    );
    const source = this.source ?? defaultSource(this.kind);
    const publishable = publishableNow(s);
    const expected = !s.joined
      ? 'NOT_JOINED'
      : publishable.length === 0
        ? 'FORBIDDEN_ROLE'
        : !own
          ? 'TRANSPORT_NOT_FOUND'
          : own.direction === 'recv'
            ? 'BAD_REQUEST'
            : kindOfSource(source) !== this.kind
              ? 'BAD_REQUEST'
              : !publishable.includes(source)
                ? this.source === undefined
                  ? 'MEDIA_REJECTED'
                  : 'FORBIDDEN_ROLE'
                : s.muted.has(source)
                  ? 'MUTED'
                  : s.published.has(source)
                    ? 'MEDIA_REJECTED'
                    : 'OK';
    if (expected !== 'OK') return void outcomes.forEach((o) => expectCode(o, [expected], this.toString()));
    const codes = outcomes.map(codeOf);
    if (codes.filter((c) => c === 'OK').length !== 1 || codes.some((c) => c !== 'OK' && c !== 'MEDIA_REJECTED')) {
      ctx.fail(`${this.toString()}: expected one OK and the rest MEDIA_REJECTED (one track per source), got ${codes.join(', ')}`);
    }
    covered(this.toString(), codes);
    const reply = outcomes.find((o) => codeOf(o) === 'OK') as Extract<Outcome, { kind: 'reply' }>;
    const producerId = String(reply.reply.data?.['producerId']);
    s.published.set(source, producerId);
    m.sources.set(producerId, source);
    if (s.joined!.where === 'flow') m.broadcast = producerId;
  }
  toString(): string {
    return `produce#${this.i}(${this.target}, ${this.kind} as ${this.source ?? 'default'}${this.burst > 1 ? ` x${this.burst} at once` : ''})`;
  }
}

class Consume extends Step {
  constructor(
    i: number,
    readonly target: 0 | 1 | 'recv' | 'other',
    /** `peer`: one of the next socket's tracks; `any`: one of any other socket's. */
    readonly producer: 'default' | 'legit' | 'random' | 'peer' | 'any' | 'own',
    readonly at: number,
    readonly burst: number,
  ) {
    super(i);
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const s = m.socks[this.i]!;
    const a = this.sock(real);
    const { id, own } = this.transportFor(m, real, this.target);
    const theirs = [...m.socks[this.other(m)]!.published.values()];
    const others = m.socks.filter((_, j) => j !== this.i).flatMap((o) => [...o.published.values()]);
    const mine = [...s.published.values()];
    const named =
      this.producer === 'legit'
        ? legit.producer
        : this.producer === 'peer' && theirs.length > 0
          ? theirs[this.at % theirs.length]
          : this.producer === 'any' && others.length > 0
            ? others[this.at % others.length]
          : this.producer === 'own' && mine.length > 0
            ? mine[this.at % mine.length]
            : this.producer === 'default'
              ? undefined
              : randomUUID();
    const payload: Record<string, unknown> = { transportId: id, rtpCapabilities: a.routerRtpCapabilities ?? { codecs: [] } };
    if (named !== undefined) payload['producerId'] = named;
    const outcomes = await Promise.all(Array.from({ length: this.burst }, () => a.call('consume', [payload])));
    let expected: string;
    let target: string | undefined;
    if (!s.joined) expected = 'NOT_JOINED';
    else if (!own) expected = 'TRANSPORT_NOT_FOUND';
    else if (own.direction === 'send') expected = 'BAD_REQUEST';
    else {
      const where = s.joined.where;
      // The producer this request names in this socket's room, if there is one.
      const inRoom = (p: string): boolean =>
        (where === 'victim' && p === legit.producer) || mine.includes(p) || m.socks.some((o, j) => j !== this.i && o.joined?.where === where && [...o.published.values()].includes(p));
      if (named === undefined) target = where === 'victim' ? legit.producer : where === 'flow' ? m.broadcast : undefined;
      else target = inRoom(named) ? named : undefined;
      if (target === undefined) expected = named === undefined ? 'NOTHING_TO_CONSUME' : 'PRODUCER_NOT_FOUND';
      // Nobody is sent their own track; in a call everyone receives everyone else.
      else if (mine.includes(target)) expected = 'BAD_REQUEST';
      else expected = s.consumed.includes(target) ? 'BAD_REQUEST' : 'OK';
    }
    if (expected !== 'OK') return void outcomes.forEach((o) => expectCode(o, [expected], this.toString()));
    const codes = outcomes.map(codeOf);
    if (codes.filter((c) => c === 'OK').length !== 1 || codes.some((c) => c !== 'OK' && c !== 'BAD_REQUEST')) {
      ctx.fail(`${this.toString()}: expected one OK and the rest BAD_REQUEST (already consuming), got ${codes.join(', ')}`);
    }
    covered(this.toString(), codes);
    s.consumed.push(target!);
    for (const o of outcomes) if (o.kind === 'reply' && o.reply.ok) real.consumers[this.i]!.push({ id: String(o.reply.data?.['consumerId']), producerId: target! });
  }
  toString(): string {
    return `consume#${this.i}(${this.target}, ${this.producer}${this.producer === 'peer' || this.producer === 'any' || this.producer === 'own' ? `[${this.at}]` : ''}${this.burst > 1 ? ` x${this.burst} at once` : ''})`;
  }
}

/** The consumer a step names: one of this socket's own (the `at`-th), or another session's. */
function namedConsumer(real: FlowReal, i: number, which: 'own' | 'other', at: number): { id: string; mine?: { producerId: string } } {
  const own = real.consumers[i]!;
  if (which === 'own' && own.length > 0) {
    const mine = own[at % own.length]!;
    return { id: mine.id, mine };
  }
  const others = real.consumers.filter((_, j) => j !== i).flat();
  return { id: others[0]?.id ?? legit.consumer };
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
    const { id, mine } = namedConsumer(real, this.i, this.which, real.consumers[this.i]!.length - 1);
    let expected: string[];
    if (!s.joined) expected = ['NOT_JOINED'];
    else if (!mine) expected = ['CONSUMER_NOT_FOUND'];
    else if (isLive(m, mine.producerId)) expected = ['OK'];
    // Its producer is gone: the consumer is closing, and may or may not be closed yet.
    else expected = ['OK', 'CONSUMER_NOT_FOUND'];
    expectCode(await this.sock(real).call('resumeConsumer', [{ consumerId: id }]), expected, this.toString());
  }
  toString(): string {
    return `resumeConsumer#${this.i}(${this.which})`;
  }
}

/** track.view and setPreferredLayers: only video has a view, and layers only within what its producer sends. */
class TrackControl extends Step {
  constructor(
    i: number,
    readonly op: 'show' | 'hide' | 'layers',
    readonly which: 'own' | 'other',
    readonly at: number,
    readonly spatial: number,
    readonly temporal: number | undefined,
  ) {
    super(i);
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const s = m.socks[this.i]!;
    const { id, mine } = namedConsumer(real, this.i, this.which, this.at);
    const outcome =
      this.op === 'layers'
        ? await this.sock(real).call('setPreferredLayers', [{ consumerId: id, spatialLayer: this.spatial, ...(this.temporal !== undefined ? { temporalLayer: this.temporal } : {}) }])
        : await this.sock(real).call('track.view', [{ consumerId: id, visible: this.op === 'show', width: 320 * (this.spatial + 1), height: 180 * (this.spatial + 1) }]);
    let expected: string[];
    if (!s.joined) expected = ['NOT_JOINED'];
    else if (!mine) expected = ['CONSUMER_NOT_FOUND'];
    else {
      // The victim's broadcast is a microphone too.
      const source = m.sources.get(mine.producerId) ?? 'microphone';
      // A camera is sent in three spatial layers, a screen in one; both in three temporal ones (L1T3).
      const spatial = source === 'camera' ? 3 : 1;
      const temporal = kindOfSource(source) === 'video' ? 3 : 1;
      const ok =
        this.op === 'layers'
          ? (spatial > 1 || temporal > 1) && this.spatial < spatial && (this.temporal === undefined || this.temporal < temporal)
          : kindOfSource(source) === 'video';
      expected = [ok ? 'OK' : 'BAD_REQUEST'];
      if (!isLive(m, mine.producerId)) expected.push('CONSUMER_NOT_FOUND');
    }
    const code = expectCode(outcome, expected, this.toString());
    if (code === 'OK' && this.op === 'hide' && outcome.kind === 'reply' && outcome.reply.data?.['paused'] !== true) {
      ctx.fail(`${this.toString()}: a hidden tile must be paused, got ${brief(outcome.reply.data)}`);
    }
  }
  toString(): string {
    const what = this.op === 'layers' ? `layers ${this.spatial}/${this.temporal ?? '-'}` : this.op;
    return `trackControl#${this.i}(${what}, ${this.which}[${this.at}])`;
  }
}

class ProducerOp extends Step {
  constructor(
    i: number,
    readonly op: 'pauseProducer' | 'resumeProducer' | 'closeProducer',
    readonly which: 'own' | 'legit',
    readonly at = 0,
  ) {
    super(i);
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const s = m.socks[this.i]!;
    const mine = [...s.published.entries()];
    const own = this.which === 'own' && mine.length > 0 ? mine[this.at % mine.length] : undefined;
    const id = own ? own[1] : this.which === 'legit' ? legit.producer : randomUUID();
    // A moderator's mute holds against the publisher's own resume.
    const expected = !s.joined ? 'NOT_JOINED' : !own ? 'PRODUCER_NOT_FOUND' : this.op === 'resumeProducer' && s.muted.has(own[0]) ? 'MUTED' : 'OK';
    expectCode(await this.sock(real).call(this.op, [{ producerId: id }]), [expected], this.toString());
    if (own && this.op === 'closeProducer') {
      s.published.delete(own[0]);
      if (m.broadcast === own[1]) m.broadcast = undefined;
    }
  }
  toString(): string {
    return `${this.op}#${this.i}(${this.which}${this.which === 'own' ? `[${this.at}]` : ''})`;
  }
}

/** A moderator mutes or unmutes a session of its call (one source, or all). */
class Moderate extends Step {
  constructor(
    i: number,
    readonly action: 'mute' | 'unmute',
    /** A socket by number, or the next one (`other`). */
    readonly target: 'other' | 'self' | 'legit' | number,
    readonly source: TrackSource | undefined,
  ) {
    super(i);
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const s = m.socks[this.i]!;
    const j = this.target === 'self' ? this.i : typeof this.target === 'number' ? this.target : this.other(m);
    const peerId = this.target === 'legit' ? legit.listenerPeer : (real.socks[j]!.peerId ?? randomUUID());
    const payload = { action: this.action, peerId, ...(this.source ? { source: this.source } : {}) };
    const t = m.socks[j]!;
    const found = this.target !== 'legit' && t.joined !== undefined && t.joined.where === s.joined?.where;
    const expected = !s.joined ? 'NOT_JOINED' : !moderates(s.joined.role) ? 'FORBIDDEN_ROLE' : found ? 'OK' : 'NOT_FOUND';
    expectCode(await this.sock(real).call('moderate', [payload]), [expected], this.toString());
    if (expected !== 'OK') return;
    // No source: everything the target's role publishes.
    for (const source of this.source ? [this.source] : rolePublishable(t.joined!.where, t.joined!.role)) {
      if (this.action === 'mute') t.muted.add(source);
      else t.muted.delete(source);
    }
  }
  toString(): string {
    return `moderate#${this.i}(${this.action} ${this.target}${this.source ? ` ${this.source}` : ''})`;
  }
}

/** A participant asks to be unmuted: only for what a moderator muted, and only with a moderator there to ask. */
class MuteRequest extends Step {
  constructor(
    i: number,
    readonly source: TrackSource | undefined,
  ) {
    super(i);
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const s = m.socks[this.i]!;
    const asked = s.muted.size > 0 && (this.source === undefined || s.muted.has(this.source));
    const moderators = real.socks.filter((_, j) => j !== this.i && moderates(m.socks[j]!.joined?.role) && m.socks[j]!.joined?.where === s.joined?.where);
    const expected = !s.joined ? 'NOT_JOINED' : !asked ? 'BAD_REQUEST' : moderators.length > 0 ? 'OK' : 'UNAVAILABLE';
    const told = () => moderators.map((a) => a.raw.events.filter((e) => e.event === 'mute:requested').length);
    const before = told();
    expectCode(await this.sock(real).call('mute.request', [this.source ? { source: this.source } : {}]), [expected], this.toString());
    // Each moderator there is told, once.
    if (expected === 'OK') await until(() => told().every((n, k) => n === before[k]! + 1), 5000, `${this.toString()}: the moderators to be told`);
  }
  toString(): string {
    return `mute.request#${this.i}(${this.source ?? 'any'})`;
  }
}

/** room.sync: in a call, exactly the model's members with exactly their tracks and moderator mutes. */
class RoomSync extends Step {
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const s = m.socks[this.i]!;
    const outcome = await this.sock(real).call('room.sync', [{}]);
    expectCode(outcome, [s.joined ? 'OK' : 'NOT_JOINED'], this.toString());
    if (s.joined?.where !== 'call' || outcome.kind !== 'reply') return;
    const snapshot = outcome.reply.data as unknown as RoomSnapshot;
    const seen = snapshot.participants
      .map((p) => `${p.peerId}: ${p.tracks.map((t) => `${t.source}=${t.trackId}${t.mutedByModerator ? ' (muted)' : ''}`).sort().join(', ')}`)
      .sort();
    const expected = m.socks
      .map((o, j) => ({ o, peerId: real.socks[j]!.peerId }))
      .filter(({ o }) => o.joined?.where === 'call')
      .map(({ o, peerId }) => `${peerId}: ${[...o.published].map(([source, id]) => `${source}=${id}${o.muted.has(source) ? ' (muted)' : ''}`).sort().join(', ')}`)
      .sort();
    if (JSON.stringify(seen) !== JSON.stringify(expected)) ctx.fail(`${this.toString()}: snapshot shows ${brief(seen, 1000)}, the model ${brief(expected, 1000)}`);
  }
  toString(): string {
    return `room.sync#${this.i}`;
  }
}

/** join with a fresh token and create transports: a shortcut to the deeper states (for a socket not in a room). */
class Ready extends Step {
  constructor(
    i: number,
    readonly where: Where,
    readonly role: FlowRole,
    readonly directions: ReadonlyArray<'send' | 'recv'>,
  ) {
    super(i);
  }
  // Tearing down a session in the deep states is left to leave and reconnect.
  override check(m: Readonly<FlowModel>): boolean {
    return m.socks[this.i]!.joined === undefined;
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    if (m.socks[this.i]!.joined) await new Leave(this.i).run(m, real);
    await new Join(this.i, this.where, this.role, 'fresh').run(m, real);
    for (const d of this.directions) if (m.socks[this.i]!.joined) await new CreateTransport(this.i, d, 1).run(m, real);
  }
  toString(): string {
    return `ready#${this.i}(${this.where} ${this.role}, ${this.directions.join('+')} transport)`;
  }
}

class Privileged extends Step {
  constructor(
    i: number,
    readonly request: 'listPeers' | 'kick' | 'end' | 'mute',
  ) {
    super(i);
  }
  override check(m: Readonly<FlowModel>): boolean {
    // A call's moderator may end its call, and tokens issued up to that millisecond stop working:
    // left out, as a fresh token a moment later could fall in the same millisecond.
    return this.request !== 'end' || !moderates(m.socks[this.i]!.joined?.role);
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const payload =
      this.request === 'listPeers' ? {} : this.request === 'end' ? { action: 'end' } : { action: this.request, peerId: this.i % 2 === 0 ? legit.listenerPeer : legit.broadcasterPeer };
    const outcome = await this.sock(real).call(this.request === 'listPeers' ? 'listPeers' : 'moderate', [payload]);
    const joined = m.socks[this.i]!.joined;
    // A call's moderator may, but the victim's sessions are not in its call.
    const expected = !joined ? 'NOT_JOINED' : !moderates(joined.role) ? 'FORBIDDEN_ROLE' : this.request === 'listPeers' ? 'OK' : 'NOT_FOUND';
    expectCode(outcome, [expected], this.toString());
  }
  toString(): string {
    return `${this.request}#${this.i}`;
  }
}

/**
 * Whom a hand move names: nobody (its own hand), itself by id, a socket by number, the first
 * student here whose hand is raised (or on stage), as staff pick from the queue, a dropped
 * student's hand, or a made-up id.
 */
type HandTarget = 'none' | 'self' | 'raised' | 'onstage' | 'orphan' | 'nobody' | number;

/** The model's queue as `peerId:state` in order, to compare with what the node answers. */
const queueText = (q: { version: number; hands: ReadonlyArray<{ peerId: string; state: string }> }): string => `v${q.version} [${q.hands.map((h) => `${h.peerId}:${h.state}`).join(', ')}]`;

/** Waits (bounded) until `a` was pushed `event` with a payload `match` accepts. */
async function told(a: Attacker, event: string, match: (payload: unknown) => boolean, what: string): Promise<void> {
  await until(() => a.raw.events.some((e) => e.event === event && match(e.payload)), 5000, what).catch(() => ctx.fail(`${what}: not told within 5 s`));
}

/**
 * Classes: a move of a raised hand (`hand {action, peerId?, version?}`), with the answer the
 * queue in the model promises: the target's role, the version staff name, who may make the move,
 * the hand's state, and the stage's size.
 */
class HandMove extends Step {
  constructor(
    i: number,
    readonly action: HandAction,
    readonly target: HandTarget,
    readonly version: 'current' | 'stale' | 'none',
  ) {
    super(i);
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const s = m.socks[this.i]!;
    const a = this.sock(real);
    const inClass = (j: number) => m.socks[j]!.joined?.where === 'class' && real.socks[j]!.peerId !== undefined;
    const orphan = m.hands.hands.find((h) => !real.socks.some((x, j) => inClass(j) && x.peerId === h.peerId));
    const queued = (state: HandState) => m.hands.hands.find((h) => h.state === state && real.socks.some((x, j) => inClass(j) && x.peerId === h.peerId));
    const targetId =
      this.target === 'none'
        ? undefined
        : this.target === 'self'
          ? (a.peerId ?? randomUUID())
          : this.target === 'orphan'
            ? (orphan?.peerId ?? randomUUID())
            : this.target === 'raised' || this.target === 'onstage'
              ? (queued(this.target)?.peerId ?? randomUUID())
            : this.target === 'nobody' || !inClass(this.target)
              ? randomUUID()
              : real.socks[this.target]!.peerId!;
    const version = this.version === 'none' ? undefined : this.version === 'current' ? m.hands.version : m.hands.version > 0 ? m.hands.version - 1 : m.hands.version + 1;
    const payload = { action: this.action, ...(targetId !== undefined ? { peerId: targetId } : {}), ...(version !== undefined ? { version } : {}) };
    // The socket whose hand this is, as the node finds it: its own, or a member of the class here.
    const t = targetId === undefined || targetId === a.peerId ? this.i : real.socks.findIndex((x, j) => inClass(j) && x.peerId === targetId);
    const hand = t >= 0 ? m.hands.hands.find((h) => h.peerId === real.socks[t]!.peerId) : undefined;
    const from = hand?.state;
    const onStage = m.hands.hands.filter((h) => h.state === 'invited' || h.state === 'onstage').length;
    const next: Partial<Record<HandAction, { from: ReadonlyArray<HandState | undefined>; to: HandState | undefined }>> = {
      raise: { from: [undefined, 'back'], to: 'raised' },
      lower: { from: ['raised'], to: undefined },
      invite: { from: ['raised'], to: 'invited' },
      accept: { from: ['invited'], to: 'onstage' },
      decline: { from: ['invited'], to: undefined },
      remove: { from: ['invited', 'onstage'], to: 'back' },
    };
    const move = next[this.action]!;
    const expected = !s.joined
      ? 'NOT_JOINED'
      : s.joined.where !== 'class'
        ? 'BAD_REQUEST'
        : t < 0
          ? 'NOT_FOUND'
          : m.socks[t]!.joined!.role !== 'student'
            ? 'BAD_TRANSITION'
            : // Who may comes before which version: a student naming another's hand is
              // FORBIDDEN_ROLE, stale version or not; staff must name the version they saw.
              t === this.i
              ? !studentActions.includes(this.action)
                ? 'FORBIDDEN_ROLE'
                : undefined
              : !(moderates(s.joined.role) && staffActions.includes(this.action))
                ? 'FORBIDDEN_ROLE'
                : version === undefined
                  ? 'BAD_REQUEST'
                  : version !== m.hands.version
                    ? 'STALE_VERSION'
                    : undefined;
    const code = expected ?? (!move.from.includes(from) ? 'BAD_TRANSITION' : this.action === 'invite' && onStage >= MAX_STAGE ? 'STAGE_FULL' : 'OK');
    const outcome = await a.call('hand', [payload]);
    expectCode(outcome, [code], this.toString());
    if (code !== 'OK') return;
    const peerId = real.socks[t]!.peerId!;
    const student = m.socks[t]!;
    const at = m.hands.hands.findIndex((h) => h.peerId === peerId);
    // Raising (again) goes to the end of the queue; a move keeps the hand's place.
    if (move.to === undefined || this.action === 'raise') {
      if (at >= 0) m.hands.hands.splice(at, 1);
      if (move.to !== undefined) m.hands.hands.push({ peerId, state: move.to });
    } else m.hands.hands[at]!.state = move.to;
    m.hands.version++;
    if (move.to === 'onstage') student.onStage = true;
    if (from === 'onstage') offStage(student, real.socks[t]!, m);
    // Staff are given the whole queue, a student its own hand only.
    const queue = (outcome as Extract<Outcome, { kind: 'reply' }>).reply.data?.['queue'] as HandsModel | undefined;
    const shown = moderates(s.joined!.role) ? m.hands : { version: m.hands.version, hands: m.hands.hands.filter((h) => h.peerId === a.peerId) };
    if (!queue || queueText(queue) !== queueText(shown)) ctx.fail(`${this.toString()}: answered the queue ${queue ? queueText(queue) : 'none'}, the model has ${queueText(shown)}`);
    // The student is told of its hand, the staff here of the queue.
    const now = m.hands.version;
    await told(real.socks[t]!, 'hand:state', (p) => (p as { version?: number }).version === now, `${this.toString()}: the student's hand:state v${now}`);
    for (const [j, x] of real.socks.entries()) {
      if (inClass(j) && moderates(m.socks[j]!.joined!.role)) await told(x, 'hand:queue', (p) => (p as { queue?: HandsModel }).queue?.version === now, `${this.toString()}: ${x.label}'s hand:queue v${now}`);
    }
  }
  toString(): string {
    return `hand#${this.i}(${this.action}${this.target === 'none' ? '' : ` ${this.target}`}${this.version === 'none' ? '' : ` ${this.version} version`})`;
  }
}

/** Off the stage: the node closes the student's tracks and its send transport at once. */
function offStage(s: SockModel, a: Attacker, m: FlowModel): void {
  s.onStage = false;
  for (const id of s.published.values()) if (m.broadcast === id) m.broadcast = undefined;
  s.published.clear();
  for (let k = s.transports.length - 1; k >= 0; k--) {
    if (s.transports[k]!.direction !== 'send') continue;
    s.transports.splice(k, 1);
    a.transports.splice(k, 1);
  }
}

/** Classes: the hand queue, for staff only, exactly the model's. */
class Hands extends Step {
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    const s = m.socks[this.i]!;
    const expected = !s.joined ? 'NOT_JOINED' : s.joined.where !== 'class' ? 'BAD_REQUEST' : !moderates(s.joined.role) ? 'FORBIDDEN_ROLE' : 'OK';
    const outcome = await this.sock(real).call('hands', [{}]);
    expectCode(outcome, [expected], this.toString());
    if (expected !== 'OK') return;
    const queue = (outcome as Extract<Outcome, { kind: 'reply' }>).reply.data?.['queue'] as HandsModel | undefined;
    if (!queue || queueText(queue) !== queueText(m.hands)) ctx.fail(`${this.toString()}: the node has the queue ${queue ? queueText(queue) : 'none'}, the model ${queueText(m.hands)}`);
  }
  toString(): string {
    return `hands#${this.i}`;
  }
}

const chatTexts = {
  short: 'hello class',
  lines: 'why?\nand how?',
  emoji: 'ok 🎤 أ',
  longest: 'x'.repeat(2000),
  empty: '',
  blank: ' \n\t ',
  tooLong: 'y'.repeat(2001),
  control: 'a\u0007b',
} as const;
type ChatText = keyof typeof chatTexts;
const validChat = (text: ChatText): boolean => !['empty', 'blank', 'tooLong', 'control'].includes(text);

/** Classes: chat to the class or to its staff, reaching exactly whom it is for; CHAT_LIMIT a session, then LIMIT_REACHED. */
class Chat extends Step {
  constructor(
    i: number,
    readonly text: ChatText,
    readonly to: 'class' | 'staff' | undefined,
    /** Messages sent one after the other (enough of them reach the limit). */
    readonly times = 1,
  ) {
    super(i);
  }
  async run(m: FlowModel, real: FlowReal): Promise<void> {
    for (let k = 0; k < this.times; k++) await this.once(m, real);
  }
  async once(m: FlowModel, real: FlowReal): Promise<void> {
    const s = m.socks[this.i]!;
    const a = this.sock(real);
    const text = chatTexts[this.text];
    let expected: string[];
    if (!validChat(this.text)) expected = ['BAD_REQUEST'];
    else if (!s.joined) expected = ['NOT_JOINED'];
    else {
      // Every valid message of a session counts, refused or not, in a window of a minute from its first.
      if (s.chats === 0) s.chatsSince = Date.now();
      const limited = s.chats++ >= CHAT_LIMIT;
      const refusal = s.joined.where !== 'class' ? 'BAD_REQUEST' : 'OK';
      expected = !limited ? [refusal] : Date.now() - s.chatsSince < 55_000 ? ['LIMIT_REACHED'] : ['LIMIT_REACHED', refusal];
    }
    const outcome = await a.call('chat', [{ text, ...(this.to ? { to: this.to } : {}) }]);
    if (expectCode(outcome, expected, this.toString()) !== 'OK') return;
    const message = (outcome as Extract<Outcome, { kind: 'reply' }>).reply.data?.['message'] as { id: string; text: string; to: string; from: { peerId: string } } | undefined;
    const to = this.to ?? 'class';
    if (message?.text !== text || message.to !== to || message.from.peerId !== a.peerId) ctx.fail(`${this.toString()}: answered ${brief(message)}`);
    // To the class: everyone in it; to the staff: its teachers and assistants, and the sender.
    const recipients = real.socks.filter((x, j) => m.socks[j]!.joined?.where === 'class' && (to === 'class' || j === this.i || moderates(m.socks[j]!.joined!.role)));
    for (const x of recipients) await told(x, 'chat:message', (p) => (p as { message?: { id?: string } }).message?.id === message.id, `${this.toString()}: ${x.label} given the message`);
    if (to === 'staff') real.staffChats.push({ id: message.id, to: new Set(recipients) });
  }
  toString(): string {
    return `chat#${this.i}(${this.text}${this.to ? ` to ${this.to}` : ''}${this.times > 1 ? ` x${this.times}` : ''})`;
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
const sourceArb = fc.constantFrom<TrackSource | undefined>(...trackSources, undefined);
const transportTarget = fc.constantFrom<0 | 1 | 'other' | 'legit'>(0, 1, 0, 1, 'other', 'legit');
const ready = fc
  .tuple(
    sockArb,
    fc.constantFrom<[Where, FlowRole, Array<'send' | 'recv'>]>(
      ['flow', 'broadcaster', ['send']],
      ['flow', 'listener', ['recv']],
      ['victim', 'listener', ['recv']],
      ['flow', 'broadcaster', ['recv']],
      ['call', 'participant', ['send', 'recv']],
      ['call', 'moderator', ['send', 'recv']],
      ['call', 'participant', ['recv']],
    ),
  )
  .map(([i, [w, role, d]]) => new Ready(i, w, role, d));
const produceBy = (socks: fc.Arbitrary<number>) => fc
  .tuple(
    socks,
    fc.constantFrom<0 | 1 | 'send' | 'other'>(0, 1, 'send', 'send', 'send', 'other'),
    // Mostly the kind the source carries; sometimes the other one.
    fc.tuple(sourceArb, fc.nat({ max: 4 })).map(([source, k]): [TrackSource | undefined, 'audio' | 'video'] => {
      const natural = source ? kindOfSource(source) : k % 2 === 0 ? 'audio' : 'video';
      return [source, k === 4 ? (natural === 'audio' ? 'video' : 'audio') : natural];
    }),
    fc.constantFrom(1, 1, 2, 3),
  )
  .map(([i, t, [source, kind], b]) => new Produce(i, t, source, kind, b));
const produce = produceBy(sockArb);
const consumeBy = (socks: fc.Arbitrary<number>, producers: ReadonlyArray<Consume['producer']>) => fc
  .tuple(socks, fc.constantFrom<0 | 1 | 'recv' | 'other'>(0, 1, 'recv', 'recv', 'recv', 'other'), fc.constantFrom<Consume['producer']>(...producers), fc.nat({ max: 3 }), fc.constantFrom(1, 1, 2, 3))
  .map(([i, t, p, at, b]) => new Consume(i, t, p, at, b));
const consume = consumeBy(sockArb, ['default', 'default', 'legit', 'random', 'peer', 'peer', 'peer', 'own']);
const trackControlBy = (socks: fc.Arbitrary<number>) => fc
  .tuple(socks, fc.constantFrom<TrackControl['op']>('show', 'hide', 'layers', 'layers'), fc.constantFrom<'own' | 'other'>('own', 'own', 'own', 'other'), fc.nat({ max: 3 }), fc.nat({ max: 3 }), fc.option(fc.nat({ max: 3 })))
  .map(([i, op, w, at, sp, tp]) => new TrackControl(i, op, w, at, sp, tp ?? undefined));
const trackControl = trackControlBy(sockArb);
type Scene = 'call' | 'mutedCall' | 'broadcast' | 'none' | 'class';
/**
 * Where a run starts, so the random steps spend their time in the deep states: two sessions in
 * a call, publishing and consuming each other, or a broadcast with a listener, or nothing.
 */
const scenes: Record<Scene, () => Step[]> = {
  call: () => [
    new Ready(0, 'call', 'moderator', ['send', 'recv']),
    new Ready(1, 'call', 'participant', ['send', 'recv']),
    new Produce(0, 'send', 'microphone', 'audio', 1),
    new Produce(0, 'send', 'camera', 'video', 1),
    new Produce(1, 'send', 'screen', 'video', 1),
    new Consume(1, 'recv', 'peer', 1, 1),
    new Consume(0, 'recv', 'peer', 0, 1),
  ],
  mutedCall: () => [...scenes.call(), new Moderate(0, 'mute', 'other', 'screen'), new MuteRequest(1, 'screen')],
  broadcast: () => [new Ready(0, 'flow', 'broadcaster', ['send']), new Produce(0, 'send', 'microphone', 'audio', 1), new Ready(1, 'flow', 'listener', ['recv']), new Consume(1, 'recv', 'default', 0, 1)],
  none: () => [],
  // A teacher publishing, an assistant, three students receiving it; the first student on stage
  // (raised, invited, accepted, publishing its microphone, heard by another), the second invited
  // (the stage of two is full), the third's hand up.
  class: () => [
    new Ready(0, 'class', 'teacher', ['send', 'recv']),
    new Produce(0, 'send', 'microphone', 'audio', 1),
    new Produce(0, 'send', 'camera', 'video', 1),
    new Ready(1, 'class', 'assistant', ['recv']),
    ...[2, 3, 4].map((i) => new Ready(i, 'class', 'student', ['recv'])),
    new Consume(2, 'recv', 'any', 0, 1),
    new Consume(3, 'recv', 'any', 1, 1),
    new HandMove(2, 'raise', 'none', 'none'),
    new HandMove(3, 'raise', 'none', 'none'),
    new CreateTransport(2, 'send', 1),
    new HandMove(0, 'invite', 2, 'current'),
    new HandMove(2, 'accept', 'none', 'none'),
    // The stage full: the third student's raised hand waits.
    new HandMove(1, 'invite', 3, 'current'),
    new HandMove(4, 'raise', 'none', 'none'),
    new CreateTransport(2, 'send', 1),
    new Produce(2, 'send', 'microphone', 'audio', 1),
    // The teacher's microphone and camera, then the student's microphone.
    new Consume(3, 'recv', 'any', 2, 1),
  ],
};

const anyJoin = fc
  .tuple(
    sockArb,
    fc.constantFrom<[Where, FlowRole]>(['flow', 'listener'], ['flow', 'broadcaster'], ['victim', 'listener'], ['victim', 'broadcaster'], ['call', 'participant'], ['call', 'moderator'], ['call', 'listener'], ['call', 'broadcaster']),
    fc.constantFrom<JoinToken>('fresh', 'fresh', 'fresh', 'reused', 'otherRoom', 'expired', 'forged', 'garbage', 'wrongKind'),
  )
  .map(([i, [w, role], t]) => new Join(i, w, role, t));
const freshJoin = fc
  .tuple(sockArb, fc.constantFrom<[Where, FlowRole]>(['flow', 'listener'], ['flow', 'broadcaster'], ['victim', 'listener'], ['call', 'participant'], ['call', 'moderator']))
  .map(([i, [w, role]]) => new Join(i, w, role, 'fresh'));
const producerOpBy = (socks: fc.Arbitrary<number>) => fc
  .tuple(socks, fc.constantFrom<ProducerOp['op']>('pauseProducer', 'resumeProducer', 'resumeProducer', 'closeProducer'), fc.constantFrom<'own' | 'legit'>('own', 'own', 'legit'), fc.nat({ max: 3 }))
  .map(([i, op, w, at]) => new ProducerOp(i, op, w, at));
const producerOp = producerOpBy(sockArb);
const moderate = fc
  .tuple(sockArb, fc.constantFrom<'mute' | 'unmute'>('mute', 'mute', 'unmute'), fc.constantFrom<Moderate['target']>('other', 'other', 'self', 'legit'), sourceArb)
  .map(([i, a, t, s]) => new Moderate(i, a, t, s));
const malformed = fc
  .tuple(
    sockArb,
    fc.constantFrom<[string, unknown, string]>(
      ['createTransport', { direction: 'sideways' }, 'BAD_REQUEST'],
      ['consume', { transportId: 'x' }, 'BAD_REQUEST'],
      ['join', { roomId: 'flow', token: 't', isAdmin: true }, 'BAD_REQUEST'],
      ['produce', null, 'BAD_REQUEST'],
      ['produce', { transportId: 'x', kind: 'audio', rtpParameters: rtpFor('microphone'), source: 'hologram' }, 'BAD_REQUEST'],
      ['produce', { transportId: 'x', kind: 'video', rtpParameters: rtpFor('camera'), source: 'camera', video: { width: 0, height: 720 } }, 'BAD_REQUEST'],
      ['moderate', { action: 'end', peerId: 'x' }, 'BAD_REQUEST'],
      ['moderate', { action: 'kick', peerId: 'x', source: 'camera' }, 'BAD_REQUEST'],
      ['moderate', { action: 'mute', peerId: 'x', source: 'everything' }, 'BAD_REQUEST'],
      ['listPeers', { limit: 1001 }, 'BAD_REQUEST'],
      ['track.view', { consumerId: 'x', visible: 'yes', width: 1, height: 1 }, 'BAD_REQUEST'],
      ['track.view', { consumerId: 'x', visible: true, width: -1, height: 1 }, 'BAD_REQUEST'],
      ['setPreferredLayers', { consumerId: 'x', spatialLayer: 16 }, 'BAD_REQUEST'],
      ['setPreferredLayers', { consumerId: 'x', spatialLayer: 0, temporalLayer: 0.5 }, 'BAD_REQUEST'],
      ['room.sync', { full: true }, 'BAD_REQUEST'],
      ['mute.request', { source: 'hologram' }, 'BAD_REQUEST'],
      ['p2p.signal', { to: 'x', description: { type: 'pranswer', sdp: 'v=0' } }, 'BAD_REQUEST'],
      ['p2p.signal', { to: 'x', description: { type: 'offer', sdp: 'v'.repeat(48 * 1024 + 1) } }, 'BAD_REQUEST'],
      ['p2p.signal', { to: 'x', candidate: { candidate: 'c'.repeat(1025) } }, 'BAD_REQUEST'],
      ['p2p.signal', { to: 'x', sdp: 'v=0' }, 'BAD_REQUEST'],
      ['p2p.state', { id: 'x', state: 'connected' }, 'BAD_REQUEST'],
      ['p2p.state', { state: 'failed' }, 'BAD_REQUEST'],
      ['hand', { action: 'promote' }, 'BAD_REQUEST'],
      ['hand', { action: 'invite', peerId: 'x', version: -1 }, 'BAD_REQUEST'],
      ['hand', { action: 'invite', peerId: 'x'.repeat(65) }, 'BAD_REQUEST'],
      ['hands', { all: true }, 'BAD_REQUEST'],
      ['chat', { text: '' }, 'BAD_REQUEST'],
      ['chat', { text: ' \n ' }, 'BAD_REQUEST'],
      ['chat', { text: 'x'.repeat(2001) }, 'BAD_REQUEST'],
      ['chat', { text: 'a\u0000b' }, 'BAD_REQUEST'],
      ['chat', { text: 'a\u202Eb' }, 'BAD_REQUEST'],
      ['chat', { text: 'hi', to: 'everyone' }, 'BAD_REQUEST'],
      ['becomeModerator', {}, 'UNKNOWN_METHOD'],
    ),
  )
  .map(([i, [e, p, c]]) => new Malformed(i, e, p, c));
const weighted = (weight: number, arbitrary: fc.Arbitrary<Step>) => ({ weight, arbitrary });
const flowCommands = fc.commands<FlowModel, FlowReal, false>(
  [
    // One weighted choice: what builds state (joins, tracks, consumers) comes up often enough to
    // reach the deep states; what tears it down (leave, reconnect) rarely.
    fc.oneof(
      weighted(3, anyJoin),
      weighted(2, freshJoin),
      weighted(4, ready),
      weighted(1, sockArb.map((i) => new Leave(i))),
      weighted(1, sockArb.map((i) => new Reconnect(i))),
      weighted(2, fc.tuple(sockArb, fc.constantFrom<'send' | 'recv'>('send', 'recv'), fc.constantFrom(1, 1, 1, 2, 3)).map(([i, d, b]) => new CreateTransport(i, d, b))),
      weighted(2, fc.tuple(sockArb, transportTarget).map(([i, t]) => new Connect(i, t))),
      weighted(2, fc.tuple(sockArb, transportTarget).map(([i, t]) => new RestartIce(i, t))),
      weighted(4, produce),
      weighted(4, consume),
      weighted(4, trackControl),
      weighted(2, fc.tuple(sockArb, fc.constantFrom<'own' | 'other'>('own', 'own', 'other')).map(([i, w]) => new ResumeConsumer(i, w))),
      weighted(3, producerOp),
      weighted(3, moderate),
      weighted(3, fc.tuple(sockArb, sourceArb).map(([i, s]) => new MuteRequest(i, s))),
      weighted(2, sockArb.map((i) => new RoomSync(i))),
      weighted(2, fc.tuple(sockArb, fc.constantFrom<Privileged['request']>('listPeers', 'kick', 'end', 'mute')).map(([i, r]) => new Privileged(i, r))),
      weighted(2, malformed),
    ),
  ],
  { maxCommands: 45, size: 'max' },
);

// Classes: five sockets, the first two usually staff (teacher, assistant), the others students.
const classSock = fc.nat({ max: CLASS_SOCKS - 1 });
const staffSock = fc.nat({ max: 1 });
const studentSock = fc.integer({ min: 2, max: CLASS_SOCKS - 1 });
/** The role a class socket usually joins with. */
const classRole = (i: number): FlowRole => (i === 0 ? 'teacher' : i === 1 ? 'assistant' : 'student');
const handVersion = fc.constantFrom<HandMove['version']>('current', 'current', 'current', 'stale', 'none');
const classCommands = fc.commands<FlowModel, FlowReal, false>(
  [
    fc.oneof(
      // Students on their own hands (and, now and then, a staff move or another's hand: FORBIDDEN_ROLE / BAD_TRANSITION).
      weighted(
        8,
        fc
          .tuple(
            studentSock,
            fc.constantFrom<HandAction>('raise', 'raise', 'raise', 'accept', 'accept', 'lower', 'decline', 'invite', 'remove'),
            fc.constantFrom<HandTarget>('none', 'none', 'none', 'none', 'self', 2, 3, 4, 0),
            handVersion,
          )
          .map(([i, a, t, v]) => new HandMove(i, a, t, v)),
      ),
      // Staff on a student's hand, naming the version they saw (or a stale one, or none); without a target, or on themselves, or on a dropped student's hand.
      weighted(
        8,
        fc
          .tuple(
            staffSock,
            fc.constantFrom<HandAction>('invite', 'invite', 'invite', 'remove', 'remove', 'lower', 'raise', 'accept'),
            fc.constantFrom<HandTarget>('raised', 'raised', 'raised', 'onstage', 'onstage', 2, 3, 4, 'none', 'self', 1, 'orphan', 'nobody'),
            handVersion,
          )
          .map(([i, a, t, v]) => new HandMove(i, a, t, v)),
      ),
      // Staff working the queue as the class page does: invite the first raised hand, remove one on stage.
      weighted(4, fc.tuple(staffSock, fc.constantFrom<[HandAction, HandTarget]>(['invite', 'raised'], ['invite', 'raised'], ['remove', 'onstage'])).map(([i, [a, t]]) => new HandMove(i, a, t, 'current'))),
      weighted(3, classSock.map((i) => new Hands(i))),
      weighted(
        3,
        fc
          .tuple(
            classSock,
            fc.constantFrom<ChatText>('short', 'short', 'lines', 'emoji', 'longest', 'empty', 'blank', 'tooLong', 'control'),
            fc.constantFrom<Chat['to']>('class', 'staff', 'staff', undefined),
            fc.constantFrom(1, 1, 1, 2, CHAT_LIMIT + 1),
          )
          .map(([i, t, to, k]) => new Chat(i, t, to, k)),
      ),
      // Back in: mostly in its usual role, now and then another, or with a token that must be refused.
      weighted(3, classSock.map((i) => new Ready(i, 'class', classRole(i), i < 2 ? ['send', 'recv'] : ['recv']))),
      weighted(
        1,
        fc
          .tuple(classSock, fc.constantFrom<FlowRole>('teacher', 'assistant', 'student', 'student', 'listener', 'participant'), fc.constantFrom<JoinToken>('fresh', 'fresh', 'reused', 'wrongKind', 'expired', 'otherRoom'))
          .map(([i, role, t]) => new Join(i, 'class', role, t)),
      ),
      weighted(1, classSock.map((i) => new Leave(i))),
      weighted(1, classSock.map((i) => new Reconnect(i))),
      // A student's send transport and tracks, before and after the stage; the staff's.
      weighted(3, fc.tuple(classSock, fc.constantFrom<'send' | 'recv'>('send', 'send', 'recv'), fc.constantFrom(1, 1, 2)).map(([i, d, b]) => new CreateTransport(i, d, b))),
      weighted(1, fc.tuple(classSock, transportTarget).map(([i, t]) => new Connect(i, t))),
      weighted(4, produceBy(classSock)),
      weighted(3, consumeBy(classSock, ['any', 'any', 'any', 'default', 'own', 'random'])),
      weighted(1, trackControlBy(classSock)),
      weighted(2, producerOpBy(classSock)),
      // Always naming a source: see the note on muting a student on stage in the report.
      weighted(2, fc.tuple(staffSock, fc.constantFrom<'mute' | 'unmute'>('mute', 'unmute'), studentSock, fc.constantFrom<TrackSource>('microphone', 'camera', 'screen')).map(([i, a, t, s]) => new Moderate(i, a, t, s))),
      weighted(1, fc.tuple(studentSock, sourceArb).map(([i, s]) => new MuteRequest(i, s))),
      weighted(1, fc.tuple(classSock, fc.constantFrom<Privileged['request']>('listPeers', 'kick', 'end')).map(([i, r]) => new Privileged(i, r))),
    ),
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
    // The listener is on the other worker's router (a broadcast spreads from its first listener),
    // fed by a pipe: a pipe transport on each router, a pipe consumer and a pipe producer.
    expect(baseline).toEqual({ routers: 2, transports: 2 + 2, producers: 1 + 1, consumers: 1 + 1 });
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
      const states = ['fresh', 'victimListener', 'ownBroadcaster', 'ownListener', 'ownModerator', 'callParticipant', 'callModerator'] as const;
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
            else if (state === 'callParticipant' || state === 'callModerator') {
              // In a call with someone else whose tracks it receives, publishing its own.
              const other = await calling(`a${n}-p`, room, 'participant', ['microphone', 'camera']);
              helpers.push(other);
              a = await consumingAll(await calling(`a${n}`, room, state === 'callModerator' ? 'moderator' : 'participant', ['microphone', 'screen']), other);
              await consumingAll(other, a);
            } else {
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
          // A broadcast, a call or a class in turn. A call: a publisher, a participant receiving it
          // and sharing a screen, a moderator. A class: a teacher publishing, a student on stage
          // and another receiving them both.
          const shape = (['broadcast', 'call', 'class'] as const)[mutatedRuns++ % 3]!;
          const call = shape === 'call';
          const room = shape === 'broadcast' ? `atk-b${n}` : `atk-b${n}-${shape}`;
          let cast: Attacker[];
          if (shape === 'class') {
            const teacher = await calling(`b${n}.1`, room, 'teacher', ['microphone', 'camera']);
            const onStage = await studying(`b${n}.2`, room, teacher, true);
            const student = await consumingAll(await studying(`b${n}.3`, room, teacher, false), onStage);
            await consumingAll(teacher, onStage);
            cast = [await consuming(`b${n}.0`, VICTIM), teacher, onStage, student, await ctx.connect(`b${n}.4`)];
          } else if (call) {
            const publisher = await calling(`b${n}.1`, room, 'participant', ['microphone', 'camera']);
            const sharer = await consumingAll(await calling(`b${n}.2`, room, 'participant', ['screen', 'screen-audio']), publisher);
            await consumingAll(publisher, sharer);
            const moderator = await consumingAll(await calling(`b${n}.3`, room, 'moderator', []), publisher);
            cast = [await consuming(`b${n}.0`, VICTIM), publisher, sharer, moderator, await ctx.connect(`b${n}.4`)];
          } else {
            cast = [
              await consuming(`b${n}.0`, VICTIM),
              await publishing(`b${n}.1`, room),
              await consuming(`b${n}.2`, room),
              await moderating(`b${n}.3`, room),
              await ctx.connect(`b${n}.4`),
            ];
          }
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
        fc.asyncProperty(
          fc.oneof(
            { weight: 3, arbitrary: fc.tuple(fc.constantFrom<Scene>('call', 'mutedCall', 'broadcast', 'none'), flowCommands) },
            { weight: 2, arbitrary: fc.tuple(fc.constant<Scene>('class'), classCommands) },
          ),
          async ([scene, commands]) => {
          const n = ++runNo;
          const count = scene === 'class' ? CLASS_SOCKS : FLOW_SOCKS;
          const real: FlowReal = {
            room: `atk-c${n}`,
            socks: await Promise.all(Array.from({ length: count }, (_, i) => ctx.connect(`c${n}.${i}`))),
            lastToken: [],
            consumers: Array.from({ length: count }, () => []),
            staffChats: [],
          };
          attackerRooms.add(real.room);
          attackerRooms.add(roomOf('call', real));
          attackerRooms.add(roomOf('class', real));
          const model: FlowModel = { socks: Array.from({ length: count }, () => emptySock()), seat: undefined, broadcast: undefined, sources: new Map(), hands: { version: 0, hands: [] } };
          try {
            // Checked like any step: a scene is steps run in a fixed order.
            for (const step of scenes[scene]()) await step.run(model, real);
            await fc.asyncModelRun(() => ({ model, real }), commands);
            for (const a of real.socks) a.checkEvents();
            // A question to the staff reached nobody else.
            for (const a of real.socks) {
              for (const e of a.raw.events) {
                const id = e.event === 'chat:message' ? (e.payload as { message?: { id?: string } }).message?.id : undefined;
                const chat = real.staffChats.find((c) => c.id === id);
                if (chat && !chat.to.has(a)) ctx.fail(`flow ${n}: ${a.label} was given a question to the staff (${id})`);
              }
            }
            await checkInvariants(`flow ${n}`);
            for (const a of real.socks) a.close();
          } finally {
            ctx.closeAll();
          }
        }),
        settings(3, 80),
      );
      console.log(`[fuzz] flow steps by answer: ${JSON.stringify(Object.fromEntries([...flowCoverage].sort()))}`);
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
            fc.array(fc.record({ count: fc.integer({ min: 20, max: 520 }), messages: fc.array(randomMessage, { minLength: 5, maxLength: 20 }) }), { minLength: 1, maxLength: 3 }),
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
                  // Default: 50 a second plus a burst of 300 per 10 s; 400 at once is past both.
                  if (flood.count >= 400 && refusedForRate === 0) lctx.fail(`${a.label} sent ${flood.count} messages at once and none was rate limited`);
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
    console.log(`[fuzz] replies by method: ${JSON.stringify(ctx.stats.byMethod)}`);
    // The call's requests were not only refused: the builders reached the states where they succeed.
    if (SCALE >= 1) {
      for (const method of ['produce', 'consume', 'track.view', 'setPreferredLayers', 'room.sync', 'mute.request', 'moderate', 'pauseProducer', 'resumeProducer']) {
        expect(ctx.stats.byMethod[method]?.['OK'] ?? 0, `${method} answered OK`).toBeGreaterThan(0);
      }
    }
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
