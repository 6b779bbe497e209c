/**
 * `npm start`'s process as an operator meets it: `node --import tsx src/main.ts` with an
 * environment, read through its stdout (JSON log lines) and stderr.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { startMain as spawnMain, started, withoutChorusSettings, type MainProcess } from '../support/mainProcess.js';
import { freePort } from '../support/ports.js';
import { getFrom, rawConnection, type RawConnection } from '../support/rawSocket.js';
import { until } from '../support/testNode.js';

const children: ChildProcess[] = [];
const servers: Server[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
  }
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

/** The test's own environment without any Chorus setting that could leak into the child. */
function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return {
    ...withoutChorusSettings(),
    CHORUS_HOST: '127.0.0.1',
    CHORUS_DATA_DIR: mkdtempSync(join(tmpdir(), 'chorus-start-')),
    CHORUS_RECORDS: 'false',
    CHORUS_HLS: 'false',
    MEDIASOUP_WORKERS: '1',
    RTC_LISTEN_IP: '127.0.0.1',
    RTC_ANNOUNCED_ADDRESS: '127.0.0.1',
    RTC_MIN_PORT: '30000',
    RTC_MAX_PORT: '30999',
    LOG_LEVEL: 'info',
    ...extra,
  };
}

/** `npm start`'s process, killed after the test if it is still running. */
function startMain(env: NodeJS.ProcessEnv, openFiles?: number): MainProcess {
  const main = spawnMain(env, { openFiles });
  children.push(main.child);
  return main;
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

test('a port already in use: one clear line on stderr naming the port and CHORUS_PORT, no stack, non-zero exit', async () => {
  const holder = createServer();
  servers.push(holder);
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const port = (holder.address() as { port: number }).port;

  const main = startMain(baseEnv({ CHORUS_PORT: String(port), CHORUS_API_KEYS: `test:${'t'.repeat(40)}` }));
  const { code } = await withTimeout(main.exited, 60_000, 'the node to exit');
  const stderr = main.stderr();
  expect(code, `stdout: ${main.stdout().slice(-2000)}\nstderr: ${stderr}`).not.toBe(0);
  const lines = stderr.split('\n').filter((line) => line.trim() !== '');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`port ${port} is already in use`));
  expect(lines[0]).toMatch(/CHORUS_PORT/);
  expect(stderr).not.toMatch(/EADDRINUSE|\n\s+at /);
}, 90_000);

test('demo mode says where the development secret lives (info) and warns that anyone reaching it can mint tokens', async () => {
  const env = baseEnv({ CHORUS_PORT: '0' });
  const main = startMain(env);
  await started(main);
  const logLines = main.logLines;
  const keyFile = join(env['CHORUS_DATA_DIR']!, 'api-keys.json');
  expect(existsSync(keyFile)).toBe(true);
  expect(readFileSync(keyFile, 'utf8')).toMatch(/"id": "dev"/);
  const secretLines = logLines().filter((l) => l.msg.includes(keyFile));
  expect(secretLines, main.stdout()).toHaveLength(1);
  expect(secretLines[0]!.level).toBe(30);
  expect(secretLines[0]!.msg).toMatch(/admin API/);
  const demoLines = logLines().filter((l) => /demo mode/.test(l.msg));
  expect(demoLines, main.stdout()).toHaveLength(1);
  expect(demoLines[0]!.level).toBe(40);
  expect(demoLines[0]!.msg).toMatch(/anyone who reaches it can mint/);
  expect(demoLines[0]!.msg).toMatch(/127\.0\.0\.1/);
  main.child.kill('SIGINT');
  expect((await withTimeout(main.exited, 30_000, 'the node to stop')).code).toBe(0);
}, 90_000);

test('one address cannot take every descriptor: under ulimit -n 400 the per-address cap drops to 100 (said at start), and /healthz answers through a flood of 450', async () => {
  const port = await freePort();
  // Idle connections are held for a minute: the flood stays while /healthz is asked.
  const main = startMain(baseEnv({ CHORUS_PORT: String(port), CHORUS_API_KEYS: `test:${'t'.repeat(40)}`, CHORUS_HANDSHAKE_TIMEOUT_MS: '60000' }), 400);
  const url = `http://127.0.0.1:${port}`;
  await started(main);
  const capLines = main.logLines().filter((l) => /connections per address capped/.test(l.msg));
  expect(capLines, main.stdout()).toHaveLength(1);
  expect(capLines[0]).toMatchObject({ level: 40, perAddress: 100, openFileLimit: 400 });

  const flood: RawConnection[] = [];
  try {
    for (let i = 0; i < 450; i++) flood.push(await rawConnection({ url }));
    await until(() => flood.filter((c) => !c.isClosed()).length <= 100, 10_000, 'the node to close what is over the cap');
    const health = await withTimeout(getFrom(`${url}/healthz`, '127.0.0.2'), 5000, '/healthz from another address');
    expect(health).toEqual({ status: 200, body: '{"status":"ok"}' });
  } finally {
    for (const c of flood) c.close();
  }
  main.child.kill('SIGINT');
  expect((await withTimeout(main.exited, 30_000, 'the node to stop')).code).toBe(0);
}, 120_000);
