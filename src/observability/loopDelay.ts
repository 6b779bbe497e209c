/**
 * How late the event loop runs a timer due every `resolutionMs`: the delay a signaling message
 * arriving at that moment would have waited. The timer is on the node's grid (see gridTimer), so
 * the node's other periodic work runs in its wake-ups.
 *
 * Node's own monitorEventLoopDelay records the whole interval between its ticks (the resolution
 * included, so an idle loop reads as late by the resolution), and after a reset it drops its
 * first tick: a stall that spans the first tick after a scrape went unseen. Here each tick
 * records only its lateness, against its step on the grid, which a reset does not forget.
 */
import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';
import { repeatOnGrid, SLACK_MS, type GridTimer } from '../time/gridTimer.js';

export interface LoopDelaySnapshot {
  /** Seconds; 0 when no tick ran since the previous snapshot. */
  p50: number;
  p99: number;
  max: number;
}

export class LoopDelay {
  readonly #histogram: RecordableHistogram = createHistogram();
  readonly #timer: GridTimer;

  constructor(readonly resolutionMs: number) {
    // Measuring the loop must not keep a closing process alive (a grid timer does not).
    this.#timer = repeatOnGrid(resolutionMs, (due) => this.#tick(due));
  }

  #tick(due: number): void {
    const late = performance.now() - (due + SLACK_MS);
    // The histogram takes integers of at least 1: nanoseconds, with an on-time tick as 1 ns.
    this.#histogram.record(Math.max(1, Math.round(late * 1e6)));
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
    this.#timer.stop();
  }
}
