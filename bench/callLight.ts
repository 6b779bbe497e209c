/**
 * One load-generator process of the call benchmark with light participants: each speaks our
 * signaling directly, connects its send and receive transports with werift (pure TypeScript
 * ICE + DTLS + SRTP; no codec), publishes pre-encoded Opus and VP8 in three simulcast layers
 * (bench/lib/lightMedia.ts) as RTP, and receives everyone else's tracks by the grid policy
 * without decoding them. Started by bench/call.ts over IPC; not meant to be run by hand.
 *
 * With `role: 'student'` (bench/class.ts) a participant joins a class receive-only: one receive
 * transport, nothing published, the teacher's camera viewed large, transport-cc feedback sent so
 * the node's bandwidth estimate (and its layer policy) works as for a browser.
 *
 * Media latency: every packet carries the abs-capture-time header extension (the host's wall
 * clock when it was sent, NTP format), which the SFU forwards untouched, so a receiver on the
 * same host reads each packet's age: sender SRTP → UDP → SFU → UDP → receiver SRTP. (The RTP
 * timestamp would not do: the SFU shifts a simulcast consumer's by up to 75 ms when it switches
 * layers, as it must.)
 */
import { randomInt } from 'node:crypto';
import * as hdr from 'hdr-histogram-js';
import { io } from 'socket.io-client';
import { RTCPeerConnection, RTCRtpCodecParameters, RtcpPayloadSpecificFeedback, RtcpSenderInfo, RtcpSrPacket, RtpHeader, type RTCDtlsTransport } from 'werift';
import { TokenService } from '../src/auth/tokens.js';
import { ChorusClientError, pacedRequest, request, type ClientSocket } from '../src/client/signaling.js';
import type { RequestOf, Responses } from '../src/protocol/messages.js';
import type { TrackInfo } from '../src/protocol/room.js';
import { RoomView } from '../src/protocol/roomView.js';
import { nodeUrl } from '../src/client/nodeLink.js';
import type { FromParent, ParticipantsConfig, ToParent } from './lib/callMessages.js';
import { answerDtlsParameters, consumerOfferSdp, type ConsumerRtpParameters, type DtlsParameters, type IceCandidate, type IceParameters } from './lib/consumerSdp.js';
import { loadLightMedia, packetizeVp8, vp8KeyframeWidth, type LightMedia } from './lib/lightMedia.js';
import { RtpReceiveStats, windowDelta, type RtpSnapshot } from './lib/rtpStats.js';
import { TRANSPORT_CC_URI, TwccFeedback } from './lib/twccFeedback.js';
import { startDtlsWithoutPause } from './lib/weriftDtlsStart.js';

const config = JSON.parse(process.argv[2] ?? '{}') as ParticipantsConfig;
if (!config.url || !config.media) throw new Error('callLight.ts is started by bench/call.ts');
process.on('disconnect', () => process.exit(1));
const send = (m: ToParent): void => {
  if (process.connected) process.send?.(m);
};

const tokens = new TokenService(new TextEncoder().encode(config.secret), 3600);
const media: LightMedia = loadLightMedia(config.media, config.fps);
const role = config.role ?? 'participant';
const student = role === 'student';
const AUDIO_PT = 111;
const VIDEO_PT = 96;
const FREEZE_MS = 500;
const ABS_CAPTURE_TIME = 'http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time';
const ABS_CAPTURE_ID = 5;

/** The host's wall clock in ms, finer than Date.now(); the same in every process on the host. */
const wallMs = (): number => performance.timeOrigin + performance.now();
const rtpClock = (ms: number, clockRate: number): number => Math.floor((ms * clockRate) / 1000) % 0x100000000;
/** NTP time (RFC 3550 4): seconds since 1900 in the high 32 bits, the fraction in the low. */
function ntp(ms: number): bigint {
  const seconds = Math.floor(ms / 1000) + 2_208_988_800;
  const fraction = Math.floor(((ms % 1000) / 1000) * 0x100000000);
  return (BigInt(seconds) << 32n) | BigInt(fraction);
}
const fromNtp = (ntpTime: bigint): number => Number(ntpTime >> 32n) * 1000 - 2_208_988_800_000 + (Number(ntpTime & 0xffffffffn) / 0x100000000) * 1000;
function captureTime(ms: number): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeBigUInt64BE(ntp(ms));
  return payload;
}

