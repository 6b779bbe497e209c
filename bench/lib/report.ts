/**
 * The benchmark's chart page: one self-contained HTML file with hand-rolled inline SVG (no
 * scripts, no CDNs), rebuilt from every run in results.jsonl.
 */

export interface RunRecord {
  ts: string;
  listeners: number;
  procs: number;
  workers: number;
  joined: number;
  failed: number;
  joinMs: { p50: number; p95: number; p99: number; max: number };
  lossPct: number;
  jitterMs: { p50: number; p95: number };
  serverCpuPct: number;
  serverCpuCores: number;
  serverRssMiB: number;
  loadgenCpuPct: number;
  loadgenRssMiB: number;
  listenersPerServerCore: number | null;
  cpuPerListenerPctOfCore: number | null;
  machine: { cpus: number; model: string; node: string };
  command: string;
  /** Listener stack; runs from before the option existed are 'wrtc'. */
  peer?: 'wrtc' | 'werift';
  machineCpuPct?: number;
  durationS?: number;
  packets?: { deliveredPct?: number; receivedPerListenerPerSec?: number };
  /** Every successful listener's join time, ms (for the per-run histogram). */
  joinTimesMs?: number[];
}

const palette = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Round tick values spanning [min, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) max = min + 1;
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.floor(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1]! < max) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
}

function fmt(v: number): string {
  if (Math.abs(v) >= 10_000) return `${Math.round(v / 1000)}k`;
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(Math.abs(v) < 1 ? 2 : 1);
}

interface Series {
  name: string;
  points: [number, number][];
  color?: string;
  dashed?: boolean;
  /** Draw a connecting line (else points only). */
  line?: boolean;
}

interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function frame(width = 640, height = 320): Frame {
  return { width, height, left: 64, right: 64, top: 36, bottom: 48 };
}

function axes(f: Frame, title: string, xLabel: string, yLabel: string, xTicks: number[], yTicks: number[], sx: (x: number) => number, sy: (y: number) => number): string {
  const parts: string[] = [];
  const x0 = f.left;
  const x1 = f.width - f.right;
  const y0 = f.height - f.bottom;
  const y1 = f.top;
  parts.push(`<text x="${f.width / 2}" y="20" text-anchor="middle" font-weight="bold">${esc(title)}</text>`);
  for (const t of yTicks) {
    const y = sy(t);
    parts.push(`<line x1="${x0}" x2="${x1}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${x0 - 6}" y="${y + 4}" text-anchor="end" font-size="11">${fmt(t)}</text>`);
  }
  for (const t of xTicks) {
    const x = sx(t);
    parts.push(`<line x1="${x}" x2="${x}" y1="${y0}" y2="${y0 + 4}" stroke="#333"/>`);
    parts.push(`<text x="${x}" y="${y0 + 17}" text-anchor="middle" font-size="11">${fmt(t)}</text>`);
  }
  parts.push(`<line x1="${x0}" x2="${x1}" y1="${y0}" y2="${y0}" stroke="#333"/>`);
  parts.push(`<line x1="${x0}" x2="${x0}" y1="${y0}" y2="${y1}" stroke="#333"/>`);
  parts.push(`<text x="${(x0 + x1) / 2}" y="${f.height - 8}" text-anchor="middle" font-size="12">${esc(xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${(y0 + y1) / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(yLabel)}</text>`);
  return parts.join('');
}

function legend(f: Frame, series: Series[]): string {
  let x = f.left + 10;
  return series
    .map((s, i) => {
      const at = x;
      x += 40 + s.name.length * 6.5;
      return { s, i, x: at };
    })
    .map(({ s, i, x }) => {
      const color = s.color ?? palette[i % palette.length]!;
      return `<g><line x1="${x}" x2="${x + 18}" y1="${f.top + 6}" y2="${f.top + 6}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="4 3"' : ''}/><text x="${x + 22}" y="${f.top + 10}" font-size="11">${esc(s.name)}</text></g>`;
    })
    .join('');
}

/** Points (and lines) of y against x for several series. */
export function lineChart(opts: { title: string; xLabel: string; yLabel: string; series: Series[]; width?: number; height?: number }): string {
  const f = frame(opts.width, opts.height);
  const all = opts.series.flatMap((s) => s.points);
  if (all.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="60"><text x="10" y="30">${esc(opts.title)}: no data</text></svg>`;
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const xTicks = niceTicks(Math.min(0, ...xs), Math.max(...xs));
  const yTicks = niceTicks(Math.min(0, ...ys), Math.max(...ys) * 1.1);
  const [xmin, xmax] = [xTicks[0]!, xTicks[xTicks.length - 1]!];
  const [ymin, ymax] = [yTicks[0]!, yTicks[yTicks.length - 1]!];
  const sx = (x: number): number => +(f.left + ((x - xmin) / (xmax - xmin)) * (f.width - f.left - f.right)).toFixed(1);
  const sy = (y: number): number => +(f.height - f.bottom - ((y - ymin) / (ymax - ymin)) * (f.height - f.top - f.bottom)).toFixed(1);
  const body = opts.series
    .map((s, i) => {
      const color = s.color ?? palette[i % palette.length]!;
      const pts = [...s.points].sort((a, b) => a[0] - b[0]);
      const line =
        s.line !== false && pts.length > 1
          ? `<polyline fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="4 3"' : ''} points="${pts.map(([x, y]) => `${sx(x)},${sy(y)}`).join(' ')}"/>`
          : '';
      const dots = pts.map(([x, y]) => `<circle cx="${sx(x)}" cy="${sy(y)}" r="3.5" fill="${color}"><title>${esc(s.name)}: x=${fmt(x)}, y=${fmt(y)}</title></circle>`).join('');
      return line + dots;
    })
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" font-family="sans-serif">${axes(f, opts.title, opts.xLabel, opts.yLabel, xTicks, yTicks, sx, sy)}${body}${legend(f, opts.series)}</svg>`;
}

