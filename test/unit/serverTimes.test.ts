/**
 * The benchmark's reading of a node's /metrics for garbage-collection pauses, on the exposition
 * prom-client itself writes (a histogram by kind, as its default GC metric is).
 */
import { Histogram, Registry } from 'prom-client';
import { expect, test } from 'vitest';
import { gcPauses, gcPausesBetween } from '../../bench/lib/serverTimes.js';

test('GC pauses are summed by kind from the exposition, and differenced in ms across a window', async () => {
  const registry = new Registry();
  registry.setDefaultLabels({ node: 'n1' });
  const gc = new Histogram({ name: 'nodejs_gc_duration_seconds', help: 'gc', labelNames: ['kind'], buckets: [0.001, 0.01, 0.1], registers: [registry] });
  gc.observe({ kind: 'minor' }, 0.002);
  gc.observe({ kind: 'major' }, 0.05);
  const before = gcPauses(await registry.metrics());
  expect(before).toEqual({ minor: 0.002, major: 0.05 });
  gc.observe({ kind: 'minor' }, 0.0035);
  gc.observe({ kind: 'incremental' }, 0.012);
  const after = gcPauses(await registry.metrics());
  expect(gcPausesBetween(before, after)).toEqual({ minor: 3.5, major: 0, incremental: 12, total: 15.5 });
  expect(gcPausesBetween(undefined, after)).toBeUndefined();
});