/** Ages in µs, kept whole (HdrHistogram, 3 significant digits) rather than as samples. */
const histogram = (): hdr.Histogram => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
let latency = { audio: histogram(), video: histogram() };
let measuring = false;
let windowStart = 0;
let frames = 0;
let freezes = 0;
/** Packets that came without their capture time: the SFU dropped the extension (reported, never expected). */
let missingCaptureTime = 0;
/** Tracks published after a participant joined that it failed to subscribe to. */
let subscribeFailures = 0;

/** One RTP stream this process sends. */
interface Outgoing {
  ssrc: number;
  seq: number;
  packets: number;
  octets: number;
  lastTs: number;
  /** Video: the next frame of its layer file, and the picture id. */
  cursor: number;
  pictureId: number;
  /** Video: keyframe requests (PLI/FIR) the SFU sent for this layer. */
  keyframeRequests: number;
}

/** One RTP stream a participant receives (a consumer). */
interface Incoming {
  kind: 'audio' | 'video';
  clockRate: number;
  stats: RtpReceiveStats;
  /** The id the SFU gave abs-capture-time on this consumer. */
  captureId: number | undefined;
  bytes: number;
  lastFrameAt?: number;
  firstAt?: number;
  /** Video: the width of the last keyframe received (which simulcast layer arrives). */
  keyframeWidth?: number;
}

function outgoing(): Outgoing {
  return { ssrc: randomInt(1, 0x7fffffff), seq: randomInt(0, 0xffff), packets: 0, octets: 0, lastTs: 0, cursor: 0, pictureId: randomInt(0, 0x7fff), keyframeRequests: 0 };
}

async function connect(socket: ClientSocket, transport: NonNullable<Responses['join']['transport']>): Promise<{ pc: RTCPeerConnection; dtls: RTCDtlsTransport }> {
  const pc = new RTCPeerConnection({
    iceServers: [],
    iceUseIpv6: false,
    codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2 })], video: [] },
    headerExtensions: { audio: [], video: [] },
  });
  // One placeholder m-line brings up ICE and DTLS; every stream then rides the bundled transport
  // with its own SSRC, as the SFU's parameters say.
  const placeholder: ConsumerRtpParameters = { mid: '0', codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2 }] };
  await pc.setRemoteDescription({
    type: 'offer',
    sdp: consumerOfferSdp({
      iceParameters: transport.iceParameters as IceParameters,
      iceCandidates: transport.iceCandidates as IceCandidate[],
      dtlsParameters: transport.dtlsParameters as DtlsParameters,
      rtpParameters: placeholder,
    }),
  });
  startDtlsWithoutPause(pc);
  const answer = await pc.createAnswer();
  await request(socket, 'connectTransport', { transportId: transport.id, dtlsParameters: answerDtlsParameters(answer.sdp) });
  const dtls = pc.dtlsTransports[0];
  if (!dtls) throw new Error('werift made no DTLS transport');
  const connected = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`transport ${transport.id} did not connect within 10 s`)), 10_000);
    dtls.onStateChange.subscribe((state) => {
      if (state === 'connected') (clearTimeout(timer), resolve());
      if (state === 'failed') (clearTimeout(timer), reject(new Error(`DTLS failed on ${transport.id}`)));
    });
  });
  await pc.setLocalDescription(answer);
  await connected;
  return { pc, dtls };
}

/**
 * What this participant can receive: Opus and VP8 as the router offers them, abs-capture-time;
 * with `transportCc` also transport-wide sequence numbers and their feedback, else no feedback.
 */
