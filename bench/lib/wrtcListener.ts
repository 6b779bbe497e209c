/**
 * A listener on the real SDK over Node WebRTC (@roamhq/wrtc, libwebrtc). Join time = from just
 * before minting its token to the first decoded audio frame whose RMS is above the threshold.
 * Over the steady-state window it reports inbound-rtp packetsReceived / packetsLost deltas and
 * the jitter at the end, from the recv transport's getStats().
 */
import wrtc from '@roamhq/wrtc';
import { TokenService } from '../../src/auth/tokens.js';
import { ChorusClient } from '../../src/client/chorusClient.js';
import { webrtcHandlerFactory } from '../../test/support/nodePeer.js';
import type { BenchPeerFactory, BenchPeer } from './benchPeer.js';
import type { JoinPhase, ListenerProcConfig, ListenerResult } from './messages.js';

/** One handler factory (and token service) per process, shared by its listeners. */
export function wrtcListeners(config: ListenerProcConfig): BenchPeerFactory {
  const tokens = new TokenService(new TextEncoder().encode(config.secret), 3600);
  return (index) => new WrtcListener(index, config, tokens);
}

const handlerFactory = webrtcHandlerFactory();

interface Inbound {
  received: number;
  lost: number;
  jitterMs: number;
}

type AudioSink = InstanceType<typeof wrtc.nonstandard.RTCAudioSink>;
interface AudioFrame {
  samples: Int16Array;
  channelCount?: number;
}

function rms({ samples, channelCount = 1 }: AudioFrame): number {
  const n = Math.floor(samples.length / channelCount);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const v = (samples[i * channelCount] ?? 0) / 32768;
    sum += v * v;
  }
  return n > 0 ? Math.sqrt(sum / n) : 0;
}

export class WrtcListener implements BenchPeer {
  readonly result: ListenerResult;
  client: ChorusClient | undefined;
  #sink: AudioSink | undefined;
  #inWindow = false;
  #baseline: Inbound | undefined;
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

  start(): Promise<ListenerResult> {
    return new Promise((resolve) => {
      let settled = false;
      let lastError = '';
      const settle = (ok: boolean, error?: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.result.ok = ok;
        if (ok) this.result.joinMs = this.result.phases.audible;
        else {
          this.result.error = error;
          this.#stopSink();
          void this.client?.close().catch(() => undefined);
        }
        resolve(this.result);
      };
      const timer = setTimeout(() => {
        const reached = (['audible', 'track', 'joined'] as const).find((p) => this.result.phases[p] !== undefined) ?? 'nothing';
        settle(false, `timeout after ${this.config.joinTimeoutMs} ms (reached: ${reached}${lastError ? `; last error ${lastError}` : ''})`);
      }, this.config.joinTimeoutMs);

      this.#t0 = performance.now();
      this.tokens
        .mint({ room: this.config.roomId, identity: `bench-listener-${this.index}`, role: 'listener' })
        .then((token) => {
          const client = new ChorusClient({
            url: this.config.url,
            roomId: this.config.roomId,
            token,
            handlerFactory,
            socket: { transports: ['websocket'] },
            retry: { initialMs: 250, maxMs: 2000 },
          });
          this.client = client;
          client.on('error', (error) => {
            lastError = `${error.code}: ${error.message}`;
          });
          client.on('track', (track) => {
            this.#mark('track');
            if (!settled || this.config.keepSinks) this.#listen(track, () => {
              this.#mark('audible');
              settle(true);
            });
          });
          const drop = (): void => {
            if (this.#inWindow) this.result.dropped = true;
          };
          client.on('trackended', drop);
          client.on('transport', (state) => {
            if (state === 'failed' || state === 'disconnected' || state === 'closed') drop();
          });
          client.on('state', (state) => {
            if (state === 'reconnecting' || state === 'closed') drop();
          });
          return client.join().then(() => this.#mark('joined'));
        })
        .catch((error: unknown) => settle(false, `join failed: ${error instanceof Error ? error.message : String(error)}`));
    });
  }

  #listen(track: MediaStreamTrack, onAudible: () => void): void {
    this.#stopSink();
    const sink = new wrtc.nonstandard.RTCAudioSink(track as never);
    this.#sink = sink;
    let heard = false;
    (sink as unknown as { ondata: (frame: AudioFrame) => void }).ondata = (frame) => {
      if (heard) return;
      if (rms(frame) > this.config.rmsThreshold) {
        heard = true;
        onAudible();
        // Decoding every frame of every listener for the whole run would bill the load
        // generator for work a real listener's browser does; stop unless asked to keep going.
        if (!this.config.keepSinks) this.#stopSink();
      }
    };
  }

  #stopSink(): void {
    const sink = this.#sink;
    this.#sink = undefined;
    if (sink && !sink.stopped) sink.stop();
  }

  async #inbound(): Promise<Inbound | undefined> {
    const transport = this.client?.transport;
    if (!transport || transport.closed) return undefined;
    const report = (await transport.getStats()) as Map<string, Record<string, unknown>>;
    for (const stat of report.values()) {
      if (stat['type'] !== 'inbound-rtp') continue;
      if ((stat['kind'] ?? stat['mediaType']) !== 'audio') continue;
      return {
        received: Number(stat['packetsReceived'] ?? 0),
        lost: Number(stat['packetsLost'] ?? 0),
        jitterMs: Number(stat['jitter'] ?? 0) * 1000,
      };
    }
    return undefined;
  }

  async baseline(): Promise<void> {
    if (!this.result.ok) return;
    this.#baseline = await this.#inbound().catch(() => undefined);
    this.#inWindow = true;
  }

  async finish(): Promise<void> {
    if (!this.result.ok) return;
    this.#inWindow = false;
    const end = await this.#inbound().catch(() => undefined);
    const begin = this.#baseline;
    if (!end || !begin) {
      this.result.dropped = true;
      return;
    }
    this.result.packetsReceived = end.received - begin.received;
    this.result.packetsLost = end.lost - begin.lost;
    this.result.jitterMs = Math.round(end.jitterMs * 100) / 100;
    if (this.result.packetsReceived <= 0) this.result.dropped = true;
  }

  async close(): Promise<void> {
    this.#stopSink();
    await this.client?.close().catch(() => undefined);
  }
}
