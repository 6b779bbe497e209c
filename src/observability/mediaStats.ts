/**
 * Watches the mediasoup objects of every room through the workers' observers (so rooms and peers
 * need no metrics code), counts WebRTC transport failures, and periodically samples per-room
 * media quality from mediasoup stats.
 *
 * Cost and cardinality are bounded: only the `maxRooms` rooms with most listeners get series,
 * and at most `consumersPerRoom` consumers of each are asked for stats per sample (egress bitrate
 * is scaled up from them). Each getStats is a round trip to the worker, so sampling every consumer
 * of a 10 000-listener room every few seconds would be a load of its own.
 */
import type { types } from 'mediasoup';
import type { Logger } from './logger.js';
import type { RoomMediaSample } from './metrics.js';

export interface MediaStatsSink {
  transportFailure(stage: 'ice_disconnected' | 'dtls_failed'): void;
  setRoomSamples(samples: readonly RoomMediaSample[], unlabelled: number): void;
}

export interface MediaStatsOptions {
  /** Rooms given series, most listeners first; 0 samples nothing (failures are still counted). */
  maxRooms: number;
  consumersPerRoom: number;
  intervalMs: number;
}

/** The worker pool as seen here: its current workers, and word of a replacement. */
export interface WorkerSource {
  readonly slots: readonly { worker: types.Worker }[];
  on(event: 'workerspawned', listener: (slot: { worker: types.Worker }) => void): unknown;
  off(event: 'workerspawned', listener: (slot: { worker: types.Worker }) => void): unknown;
}

interface RoomObjects {
  consumers: Set<types.Consumer>;
  producers: Set<types.Producer>;
}

export class MediaStatsSampler {
  readonly #rooms = new Map<string, RoomObjects>();
  readonly #timer: NodeJS.Timeout | undefined;
  readonly #onSpawn = (slot: { worker: types.Worker }): void => this.#watchWorker(slot.worker);
  #sampling = false;

  constructor(
    private readonly pool: WorkerSource,
    private readonly sink: MediaStatsSink,
    private readonly options: MediaStatsOptions,
    private readonly log: Logger,
  ) {
    for (const slot of pool.slots) this.#watchWorker(slot.worker);
    pool.on('workerspawned', this.#onSpawn);
    if (options.maxRooms > 0) {
      this.#timer = setInterval(() => void this.sample(), options.intervalMs);
      this.#timer.unref();
    }
  }

  /** Reads stats now and hands the result to the sink (also run on the interval). */
  async sample(): Promise<void> {
    if (this.#sampling) return;
    this.#sampling = true;
    try {
      const ranked = [...this.#rooms.entries()].sort((a, b) => b[1].consumers.size - a[1].consumers.size);
      const chosen = ranked.slice(0, this.options.maxRooms);
      const samples = await Promise.all(chosen.map(([room, objects]) => this.#sampleRoom(room, objects)));
      this.sink.setRoomSamples(samples, ranked.length - chosen.length);
    } catch (error) {
      this.log.warn({ err: error }, 'sampling media stats failed');
    } finally {
      this.#sampling = false;
    }
  }

  close(): void {
    clearInterval(this.#timer);
    this.pool.off('workerspawned', this.#onSpawn);
    this.#rooms.clear();
  }

  async #sampleRoom(room: string, objects: RoomObjects): Promise<RoomMediaSample> {
    const consumers = [...objects.consumers].filter((c) => !c.closed);
    const sampled = pick(consumers, this.options.consumersPerRoom);
    const consumerStats = await Promise.all(sampled.map((c) => c.getStats().catch(() => [])));
    let bitrate = 0;
    const egressLoss: number[] = [];
    for (const stats of consumerStats) {
      // A consumer's stats hold its outbound stream (to the listener) and the producer's inbound one.
      const outbound = stats.find((s) => s.type === 'outbound-rtp');
      if (!outbound) continue;
      bitrate += outbound.bitrate;
      egressLoss.push(outbound.fractionLost / 256);
    }
    const ingressLoss: number[] = [];
    const jitter: number[] = [];
    for (const producer of objects.producers) {
      if (producer.closed) continue;
      const clockRate = producer.rtpParameters.codecs[0]?.clockRate ?? 48_000;
      for (const s of await producer.getStats().catch(() => [])) {
        ingressLoss.push(s.fractionLost / 256);
        // mediasoup keeps jitter in RTP timestamp units (RFC 3550): divide by the clock rate.
        jitter.push(s.jitter / clockRate);
      }
    }
    return {
      room,
      listeners: consumers.length,
      egressBitrateBps: sampled.length > 0 ? (bitrate * consumers.length) / sampled.length : 0,
      egressLoss: mean(egressLoss),
      ingressLoss: mean(ingressLoss),
      ingressJitterSeconds: mean(jitter),
    };
  }

  #watchWorker(worker: types.Worker): void {
    worker.observer.on('newrouter', (router) => {
      const room = router.appData['roomId'];
      if (typeof room !== 'string') return;
      router.observer.on('newtransport', (transport) => {
        // Only WebRTC transports face clients; pipe transports (node to node, worker to worker) do not.
        if (!isWebRtc(transport)) return;
        transport.observer.on('icestatechange', (state) => {
          if (state === 'disconnected') this.sink.transportFailure('ice_disconnected');
        });
        transport.observer.on('dtlsstatechange', (state) => {
          if (state === 'failed') this.sink.transportFailure('dtls_failed');
        });
        transport.observer.on('newconsumer', (consumer) => this.#trackConsumer(room, consumer));
        transport.observer.on('newproducer', (producer) => this.#trackProducer(room, producer));
      });
    });
  }

  #objects(room: string): RoomObjects {
    let objects = this.#rooms.get(room);
    if (!objects) this.#rooms.set(room, (objects = { consumers: new Set(), producers: new Set() }));
    return objects;
  }

  #forgetIfEmpty(room: string, objects: RoomObjects): void {
    if (objects.consumers.size === 0 && objects.producers.size === 0 && this.#rooms.get(room) === objects) this.#rooms.delete(room);
  }

  #trackConsumer(room: string, consumer: types.Consumer): void {
    const objects = this.#objects(room);
    objects.consumers.add(consumer);
    consumer.observer.once('close', () => {
      objects.consumers.delete(consumer);
      this.#forgetIfEmpty(room, objects);
    });
  }

  #trackProducer(room: string, producer: types.Producer): void {
    const objects = this.#objects(room);
    objects.producers.add(producer);
    producer.observer.once('close', () => {
      objects.producers.delete(producer);
      this.#forgetIfEmpty(room, objects);
    });
  }
}

function isWebRtc(transport: types.Transport): transport is types.WebRtcTransport {
  return transport.type === 'webrtc';
}

function mean(values: number[]): number | undefined {
  return values.length === 0 ? undefined : values.reduce((a, b) => a + b, 0) / values.length;
}

/** Up to `n` items spread evenly over the list (the same ones each time while the room is stable). */
function pick<T>(items: T[], n: number): T[] {
  if (items.length <= n) return items;
  const step = items.length / n;
  return Array.from({ length: n }, (_, i) => items[Math.floor(i * step)]!);
}