function receiveCapabilities(routerRtpCapabilities: unknown, transportCc: boolean): RequestOf<'consume'>['rtpCapabilities'] {
  type Caps = RequestOf<'consume'>['rtpCapabilities'];
  const router = routerRtpCapabilities as Caps;
  const codecs = (router.codecs ?? []).filter((c) => /^(audio\/opus|video\/vp8)$/i.test(c.mimeType));
  const uris = transportCc ? [ABS_CAPTURE_TIME, TRANSPORT_CC_URI] : [ABS_CAPTURE_TIME];
  const headerExtensions = (router.headerExtensions ?? []).filter((e) => uris.includes(e.uri));
  return { codecs: codecs.map((c) => ({ ...c, rtcpFeedback: transportCc ? (c.rtcpFeedback ?? []).filter((f) => f.type === 'transport-cc') : [] })), headerExtensions };
}

class LightParticipant {
  readonly audio = outgoing();
  readonly layers = media.layers.map(() => outgoing());
  readonly cname = `light-${randomInt(0, 0x7fffffff).toString(36)}`;
  readonly #incoming = new Map<number, Incoming>();
  /** Remote tracks consumed: producer id → consumer id (video only needs it, for views). */
  readonly #consumers = new Map<string, { consumerId: string; kind: 'audio' | 'video'; peerId: string; stream?: Incoming }>();
  readonly #view = new RoomView();
  #socket: ClientSocket | undefined;
  #peerId = '';
  #send: RTCDtlsTransport | undefined;
  #pcs: RTCPeerConnection[] = [];
  #recvTransportId = '';
  #recv: RTCDtlsTransport | undefined;
  readonly #twcc = student ? new TwccFeedback(randomInt(1, 0x7fffffff)) : undefined;
  /** The id the SFU gave the transport-wide sequence number on this transport's consumers. */
  #twccId: number | undefined;
  /** The spatial layer the node last said each video consumer forwards (null: none). */
  readonly #layers = new Map<string, number | null>();
  freezes = 0;
  #capabilities: RequestOf<'consume'>['rtpCapabilities'] = {};
  #speaker: string | null = null;
  #closed = false;
  publishing = false;

  constructor(readonly spec: ParticipantsConfig['participants'][number]) {}

