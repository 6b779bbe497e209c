/**
 * Each participant's connection quality, from mediasoup's scores (0–10) of its streams: how its
 * tracks arrive at the SFU (producer scores) and how the SFU's streams arrive at it (consumer
 * scores, from its receiver reports). Paused streams say nothing (a muted microphone sends
 * nothing, and is not a bad connection). The worse side decides; a change is reported at most
 * once per interval, for every participant whose level moved.
 */
import type { types } from 'mediasoup';
import type { ConnectionQuality } from '../protocol/room.js';

interface Scored {
  score: number | undefined;
  paused(): boolean;
}

interface PeerScores {
  streams: Map<string, Scored>;
  reported: ConnectionQuality | undefined;
}

export function qualityOf(score: number): ConnectionQuality {
  if (score >= 8) return 'excellent';
  if (score >= 5) return 'good';
  if (score >= 1) return 'poor';
  return 'lost';
}

export class QualityWatch {
  readonly #peers = new Map<string, PeerScores>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    private readonly onChange: (changes: Array<{ peerId: string; quality: ConnectionQuality }>) => void,
    private readonly intervalMs = 2000,
  ) {}

  /** A track `peerId` publishes: the best of its layers as the SFU receives them. */
  watchProducer(peerId: string, producer: types.Producer): void {
    const stream: Scored = { score: undefined, paused: () => producer.paused };
    this.#add(peerId, producer.id, stream);
    producer.on('score', (scores) => {
      stream.score = scores.length > 0 ? Math.max(...scores.map((s) => s.score)) : undefined;
      this.#changed();
    });
    producer.observer.once('close', () => this.#remove(peerId, producer.id));
  }

  /** A track `peerId` receives: how the SFU's stream reaches it. */
  watchConsumer(peerId: string, consumer: types.Consumer): void {
    const stream: Scored = { score: undefined, paused: () => consumer.paused || consumer.producerPaused };
    this.#add(peerId, consumer.id, stream);
    consumer.on('score', ({ score }) => {
      stream.score = score;
      this.#changed();
    });
    consumer.observer.once('close', () => this.#remove(peerId, consumer.id));
  }

  forget(peerId: string): void {
    this.#peers.delete(peerId);
  }

  /** The level reported for `peerId` last, if any. */
  reported(peerId: string): ConnectionQuality | undefined {
    return this.#peers.get(peerId)?.reported;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#peers.clear();
  }

  #add(peerId: string, id: string, stream: Scored): void {
    let peer = this.#peers.get(peerId);
    if (!peer) this.#peers.set(peerId, (peer = { streams: new Map(), reported: undefined }));
    peer.streams.set(id, stream);
  }

  #remove(peerId: string, id: string): void {
    if (this.#peers.get(peerId)?.streams.delete(id)) this.#changed();
  }

  #changed(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#report();
    }, this.intervalMs);
    this.#timer.unref();
  }

  #report(): void {
    const changes: Array<{ peerId: string; quality: ConnectionQuality }> = [];
    for (const [peerId, peer] of this.#peers) {
      const scores = [...peer.streams.values()].filter((s) => s.score !== undefined && !s.paused()).map((s) => s.score!);
      // Nothing flowing to judge by: keep what was said last.
      if (scores.length === 0) continue;
      const quality = qualityOf(Math.min(...scores));
      if (quality === peer.reported) continue;
      peer.reported = quality;
      changes.push({ peerId, quality });
    }
    if (changes.length > 0) this.onChange(changes);
  }
}
