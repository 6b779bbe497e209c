/**
 * Watches the mediasoup objects of every room through the workers' observers (so rooms and peers
 * need no metrics code), counts WebRTC transport failures, and periodically sums up per-room
 * media quality from the node's stats readings (StatsPoller), which it does not request itself:
 * each producer and consumer is read once per turn for records and metrics alike.
 *
 * Cardinality is bounded: only the `maxRooms` rooms with most listeners get series. A room's
 * gauges come from the latest reading of each of its objects; past the poller's budget objects
 * take turns, so a large room's egress is scaled up from the consumers read so far.
 */
import type { types } from 'mediasoup';
import type { Logger } from './logger.js';
import type { RoomMediaSample } from './metrics.js';
import { jitterSecondsOf, lossOf, type StatsReading, type StatsSource } from './statsPoller.js';
import { repeatOnGrid, type GridTimer } from '../time/gridTimer.js';

export interface MediaStatsSink {
  transportFailure(stage: 'ice_disconnected' | 'dtls_failed'): void;
  setRoomSamples(samples: readonly RoomMediaSample[], unlabelled: number): void;
}

export interface MediaStatsOptions {
  /** Rooms given series, most listeners first; 0 samples nothing (failures are still counted). */
  maxRooms: number;
  /** How often the gauges are summed up again from the latest readings. */
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

/** What a consumer's latest reading said of its outbound stream (what the node sends to a listener). */
interface EgressReading {
  bitrate: number;
  loss: number;
}

/** What a producer's latest reading said of its inbound streams (one per simulcast layer). */
interface IngressReading {
  loss: number[];
  jitterSeconds: number[];
}

export class MediaStatsSampler {
  readonly #rooms = new Map<string, RoomObjects>();
  readonly #timer: GridTimer | undefined;
  readonly #onSpawn = (slot: { worker: types.Worker }): void => this.#watchWorker(slot.worker);
  readonly #egress = new WeakMap<types.Consumer, EgressReading>();
  readonly #ingress = new WeakMap<types.Producer, IngressReading>();
  readonly #unsubscribe: () => void;

  constructor(
    private readonly pool: WorkerSource,
    private readonly sink: MediaStatsSink,
    private readonly options: MediaStatsOptions,
    private readonly log: Logger,
    readings: StatsSource | undefined,
  ) {
    for (const slot of pool.slots) this.#watchWorker(slot.worker);
    pool.on('workerspawned', this.#onSpawn);
    this.#unsubscribe = readings && options.maxRooms > 0 ? readings.subscribe((reading) => this.#keep(reading)) : () => undefined;
    if (options.maxRooms > 0) {
      this.#timer = repeatOnGrid(options.intervalMs, () => this.sample());
    }
  }

  /** Sums up the latest readings room by room and hands the result to the sink (also run on the interval). */
  sample(): void {
    try {
      const ranked = [...this.#rooms.entries()].sort((a, b) => b[1].consumers.size - a[1].consumers.size);
      const chosen = ranked.slice(0, this.options.maxRooms);
      this.sink.setRoomSamples(chosen.map(([room, objects]) => this.#sampleRoom(room, objects)), ranked.length - chosen.length);
    } catch (error) {
      this.log.warn({ err: error }, 'summing up media stats failed');
    }
  }

  close(): void {
    this.#timer?.stop();
    this.#unsubscribe();
    this.pool.off('workerspawned', this.#onSpawn);
    this.#rooms.clear();
  }

  /** Keeps what a reading says, in place of the object's previous one. */
  #keep(reading: StatsReading): void {
    if ('consumer' in reading) {
      // A consumer's stats hold its outbound stream (to the listener) and the producer's inbound one.
      const outbound = reading.stats.find((s) => s.type === 'outbound-rtp');
      if (outbound) this.#egress.set(reading.consumer, { bitrate: outbound.bitrate, loss: lossOf(outbound) });
      return;
    }
    const producer = reading.producer;
    this.#ingress.set(producer, {
      loss: reading.stats.map(lossOf),
      jitterSeconds: reading.stats.map((s) => jitterSecondsOf(s, producer)),
    });
  }

  #sampleRoom(room: string, objects: RoomObjects): RoomMediaSample {
    const consumers = [...objects.consumers].filter((c) => !c.closed);
    const read = consumers.flatMap((c) => this.#egress.get(c) ?? []);
    const ingress = [...objects.producers].filter((p) => !p.closed).flatMap((p) => this.#ingress.get(p) ?? []);
    return {
      room,
      listeners: consumers.length,
      egressBitrateBps: read.length > 0 ? (read.reduce((n, r) => n + r.bitrate, 0) * consumers.length) / read.length : 0,
      egressLoss: mean(read.map((r) => r.loss)),
      ingressLoss: mean(ingress.flatMap((r) => r.loss)),
      ingressJitterSeconds: mean(ingress.flatMap((r) => r.jitterSeconds)),
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