/** Histogram of values (bars, left axis: count) with their CDF (line, right axis: %). */
export function histogramCdf(opts: { title: string; xLabel: string; values: number[]; bins?: number; width?: number; height?: number }): string {
  const f = frame(opts.width, opts.height);
  const values = [...opts.values].sort((a, b) => a - b);
  if (values.length === 0) return `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="60"><text x="10" y="30">${esc(opts.title)}: no data</text></svg>`;
  const xTicks = niceTicks(0, values[values.length - 1]!);
  const xmax = xTicks[xTicks.length - 1]!;
  const binCount = opts.bins ?? Math.min(40, Math.max(10, Math.ceil(Math.sqrt(values.length) * 2)));
  const width = xmax / binCount;
  const counts = new Array<number>(binCount).fill(0);
  for (const v of values) counts[Math.min(binCount - 1, Math.floor(v / width))]!++;
  const yTicks = niceTicks(0, Math.max(...counts) * 1.15);
  const ymax = yTicks[yTicks.length - 1]!;
  const plotW = f.width - f.left - f.right;
  const plotH = f.height - f.top - f.bottom;
  const sx = (x: number): number => +(f.left + (x / xmax) * plotW).toFixed(1);
  const sy = (y: number): number => +(f.height - f.bottom - (y / ymax) * plotH).toFixed(1);
  const syPct = (p: number): number => +(f.height - f.bottom - (p / 100) * plotH).toFixed(1);
  const bars = counts
    .map((c, i) => {
      if (c === 0) return '';
      const x = sx(i * width);
      return `<rect x="${x}" y="${sy(c)}" width="${Math.max(1, sx((i + 1) * width) - x - 1)}" height="${sy(0) - sy(c)}" fill="#9ecae1"><title>${fmt(i * width)}-${fmt((i + 1) * width)} ms: ${c}</title></rect>`;
    })
    .join('');
  // Empirical CDF as a step function: flat at the previous fraction up to each value, then up.
  const cdf = values.flatMap((v, i) => [`${sx(v)},${syPct((i / values.length) * 100)}`, `${sx(v)},${syPct(((i + 1) / values.length) * 100)}`]);
  const right = [0, 25, 50, 75, 100]
    .map((p) => `<text x="${f.width - f.right + 6}" y="${syPct(p) + 4}" font-size="11">${p}%</text>`)
    .join('');
  const cdfLine = `<polyline fill="none" stroke="#d62728" stroke-width="2" points="${cdf.join(' ')} ${sx(xmax)},${syPct(100)}"/>`;
  const leg = legend(f, [
    { name: 'listeners per bin', points: [], color: '#9ecae1' },
    { name: 'CDF (right axis)', points: [], color: '#d62728' },
  ]);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" font-family="sans-serif">${axes(f, opts.title, opts.xLabel, 'listeners', xTicks, yTicks, sx, sy)}${bars}${cdfLine}${right}${leg}</svg>`;
}

function pct(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
}

const peerOf = (r: RunRecord): 'wrtc' | 'werift' => r.peer ?? 'wrtc';

