import type { types } from 'mediasoup';
import { trackIdOf } from './roomMedia.js';
import { allocate, Climbs, DEFAULT_LAYER_RULES, deliveredBitrate, EstimateHistory, isLower, sameTarget, type LayerRules, type Rung, type Target } from './layerPolicy.js';

/** What a subscriber's tile asks of one video. */
export interface TileView {
  visible: boolean;
  /** Rendered pixels. */
  area: number;
  maxSpatial: number;
  maxTemporal: number;
}

export interface DownlinkOptions {
  /** The estimate before the first transport-cc feedback (the transport's initial outgoing bitrate). */
  initialBitrate: number;
  /** Kept for each audio track the subscriber receives: audio always wins. */
  audioReserveBps: number;
  rules?: LayerRules | undefined;
  ladder: (consumer: types.Consumer) => Promise<Rung[]>;
  prioritised: (consumer: types.Consumer) => boolean;
  /** Audio tracks flowing to this subscriber now. */
  audioTracks: () => number;
  /** Makes a decision real (preferred layers, or a pause for want of bandwidth). */
  apply: (consumer: types.Consumer, target: Target, previous: Target | undefined) => Promise<void>;
  /** After decisions were applied (the publishers' encoders may follow: dynacast). */
  applied: (producerIds: ReadonlySet<string>) => void;
  onError: (error: unknown) => void;
  now?: (() => number) | undefined;
}

interface Entry {
  view: TileView;
  current: Target | undefined;
  lastDownAt: number;
  lastChangeAt: number;
  climbs: Climbs;
}

/**
 * One subscriber's downlink: its receive transport's bandwidth estimate (mediasoup's
 * transport-cc, pushed as `bwe` trace events about once a second, at once on a sharp change)
 * shared among the videos it receives by the layer policy. Decisions are re-made on every
 * estimate, view change, new or closed video, and change of who is prioritised.
 */
export class Downlink {
  readonly #options: DownlinkOptions;
  readonly #transport: types.WebRtcTransport;
  readonly #entries = new Map<types.Consumer, Entry>();
  readonly #estimates: EstimateHistory;
  #running: Promise<void> | undefined;
  #again = false;
  #closed = false;
  /** The last decision for a consumer that could not be applied, kept for `settle`. */
  readonly #failed = new WeakMap<types.Consumer, unknown>();

  constructor(transport: types.WebRtcTransport, options: DownlinkOptions) {
    this.#options = options;
    this.#transport = transport;
    const rules = options.rules ?? DEFAULT_LAYER_RULES;
    this.#estimates = new EstimateHistory(options.initialBitrate, Math.max(rules.upHoldMs, rules.pauseHoldMs));
    transport.enableTraceEvent(['bwe']).catch((error: unknown) => options.onError(error));
    transport.on('trace', (trace) => {
      if (trace.type !== 'bwe') return;
      const available = Number((trace.info as { availableBitrate?: unknown }).availableBitrate);
      if (!(available > 0)) return;
      this.#estimates.add(this.#now(), available);
      void this.reassess();
    });
    transport.observer.once('close', () => {
      this.#closed = true;
      this.#entries.clear();
    });
  }

  #now(): number {
    return (this.#options.now ?? Date.now)();
  }

