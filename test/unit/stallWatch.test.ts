import { describe, expect, it } from 'vitest';
import { StallWatch } from '../../src/media/stallWatch.js';

describe('StallWatch', () => {
  it('is stalled only once progress has been owed for longer than stallMs', () => {
    const watch = new StallWatch(1000, 10_000);
    expect(watch.stalled(10_000)).toBe(false);
    expect(watch.stalled(11_000)).toBe(false);
    expect(watch.stalled(11_001)).toBe(true);
  });

  it('starts its clock again at each progress', () => {
    const watch = new StallWatch(1000, 0);
    watch.progressed(900);
    expect(watch.stalled(1500)).toBe(false);
    expect(watch.stalled(1901)).toBe(true);
    watch.progressed(1901);
    expect(watch.stalled(2500)).toBe(false);
  });
});
