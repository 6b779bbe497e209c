/**
 * One load-generator process of the call benchmark: runs a share of the participants, each the
 * real SDK (CallClient) on Node WebRTC, publishing a tone and (with video) a camera in three VP8
 * simulcast layers. Started by bench/call.ts over IPC; not meant to be run by hand.
 *
 * Media latency: every camera frame carries the sender's wall clock (ms, 24 bits, with an 8-bit
 * check) painted as 32 black or white blocks across its top rows, large enough to survive VP8 at
 * the quarter-size layer. A receiver reads it back from each decoded frame and subtracts it from
 * its own clock: all processes run on one host, so it is capture → encode → SFU → decode, the
 * whole camera-to-screen path minus the display.
 */
import wrtc from '@roamhq/wrtc';
import { TokenService } from '../src/auth/tokens.js';
import { CallClient, type RemoteTrack } from '../src/client/callClient.js';
import { toneTrack } from '../test/support/nodePeer.js';
import { webrtcHandlerFactory } from '../test/support/nodePeer.js';
import type { FromParent, ParticipantsConfig, ToParent } from './lib/callMessages.js';

const config = JSON.parse(process.argv[2] ?? '{}') as ParticipantsConfig;
if (!config.url) throw new Error('callParticipants.ts is started by bench/call.ts');
process.on('disconnect', () => process.exit(1));
const send = (m: ToParent): void => {
  if (process.connected) process.send?.(m);
};

const tokens = new TokenService(new TextEncoder().encode(config.secret), 3600);
const handlerFactory = webrtcHandlerFactory();
const BLOCKS = 32;

function paint(frame: Uint8Array, width: number, value: number): void {
  const block = Math.floor(width / BLOCKS);
  const rows = block;
  for (let bit = 0; bit < BLOCKS; bit++) {
    const y = (value >>> (BLOCKS - 1 - bit)) & 1 ? 235 : 16;
    for (let r = 0; r < rows; r++) frame.fill(y, r * width + bit * block, r * width + (bit + 1) * block);
  }
}

function read(frame: { width: number; data: Uint8Array }): number | undefined {
  const block = frame.width / BLOCKS;
  let value = 0;
  for (let bit = 0; bit < BLOCKS; bit++) {
    const x = Math.floor(bit * block + block / 2);
    const y = Math.floor(block / 2);
    value = (value << 1) | ((frame.data[y * frame.width + x] ?? 0) > 126 ? 1 : 0);
  }
  return value >>> 0;
}

/** 24 bits of the ms clock and an 8-bit check, so a smeared read is thrown away. */
function encodeClock(ms: number): number {
  const t = ms & 0xffffff;
  const check = ((t >>> 16) ^ (t >>> 8) ^ t ^ 0x5a) & 0xff;
  return ((t << 8) | check) >>> 0;
}

function decodeClock(value: number, now: number): number | undefined {
  const t = value >>> 8;
  if ((((t >>> 16) ^ (t >>> 8) ^ t ^ 0x5a) & 0xff) !== (value & 0xff)) return undefined;
  // Back to a full clock near `now` (24 bits of ms wrap every 4.6 hours).
  const base = now - (now & 0xffffff);
  const full = base + t;
  return full > now + 1000 ? full - 0x1000000 : full;
}

function camera(): { track: MediaStreamTrack; stop(): void } {
  const source = new wrtc.nonstandard.RTCVideoSource();
  const track = source.createTrack();
  const { width, height } = config;
  const frame = new Uint8Array(width * height * 1.5);
  frame.fill(100, 0, width * height);
  frame.fill(128, width * height);
  const timer = setInterval(() => {
    paint(frame, width, encodeClock(Date.now()));
    source.onFrame({ width, height, data: frame });
  }, Math.round(1000 / config.fps));
  return { track: track as unknown as MediaStreamTrack, stop: () => (clearInterval(timer), track.stop()) };
}

interface Participant {
  client: CallClient;
  stop(): void;
  sinks: Array<{ stop(): void }>;
  lastFrameAt: Map<string, number>;
}

const participants: Participant[] = [];
let measuring = false;
let windowStart = 0;
let latencies: number[] = [];
let frames = 0;
let freezes = 0;

