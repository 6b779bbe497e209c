/**
 * Quality records from the node's stats readings (see StatsPoller): for a peer's producers what
 * this node receives from it (loss, jitter, bitrate), for its consumers what this node sends to
 * it as the peer's receiver reports describe it (loss, RTT, bitrate). mediasoup reports no jitter
 * for what it sends, so that stays null.
 */
import { trackIdOf } from '../media/roomMedia.js';
import type { types } from 'mediasoup';
import { jitterSecondsOf, lossOf, type StatsReading, type StatsSource } from '../observability/statsPoller.js';
import type { RecordSink } from './nodeRecorder.js';

export class QualitySampler {
  readonly #unsubscribe: () => void;
  /** Packets each video consumer had sent at its previous sample: no progress while resumed is a freeze. */
  readonly #sentBefore = new WeakMap<types.Consumer, number>();
  /** When each consumer was last sampled: a sample covers the time since (they take turns past the budget). */
  readonly #sampledAt = new WeakMap<types.Consumer, number>();

  constructor(
    private readonly readings: StatsSource,
    private readonly sink: RecordSink,
    private readonly nodeId: string,
  ) {
    this.#unsubscribe = readings.subscribe((reading) => {
      if ('producer' in reading) this.#sampleProducer(reading.room, reading.peer, reading.producer, reading.stats);
      else this.#sampleConsumer(reading.room, reading.peer, reading.consumer, reading.stats, reading.at);
    });
  }

  stop(): void {
    this.#unsubscribe();
  }

  #sampleProducer(room: string, peer: string, producer: types.Producer, stats: types.ProducerStat[]): void {
    if (stats.length === 0) return;
    // A simulcast camera reports one stream per layer: the track's bitrate and losses are their
    // sum, its loss rate and jitter those of its worst layer.
    const stream = {
      bitrate: stats.reduce((n, s) => n + s.bitrate, 0),
      packetsLost: stats.reduce((n, s) => n + s.packetsLost, 0),
      fractionLost: Math.max(...stats.map((s) => s.fractionLost)),
      jitter: Math.max(...stats.map((s) => s.jitter)),
      roundTripTime: stats.find((s) => s.roundTripTime !== undefined)?.roundTripTime,
    };
    this.sink.record({
      kind: 'quality',
      peer,
      room,
      node: this.nodeId,
      direction: 'send',
      track: producer.id,
      packetLoss: lossOf(stream),
      packetsLost: stream.packetsLost,
      jitterMs: jitterSecondsOf(stream, producer) * 1000,
      rttMs: stream.roundTripTime ?? null,
      bitrate: stream.bitrate,
    });
  }

  #sampleConsumer(room: string, peer: string, consumer: types.Consumer, stats: StatsReading['stats'], now: number): void {
    const stream = stats.find((s) => s.type === 'outbound-rtp');
    if (!stream) return;
    const covered = Math.round(now - (this.#sampledAt.get(consumer) ?? now - this.readings.intervalMs));
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
      packetLoss: lossOf(stream),
      packetsLost: stream.packetsLost,
      jitterMs: null,
      rttMs: stream.roundTripTime ?? null,
      bitrate: stream.bitrate,
      producer: trackIdOf(consumer),
      intervalMs: covered,
      ...(video ?? {}),
    });
  }
}
