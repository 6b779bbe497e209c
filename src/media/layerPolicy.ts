/**
 * Which layers of each video a subscriber receives, given what its downlink carries.
 *
 * mediasoup left alone probes upward whenever its estimate allows and falls back when the link
 * chokes: on a constrained link that is a keyframe up, a burst of loss, a keyframe down — a
 * visible stall each time. Chorus decides the ceiling itself, slowly upward and promptly
 * downward, and sets it as each consumer's preferred layers; mediasoup's own allocation still
 * works below that ceiling, within the same estimate.
 *
 * Pure: no timers, no mediasoup. The caller supplies the estimate, the clock and the history.
 */

/** A layer a video can be received at, and what it costs (bits per second, measured or nominal). */
export interface Rung {
  spatial: number;
  temporal: number;
  bitrate: number;
  /**
   * The most it was seen to cost lately (undefined: `bitrate`). Climbing onto a rung needs it to
   * fit at this price: a publisher whose encoder dipped for a few seconds (a busy machine) makes
   * a layer look cheap, and a subscriber lifted onto it on a link that cannot carry it stalls.
   */
  peak?: number;
}

export type Target = { spatial: number; temporal: number } | 'off';

export interface Demand {
  id: string;
  /** Screen shares and the current speaker: served first, and never paused for bandwidth. */
  prioritised: boolean;
  /** Rendered pixels (ordering among equals: the larger tile is served first). */
  area: number;
  /** The highest layers the view (or a pin) wants. */
  maxSpatial: number;
  maxTemporal: number;
  /** Ascending: spatial-major, temporal within. Empty: nothing known yet (left as it is). */
  ladder: readonly Rung[];
  /** What was applied last; undefined for a new consumer (its first choice is free of holds). */
  current: Target | undefined;
  /** When its ceiling last went down, and last changed at all (ms, the caller's clock). */
  lastDownAt: number;
  lastChangeAt: number;
  /** This demand's up hold now (grown after climbs that failed; see `Climbs`). Undefined: the rules'. */
  upHoldMs?: number | undefined;
}

export interface LayerRules {
  /** Fraction of the estimate video may use (the rest: headers, retransmissions, error). */
  headroom: number;
  /** At most one step down per this long. */
  downHoldMs: number;
  /**
   * A video that flows is paused for want of bandwidth only once the estimate has been too low
   * for it this long. Right after a link starts carrying video (a call moving from peer-to-peer
   * to the SFU, a subscriber joining) its estimate is what little it carried, and a busy machine
   * reads as a dip: both last a second or two. A freeze costs more than a lower layer.
   */
  pauseHoldMs: number;
  /** At least this long since the last change before stepping up to a layer that only just fits. */
  upHoldMs: number;
  /**
   * A layer whose cost times this still fits is taken at once, hold or not: the hold is for
   * climbing towards the edge of the estimate (where a wrong guess costs a stall), not for a tile
   * enlarged on a link with room to spare.
   */
  upMargin: number;
  /** The longest the up hold grows to after climbs that failed, one after another. */
  maxUpHoldMs: number;
}

export const DEFAULT_LAYER_RULES: LayerRules = { headroom: 0.85, downHoldMs: 1000, pauseHoldMs: 2500, upHoldMs: 4000, upMargin: 2, maxUpHoldMs: 16_000 };

/**
 * The ceiling for each demand. Order of service: prioritised first, then larger tiles. First
 * every demand gets its lowest layer while that fits (the prioritised ones, and the first in
 * line, whatever it costs — a transport with no active video stops probing and could never
 * climb back); the others are paused. Then, in the same order, each climbs as far as the rest
 * of the budget and its view allow. Temporal layers are the first to go: the ladder steps
 * through a spatial layer's frame rates before dropping the spatial layer.
 *
 * `budget` is what the lowest estimate of the last up hold leaves for video: climbs and resumes
 * spend it. `lasting` is what the highest estimate in force over the last pause hold leaves: a
 * video that flows is paused only when its lowest layer does not fit that. A dip of the estimate
 * shorter than the pause hold steps layers down but freezes no picture.
 */