  add(consumer: types.Consumer, view: TileView): void {
    if (this.#closed) return;
    if (this.#entries.size === 0) this.#estimates.restart(this.#now());
    this.#entries.set(consumer, { view, current: undefined, lastDownAt: 0, lastChangeAt: 0, climbs: new Climbs(this.#options.rules ?? DEFAULT_LAYER_RULES) });
    // A falling score is the receiver reporting loss (RTCP, about once a second): its link may
    // carry much less than the estimate says (see deliveredBitrate).
    consumer.on('score', (score) => {
      if (score.score < 10) void this.#readLoss(consumer);
    });
    consumer.observer.once('close', () => {
      this.#entries.delete(consumer);
      this.#options.applied(new Set([trackIdOf(consumer)]));
      void this.reassess();
    });
    void this.reassess();
  }

  setView(consumer: types.Consumer, view: TileView): void {
    const entry = this.#entries.get(consumer);
    if (!entry) return;
    // A tile hidden and shown again starts afresh: nothing was flowing to hold on to.
    if (!view.visible) entry.current = undefined;
    entry.view = view;
    void this.reassess();
  }

  /**
   * Resolves once decisions covering every change so far are applied; rejects with the error
   * applying this consumer's failed with (its track ended under it, say).
   */
  async settle(consumer: types.Consumer): Promise<void> {
    this.#failed.delete(consumer);
    await this.reassess();
    const error = this.#failed.get(consumer);
    if (error !== undefined) {
      this.#failed.delete(consumer);
      throw error;
    }
  }

  holds(consumer: types.Consumer): boolean {
    return this.#entries.has(consumer);
  }

  /** The ceiling each shown video has now (undefined: not decided yet, or hidden). */
  ceilings(): Array<{ producerId: string; target: Target | undefined; visible: boolean }> {
    return [...this.#entries].map(([consumer, entry]) => ({ producerId: trackIdOf(consumer), target: entry.current, visible: entry.view.visible }));
  }

  /** Decides again; calls made while deciding run once more after it. */
  reassess(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      try {
        do {
          this.#again = false;
          await this.#decide();
        } while (this.#again && !this.#closed);
      } catch (error) {
        this.#options.onError(error);
      } finally {
        this.#running = undefined;
      }
    })();
    return this.#running;
  }

  async #readLoss(consumer: types.Consumer): Promise<void> {
    try {
      const [stats, [link]] = await Promise.all([consumer.getStats(), this.#transport.getStats()]);
      const sent = stats.find((s) => s.type === 'outbound-rtp');
      const delivered = deliveredBitrate(link?.sendBitrate ?? 0, sent?.fractionLost ?? 0);
      if (delivered === undefined || this.#closed) return;
      this.#estimates.add(this.#now(), delivered);
      await this.reassess();
    } catch (error) {
      // Closed while the stats were read: nothing to decide for.
      if (!consumer.closed && !this.#closed) this.#options.onError(error);
    }
  }

  async #decide(): Promise<void> {
    if (this.#closed) return;
    const rules = this.#options.rules ?? DEFAULT_LAYER_RULES;
    const shown = [...this.#entries].filter(([consumer, entry]) => entry.view.visible && !consumer.closed);
    const ladders = await Promise.all(shown.map(([consumer]) => this.#options.ladder(consumer)));
    const now = this.#now();
    // Layers follow the lowest estimate of the last up hold: a dip counts at once, a rise only
    // once it has lasted (a probe misread, or a moment of slack on a congested link, must not buy
    // a layer). A pause follows only a dip that has lasted the pause hold (see allocate).
    const audio = this.#options.audioReserveBps * this.#options.audioTracks();
    const budget = this.#estimates.lowest(now, rules.upHoldMs) * rules.headroom - audio;
    const lasting = this.#estimates.highestInForce(now, rules.pauseHoldMs) * rules.headroom - audio;
    const decisions = allocate(
      budget,
      shown.map(([consumer, entry], i) => ({
        id: consumer.id,
        prioritised: this.#options.prioritised(consumer),
        area: entry.view.area,
        maxSpatial: entry.view.maxSpatial,
        maxTemporal: entry.view.maxTemporal,
        ladder: ladders[i]!,
        current: entry.current,
        lastDownAt: entry.lastDownAt,
        lastChangeAt: entry.lastChangeAt,
        upHoldMs: entry.climbs.holdMs(now),
      })),
      now,
      rules,
      lasting,
    );
    const changed = new Set<string>();
    await Promise.all(
      shown.map(async ([consumer, entry]) => {
        const target = decisions.get(consumer.id);
        if (target === undefined || sameTarget(target, entry.current)) return;
        const previous = entry.current;
        entry.current = target;
        if (previous !== undefined && isLower(target, previous)) entry.lastDownAt = now;
        entry.lastChangeAt = now;
        changed.add(trackIdOf(consumer));
        await this.#options.apply(consumer, target, previous).then(() => entry.climbs.changed(previous, target, now), (error: unknown) => {
          if (entry.current === target) entry.current = previous;
          this.#failed.set(consumer, error);
          if (!consumer.closed) this.#options.onError(error);
        });
      }),
    );
    if (changed.size > 0) this.#options.applied(changed);
  }
}
