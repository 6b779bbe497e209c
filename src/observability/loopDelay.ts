/**
 * How late the event loop runs a timer due every `resolutionMs`: the delay a signaling message
 * arriving at that moment would have waited.
 *
 * Node's own monitorEventLoopDelay records the whole interval between its ticks (the resolution
 * included, so an idle loop reads as late by the resolution), and after a reset it drops its
 * first tick: a stall that spans the first tick after a scrape went unseen. Here each tick
 * records only its lateness, against the previous tick, which a reset does not forget.
 */
import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';

export interface LoopDelaySnapshot {
  /** Seconds; 0 when no tick ran since the previous snapshot. */
  p50: number;
  p99: number;
  max: number;
}

export class LoopDelay {
  readonly #histogram: RecordableHistogram = createHistogram();
  readonly #timer: NodeJS.Timeout;
  #due: number;

  constructor(readonly resolutionMs: number) {
    this.#due = performance.now() + resolutionMs;
    this.#timer = setInterval(() => this.#tick(), resolutionMs);
    // Measuring the loop must not keep a closing process alive.
    this.#timer.unref();
  }

  #tick(): void {
    const now = performance.now();
    // The histogram takes integers of at least 1: nanoseconds, with an on-time tick as 1 ns.
    this.#histogram.record(Math.max(1, Math.round((now - this.#due) * 1e6)));
    this.#due = now + this.resolutionMs;
  }

  /** The delays since the previous snapshot, and starts a new period. */
  snapshot(): LoopDelaySnapshot {
    const h = this.#histogram;
    const seconds = (ns: number): number => (h.count > 0 && Number.isFinite(ns) ? ns / 1e9 : 0);
    const out = { p50: seconds(h.percentile(50)), p99: seconds(h.percentile(99)), max: seconds(h.max) };
    h.reset();
    return out;
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
