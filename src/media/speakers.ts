/**
 * Who is speaking in a room: mediasoup's ActiveSpeakerObserver (dominant speaker, with its own
 * hysteresis) and AudioLevelObserver (levels for meters) over the room's microphones, both on
 * the origin router where every publisher sends. Consumers of this class get throttled news
 * only: a speaker change at most every `speakerIntervalMs`, levels at the observer's interval.
 */
import type { types } from 'mediasoup';
import type { Logger } from '../observability/logger.js';

export interface SpeakerEvents {
  /** The dominant speaker's producer now (undefined: the one before left). */
  speaker(producerId: string | undefined): void;
  /** Producers above the threshold and their volume (dBov), loudest first; empty: silence. */
  levels(levels: Array<{ producerId: string; volume: number }>): void;
}

export interface SpeakerSettings {
  /** Least time between two speaker-change reports. */
  speakerIntervalMs: number;
  /** How often levels are sampled and reported. */
  levelIntervalMs: number;
}

export class SpeakerDetection {
  #lastSent = 0;
  #current: string | undefined;
  #sent: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #watched = new Set<string>();

  private constructor(
    private readonly active: types.ActiveSpeakerObserver,
    private readonly level: types.AudioLevelObserver,
    private readonly settings: SpeakerSettings,
    private readonly events: SpeakerEvents,
  ) {
    active.on('dominantspeaker', ({ producer }) => this.#changed(producer.id));
    level.on('volumes', (volumes) => events.levels(volumes.map((v) => ({ producerId: v.producer.id, volume: v.volume }))));
    level.on('silence', () => events.levels([]));
  }

  static async create(router: types.Router, settings: SpeakerSettings, events: SpeakerEvents): Promise<SpeakerDetection> {
    const active = await router.createActiveSpeakerObserver({ interval: 300 });
    const level = await router.createAudioLevelObserver({ maxEntries: 16, threshold: -70, interval: settings.levelIntervalMs });
    return new SpeakerDetection(active, level, settings, events);
  }

  /** Starts listening to a microphone; its close removes it by itself. */
  async add(producer: types.Producer, log: Logger): Promise<void> {
    // A pulled microphone is consumed by many here but watched once.
    if (this.#closed || producer.closed || this.#watched.has(producer.id)) return;
    this.#watched.add(producer.id);
    try {
      await Promise.all([this.active.addProducer({ producerId: producer.id }), this.level.addProducer({ producerId: producer.id })]);
    } catch (error) {
      // The producer closed while being added: nothing to watch.
      if (!producer.closed && !this.#closed) log.warn({ err: error, producer: producer.id }, 'speaker detection could not watch a microphone');
    }
    producer.observer.once('close', () => {
      this.#watched.delete(producer.id);
      if (this.#current === producer.id) this.#changed(undefined);
    });
  }

  #changed(producerId: string | undefined): void {
    this.#current = producerId;
    if (this.#timer) return;
    const wait = this.#lastSent + this.settings.speakerIntervalMs - Date.now();
    if (wait <= 0) return this.#send();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#send();
    }, wait);
    this.#timer.unref();
  }

  #send(): void {
    if (this.#closed || this.#current === this.#sent) return;
    this.#sent = this.#current;
    this.#lastSent = Date.now();
    this.events.speaker(this.#current);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.active.close();
    this.level.close();
  }
}
