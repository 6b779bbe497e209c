/**
 * Repeating timers whose runs fall on whole multiples of their period on the process's monotonic
 * clock (`performance.now()`), so the node's periodic work shares wake-ups: everything due every
 * 200 ms, 1 s, 5 s or 10 s, and Socket.IO's pings on their 1 s grid, runs in one wake-up of the
 * process a step, instead of each timer waking it at a phase of its own (set by when it was
 * created, as `setInterval` does). On the 2-vCPU VM the benchmarks run on, a wake-up cost about as
 * much as the little work each one did.
 *
 * All grid timers of the process share one Node timer, armed for the earliest step any of them is
 * due at. Separate Node timers would not share wake-ups reliably: Node counts each from the loop's
 * cached time, so timers set for the same instant from different points of a turn expire
 * milliseconds apart, each in a wake-up of its own.
 *
 * A stalled loop does not make a timer catch up: the steps the stall covered are skipped. Grid
 * timers do not keep the process alive: periodic housekeeping must not hold a closing node.
 */
export interface GridTimer {
  stop(): void;
}

/** How long after its step the shared timer is set to fire: Node's timers count whole milliseconds and may fire a fraction early. */
export const SLACK_MS = 1;
/** How early a run may come: Node's timer set late in a busy turn fires up to that turn's length early. */
const EARLY_MS = 5;

interface Entry {
  readonly periodMs: number;
  readonly run: (due: number) => void;
  /** The next step's time on `performance.now()`. */
  due: number;
  stopped: boolean;
}

const entries = new Set<Entry>();
let timer: NodeJS.Timeout | undefined;
let armedFor = Number.POSITIVE_INFINITY;

/** The first step of a grid of `periodMs` after `now`, as a time on `performance.now()`. */
function stepAfter(periodMs: number, now: number): number {
  return (Math.floor(now / periodMs) + 1) * periodMs;
}

function arm(): void {
  let next = Number.POSITIVE_INFINITY;
  for (const entry of entries) next = Math.min(next, entry.due);
  if (next === armedFor) return;
  clearTimeout(timer);
  timer = undefined;
  armedFor = next;
  if (next === Number.POSITIVE_INFINITY) return;
  timer = setTimeout(fire, Math.max(0, next - performance.now()) + SLACK_MS);
  timer.unref();
}

function fire(): void {
  armedFor = Number.POSITIVE_INFINITY;
  const now = performance.now();
  const due: [Entry, number][] = [];
  for (const entry of entries) {
    if (entry.due > now + EARLY_MS) continue;
    due.push([entry, entry.due]);
    entry.due = Math.max(entry.due + entry.periodMs, stepAfter(entry.periodMs, now));
  }
  // Armed again before the runs: a run that stops its own timer, or starts one, re-arms it.
  arm();
  for (const [entry, at] of due) {
    if (entry.stopped) continue;
    try {
      entry.run(at);
    } catch (error) {
      // What a throwing setInterval callback does (an uncaught exception), without keeping the
      // other timers due at this step from running.
      process.nextTick(() => {
        throw error;
      });
    }
  }
}

/** Calls `run(due)` at every step of a grid of `periodMs` (`due`: the step's time on `performance.now()`). */
export function repeatOnGrid(periodMs: number, run: (due: number) => void): GridTimer {
  if (!(periodMs > 0)) throw new RangeError(`a grid timer needs a period over 0 ms, not ${periodMs}`);
  const entry: Entry = { periodMs, run, due: stepAfter(periodMs, performance.now()), stopped: false };
  entries.add(entry);
  arm();
  return {
    stop: () => {
      if (entry.stopped) return;
      entry.stopped = true;
      entries.delete(entry);
      arm();
    },
  };
}
