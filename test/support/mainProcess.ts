/**
 * `npm start`'s process as an operator meets it, `<node> --import tsx src/main.ts` with an
 * environment of the test's making, read through its stdout (JSON log lines) and stderr.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { repoRoot } from './buildWeb.js';
import { until } from './testNode.js';

/** The test process's environment without any setting of Chorus's that could leak into the child. */
export function withoutChorusSettings(source: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(source)) {
    if (!/^(CHORUS_|REDIS_|DATABASE_URL|RTC_|MEDIASOUP_|TURN_|LOG_LEVEL)/.test(key)) env[key] = value;
  }
  return env;
}

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface MainProcess {
  child: ChildProcess;
  /** The JSON log lines printed so far. */
  logLines: () => LogLine[];
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface MainOptions {
  /** The Node binary; this process's unless given. */
  node?: string;
  /** Run under this `ulimit -n` (a login shell on Debian gives 1,024). */
  openFiles?: number;
}

export function startMain(env: NodeJS.ProcessEnv, options: MainOptions = {}): MainProcess {
  const node = options.node ?? process.execPath;
  const child =
    options.openFiles === undefined
      ? spawn(node, ['--import', 'tsx', 'src/main.ts'], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('bash', ['-c', `ulimit -n ${options.openFiles} && exec "$0" --import tsx src/main.ts`, node], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const logLines = (): LogLine[] =>
    out
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as LogLine);
  return { child, logLines, stdout: () => out, stderr: () => err, exited };
}

/** Resolves once the node printed its 'open …' line; rejects if it exited first. */
export async function started(main: MainProcess, ms = 60_000): Promise<void> {
  await until(
    () => {
      if (main.child.exitCode !== null) throw new Error(`node exited: ${main.stderr()}`);
      return main.logLines().some((l) => l.msg.startsWith('open '));
    },
    ms,
    'the start-up lines',
  );
}