export function allocate(budget: number, demands: readonly Demand[], now: number, rules: LayerRules = DEFAULT_LAYER_RULES, lasting: number = budget): Map<string, Target> {
  const order = [...demands].sort((a, b) => Number(b.prioritised) - Number(a.prioritised) || b.area - a.area || a.id.localeCompare(b.id));
  const result = new Map<string, Target>();
  let remaining = budget;
  let lastingRemaining = lasting;
  const floors = new Map<string, number>();
  order.forEach((demand, index) => {
    const usable = usableRungs(demand);
    if (usable.length === 0) {
      if (demand.current !== undefined) result.set(demand.id, demand.current);
      return;
    }
    const lowest = usable[0]!;
    const keep = demand.prioritised || index === 0 || lowest.bitrate <= (demand.current === 'off' ? remaining : lastingRemaining);
    let floor: number | 'off' = keep ? 0 : 'off';
    // Pausing and resuming follow the same holds as stepping down and up.
    if (floor === 'off' && demand.current !== undefined && demand.current !== 'off' && now - demand.lastDownAt < rules.downHoldMs) floor = 0;
    if (floor === 0 && demand.current === 'off' && now - demand.lastChangeAt < upHold(demand, rules)) floor = 'off';
    if (floor === 'off') {
      result.set(demand.id, 'off');
      return;
    }
    floors.set(demand.id, 0);
    remaining -= lowest.bitrate;
    lastingRemaining -= lowest.bitrate;
  });
  for (const demand of order) {
    if (!floors.has(demand.id)) continue;
    const usable = usableRungs(demand);
    let index = 0;
    const at = currentIndex(demand, usable);
    // Up the ladder until a rung does not fit (measured rates need not rise strictly: stop there);
    // a rung above the current one must fit at its recent peak.
    const price = (i: number): number => (i > at ? (usable[i]!.peak ?? usable[i]!.bitrate) : usable[i]!.bitrate);
    while (index + 1 < usable.length && price(index + 1) - usable[0]!.bitrate <= remaining) index++;
    const fits = usable[index]!;
    const chosen = held(demand, usable, fits, now, rules, fits.bitrate * rules.upMargin <= remaining + usable[0]!.bitrate);
    remaining -= chosen.bitrate - usable[0]!.bitrate;
    result.set(demand.id, { spatial: chosen.spatial, temporal: chosen.temporal });
  }
  return result;
}

/**
 * RTCP's fraction lost (of 256) from which a receiver's loss is taken as congestion rather than
 * noise: 10 %, where libwebrtc's own loss-based estimate starts to cut.
 */
export const CONGESTED_FRACTION_LOST = 26;

/**
 * A reading of what a link carries, from loss: when a receiver reports losing `fractionLost`/256
 * of what was sent at `sentBps`, the link delivered about the rest. Undefined below
 * `CONGESTED_FRACTION_LOST`. The transport-cc estimate follows a link that narrows under a
 * flowing picture over seconds (on a queue that is already full it sees no growing delay, and it
 * cuts for loss by steps); one receiver report says at once how much got through.
 */
export function deliveredBitrate(sentBps: number, fractionLost: number): number | undefined {
  if (!(sentBps > 0) || !(fractionLost >= CONGESTED_FRACTION_LOST)) return undefined;
  return sentBps * (1 - Math.min(fractionLost, 256) / 256);
}

/**
 * A downlink's bandwidth estimates over the last few seconds (ms and bits per second, the
 * caller's clock), for the two readings the policy takes of them. Keeps what is newer than
 * `keepMs`, and the reading in force when that span began.
 */
export class EstimateHistory {
  readonly #readings: Array<{ at: number; bps: number }> = [];

  /** `initial`: the estimate in force before the first reading. */
  constructor(
    private readonly initial: number,
    private readonly keepMs: number,
  ) {}

