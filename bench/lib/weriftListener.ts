/**
 * A light listener for load generation: speaks our signaling protocol directly (join with its
 * receive transport → consume, flowing → connectTransport; or, with `--signaling classic`, join →
 * createTransport(recv) → consume → connectTransport → resumeConsumer) and receives the consumer
 * over a werift RTCPeerConnection (pure TypeScript ICE + DTLS + SRTP) built from an SDP offer we
 * write from mediasoup's parameters. It never decodes audio: it counts RTP packets.
 *
 * Join time = from just before minting its token to the first RTP packet whose Opus payload is
 * more than a DTX/silence frame. Loss and jitter over the steady-state window come from the RTP
 * sequence numbers and timestamps (RFC 3550), not from a WebRTC stack's stats.
 */
import { io } from 'socket.io-client';
import { RTCDtlsTransport, RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import { TokenService } from '../../src/auth/tokens.js';
import { ChorusClientError, request, type ClientSocket } from '../../src/client/signaling.js';
import type { RequestOf } from '../../src/protocol/messages.js';
import type { BenchPeer, BenchPeerFactory } from './benchPeer.js';
import { startDtlsWithoutPause } from './weriftDtlsStart.js';
import { installFastRtpHeaderParse } from './weriftFastRtp.js';
import { answerDtlsParameters, consumerOfferSdp, type ConsumerRtpParameters, type DtlsParameters, type IceCandidate, type IceParameters } from './consumerSdp.js';
import type { JoinPhase, ListenerProcConfig, ListenerResult } from './messages.js';
import { RtpReceiveStats, windowDelta, type RtpSnapshot } from './rtpStats.js';

/**
 * An Opus packet of 1–2 bytes is a TOC byte (plus padding) with no coded frame: what an encoder
 * sends for DTX/silence. The benchmark's tone encodes to tens of bytes per 20 ms packet.
 */
const MIN_AUDIO_PAYLOAD_BYTES = 3;

export async function weriftListeners(config: ListenerProcConfig): Promise<BenchPeerFactory> {
  const tokens = new TokenService(new TextEncoder().encode(config.secret), 3600);
  // werift makes one DTLS certificate per process, on the first peer connection that needs it
  // (as a browser keeps its own): made here, before the ramp, it is not charged to whichever
  // listener happens to come first.
  await RTCDtlsTransport.SetupCertificate();
  if (!config.weriftStock) installFastRtpHeaderParse();
  return (index) => new WeriftListener(index, config, tokens);
}

interface RouterCodec {
  kind: string;
  mimeType: string;
  clockRate: number;
  channels?: number;
  preferredPayloadType?: number;
  parameters?: Record<string, string | number>;
}

/**
 * What we tell the router we can receive: Opus only, no header extensions and no RTCP feedback,
 * so the consumer sends plain RTP that this listener reads without any extension parsing.
 */
function opusCapabilities(routerRtpCapabilities: unknown): RequestOf<'consume'>['rtpCapabilities'] {
  const codecs = ((routerRtpCapabilities as { codecs?: RouterCodec[] }).codecs ?? []).filter(
    (c) => c.kind === 'audio' && c.mimeType.toLowerCase() === 'audio/opus',
  );
  if (codecs.length === 0) throw new Error('the router offers no Opus');
  return { codecs: codecs.map((c) => ({ ...c, kind: 'audio' as const, rtcpFeedback: [] })), headerExtensions: [] };
}

class WeriftListener implements BenchPeer {
  readonly result: ListenerResult;
  #socket: ClientSocket | undefined;
  #pc: RTCPeerConnection | undefined;
  #stats: RtpReceiveStats | undefined;
  #baseline: RtpSnapshot | undefined;
  #inWindow = false;
  #closed = false;
  #t0 = 0;

  constructor(
    readonly index: number,
    private readonly config: ListenerProcConfig,
    private readonly tokens: TokenService,
  ) {
    this.result = { index, ok: false, phases: {} };
  }

  #mark(phase: JoinPhase): void {
    this.result.phases[phase] ??= Math.round((performance.now() - this.#t0) * 10) / 10;
  }

  /** Only the first reason is kept: later ones are usually its consequences. */
  #drop(reason: string): void {
    if (!this.#inWindow || this.result.dropped) return;
    this.result.dropped = true;
    this.result.error = `dropped during steady state: ${reason}`;
  }

  start(): Promise<ListenerResult> {
    return new Promise((resolve) => {
      let settled = false;
      const settle = (ok: boolean, error?: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.result.ok = ok;
        if (ok) this.result.joinMs = this.result.phases.audible;
        else {
          this.result.error = error;
          void this.close();
        }
        resolve(this.result);
      };
      const timer = setTimeout(() => {
        const reached = (['audible', 'track', 'connected', 'ice', 'joined'] as const).find((p) => this.result.phases[p] !== undefined) ?? 'nothing';
        settle(false, `timeout after ${this.config.joinTimeoutMs} ms (reached: ${reached}, peer connection ${this.#pc?.connectionState ?? 'not made'})`);
      }, this.config.joinTimeoutMs);

      this.#t0 = performance.now();
      this.#join(() => {
        this.#mark('audible');
        settle(true);
      }).catch((error: unknown) => {
        const message = error instanceof ChorusClientError ? `${error.code}: ${error.message}` : error instanceof Error ? error.message : String(error);
        settle(false, `join failed: ${message}`);
      });
    });
  }

  async #join(onAudible: () => void): Promise<void> {
    const token = await this.tokens.mint({ room: this.config.roomId, identity: `bench-listener-${this.index}`, role: 'listener' });
    const socket = io(this.config.url, { transports: ['websocket'], forceNew: true, reconnection: false }) as ClientSocket;
    this.#socket = socket;
    if (this.#closed) {
      socket.disconnect();
      throw new Error('closed while joining');
    }
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', (error) => reject(new Error(`connect: ${error.message}`)));
    });
    // No reconnection logic here: a listener that loses its connection or its consumer during
    // the window counts as dropped, which is what the benchmark reports.
    socket.on('disconnect', (reason) => this.#drop(`signaling ${reason}`));
    socket.on('consumer:closed', () => this.#drop('consumer closed'));
    socket.on('broadcast:ended', ({ reason }) => this.#drop(`broadcast ended (${reason})`));

    // Short path (default): the join brings the receive transport and the consumer starts
    // flowing, so join → consume → connectTransport. Classic: every step its own request.
    const short = this.config.signaling === 'short';
    const info = await request(socket, 'join', { roomId: this.config.roomId, token, ...(short ? { transport: {} } : {}) });
    const rtpCapabilities = opusCapabilities(info.routerRtpCapabilities);
    const transport = info.transport ?? (await request(socket, 'createTransport', { direction: 'recv' }));
    if (info.transport && info.transport.direction !== 'recv') throw new Error(`join gave a ${info.transport.direction} transport`);
    const consumer = await this.#consume(socket, transport.id, rtpCapabilities, short);
    const rtpParameters = consumer.rtpParameters as ConsumerRtpParameters;
    const codec = rtpParameters.codecs[0]!;

    const pc = new RTCPeerConnection({
      // werift's default is a public STUN server, unreachable here; loopback needs none.
      iceServers: [],
      iceUseIpv6: false,
      codecs: {
        audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48000, channels: 2 })],
        video: [],
      },
      headerExtensions: { audio: [], video: [] },
    });
    this.#pc = pc;
    if (this.#closed) {
      // Timed out while we were still signaling: close() has run and would not see this one.
      await pc.close().catch(() => undefined);
      throw new Error('closed while joining');
    }
    pc.iceConnectionStateChange.subscribe((state) => {
      if (state === 'connected') this.#mark('ice');
    });
    pc.connectionStateChange.subscribe((state) => {
      if (state === 'connected') this.#mark('connected');
      if (state === 'failed' || state === 'disconnected' || state === 'closed') this.#drop(`peer connection ${state}`);
    });
    const stats = new RtpReceiveStats(codec.clockRate);
    this.#stats = stats;
    let heard = false;
    pc.onTrack.subscribe((track) => {
      track.onReceiveRtp.subscribe((rtp) => {
        stats.onPacket(rtp.header.sequenceNumber, rtp.header.timestamp, performance.now());
        this.#mark('track');
        if (!heard && rtp.payload.length >= MIN_AUDIO_PAYLOAD_BYTES) {
          heard = true;
          onAudible();
        }
      });
    });

    await pc.setRemoteDescription({
      type: 'offer',
      sdp: consumerOfferSdp({
        iceParameters: transport.iceParameters as IceParameters,
        iceCandidates: transport.iceCandidates as IceCandidate[],
        dtlsParameters: transport.dtlsParameters as DtlsParameters,
        rtpParameters,
      }),
    });
    if (!this.config.weriftStock) startDtlsWithoutPause(pc);
    const answer = await pc.createAnswer();
    // Tell the server our DTLS role and fingerprint before ICE starts (setLocalDescription):
    // until connectTransport has arrived mediasoup drops our ClientHello, and werift would only
    // retry it after its retransmission timer. mediasoup-client orders it the same way.
    await request(socket, 'connectTransport', { transportId: transport.id, dtlsParameters: answerDtlsParameters(answer.sdp) });
    await pc.setLocalDescription(answer);
    if (consumer.paused) await request(socket, 'resumeConsumer', { consumerId: consumer.consumerId });
    this.#mark('joined');
  }

  /** The broadcaster is live before listeners start; a consume racing its announcement retries. */
  async #consume(socket: ClientSocket, transportId: string, rtpCapabilities: RequestOf<'consume'>['rtpCapabilities'], flowing: boolean) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await request(socket, 'consume', { transportId, rtpCapabilities, ...(flowing ? { paused: false } : {}) });
      } catch (error) {
        if (!(error instanceof ChorusClientError) || error.code !== 'NOTHING_TO_CONSUME' || attempt >= 5) throw error;
        await new Promise((r) => setTimeout(r, 300 * attempt));
      }
    }
  }

  async baseline(): Promise<void> {
    if (!this.result.ok) return;
    this.#baseline = this.#stats?.snapshot();
    this.#inWindow = true;
  }

  async finish(): Promise<void> {
    if (!this.result.ok) return;
    this.#inWindow = false;
    const begin = this.#baseline;
    const end = this.#stats?.snapshot();
    if (!begin || !end) {
      this.result.dropped = true;
      this.result.error ??= 'no receive statistics';
      return;
    }
    const { received, lost } = windowDelta(begin, end);
    this.result.packetsReceived = received;
    this.result.packetsLost = lost;
    this.result.jitterMs = Math.round(end.jitterMs * 100) / 100;
    if (received <= 0) {
      this.result.dropped = true;
      this.result.error ??= 'no RTP received in the steady-state window';
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const socket = this.#socket;
    if (socket?.connected) await request(socket, 'leave', {}, 2000).catch(() => undefined);
    socket?.disconnect();
    await this.#pc?.close().catch(() => undefined);
  }
}
