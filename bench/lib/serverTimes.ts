/**
 * Server-side time per signaling request, from the node's own Prometheus histogram
 * (chorus_signaling_request_duration_seconds): what the node spends between a request arriving
 * and its answer leaving, apart from the network and the client.
 */

export interface RequestTimes {
  count: number;
  meanMs: number;
  /** Upper bound of the histogram bucket holding the 95th percentile. */
  p95AtMostMs: number | null;
}

const METRIC = 'chorus_signaling_request_duration_seconds';

export function requestTimes(exposition: string): Record<string, RequestTimes> {
  const buckets = new Map<string, Array<{ le: number; n: number }>>();
  const sums = new Map<string, number>();
  const counts = new Map<string, number>();
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(METRIC)) continue;
    const m = /^(\w+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const [, name, labels, value] = m;
    const method = /method="([^"]+)"/.exec(labels!)?.[1];
    if (!method) continue;
    const v = Number(value);
    if (name === `${METRIC}_bucket`) {
      const le = /le="([^"]+)"/.exec(labels!)?.[1];
      const list = buckets.get(method) ?? [];
      list.push({ le: le === '+Inf' ? Infinity : Number(le), n: v });
      buckets.set(method, list);
    } else if (name === `${METRIC}_sum`) sums.set(method, v);
    else if (name === `${METRIC}_count`) counts.set(method, v);
  }
  const out: Record<string, RequestTimes> = {};
  for (const [method, count] of counts) {
    if (count === 0) continue;
    const sorted = (buckets.get(method) ?? []).sort((a, b) => a.le - b.le);
    const at = sorted.find((b) => b.n >= count * 0.95)?.le;
    out[method] = {
      count,
      meanMs: Math.round(((sums.get(method) ?? 0) / count) * 10000) / 10,
      p95AtMostMs: at === undefined || at === Infinity ? null : Math.round(at * 10000) / 10,
    };
  }
  return out;
}

/** The node's /metrics text, or undefined when it cannot be read (a figure then goes missing, not the run). */
async function fetchExposition(url: string): Promise<string | undefined> {
  try {
    const response = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
    return response.ok ? await response.text() : undefined;
  } catch {
    return undefined;
  }
}

export async function fetchRequestTimes(url: string): Promise<Record<string, RequestTimes> | undefined> {
  const text = await fetchExposition(url);
  return text === undefined ? undefined : requestTimes(text);
}

const GC = 'nodejs_gc_duration_seconds_sum';

/**
 * The node's main-thread garbage-collection pauses so far, seconds by kind (prom-client's
 * `nodejs_gc_duration_seconds`: minor, major, incremental, weakcb). Two readings around a window
 * say how much of the node's CPU in it was its collector stopping JavaScript.
 */
export function gcPauses(exposition: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(GC)) continue;
    const m = /^\w+\{[^}]*kind="([^"]+)"[^}]*\} (\S+)$/.exec(line);
    if (m) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
  }
  return out;
}

export async function fetchGcPauses(url: string): Promise<Record<string, number> | undefined> {
  const text = await fetchExposition(url);
  return text === undefined ? undefined : gcPauses(text);
}

/** Milliseconds of each kind between two readings, and their total; undefined if either is missing. */
export function gcPausesBetween(before: Record<string, number> | undefined, after: Record<string, number> | undefined): Record<string, number> | undefined {
  if (!before || !after) return undefined;
  const out: Record<string, number> = {};
  let total = 0;
  for (const [kind, seconds] of Object.entries(after)) {
    const ms = Math.round((seconds - (before[kind] ?? 0)) * 10000) / 10;
    out[kind] = ms;
    total += ms;
  }
  return { ...out, total: Math.round(total * 10) / 10 };
}
