/**
 * Samples the quality of every session on the node at an interval from mediasoup's own stats:
 * for a peer's producers what this node receives from it (loss, jitter, bitrate), for its
 * consumers what this node sends to it as the peer's receiver reports describe it (loss, RTT,
 * bitrate). mediasoup reports no jitter for what it sends, so that stays null.
 *
 * One stats request at a time, and a tick that is still running skips the next one: sampling
 * must never pile requests onto the media workers.
 */
import { trackIdOf } from '../media/roomMedia.js';
import type { types } from 'mediasoup';
import type { Logger } from '../observability/logger.js';
import type { RoomManager } from '../rooms/roomManager.js';
import type { RecordSink } from './nodeRecorder.js';

export class QualitySampler {
  readonly #timer: NodeJS.Timeout;
  #busy = false;
  #stopped = false;
  /** Packets each video consumer had sent at its previous sample: no progress while resumed is a freeze. */
  readonly #sentBefore = new WeakMap<types.Consumer, number>();
  /** When each consumer was last sampled: a sample covers the time since (they may take turns). */
  readonly #sampledAt = new WeakMap<types.Consumer, number>();
  /** Where the next pass starts in the node's list of producers and consumers. */
  #cursor = 0;

  constructor(
    private readonly rooms: RoomManager,
    private readonly sink: RecordSink,
    private readonly nodeId: string,
    private readonly intervalMs: number,
    private readonly log: Logger,
    /** Producers and consumers sampled per pass at most: past it they take turns. */
    private readonly budget = Number.POSITIVE_INFINITY,
  ) {
    this.#timer = setInterval(() => void this.sample(), intervalMs);
    this.#timer.unref();
  }

  /**
   * One pass: every producer and consumer on the node, or `budget` of them, taking turns. Each is
   * a stats round trip to a worker: a node with a thousand listeners must not spend a hundred a
   * second on records.
   */
  async sample(): Promise<void> {
    if (this.#busy || this.#stopped) return;
    this.#busy = true;
    try {
      type Entry = { room: string; peer: string } & ({ producer: types.Producer } | { consumer: types.Consumer });
      const all: Entry[] = [];
      for (const room of this.rooms.rooms.values()) {
        for (const peer of room.peers.values()) {
          for (const producer of peer.producers.values()) all.push({ room: room.id, peer: peer.id, producer });
          for (const consumer of peer.consumers.values()) all.push({ room: room.id, peer: peer.id, consumer });
        }
      }
      const count = Math.min(all.length, this.budget);
      const start = all.length > 0 ? this.#cursor % all.length : 0;
      this.#cursor = start + count;
      for (let i = 0; i < count && !this.#stopped; i++) {
        const entry = all[(start + i) % all.length]!;
        if ('producer' in entry) await this.#sampleProducer(entry.room, entry.peer, entry.producer);
        else await this.#sampleConsumer(entry.room, entry.peer, entry.consumer);
      }
    } finally {
      this.#busy = false;
    }
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  async #sampleProducer(room: string, peer: string, producer: types.Producer): Promise<void> {
    if (producer.closed) return;
    const stats = await producer.getStats().catch((error: unknown) => this.#failed(error, producer.id));
    if (!stats || stats.length === 0) return;
    // A simulcast camera reports one stream per layer: the track's bitrate and losses are their
    // sum, its loss rate and jitter those of its worst layer.
    const stream = {
      bitrate: stats.reduce((n, s) => n + s.bitrate, 0),
      packetsLost: stats.reduce((n, s) => n + s.packetsLost, 0),
      fractionLost: Math.max(...stats.map((s) => s.fractionLost)),
      jitter: Math.max(...stats.map((s) => s.jitter)),
      roundTripTime: stats.find((s) => s.roundTripTime !== undefined)?.roundTripTime,
    };
    const clockRate = producer.rtpParameters.codecs[0]?.clockRate ?? 48_000;
    this.sink.record({
      kind: 'quality',
      peer,
      room,
      node: this.nodeId,
      direction: 'send',
      track: producer.id,
      packetLoss: stream.fractionLost / 256,
      packetsLost: stream.packetsLost,
      // mediasoup keeps jitter in RTP timestamp units.
      jitterMs: (stream.jitter / clockRate) * 1000,
      rttMs: stream.roundTripTime ?? null,
      bitrate: stream.bitrate,
    });
  }

  async #sampleConsumer(room: string, peer: string, consumer: types.Consumer): Promise<void> {
    if (consumer.closed) return;
    const stats = await consumer.getStats().catch((error: unknown) => this.#failed(error, consumer.id));
    const stream = stats?.find((s) => s.type === 'outbound-rtp');
    if (!stream) return;
    const now = Date.now();
    const covered = Math.round(now - (this.#sampledAt.get(consumer) ?? now - this.intervalMs));
    this.#sampledAt.set(consumer, now);
    // Video: the layer sent now, and whether it froze since the last pass (resumed on both ends,
    // yet nothing sent, or mediasoup scoring the stream 0).
    let video: { spatialLayer: number | null; frozen: boolean } | undefined;
    if (consumer.kind === 'video') {
      const before = this.#sentBefore.get(consumer);
      this.#sentBefore.set(consumer, stream.packetCount);
      const flowing = !consumer.paused && !consumer.producerPaused;
      video = {
        spatialLayer: consumer.currentLayers?.spatialLayer ?? null,
        frozen: flowing && before !== undefined && (stream.packetCount <= before || consumer.score.score === 0),
      };
    }
    this.sink.record({
      kind: 'quality',
      peer,
      room,
      node: this.nodeId,
      direction: 'recv',
      track: consumer.id,
      packetLoss: stream.fractionLost / 256,
      packetsLost: stream.packetsLost,
      jitterMs: null,
      rttMs: stream.roundTripTime ?? null,
      bitrate: stream.bitrate,
      producer: trackIdOf(consumer),
      intervalMs: covered,
      ...(video ?? {}),
    });
  }

  #failed(error: unknown, id: string): undefined {
    // A producer or consumer closing during the pass is normal; anything else is worth a line.
    this.log.debug({ err: error, id }, 'quality sample skipped');
    return undefined;
  }
}
