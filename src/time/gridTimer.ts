/**
 * Repeating timers whose runs fall on whole multiples of their period on the process's monotonic
 * clock (`performance.now()`), so the node's periodic work shares wake-ups: everything due every
 * 1 s, 5 s or 10 s runs in the same wake-up as the 200 ms loop-delay tick and Socket.IO's pings
 * on their 1 s grid, instead of each timer waking the process at a phase of its own (set by when
 * it was created, as `setInterval` does). On the 2-vCPU VM the benchmarks run on, a wake-up cost
 * about as much as the little work each one did.
 *
 * A stalled loop does not make it catch up: the steps the stall covered are skipped (a stall inside
 * the timer's own run leaves one late run, as the next step is set before the run).
 */
export interface GridTimer {
  stop(): void;
}

export interface GridTimerOptions {
  /** Whether the timer keeps the process alive. Default false: housekeeping must not hold a closing node. */
  ref?: boolean;
}

/** How long after its step a grid timer fires: Node's timers count whole milliseconds and may fire a fraction early. */
export const SLACK_MS = 1;

/** The first step after `now` of a grid of `periodMs`, as a step number. */
export function nextStep(periodMs: number, now = performance.now()): number {
  return Math.floor(now / periodMs) + 1;
}

/** Milliseconds to wait for step `step` of a grid of `periodMs`. */
export function untilStep(step: number, periodMs: number, now = performance.now()): number {
  return Math.max(0, step * periodMs - now) + SLACK_MS;
}

/** Calls `run(due)` at every step of a grid of `periodMs` (`due`: the step's time on `performance.now()`). */
export function repeatOnGrid(periodMs: number, run: (due: number) => void, options: GridTimerOptions = {}): GridTimer {
  if (!(periodMs > 0)) throw new RangeError(`a grid timer needs a period over 0 ms, not ${periodMs}`);
  let step = nextStep(periodMs);
  let timer: NodeJS.Timeout;
  const arm = (): void => {
    timer = setTimeout(fire, untilStep(step, periodMs));
    if (!options.ref) timer.unref();
  };
  const fire = (): void => {
    const due = step * periodMs;
    // Node counts a timer from the loop's cached time, which lags when the timer was set late in a
    // busy turn: then it fires early, and waits for its step again rather than run before it.
    if (performance.now() < due) return arm();
    // Armed again before the run, so a run that stops its own timer stops the next one.
    step = Math.max(step + 1, nextStep(periodMs));
    arm();
    run(due);
  };
  arm();
  return { stop: () => clearTimeout(timer) };
}
