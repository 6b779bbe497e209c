import type { types } from 'mediasoup';
import type { Rung } from './layerPolicy.js';

/** Cumulative share of a stream's bitrate up to each temporal layer, before anything is measured. */
const TEMPORAL_SHARE: Record<number, readonly number[]> = { 1: [1], 2: [0.6, 1], 3: [0.5, 0.75, 1] };
/** A layer with neither a measure nor a maxBitrate: three times the one below, from 100 kbit/s. */
const NOMINAL_BASE_BPS = 100_000;
/** Measures kept per layer; a layer with fewer is still young (see priceLadder). */
const MEASURES_KEPT = 3;

/**
 * What each layer of a layered video costs, measured from its producer's streams (one getStats
 * per producer however many subscribers ask, at most every `maxAgeMs`). A layer not sent now —
 * its publisher stopped encoding it because nobody wanted it — keeps its last measure, or a
 * nominal one from the encoding's maxBitrate, so a subscriber can still ask for it back.
 */
export class LayerRates {
  readonly #maxAgeMs: number;
  readonly #sampled = new Map<string, { at: number; ladder: Promise<Rung[]> }>();
  /** The last three measures of each layer, by producer. */
  readonly #recent = new Map<string, Map<string, number[]>>();

  constructor(maxAgeMs = 2000) {
    this.#maxAgeMs = maxAgeMs;
  }

  ladder(producer: types.Producer): Promise<Rung[]> {
    const now = Date.now();
    const sample = this.#sampled.get(producer.id);
    if (sample && now - sample.at < this.#maxAgeMs) return sample.ladder;
    if (!sample) producer.observer.once('close', () => this.forget(producer.id));
    const ladder = this.#measure(producer).catch(() => this.#fromMemory(producer, new Map()));
    this.#sampled.set(producer.id, { at: now, ladder });
    return ladder;
  }

  forget(producerId: string): void {
    this.#sampled.delete(producerId);
    this.#recent.delete(producerId);
  }

  async #measure(producer: types.Producer): Promise<Rung[]> {
    if (producer.closed) return [];
    const stats = await producer.getStats();
    const encodings = producer.rtpParameters.encodings ?? [];
    const measured = new Map<string, number>();
    for (const stream of stats) {
      const index = producer.type === 'simulcast' ? encodings.findIndex((e) => (stream.rid !== undefined && e.rid === stream.rid) || e.ssrc === stream.ssrc) : 0;
      if (index === -1) continue;
      const byLayer = Object.entries(stream.bitrateByLayer ?? {});
      if (byLayer.length === 0) {
        if (stream.bitrate > 0) measured.set(`${index}.0`, stream.bitrate);
        continue;
      }
      for (const [layer, bitrate] of byLayer) {
        const [s, t] = layer.split('.').map(Number) as [number, number];
        // Simulcast: each stream is one spatial layer, whose own layers are numbered from 0.
        if (bitrate > 0) measured.set(`${producer.type === 'simulcast' ? index : s}.${t}`, bitrate);
      }
    }
    return this.#fromMemory(producer, measured);
  }

  #fromMemory(producer: types.Producer, measured: Map<string, number>): Rung[] {
    let recent = this.#recent.get(producer.id);
    if (!recent) this.#recent.set(producer.id, (recent = new Map()));
    for (const [key, bitrate] of measured) recent.set(key, [...(recent.get(key) ?? []), bitrate].slice(-MEASURES_KEPT));
    const { spatial, temporal } = shape(producer);
    const encodings = producer.rtpParameters.encodings ?? [];
    const caps = Array.from({ length: spatial }, (_, s) => encodings[producer.type === 'simulcast' ? s : 0]?.maxBitrate);
    return priceLadder(spatial, temporal, caps, recent);
  }
}

/**
 * The ladder's prices from each layer's recent measures (`"s.t"` → oldest first, each the
 * bitrate up to and including that temporal layer).
 *
 * - A layer's price is the median of its last three measures: a keyframe (one is asked for at
 *   every subscriber's layer switch) lifts one one-second measure by half, and pricing layers on
 *   it would make subscribers step down, switch, and ask for more keyframes; a rise that lasts (an
 *   encoder ramping up) counts after two measures. A long average would lag behind such a rise and
 *   let a constrained subscriber climb onto a layer its link cannot carry.
 * - Held to the encoding's maxBitrate: the encoder keeps a layer under it over time, so a measure
 *   above it is a burst.
 * - A layer with no measure is priced from its maxBitrate (or a nominal rate); so is one with
 *   fewer than three, when that is higher. An encoder that has just started sends its layers far
 *   under their rates for a second or two (measured: a base layer at 4–7 kbit/s that settled at
 *   60–240), and a subscriber priced on that was put on a layer its 350 kbit/s link could not
 *   carry, and stalled for seconds.
 * - No layer is priced under the one below it: the rates are cumulative within an encoding, and
 *   a larger picture's base layer is not taken to cost less than a smaller one's whole.
 */
export function priceLadder(spatial: number, temporal: number, caps: ReadonlyArray<number | undefined>, recent: ReadonlyMap<string, readonly number[]>): Rung[] {
  const shares = TEMPORAL_SHARE[temporal] ?? Array.from({ length: temporal }, (_, t) => (t + 1) / temporal);
  const rungs: Rung[] = [];
  let below = 0;
  let peakBelow = 0;
  for (let s = 0; s < spatial; s++) {
    const cap = caps[s];
    const held = (bps: number): number => (cap === undefined ? bps : Math.min(bps, cap));
    for (let t = 0; t < temporal; t++) {
      const measures = recent.get(`${s}.${t}`) ?? [];
      const nominal = (cap ?? NOMINAL_BASE_BPS * 3 ** s) * shares[t]!;
      let price = measures.length === 0 ? nominal : held(median(measures));
      if (measures.length > 0 && measures.length < MEASURES_KEPT) price = Math.max(price, nominal);
      price = Math.max(price, below);
      // The highest of the last three measures, for climbing (see Rung.peak), held the same way.
      const peak = Math.max(price, peakBelow, held(Math.max(0, ...measures)));
      below = price;
      peakBelow = peak;
      rungs.push({ spatial: s, temporal: t, bitrate: Math.round(price), ...(peak > price ? { peak: Math.round(peak) } : {}) });
    }
  }
  return rungs;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** Spatial and temporal layer counts a producer sends (simulcast: one encoding per spatial layer). */
function shape(producer: types.Producer): { spatial: number; temporal: number } {
  const encodings = producer.rtpParameters.encodings ?? [];
  const match = /^[LS](\d+)T(\d+)/.exec(encodings[0]?.scalabilityMode ?? '');
  const temporal = Number(match?.[2] ?? 1);
  if (producer.type === 'simulcast') return { spatial: encodings.length, temporal };
  return { spatial: Number(match?.[1] ?? 1), temporal };
}
