/**
 * Clock offset to a Chorus node, estimated NTP-style over the signaling socket: the client notes
 * when it sent a `time.sync` (t0) and got the answer (t3), the node says when it received (t1) and
 * answered (t2). Assuming the way there takes as long as the way back,
 *
 *   offset = ((t1 - t0) + (t2 - t3)) / 2      server clock minus client clock
 *   rtt    = (t3 - t0) - (t2 - t1)            time on the wire, without the node's own work
 *
 * A sample's error is at most rtt / 2, so of several samples the one with the smallest round trip
 * is the one to believe.
 */
export interface ClockSample {
  offsetMs: number;
  rttMs: number;
  /** Client time the sample was taken. */
  at: number;
}

export function clockSample(t0: number, t1: number, t2: number, t3: number): ClockSample {
  return { offsetMs: (t1 - t0 + (t2 - t3)) / 2, rttMs: Math.max(0, t3 - t0 - (t2 - t1)), at: t3 };
}

export class ClockEstimate {
  readonly #samples: ClockSample[] = [];

  /** @param keep how many recent samples to choose the best from (older ones age out). */
  constructor(private readonly keep = 8) {}

  add(sample: ClockSample): void {
    this.#samples.push(sample);
    if (this.#samples.length > this.keep) this.#samples.shift();
  }

  /** The recent sample with the smallest round trip, if any. */
  get best(): ClockSample | undefined {
    let best: ClockSample | undefined;
    for (const s of this.#samples) if (!best || s.rttMs < best.rttMs) best = s;
    return best;
  }

  get offsetMs(): number {
    return this.best?.offsetMs ?? 0;
  }

  get size(): number {
    return this.#samples.length;
  }
}