export function renderHtml(runs: RunRecord[]): string {
  const byN = [...runs].sort((a, b) => a.listeners - b.listeners);
  // The two listener stacks measure different things (decoded audio vs RTP received) and load
  // the machine differently: never join their points into one line.
  const peers = [...new Set(byN.map(peerOf))].sort();
  const pts = (pick: (r: RunRecord) => number | null | undefined, peer: string): [number, number][] =>
    byN.flatMap((r) => {
      const v = pick(r);
      return peerOf(r) !== peer || v === null || v === undefined ? [] : [[r.listeners, v] as [number, number]];
    });
  const perPeer = (series: Array<Omit<Series, 'points'> & { pick: (r: RunRecord) => number | null | undefined }>): Series[] =>
    peers.flatMap((peer, p) =>
      series.map(({ pick, ...s }, i) => ({
        ...s,
        name: peers.length > 1 ? `${s.name} (${peer})` : s.name,
        points: pts(pick, peer),
        color: s.color ?? palette[(p * series.length + i) % palette.length]!,
      })),
    );
  const joinChart = lineChart({
    title: 'Join time (token to first audible frame; werift: first audio RTP packet) vs listeners',
    xLabel: 'listeners (N)',
    yLabel: 'ms',
    series: perPeer([
      { name: 'p50', pick: (r) => r.joinMs.p50 },
      { name: 'p95', pick: (r) => r.joinMs.p95, dashed: true },
      { name: 'p99', pick: (r) => r.joinMs.p99, dashed: true },
    ]),
  });
  const cpuChart = lineChart({
    title: 'CPU during steady state vs listeners (% of one core)',
    xLabel: 'listeners (N)',
    yLabel: '% of one core',
    series: perPeer([
      { name: 'server (node + workers)', pick: (r) => r.serverCpuPct },
      { name: 'load generator', pick: (r) => r.loadgenCpuPct, dashed: true },
      { name: 'whole machine', pick: (r) => r.machineCpuPct, dashed: true },
    ]),
  });
  const rssChart = lineChart({
    title: 'Server RSS vs listeners',
    xLabel: 'listeners (N)',
    yLabel: 'MiB',
    series: perPeer([{ name: 'server RSS (peak)', pick: (r) => r.serverRssMiB }]),
  });
  const qualityChart = lineChart({
    title: 'Packet loss and jitter vs listeners',
    xLabel: 'listeners (N)',
    yLabel: 'loss % / jitter ms',
    series: perPeer([
      { name: 'loss %', pick: (r) => r.lossPct },
      { name: 'jitter p95 ms', pick: (r) => r.jitterMs.p95, dashed: true },
    ]),
  });
  const deliveryChart = lineChart({
    title: 'Delivered on time: received ÷ (sent × listeners) in the window',
    xLabel: 'listeners (N)',
    yLabel: '%',
    series: perPeer([
      { name: 'delivered %', pick: (r) => r.packets?.deliveredPct },
      { name: 'joined % of N', pick: (r) => (r.joined / r.listeners) * 100, dashed: true },
    ]),
  });
  const rows = runs
    .map(
      (r) => `<tr><td>${esc(r.ts)}</td><td>${peerOf(r)}</td><td>${r.listeners}</td><td>${r.procs}</td><td>${r.workers}</td><td>${r.joined}</td><td>${r.failed}</td>` +
        `<td>${r.joinMs.p50}</td><td>${r.joinMs.p95}</td><td>${r.joinMs.p99}</td><td>${r.joinMs.max}</td><td>${r.lossPct}</td><td>${r.packets?.deliveredPct ?? ''}</td><td>${r.jitterMs.p50} / ${r.jitterMs.p95}</td>` +
        `<td>${r.serverCpuPct}</td><td>${r.serverRssMiB}</td><td>${r.loadgenCpuPct}</td><td>${r.machineCpuPct ?? ''}</td><td>${r.listenersPerServerCore ?? ''}</td><td>${r.cpuPerListenerPctOfCore ?? ''}</td></tr>`,
    )
    .join('\n');
  const perRun = [...runs]
    .reverse()
    .map((r) => {
      const values = r.joinTimesMs ?? [];
      return `<figure>${histogramCdf({ title: `N=${r.listeners}, procs=${r.procs}, ${peerOf(r)} (${r.ts}): join time`, xLabel: 'join time, ms', values })}<figcaption>p50 ${pct(values, 50)} ms · p95 ${pct(values, 95)} ms · max ${values.length ? Math.max(...values) : 0} ms · ${r.joined} joined, ${r.failed} failed · <code>${esc(r.command)}</code></figcaption></figure>`;
    })
    .join('\n');
  const machine = runs[runs.length - 1]?.machine;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Chorus broadcast benchmark</title>
<style>
body{font-family:sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f3f3f3}
figure{display:inline-block;margin:8px 16px 16px 0;vertical-align:top}figcaption{font-size:12px;max-width:640px}
.charts svg{margin:8px 16px 8px 0;border:1px solid #eee}
</style></head><body>
<h1>Chorus broadcast benchmark</h1>
<p>${runs.length} run(s) from results.jsonl${machine ? ` · machine: ${machine.cpus} × ${esc(machine.model)}, Node ${esc(machine.node)}` : ''}. One broadcaster publishing an Opus tone, N receive-only listeners spread over load-generator processes, all on loopback: <b>wrtc</b> = the real SDK on libwebrtc, decoding audio (joined = heard the tone); <b>werift</b> = a signaling client on werift that receives SRTP and counts RTP without decoding (joined = received an audio RTP packet). Their figures are plotted as separate series. CPU is % of one core, averaged over the steady-state window.</p>
<div class="charts">${joinChart}${cpuChart}${qualityChart}${deliveryChart}${rssChart}</div>
<h2>Runs</h2>
<table><thead><tr><th>time</th><th>peer</th><th>N</th><th>procs</th><th>workers</th><th>joined</th><th>failed</th><th>join p50</th><th>p95</th><th>p99</th><th>max</th><th>loss %</th><th>delivered %</th><th>jitter p50/p95 ms</th><th>server CPU %</th><th>server RSS MiB</th><th>loadgen CPU %</th><th>machine CPU %</th><th>listeners / server core</th><th>server CPU % per listener</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<h2>Join time per run (histogram and CDF)</h2>
${perRun}
</body></html>
`;
}
