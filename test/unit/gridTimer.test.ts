/**
 * Grid timers: runs on whole multiples of the period (so timers whose periods divide each other
 * share wake-ups), never before their step, no catching up after a stall, and stop() from a run.
 */
import { expect, test } from 'vitest';
import { repeatOnGrid, type GridTimer } from '../../src/time/gridTimer.js';

type Run = { due: number; at: number };

/** The first `count` runs of a grid timer of `periodMs`: their due times and when they ran. */
function runs(periodMs: number, count: number, during?: (due: number, index: number) => void): Promise<Run[]> {
  return new Promise((resolve) => {
    const seen: Run[] = [];
    const timer: GridTimer = repeatOnGrid(periodMs, (due) => {
      seen.push({ due, at: performance.now() });
      during?.(due, seen.length - 1);
      if (seen.length === count) {
        timer.stop();
        resolve(seen);
      }
    });
  });
}

test('runs fall on whole multiples of the period, in order, not before their step (but for the few ms a Node timer may fire early)', async () => {
  const seen = await runs(25, 4);
  for (const [i, run] of seen.entries()) {
    expect(run.due % 25).toBe(0);
    expect(run.at).toBeGreaterThanOrEqual(run.due - 5);
    if (i > 0) expect(run.due).toBeGreaterThan(seen[i - 1]!.due);
  }
  // Timers of 20 and 60 ms are due together every third step of the 20 ms one.
  const [a, b] = await Promise.all([runs(20, 6), runs(60, 2)]);
  for (const run of b) expect(run.due % 20).toBe(0);
  expect(a.every((run) => run.due % 20 === 0)).toBe(true);
});

test('a stall does not make it catch up: the steps it covered are skipped', async () => {
  let stallEnd = 0;
  const seen = await runs(20, 3, (_due, index) => {
    // A stall of the loop: 70 ms of work in the first run.
    if (index === 0) for (stallEnd = performance.now() + 70; performance.now() < stallEnd; );
  });
  const [first, second, third] = seen as [Run, Run, Run];
  // At most the step set before the stall runs late (the second); the third is after the stall,
  // where catching up would have run the three steps it covered.
  expect(second.due).toBeGreaterThan(first.due);
  expect(third.due).toBeGreaterThan(stallEnd);
});

test('stop() from inside a run stops the timer; a zero period is refused', async () => {
  let stoppedRuns = 0;
  const stopped: GridTimer = repeatOnGrid(10, () => {
    stoppedRuns++;
    stopped.stop();
  });
  // Another timer on the same grid runs three more times meanwhile.
  await runs(10, 4);
  expect(stoppedRuns).toBe(1);
  expect(() => repeatOnGrid(0, () => undefined)).toThrow(RangeError);
});

test('timers due at the same step run in one wake-up', async () => {
  // Counts the wake-ups of every Node timer set meanwhile, the grid's among them.
  let wakeup = 0;
  const original = globalThis.setTimeout;
  globalThis.setTimeout = ((fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) =>
    original(() => {
      wakeup++;
      fn(...args);
    }, ms)) as typeof setTimeout;
  const every20: { due: number; wakeup: number }[] = [];
  const every40: { due: number; wakeup: number }[] = [];
  const slow = repeatOnGrid(40, (due) => every40.push({ due, wakeup }));
  try {
    await runs(20, 8, (due) => every20.push({ due, wakeup }));
  } finally {
    slow.stop();
    globalThis.setTimeout = original;
  }
  expect(every40.length).toBeGreaterThanOrEqual(2);
  // Each run of the 40 ms timer came in the wake-up that ran the 20 ms one for the same step.
  for (const run of every40) expect(every20.find((r) => r.due === run.due)?.wakeup).toBe(run.wakeup);
});