async function join(spec: ParticipantsConfig['participants'][number]): Promise<void> {
  const started = performance.now();
  const token = spec.token ?? await tokens.mint({ room: spec.room, identity: spec.identity, role: 'participant', kind: 'call' });
  const client = new CallClient({ url: config.url, roomId: spec.room, token, handlerFactory, socket: { transports: ['websocket'] }, retry: { initialMs: 200, maxMs: 2000 } });
  const tone = toneTrack(440);
  const cam = config.video ? camera() : undefined;
  const p: Participant = { client, stop: () => (tone.stop(), cam?.stop()), sinks: [], lastFrameAt: new Map() };
  participants.push(p);
  const onTrack = (track: RemoteTrack): void => {
    if (track.kind !== 'video' || !track.mediaTrack) return;
    const sink = new wrtc.nonstandard.RTCVideoSink(track.mediaTrack as never);
    p.sinks.push(sink);
    sink.onframe = ({ frame }: { frame: { width: number; height: number; data: Uint8Array } }) => {
      const now = Date.now();
      const previous = p.lastFrameAt.get(track.trackId);
      p.lastFrameAt.set(track.trackId, now);
      if (!measuring) return;
      frames++;
      if (previous !== undefined && now - previous > 500) freezes++;
      const sent = decodeClock(read(frame) ?? 0, now);
      if (sent !== undefined && now - sent >= 0 && now - sent < 10_000) latencies.push(now - sent);
    };
    // Grid policy: every tile small, the active speaker large.
    void client.setView(track.trackId, { visible: true, ...(client.activeSpeaker === track.peerId ? config.speaker : config.tile) }).catch(() => undefined);
  };
  client.on('tracksubscribed', onTrack);
  client.on('activespeaker', (speaker) => {
    for (const participant of client.participants.values()) {
      for (const track of participant.tracks.values()) {
        if (track.kind === 'video') void client.setView(track.trackId, { visible: true, ...(participant.peerId === speaker ? config.speaker : config.tile) }).catch(() => undefined);
      }
    }
  });
  try {
    await client.join();
    await client.publish(tone.track, 'microphone');
    if (cam) await client.publish(cam.track, 'camera', { video: { width: config.width, height: config.height } });
    const joinMs = performance.now() - started;
    send({ type: 'joined', identity: spec.identity, joinMs, allMediaMs: null });
  } catch (error) {
    send({ type: 'joined', identity: spec.identity, joinMs: performance.now() - started, allMediaMs: null, error: String(error) });
  }
}

async function receiveStats(): Promise<{ packetsReceived: number; packetsLost: number; bytesReceived: number; streams: number }> {
  let packetsReceived = 0;
  let packetsLost = 0;
  let bytesReceived = 0;
  let streams = 0;
  for (const p of participants) {
    for (const participant of p.client.participants.values()) {
      for (const track of participant.tracks.values()) {
        if (track.mediaTrack) streams++;
      }
    }
    const stats = await p.client.stats().catch(() => undefined);
    stats?.forEach((s: { type: string; packetsReceived?: number; packetsLost?: number; bytesReceived?: number }) => {
      if (s.type !== 'inbound-rtp') return;
      packetsReceived += s.packetsReceived ?? 0;
      packetsLost += s.packetsLost ?? 0;
      bytesReceived += s.bytesReceived ?? 0;
    });
  }
  return { packetsReceived, packetsLost, bytesReceived, streams };
}

let before = { packetsReceived: 0, packetsLost: 0, bytesReceived: 0, streams: 0 };

process.on('message', (message: FromParent) => {
  void (async () => {
    switch (message.type) {
      case 'join':
        // One after another within the process; the parent staggers processes.
        for (const spec of config.participants) await join(spec);
        break;
      case 'measure-start':
        before = await receiveStats();
        latencies = [];
        frames = 0;
        freezes = 0;
        measuring = true;
        windowStart = performance.now();
        break;
      case 'measure-stop': {
        measuring = false;
        const after = await receiveStats();
        send({
          type: 'measured',
          latencies,
          frames,
          freezes,
          packetsReceived: after.packetsReceived - before.packetsReceived,
          packetsLost: after.packetsLost - before.packetsLost,
          bytesReceived: after.bytesReceived - before.bytesReceived,
          streams: after.streams,
          windowMs: performance.now() - windowStart,
        });
        break;
      }
      case 'close':
        for (const p of participants) {
          for (const s of p.sinks) s.stop();
          await p.client.close();
          p.stop();
        }
        send({ type: 'closed' });
        setTimeout(() => process.exit(0), 200);
        break;
    }
  })();
});
