/**
 * Every benchmark keeps its runs the same way: one JSON line per run appended to
 * `<out>/<name>.jsonl`, and a chart page rebuilt from all of them at `<out>/<name>.html`.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The runs recorded so far (lines that do not parse — a run cut off mid-write — are skipped). */
export function readRuns<T>(path: string): T[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as T];
      } catch {
        return [];
      }
    });
}

/** Appends `run` and rebuilds the chart from every run; answers the paths written and the run count. */
export function recordRun<T>(outDir: string, name: string, run: T, render: (runs: T[]) => string): { jsonl: string; html: string; runs: number } {
  mkdirSync(outDir, { recursive: true });
  const jsonl = join(outDir, `${name}.jsonl`);
  const html = join(outDir, `${name}.html`);
  appendFileSync(jsonl, `${JSON.stringify(run)}\n`);
  const runs = readRuns<T>(jsonl);
  writeFileSync(html, render(runs));
  return { jsonl, html, runs: runs.length };
}
