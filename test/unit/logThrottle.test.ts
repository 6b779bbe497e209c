import { afterEach, beforeEach, expect, test, vi } from 'vitest';
import { LogThrottle } from '../../src/observability/logThrottle.js';

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

test('one line per offender per interval; the next line carries how many were held back', () => {
  const throttle = new LogThrottle(10_000);
  const lines: Array<[string, number]> = [];
  const offend = (who: string): void => throttle.run(who, (suppressed) => lines.push([who, suppressed]));
  for (let i = 0; i < 152; i++) offend('10.0.0.1');
  offend('10.0.0.2');
  expect(lines).toEqual([
    ['10.0.0.1', 0],
    ['10.0.0.2', 0],
  ]);
  vi.advanceTimersByTime(10_000);
  offend('10.0.0.1');
  offend('10.0.0.1');
  expect(lines.slice(2)).toEqual([['10.0.0.1', 151]]);
});

test('memory stays bounded under offenders from many addresses', () => {
  const throttle = new LogThrottle(10_000, 100);
  let written = 0;
  for (let i = 0; i < 1000; i++) throttle.run(`10.0.${i >> 8}.${i & 255}`, () => written++);
  expect(written).toBe(1000);
  // The most recent offenders are still remembered (and held back).
  throttle.run('10.0.3.231', () => written++);
  expect(written).toBe(1000);
});
