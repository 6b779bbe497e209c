/**
 * One load-generator process of the broadcast benchmark: runs a share of the listeners, each a
 * real SDK client on Node WebRTC, started on a shared schedule so arrivals are staggered across
 * all processes. Started by bench/broadcast.ts over IPC; not meant to be run by hand.
 *
 * Join time per listener = from just before minting its token to the first decoded audio frame
 * whose RMS is above the threshold. Over the steady-state window it reports inbound-rtp
 * packetsReceived / packetsLost deltas and the jitter at the end, from the recv transport's
 * getStats().
 */
import wrtc from '@roamhq/wrtc';
import { TokenService } from '../src/auth/tokens.js';
import { ChorusClient } from '../src/client/chorusClient.js';
import { webrtcHandlerFactory } from '../test/support/nodePeer.js';
import type { ChildToParent, JoinPhase, ListenerProcConfig, ListenerResult, ParentToChild } from './lib/messages.js';

const config = JSON.parse(process.argv[2] ?? '{}') as ListenerProcConfig;
if (!config.url || !Array.isArray(config.indices)) throw new Error('listeners.ts is started by bench/broadcast.ts');

const send = (message: ChildToParent): void => {
  if (process.connected) process.send?.(message);
};
// The parent went away (crash, kill): do not linger as an orphan holding sockets.
process.on('disconnect', () => process.exit(1));

const tokens = new TokenService(new TextEncoder().encode(config.secret), 3600);
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

class BenchListener {
  readonly result: ListenerResult;
  client: ChorusClient | undefined;
  #sink: AudioSink | undefined;
  #inWindow = false;
  #baseline: Inbound | undefined;
  #t0 = 0;

  constructor(readonly index: number) {
    this.result = { index, ok: false, phases: {} };
  }

  #mark(phase: JoinPhase): void {
    this.result.phases[phase] ??= Math.round((performance.now() - this.#t0) * 10) / 10;
  }

  /** Resolves once the listener hears the tone, fails, or times out. Never rejects. */
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
        settle(false, `timeout after ${config.joinTimeoutMs} ms (reached: ${reached}${lastError ? `; last error ${lastError}` : ''})`);
      }, config.joinTimeoutMs);

      this.#t0 = performance.now();
      tokens
        .mint({ room: config.roomId, identity: `bench-listener-${this.index}`, role: 'listener' })
        .then((token) => {
          const client = new ChorusClient({
            url: config.url,
            roomId: config.roomId,
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
            if (!settled || config.keepSinks) this.#listen(track, () => {
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
      if (rms(frame) > config.rmsThreshold) {
        heard = true;
        onAudible();
        // Decoding every frame of every listener for the whole run would bill the load
        // generator for work a real listener's browser does; stop unless asked to keep going.
        if (!config.keepSinks) this.#stopSink();
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

const listeners = config.indices.map((index) => new BenchListener(index));

let startAt: (value: number) => void = () => undefined;
const started = new Promise<number>((resolve) => (startAt = resolve));

process.on('message', (message: ParentToChild) => {
  void (async () => {
    switch (message.type) {
      case 'start':
        startAt(message.startAt);
        break;
      case 'baseline':
        await Promise.all(listeners.map((l) => l.baseline()));
        send({ type: 'baselined' });
        break;
      case 'finish':
        await Promise.all(listeners.map((l) => l.finish()));
        send({ type: 'report', results: listeners.map((l) => l.result) });
        break;
      case 'close': {
        // Say goodbye to the server, but never hang on it.
        setTimeout(() => process.exit(0), 5000).unref();
        await Promise.all(listeners.map((l) => l.close()));
        process.exit(0);
      }
    }
  })();
});

send({ type: 'ready' });
const t0 = await started;
await Promise.all(
  listeners.map(
    (listener) =>
      new Promise<void>((resolve) => {
        const delay = Math.max(0, t0 + listener.index * config.staggerMs - Date.now());
        setTimeout(() => {
          void listener.start().then((r) => {
            send({ type: 'progress', index: r.index, ok: r.ok, ...(r.joinMs !== undefined ? { joinMs: r.joinMs } : {}), ...(r.error ? { error: r.error } : {}) });
            resolve();
          });
        }, delay);
      }),
  ),
);
send({ type: 'ramped' });
