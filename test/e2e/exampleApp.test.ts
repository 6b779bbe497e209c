/**
 * examples/hello, an application of its own, as its developer would build it: the packed
 * `@chorus-rtc/client` and `@chorus-rtc/server-sdk` installed from their tarballs in a temporary
 * directory, its server and page compiled there with `strict` against the packages' `.d.ts`, the
 * page bundled. Its server mints tokens with its own API key (the node is never asked), and in
 * Chromium a broadcast reaches a listener and two callers see and hear each other through a
 * real node.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { build } from 'esbuild';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { launchChromium } from '../support/chromium.js';
import { installPacked, repoRoot, run, type PackedApp } from '../support/packedPackages.js';
import { audibleStreams, playingVideos } from '../support/pageMedia.js';
import { startTestNode } from '../support/testNode.js';

const SECRET = 'e'.repeat(40);
let app: PackedApp;
let node: ChorusNode;
let server: ChildProcess | undefined;
let exampleUrl: string;
let browser: Browser;
const pages: Page[] = [];

beforeAll(async () => {
  app = await installPacked(['client', 'server-sdk']);
  for (const file of ['server.ts', 'page.ts', 'index.html', 'tsconfig.json']) copyFileSync(join(repoRoot, 'examples/hello', file), join(app.dir, file));
  // Its own build: tsc (strict) for the server, and the page bundled.
  await run(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--typeRoots', join(repoRoot, 'node_modules/@types')], { cwd: app.dir });
  await build({ entryPoints: [join(app.dir, 'page.ts')], bundle: true, format: 'esm', minify: true, outfile: join(app.dir, 'dist/page.js'), absWorkingDir: app.dir, logLevel: 'silent' });
  node = await startTestNode({ CHORUS_API_KEYS: `app:${SECRET}` });
  server = spawn(process.execPath, ['dist/server.js'], { cwd: app.dir, env: { ...process.env, CHORUS_URL: node.url, CHORUS_KEY_ID: 'app', CHORUS_KEY_SECRET: SECRET, PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] });
  exampleUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the example server did not start in 10 s')), 10_000);
    createInterface({ input: server!.stdout! }).on('line', (line) => {
      const url = /example on (http:\/\/\S+)/.exec(line)?.[1];
      if (url) {
        clearTimeout(timer);
        resolve(url);
      }
    });
  });
  browser = await launchChromium(['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream']);
}, 240_000);
afterAll(async () => {
  for (const page of pages) await page.close().catch(() => undefined);
  await browser?.close();
  server?.kill();
  await node?.close();
  app?.remove();
});

async function open(as: string, room: string): Promise<Page> {
  const page = await browser.newPage();
  pages.push(page);
  await page.goto(`${exampleUrl}/?as=${as}&room=${room}`);
  await page.waitForFunction(() => (window as unknown as { example?: { state: string } }).example?.state !== 'starting', undefined, { timeout: 20_000 });
  expect(await page.evaluate(() => (window as unknown as { example: { state: string; error: string } }).example)).toEqual({ state: 'joined', error: '' });
  return page;
}

test('a broadcast from the example\'s page reaches a listener on its page', async () => {
  await open('broadcast', 'hello-broadcast');
  const listener = await open('listen', 'hello-broadcast');
  await expect.poll(() => audibleStreams(listener), { timeout: 20_000, interval: 200 }).toBe(1);
  // Its tokens were its own: minted with its key, not asked of the node.
  expect(node.rooms.get('hello-broadcast')?.peers.size).toBe(2);
}, 60_000);

test('two callers on the example\'s page see and hear each other', async () => {
  const a = await open('call', 'hello-call');
  const b = await open('call', 'hello-call');
  for (const page of [a, b]) {
    await expect.poll(() => playingVideos(page), { timeout: 20_000, interval: 200 }).toBe(1);
    await expect.poll(() => audibleStreams(page), { timeout: 20_000, interval: 200 }).toBe(1);
  }
}, 60_000);