  async join(): Promise<{ joinMs: number; allMediaMs: number | null }> {
    const started = performance.now();
    const token = this.spec.token ?? (await tokens.mint({ room: this.spec.room, identity: this.spec.identity, role, kind: role === 'participant' ? 'call' : 'class' }));
    // In a cluster the entry (nginx) may land us on a node that does not hold the call: it answers
    // WRONG_NODE with the node that does, and we join there, as the SDK does.
    let url = config.url;
    let socket: ClientSocket;
    let info: Responses['join'];
    for (let hop = 0; ; hop++) {
      socket = await this.#open(url);
      try {
        info = await request(socket, 'join', { roomId: this.spec.room, token, transport: {} });
        break;
      } catch (error) {
        const next = error instanceof ChorusClientError && error.code === 'WRONG_NODE' ? nodeUrl(error.redirectUrl) : undefined;
        if (!next || hop >= 3) throw error;
        socket.off();
        socket.disconnect();
        url = next;
      }
    }
    this.#peerId = info.peerId;
    // The snapshot now, before anything else is awaited: the deltas that follow build on it.
    this.#view.reset(info.room);
    // A receive-only role's one transport is its receive transport.
    const recvTransport = student ? info.transport : info.recvTransport;
    if (!recvTransport || (!student && !info.transport)) throw new Error(student ? 'a student gets a receive transport with its join' : 'a call participant gets a send and a receive transport with its join');
    this.#capabilities = receiveCapabilities(info.routerRtpCapabilities, student);
    this.#recvTransportId = recvTransport.id;
    const [sending, receiving] = await Promise.all([student ? undefined : connect(socket, info.transport!), connect(socket, recvTransport)]);
    this.#pcs = sending ? [sending.pc, receiving.pc] : [receiving.pc];
    this.#recv = receiving.dtls;
    receiving.dtls.onRtp.subscribe((rtp) => this.#onRtp(rtp.header, rtp.serializeSize, rtp.payload));
    if (sending) await this.#publish(socket, info.transport!.id, sending.dtls);
    const joinMs = performance.now() - started;
    return { joinMs, allMediaMs: await this.#consumePresent(info, started) };
  }

  /** Microphone and camera, published on the send transport. */
  async #publish(socket: ClientSocket, transportId: string, dtls: RTCDtlsTransport): Promise<void> {
    this.#send = dtls;
    dtls.onRtcp.subscribe((packet) => this.#onFeedback(packet));
    await request(socket, 'produce', {
      transportId,
      kind: 'audio',
      source: 'microphone',
      rtpParameters: {
        codecs: [{ mimeType: 'audio/opus', payloadType: AUDIO_PT, clockRate: 48000, channels: 2, parameters: { useinbandfec: 1, minptime: 10 }, rtcpFeedback: [] }],
        headerExtensions: [{ uri: ABS_CAPTURE_TIME, id: ABS_CAPTURE_ID }],
        encodings: [{ ssrc: this.audio.ssrc }],
        rtcp: { cname: this.cname, reducedSize: true },
      },
    });
    if (config.video) {
      await request(socket, 'produce', {
        transportId,
        kind: 'video',
        source: 'camera',
        video: { width: config.width, height: config.height },
        rtpParameters: {
          codecs: [{ mimeType: 'video/VP8', payloadType: VIDEO_PT, clockRate: 90000, rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }] }],
          headerExtensions: [{ uri: ABS_CAPTURE_TIME, id: ABS_CAPTURE_ID }],
          encodings: this.layers.map((l) => ({ ssrc: l.ssrc, scalabilityMode: 'L1T1' })),
          rtcp: { cname: this.cname, reducedSize: true },
        },
      });
    }
    this.publishing = true;
  }

  /** The remote tracks present at join, consumed; answers when each has sent its first packet. */
  async #consumePresent(info: Responses['join'], started: number): Promise<number | null> {
    // Everyone already in the call: consumed now; join is done once each has been heard/seen.
    // A few subscriptions at a time, as the SDK does.
    const present = info.room.participants.filter((p) => p.peerId !== this.#peerId).flatMap((p) => p.tracks.map((track) => ({ peerId: p.peerId, track })));
    const firsts: Incoming[] = [];
    const next = async (): Promise<void> => {
      for (let item = present.shift(); item; item = present.shift()) {
        const stream = await this.#consume(item.peerId, item.track);
        if (stream) firsts.push(stream);
      }
    };
    await Promise.all(Array.from({ length: 4 }, next));
    let allMediaMs: number | null = null;
    if (firsts.length > 0) {
      allMediaMs = await new Promise<number | null>((resolve) => {
        const deadline = performance.now() + 10_000;
        const check = setInterval(() => {
          if (firsts.every((s) => s.firstAt !== undefined)) (clearInterval(check), resolve(Math.max(...firsts.map((s) => s.firstAt!)) - started));
          else if (performance.now() > deadline) (clearInterval(check), resolve(null));
        }, 10);
      });
    }
    return allMediaMs;
  }

