import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, test } from 'vitest';
import { ChorusMetrics } from '../../src/observability/metrics.js';

interface Panel {
  title?: string;
  targets?: Array<{ expr: string }>;
  panels?: Panel[];
}

const dashboard = JSON.parse(readFileSync(new URL('../../deploy/grafana/chorus.json', import.meta.url), 'utf8')) as {
  panels: Panel[];
  templating: { list: Array<{ query?: unknown; definition?: string }> };
};
const metrics = new ChorusMetrics('dashboard-test');
const exposed = new Set(metrics.metricNames());
afterAll(() => metrics.close());

/** Metric names an expression uses: our own prefixes, histogram series mapped to their metric. */
function namesIn(expr: string): string[] {
  return [...expr.matchAll(/\b((?:chorus|process|nodejs)_[a-zA-Z0-9_]+)\b/g)].map(([, name]) => {
    const base = name!.replace(/_(bucket|sum|count)$/, '');
    return exposed.has(name!) || !exposed.has(base) ? name! : base;
  });
}

const exprs = [
  ...dashboard.panels.flatMap(function all(p: Panel): string[] {
    return [...(p.targets ?? []).map((t) => t.expr), ...(p.panels ?? []).flatMap(all)];
  }),
  ...dashboard.templating.list.flatMap((v) => (v.definition ? [v.definition] : [])),
];

describe('Grafana dashboard (deploy/grafana/chorus.json)', () => {
  test('every expression references metrics the registry exposes, and only those', () => {
    expect(exprs.length).toBeGreaterThan(20);
    for (const expr of exprs) {
      const names = namesIn(expr);
      expect(names.length, `no Chorus metric in: ${expr}`).toBeGreaterThan(0);
      for (const name of names) expect(exposed.has(name), `${name} (in ${expr}) is not exposed`).toBe(true);
    }
  });

  test('the check is real: a misspelt name is caught', () => {
    expect(namesIn('rate(chorus_join_duration_seconds_bucket[5m])')).toEqual(['chorus_join_duration_seconds']);
    expect(namesIn('chorus_romos{kind="broadcast"}').every((n) => exposed.has(n))).toBe(false);
  });

  test('the issue\'s metrics are all on the dashboard', () => {
    const used = new Set(exprs.flatMap(namesIn));
    for (const name of [
      'chorus_rooms',
      'chorus_peers',
      'chorus_joins_total',
      'chorus_join_failures_total',
      'chorus_join_duration_seconds',
      'chorus_transport_failures_total',
      'chorus_room_egress_bitrate_bps',
      'chorus_room_packet_loss_ratio',
      'chorus_room_jitter_seconds',
      'chorus_worker_cpu_seconds',
      'chorus_worker_memory_bytes',
      'chorus_redis_command_duration_seconds',
      'chorus_db_query_duration_seconds',
      'chorus_circuit_breaker_state',
      'chorus_event_loop_delay_seconds',
      'chorus_event_loop_utilization',
    ]) {
      expect(used.has(name), name).toBe(true);
    }
  });

  test('two registries in one process do not collide (each node has its own)', async () => {
    const other = new ChorusMetrics('other-node');
    other.observeDbLatency('q', 0.01);
    expect(await metrics.render()).not.toContain('op="q"');
    expect(await other.render()).toContain('chorus_db_query_duration_seconds_count{node="other-node",op="q",outcome="ok"} 1');
    other.close();
  });
});
