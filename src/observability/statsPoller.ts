/**
 * Reads mediasoup's stats for the node's producers and consumers, at most `budget` of them per
 * pass, taking turns past it, and hands each reading to every subscriber. Quality records and the
 * per-room media gauges read the same numbers: each object costs one worker round trip per turn,
 * not one per use, and the node's whole stats load is bounded by one budget however many rooms
 * it holds (per-room sampling once read up to 50 consumers of each of 20 rooms every 5 s).
 *
 * A pass sends its reads in bursts of at most `STATS_BURST`, each burst's answers awaited before
 * the next, and a pass still running skips the next: reading must never pile requests onto the
 * media workers. Bursts, not one read at a time: the worker answers a burst in one go, so the node
 * wakes once for it instead of once per object (a wake-up, not the read, is most of what a read
 * costs the node), and the quality records of a pass reach the records writer together, one
 * database write per pass instead of one every flush.
 */
import type { types } from 'mediasoup';
import type { Logger } from './logger.js';
import { repeatOnGrid, type GridTimer } from '../time/gridTimer.js';

/** Something whose stats can be read, and where it belongs. */
export type StatsTarget = { room: string; peer: string } & ({ producer: types.Producer } | { consumer: types.Consumer });

/** One read: the target, when, and what mediasoup said. */
export type StatsReading = { room: string; peer: string; at: number } & (
  | { producer: types.Producer; stats: types.ProducerStat[] }
  | { consumer: types.Consumer; stats: (types.ConsumerStat | types.ProducerStat)[] }
);

/** Reads in flight at once at most: small enough a burst not to hold a worker from its media for long. */
export const STATS_BURST = 25;

/** A reading's loss as a fraction, 0..1: mediasoup reports RTCP's fraction lost in 256ths. */
export function lossOf(stat: { fractionLost: number }): number {
  return stat.fractionLost / 256;
}

/** A producer's jitter in seconds: mediasoup keeps it in RTP timestamp units (RFC 3550), at the codec's clock rate. */
export function jitterSecondsOf(stat: { jitter: number }, producer: types.Producer): number {
  return stat.jitter / (producer.rtpParameters.codecs[0]?.clockRate ?? 48_000);
}

export type StatsSubscriber = (reading: StatsReading) => void;

/** What a subscriber needs of the poller. */
export interface StatsSource {
  /** Every pass's readings, until the returned function is called. */
  subscribe(subscriber: StatsSubscriber): () => void;
  /** How often a pass runs (a reading covers the time since its target's previous one). */
  readonly intervalMs: number;
}

export interface StatsPollerOptions {
  /** A pass this often; 0: none on a timer (`pass()` still reads). */
  intervalMs: number;
  /** Producers and consumers read per pass at most. */
  budget: number;
}

/** The node's producers and consumers, room by room, peer by peer. */
export function targetsOf(rooms: Iterable<{ id: string; peers: ReadonlyMap<string, { id: string; producers: ReadonlyMap<string, types.Producer>; consumers: ReadonlyMap<string, types.Consumer> }> }>): StatsTarget[] {
  const all: StatsTarget[] = [];
  for (const room of rooms) {
    for (const peer of room.peers.values()) {
      for (const producer of peer.producers.values()) all.push({ room: room.id, peer: peer.id, producer });
      for (const consumer of peer.consumers.values()) all.push({ room: room.id, peer: peer.id, consumer });
    }
  }
  return all;
}

export class StatsPoller implements StatsSource {
  readonly #timer: GridTimer | undefined;
  readonly #subscribers = new Set<StatsSubscriber>();
  #busy = false;
  #stopped = false;
  /** Where the next pass starts in the list of targets. */
  #cursor = 0;

  constructor(
    private readonly targets: () => StatsTarget[],
    private readonly options: StatsPollerOptions,
    private readonly log: Logger,
  ) {
    if (options.intervalMs > 0) {
      this.#timer = repeatOnGrid(options.intervalMs, () => void this.pass());
    }
  }

  get intervalMs(): number {
    return this.options.intervalMs;
  }

  subscribe(subscriber: StatsSubscriber): () => void {
    this.#subscribers.add(subscriber);
    return () => this.#subscribers.delete(subscriber);
  }

  /** One pass: every target, or `budget` of them from where the previous pass stopped. */
  async pass(): Promise<void> {
    if (this.#busy || this.#stopped || this.#subscribers.size === 0) return;
    this.#busy = true;
    try {
      const all = this.targets();
      const count = Math.min(all.length, this.options.budget);
      const start = all.length > 0 ? this.#cursor % all.length : 0;
      this.#cursor = start + count;
      for (let i = 0; i < count && !this.#stopped; i += STATS_BURST) {
        const burst: Promise<void>[] = [];
        for (let j = i; j < Math.min(count, i + STATS_BURST); j++) burst.push(this.#read(all[(start + j) % all.length]!));
        await Promise.all(burst);
      }
    } finally {
      this.#busy = false;
    }
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.stop();
    this.#subscribers.clear();
  }

  async #read(target: StatsTarget): Promise<void> {
    const object = 'producer' in target ? target.producer : target.consumer;
    if (object.closed) return;
    let stats: StatsReading['stats'];
    try {
      stats = await object.getStats();
    } catch (error) {
      // Closing while the request was out is normal; anything else is worth a debug line.
      this.log.debug({ err: error, id: object.id, room: target.room, peer: target.peer }, 'stats read skipped');
      return;
    }
    const reading = { ...target, at: Date.now(), stats } as StatsReading;
    for (const subscriber of this.#subscribers) {
      try {
        subscriber(reading);
      } catch (error) {
        this.log.error({ err: error, room: target.room, peer: target.peer }, 'a stats subscriber failed');
      }
    }
  }
}