  /** A connection to `url`, connected, with this participant's handlers. */
  async #open(url: string): Promise<ClientSocket> {
    const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false }) as ClientSocket;
    this.#socket = socket;
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', (error) => reject(new Error(`connect to ${url}: ${error.message}`)));
    });
    socket.on('room:delta', (delta) => {
      const { outcome, changes } = this.#view.apply(delta);
      if (outcome === 'gap') void this.#resync();
      for (const change of changes) if (change.type === 'published') this.#consumeLater(change.peerId, change.track);
    });
    socket.on('consumer:layers', ({ consumerId, spatialLayer }) => void this.#layers.set(consumerId, spatialLayer));
    socket.on('speaker:changed', ({ peerId }) => {
      const previous = this.#speaker;
      this.#speaker = peerId;
      for (const p of [previous, peerId]) if (p) void this.#showCamera(p);
    });
    return socket;
  }

  async #resync(): Promise<void> {
    if (!this.#socket) return;
    const snapshot = await request(this.#socket, 'room.sync', {}).catch(() => undefined);
    if (!snapshot) return;
    for (const change of this.#view.reset(snapshot)) if (change.type === 'published') this.#consumeLater(change.peerId, change.track);
  }

  /** A track published after the join: subscribed in the background; a failure is counted, not thrown. */
  #consumeLater(peerId: string, track: TrackInfo): void {
    this.#consume(peerId, track).catch((error: unknown) => {
      subscribeFailures++;
      process.stderr.write(`[callLight] ${this.spec.identity} could not subscribe to ${track.trackId}: ${error instanceof Error ? error.message : String(error)}\n`);
    });
  }

  async #consume(peerId: string, track: TrackInfo): Promise<Incoming | undefined> {
    const socket = this.#socket;
    if (!socket || peerId === this.#peerId || this.#consumers.has(track.trackId) || this.#closed) return undefined;
    if (track.kind === 'video' && !config.video) return undefined;
    this.#consumers.set(track.trackId, { consumerId: '', kind: track.kind, peerId });
    try {
      const answer = await pacedRequest(socket, 'consume', { transportId: this.#recvTransportId, producerId: track.trackId, rtpCapabilities: this.#capabilities, ...(track.kind === 'audio' ? { paused: false } : {}) });
      const parameters = answer.rtpParameters as ConsumerRtpParameters;
      const ssrc = parameters.encodings?.[0]?.ssrc;
      if (ssrc === undefined) throw new Error(`consumer ${answer.consumerId} has no SSRC`);
      const extensionId = (uri: string): number | undefined => parameters.headerExtensions?.find((e) => (e as { uri?: string }).uri === uri)?.id;
      const captureId = extensionId(ABS_CAPTURE_TIME);
      this.#twccId ??= extensionId(TRANSPORT_CC_URI);
      const stream: Incoming = { kind: answer.kind, clockRate: parameters.codecs[0]!.clockRate, stats: new RtpReceiveStats(parameters.codecs[0]!.clockRate), captureId, bytes: 0 };
      this.#incoming.set(ssrc, stream);
      this.#consumers.set(track.trackId, { consumerId: answer.consumerId, kind: answer.kind, peerId, stream });
      if (answer.kind === 'video') await this.#showCamera(peerId);
      if (answer.paused) await pacedRequest(socket, 'resumeConsumer', { consumerId: answer.consumerId });
      return stream;
    } catch (error) {
      // A track that ended while we subscribed is simply gone; anything else is the bench's failure.
      if (error instanceof ChorusClientError && /NOT_FOUND/.test(error.code)) return undefined;
      throw error;
    }
  }

  /** Grid policy: every camera a small tile (the low layer), the active speaker's large. */
  async #showCamera(peerId: string): Promise<void> {
    const socket = this.#socket;
    for (const consumer of this.#consumers.values()) {
      if (consumer.kind !== 'video' || consumer.peerId !== peerId || !consumer.consumerId || !socket) continue;
      const size = peerId === this.#speaker ? config.speaker : config.tile;
      await pacedRequest(socket, 'track.view', { consumerId: consumer.consumerId, visible: true, ...size }).catch(() => undefined);
    }
  }

  #onRtp(header: RtpHeader, bytes: number, payload: Buffer): void {
    const arrived = performance.now();
    // Every packet counts for the estimate, the SFU's probes (an SSRC of their own) too.
    if (this.#twcc && this.#twccId !== undefined) {
      const seq = header.extensions.find((e) => e.id === this.#twccId)?.payload;
      if (seq && seq.length >= 2) this.#twcc.onPacket(seq.readUInt16BE(0), arrived);
    }
    const stream = this.#incoming.get(header.ssrc);
    if (!stream) return;
    const marker = header.marker;
    stream.firstAt ??= arrived;
    if (stream.kind === 'video') stream.keyframeWidth = vp8KeyframeWidth(payload) ?? stream.keyframeWidth;
    stream.stats.onPacket(header.sequenceNumber, header.timestamp, arrived);
    if (!measuring) {
      if (stream.kind === 'video' && marker) stream.lastFrameAt = arrived;
      return;
    }
    stream.bytes += bytes;
    const capture = header.extensions.find((e) => e.id === stream.captureId)?.payload;
    if (!capture || capture.length < 8) {
      missingCaptureTime++;
      return;
    }
    const ageMs = Math.max(0, wallMs() - fromNtp(capture.readBigUInt64BE(0)));
    if (stream.kind === 'audio') latency.audio.recordValue(Math.round(ageMs * 1000));
    else if (marker) {
      // A frame is complete with its last packet: its age then is what a viewer waits.
      latency.video.recordValue(Math.round(ageMs * 1000));
      frames++;
      if (stream.lastFrameAt !== undefined && arrived - stream.lastFrameAt > FREEZE_MS) (freezes++, this.freezes++);
      stream.lastFrameAt = arrived;
    }
  }

  /** A keyframe request for a layer: that layer restarts its file, which opens on a keyframe. */
  #onFeedback(packet: unknown): void {
    if (!(packet instanceof RtcpPayloadSpecificFeedback)) return;
    const feedback = packet.feedback as { mediaSsrc?: number; fir?: Array<{ ssrc: number }> };
    const asked = new Set([feedback.mediaSsrc, ...(feedback.fir ?? []).map((e) => e.ssrc)]);
    for (const layer of this.layers) if (asked.has(layer.ssrc)) (layer.cursor = 0, layer.keyframeRequests++);
  }

  sendAudio(now: number): void {
    const payload = media.opus[this.audio.cursor % media.opus.length]!;
    this.audio.cursor++;
    this.#rtp(this.audio, AUDIO_PT, rtpClock(now, 48000), true, payload, captureTime(now));
  }

  sendVideoFrame(now: number): void {
    const ts = rtpClock(now, 90000);
    const capture = captureTime(now);
    this.layers.forEach((layer, i) => {
      const frames = media.layers[i]!.frames;
      const frame = frames[layer.cursor % frames.length]!;
      layer.cursor = (layer.cursor + 1) % frames.length;
      layer.pictureId = (layer.pictureId + 1) & 0x7fff;
      const payloads = packetizeVp8(frame, layer.pictureId);
      payloads.forEach((payload, j) => this.#rtp(layer, VIDEO_PT, ts, j === payloads.length - 1, payload, capture));
    });
  }

  #rtp(stream: Outgoing, payloadType: number, timestamp: number, marker: boolean, payload: Buffer, capture: Buffer): void {
    if (!this.#send || this.#closed) return;
    stream.seq = (stream.seq + 1) & 0xffff;
    stream.packets++;
    stream.octets += payload.length;
    stream.lastTs = timestamp;
    const header = new RtpHeader({ payloadType, sequenceNumber: stream.seq, timestamp, ssrc: stream.ssrc, marker, extension: true, extensionProfile: 0xbede, extensions: [{ id: ABS_CAPTURE_ID, payload: capture }] });
    this.#send.sendRtp(payload, header).catch(() => undefined);
  }

  /** Sender reports tie each stream's RTP clock to the wall clock: the SFU needs them to switch layers. */
  sendReports(now: number): void {
    if (!this.#send || this.#closed) return;
    const streams = [this.audio, ...(config.video ? this.layers : [])];
    const packets = streams
      .filter((s) => s.packets > 0)
      .map((s, i) => new RtcpSrPacket({ ssrc: s.ssrc, senderInfo: new RtcpSenderInfo({ ntpTimestamp: ntp(now), rtpTimestamp: rtpClock(now, i === 0 ? 48000 : 90000), packetCount: s.packets, octetCount: s.octets }) }));
    if (packets.length > 0) this.#send.sendRtcp(packets).catch(() => undefined);
  }

  /** Transport-cc feedback for what arrived since the last call. */
  sendFeedback(): void {
    const packet = this.#twcc?.take();
    if (packet && this.#recv && !this.#closed) this.#recv.sendRtcp([{ serialize: () => packet }] as unknown as Parameters<RTCDtlsTransport['sendRtcp']>[0]).catch(() => undefined);
  }

  /**
   * At the end of the window: a video whose last frame is older than a freeze is frozen now
   * (a gap is otherwise counted only when the next frame ends it); and per video, the layer
   * the node says it forwards and the width of the last keyframe received.
   */
  videoState(now: number): Array<{ frozen: boolean; spatialLayer: string; keyframeWidth: string }> {
    return [...this.#consumers.values()]
      .filter((c) => c.kind === 'video' && c.consumerId)
      .map(({ consumerId, stream }) => {
        const layer = this.#layers.get(consumerId);
        return {
          frozen: stream?.lastFrameAt === undefined || now - stream.lastFrameAt > FREEZE_MS,
          spatialLayer: layer === undefined || layer === null ? 'none' : String(layer),
          keyframeWidth: stream?.keyframeWidth === undefined ? 'none' : String(stream.keyframeWidth),
        };
      });
  }

  snapshot(): Map<number, { stats: RtpSnapshot; bytes: number }> {
    return new Map([...this.#incoming].map(([ssrc, s]) => [ssrc, { stats: s.stats.snapshot(), bytes: s.bytes }]));
  }

  get streams(): number {
    return this.#incoming.size;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const socket = this.#socket;
    if (socket?.connected) await request(socket, 'leave', {}, 2000).catch(() => undefined);
    socket?.disconnect();
    await Promise.all(this.#pcs.map((pc) => pc.close().catch(() => undefined)));
  }
}

const participants: LightParticipant[] = [];

/**
 * One clock for every participant of the process: audio every 20 ms, a video frame every
 * 1/fps s, sender reports every second. A late timer sends what fell due (at most a few), so
 * the rates hold on a busy machine without bursts that would look like loss.
 */
function startPump(): () => void {
  const start = wallMs();
  const due = { audio: 0, video: 0, reports: 0, feedback: 0 };
  const timer = setInterval(() => {
    const now = wallMs();
    const elapsed = now - start;
    const live = participants.filter((p) => p.publishing);
    for (let n = 0; due.audio * 20 <= elapsed && n < 3; n++, due.audio++) for (const p of live) p.sendAudio(now);
    if (config.video) for (let n = 0; (due.video * 1000) / config.fps <= elapsed && n < 2; n++, due.video++) for (const p of live) p.sendVideoFrame(now);
    if (due.reports * 1000 <= elapsed) {
      due.reports++;
      for (const p of live) p.sendReports(now);
    }
    // Transport-cc feedback every 100 ms, as often as a browser sends it at these rates.
    if (student && due.feedback * 100 <= elapsed) {
      due.feedback = Math.floor(elapsed / 100) + 1;
      for (const p of participants) p.sendFeedback();
    }
    // Far behind (the process stalled): start counting again rather than flood.
    if (elapsed - due.audio * 20 > 200) due.audio = Math.ceil(elapsed / 20);
    if (config.video && elapsed - (due.video * 1000) / config.fps > 500) due.video = Math.ceil((elapsed * config.fps) / 1000);
  }, 5);
  return () => clearInterval(timer);
}

let stopPump: (() => void) | undefined;
let before = new Map<LightParticipant, Map<number, { stats: RtpSnapshot; bytes: number }>>();
/** What this process's publishers had sent per video layer when the window opened. */
let sentBefore: Array<{ octets: number; keyframeRequests: number }> = [];
const sentLayers = (): Array<{ octets: number; keyframeRequests: number }> =>
  media.layers.map((_, i) => participants.filter((p) => p.publishing).reduce((n, p) => ({ octets: n.octets + p.layers[i]!.octets, keyframeRequests: n.keyframeRequests + p.layers[i]!.keyframeRequests }), { octets: 0, keyframeRequests: 0 }));

function windowTotals(): { packetsReceived: number; packetsLost: number; bytesReceived: number; streams: number } {
  let packetsReceived = 0;
  let packetsLost = 0;
  let bytesReceived = 0;
  let streams = 0;
  for (const p of participants) {
    const start = before.get(p) ?? new Map();
    for (const [ssrc, end] of p.snapshot()) {
      streams++;
      const begin = start.get(ssrc);
      if (!begin) continue;
      const { received, lost } = windowDelta(begin.stats, end.stats);
      packetsReceived += received;
      packetsLost += Math.max(0, lost);
      bytesReceived += end.bytes - begin.bytes;
    }
  }
  return { packetsReceived, packetsLost, bytesReceived, streams };
}

process.on('message', (message: FromParent) => {
  void (async () => {
    switch (message.type) {
      case 'join':
        stopPump = startPump();
        for (const spec of config.participants) {
          const p = new LightParticipant(spec);
          participants.push(p);
          try {
            const { joinMs, allMediaMs } = await p.join();
            send({ type: 'joined', identity: spec.identity, joinMs, allMediaMs });
          } catch (error) {
            send({ type: 'joined', identity: spec.identity, joinMs: 0, allMediaMs: null, error: error instanceof ChorusClientError ? `${error.code}: ${error.message}` : String(error) });
          }
        }
        break;
      case 'measure-start':
        before = new Map(participants.map((p) => [p, p.snapshot()]));
        sentBefore = sentLayers();
        latency = { audio: histogram(), video: histogram() };
        frames = 0;
        freezes = 0;
        missingCaptureTime = 0;
        for (const p of participants) p.freezes = 0;
        measuring = true;
        windowStart = performance.now();
        break;
      case 'measure-stop': {
        measuring = false;
        const now = performance.now();
        const videos = participants.map((p) => ({ p, videos: p.videoState(now) }));
        const tally = (key: 'spatialLayer' | 'keyframeWidth'): Record<string, number> => {
          const counts: Record<string, number> = {};
          for (const v of videos.flatMap((x) => x.videos)) counts[v[key]] = (counts[v[key]] ?? 0) + 1;
          return counts;
        };
        const frozenAtEnd = videos.reduce((n, x) => n + x.videos.filter((v) => v.frozen).length, 0);
        send({
          type: 'measured',
          latencies: [],
          latencyHistograms: { audio: hdr.encodeIntoCompressedBase64(latency.audio), video: hdr.encodeIntoCompressedBase64(latency.video) },
          frames,
          freezes: freezes + frozenAtEnd,
          sentLayers: participants.some((p) => p.publishing)
            ? sentLayers().map((end, i) => ({ kbps: Math.round(((end.octets - (sentBefore[i]?.octets ?? 0)) * 8) / (now - windowStart)), keyframeRequests: end.keyframeRequests - (sentBefore[i]?.keyframeRequests ?? 0) }))
            : undefined,
          frozenParticipants: videos.filter((x) => x.p.freezes > 0 || x.videos.some((v) => v.frozen)).length,
          spatialLayers: tally('spatialLayer'),
          keyframeWidths: tally('keyframeWidth'),
          missingCaptureTime,
          subscribeFailures,
          ...windowTotals(),
          windowMs: performance.now() - windowStart,
        });
        break;
      }
      case 'close':
        stopPump?.();
        await Promise.all(participants.map((p) => p.close()));
        send({ type: 'closed' });
        setTimeout(() => process.exit(0), 200);
        break;
    }
  })();
});
