import type { types } from 'mediasoup';
import type { Rung } from './layerPolicy.js';

/** Cumulative share of a stream's bitrate up to each temporal layer, before anything is measured. */
const TEMPORAL_SHARE: Record<number, readonly number[]> = { 1: [1], 2: [0.6, 1], 3: [0.5, 0.75, 1] };
/** A layer with neither a measure nor a maxBitrate: three times the one below, from 100 kbit/s. */
const NOMINAL_BASE_BPS = 100_000;

/**
 * What each layer of a layered video costs, measured from its producer's streams (one getStats
 * per producer however many subscribers ask, at most every `maxAgeMs`). A layer not sent now —
 * its publisher stopped encoding it because nobody wanted it — keeps its last measure, or a
 * nominal one from the encoding's maxBitrate, so a subscriber can still ask for it back.
 */
export class LayerRates {
  readonly #maxAgeMs: number;
  readonly #sampled = new Map<string, { at: number; ladder: Promise<Rung[]> }>();
  readonly #remembered = new Map<string, Map<string, number>>();
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
    this.#remembered.delete(producerId);
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
    let memory = this.#remembered.get(producer.id);
    if (!memory) this.#remembered.set(producer.id, (memory = new Map()));
    // The median of the last three measures: a keyframe (one is asked for at every subscriber's
    // layer switch) lifts one one-second measure by half, and pricing layers on it would make
    // subscribers step down, switch, and ask for more keyframes; a rise that lasts (an encoder
    // ramping up) counts after two samples. A long average would lag behind such a rise and let a
    // constrained subscriber climb onto a layer its link cannot carry.
    for (const [key, bitrate] of measured) {
      const recent = [...(this.#recent.get(producer.id)?.get(key) ?? []), bitrate].slice(-3);
      let byKey = this.#recent.get(producer.id);
      if (!byKey) this.#recent.set(producer.id, (byKey = new Map()));
      byKey.set(key, recent);
      memory.set(key, [...recent].sort((a, b) => a - b)[Math.floor((recent.length - 1) / 2)]!);
    }
    const peaks = this.#recent.get(producer.id);
    const { spatial, temporal } = shape(producer);
    const encodings = producer.rtpParameters.encodings ?? [];
    const rungs: Rung[] = [];
    for (let s = 0; s < spatial; s++) {
      const cap = encodings[producer.type === 'simulcast' ? s : 0]?.maxBitrate;
      const nominal = cap ?? NOMINAL_BASE_BPS * 3 ** s;
      const shares = TEMPORAL_SHARE[temporal] ?? Array.from({ length: temporal }, (_, t) => (t + 1) / temporal);
      for (let t = 0; t < temporal; t++) {
        const known = memory.get(`${s}.${t}`);
        // The encoder holds a layer to its maxBitrate over time: a measure above it is a burst.
        const price = known === undefined ? nominal * shares[t]! : cap !== undefined ? Math.min(known, cap) : known;
        // The highest of the last three measures, for climbing (see Rung.peak), capped the same way.
        const highest = Math.max(price, ...(peaks?.get(`${s}.${t}`) ?? []));
        const peak = cap !== undefined ? Math.min(highest, cap) : highest;
        rungs.push({ spatial: s, temporal: t, bitrate: Math.round(price), ...(peak > price ? { peak: Math.round(peak) } : {}) });
      }
    }
    return rungs;
  }
}

/** Spatial and temporal layer counts a producer sends (simulcast: one encoding per spatial layer). */
function shape(producer: types.Producer): { spatial: number; temporal: number } {
  const encodings = producer.rtpParameters.encodings ?? [];
  const match = /^[LS](\d+)T(\d+)/.exec(encodings[0]?.scalabilityMode ?? '');
  const temporal = Number(match?.[2] ?? 1);
  if (producer.type === 'simulcast') return { spatial: encodings.length, temporal };
  return { spatial: Number(match?.[1] ?? 1), temporal };
}