  add(at: number, bps: number): void {
    this.#readings.push({ at, bps });
    while (this.#readings.length > 1 && at - this.#readings[1]!.at > this.keepMs) this.#readings.shift();
  }

  /**
   * The link starts carrying video again: what it measured while it carried little (an
   * estimate only rises as traffic shows the link holds more) says nothing of what it holds, so
   * from `at` the initial estimate, or the last reading if higher, is in force again.
   */
  restart(at: number): void {
    this.add(at, Math.max(this.initial, this.#readings.at(-1)?.bps ?? 0));
  }

  /** The lowest reading of the last `spanMs` (none that recent: the newest): a rise counts once it has lasted. */
  lowest(now: number, spanMs: number): number {
    const recent = this.#readings.filter((r) => now - r.at <= spanMs);
    if (recent.length === 0) return this.#readings.at(-1)?.bps ?? this.initial;
    return Math.min(...recent.map((r) => r.bps));
  }

  /** The highest estimate in force at any moment of the last `spanMs` (≤ keepMs): a dip counts once it has lasted. */
  highestInForce(now: number, spanMs: number): number {
    // Readings are in time order: the last one before the span is the one in force as it began.
    let highest = this.initial;
    for (const r of this.#readings) highest = now - r.at > spanMs ? r.bps : Math.max(highest, r.bps);
    return highest;
  }
}

/** Where the current layer is in `usable` (-1: none, off, or not in the view). */
function currentIndex(demand: Demand, usable: readonly Rung[]): number {
  const current = demand.current;
  if (current === undefined || current === 'off') return -1;
  return usable.findIndex((r) => r.spatial === current.spatial && r.temporal === current.temporal);
}

/** The ladder within what the view wants. */
function usableRungs(demand: Demand): Rung[] {
  return demand.ladder.filter((r) => r.spatial <= demand.maxSpatial && r.temporal <= demand.maxTemporal);
}

/** The rung to apply, given the one that fits and the holds since the last changes. */
function held(demand: Demand, usable: readonly Rung[], fits: Rung, now: number, rules: LayerRules, comfortable: boolean): Rung {
  const current = demand.current;
  if (current === undefined || current === 'off') return fits;
  const at = usable.findIndex((r) => r.spatial === current.spatial && r.temporal === current.temporal);
  // The view shrank below the current layer, or that layer is gone: follow at once.
  if (at === -1) return fits;
  const currentRung = usable[at]!;
  const fitsAt = usable.indexOf(fits);
  if (fitsAt < at) return now - demand.lastDownAt >= rules.downHoldMs ? fits : currentRung;
  if (fitsAt === at || (!comfortable && now - demand.lastChangeAt < upHold(demand, rules))) return currentRung;
  return fits;
}

/** The up hold in force for `demand`: its own (grown after failed climbs) or the rules'. */
function upHold(demand: Demand, rules: LayerRules): number {
  return demand.upHoldMs ?? rules.upHoldMs;
}

/**
 * One video's climbs on one subscriber's link, for an up hold that grows.
 *
 * The estimate can make a layer fit that the link cannot carry: a marginal link whose probes
 * succeed while its queue, a keyframe later, does not. With a fixed hold the policy climbs,
 * stalls, comes down and climbs again every few seconds, a stall each time. A climb that comes
 * back down within its hold failed, so the next waits twice as long (up to `maxUpHoldMs`); a
 * climb that lasts its hold resets it.
 */
export class Climbs {
  #holdMs: number;
  #climbedAt: number | undefined;
  readonly #rules: LayerRules;

  constructor(rules: LayerRules) {
    this.#rules = rules;
    this.#holdMs = rules.upHoldMs;
  }

  /** The up hold in force at `now` (a climb that has lasted its hold resets it first). */
  holdMs(now: number): number {
    if (this.#climbedAt !== undefined && now - this.#climbedAt >= this.#holdMs) {
      this.#climbedAt = undefined;
      this.#holdMs = this.#rules.upHoldMs;
    }
    return this.#holdMs;
  }

  /** Records an applied change from `previous` (undefined: the first choice, not a climb) to `next`. */
  changed(previous: Target | undefined, next: Target, now: number): void {
    if (previous === undefined) return;
    if (isLower(previous, next)) {
      this.#climbedAt = now;
      return;
    }
    if (!isLower(next, previous)) return;
    if (this.#climbedAt !== undefined && now - this.#climbedAt < this.#holdMs) this.#holdMs = Math.min(this.#holdMs * 2, this.#rules.maxUpHoldMs);
    this.#climbedAt = undefined;
  }
}

/** Whether `next` is below `previous` (off counts as below every layer). */
export function isLower(next: Target, previous: Target): boolean {
  if (next === 'off') return previous !== 'off';
  if (previous === 'off') return false;
  return next.spatial < previous.spatial || (next.spatial === previous.spatial && next.temporal < previous.temporal);
}

export function sameTarget(a: Target | undefined, b: Target | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a === 'off' || b === 'off') return a === b;
  return a.spatial === b.spatial && a.temporal === b.temporal;
}
