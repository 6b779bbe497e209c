/**
 * Shareable links in real headless Chromium: a page opened on loopback (the operator on the
 * node's own machine) hands out links on the node's LAN/public address, which other devices
 * reach; the broadcaster's own link stays on loopback, where browsers grant the microphone.
 * The LAN address is CHORUS_PUBLIC_URL on a TEST-NET address (RFC 5737): only ever written into
 * links, never contacted.
 */
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { buildWeb } from '../support/buildWeb.js';
import { launchChromium } from '../support/chromium.js';
import { freePort } from '../support/ports.js';
import { startTestNode } from '../support/testNode.js';

let node: ChorusNode;
let browser: Browser;
let lan: string;
const pageErrors: string[] = [];

beforeAll(async () => {
  const webDir = await buildWeb();
  const port = await freePort();
  lan = `http://192.0.2.10:${port}`;
  node = await startTestNode({ CHORUS_WEB_DIR: webDir, CHORUS_DEMO: 'true', CHORUS_PORT: String(port), CHORUS_PUBLIC_URL: lan });
  browser = await launchChromium(['--mute-audio']);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await node?.close();
});

async function openPage(url: string): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(message.text());
  });
  await page.goto(url);
  return page;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

test('the home page on 127.0.0.1 gives a listener link on the node\'s LAN address; the broadcaster link stays local', async () => {
  expect(node.url).toMatch(/^http:\/\/127\.0\.0\.1:/);
  expect(node.publicUrl).toBe(lan);
  const home = await openPage(`${node.url}/`);
  await home.waitForFunction(() => window.chorusDebug?.['state'] === 'ready', undefined, { timeout: 20_000 });
  await home.getByRole('button', { name: 'Start a broadcast' }).click();
  await home.waitForFunction(() => window.chorusDebug?.['state'] === 'created', undefined, { timeout: 20_000 });
  const listener = await home.locator('#listener-link').inputValue();
  expect(listener).toMatch(new RegExp(`^${escape(lan)}/listen\\.html\\?room=[\\w-]+&token=[\\w.-]+$`));
  expect(await home.locator('#share-text').inputValue()).toContain(listener);
  expect(await home.locator('#broadcaster-link').inputValue()).toMatch(new RegExp(`^${escape(node.url)}/broadcast\\.html\\?`));
  expect(await home.locator('#lan-hint').isVisible()).toBe(true);
  expect(pageErrors).toEqual([]);
}, 60_000);

test('the watch page on 127.0.0.1 gives a guest link on the node\'s LAN address', async () => {
  const watch = await openPage(`${node.url}/watch.html`);
  await watch.waitForFunction(() => window.chorusDebug?.['state'] === 'create', undefined, { timeout: 20_000 });
  await watch.getByRole('button', { name: 'Start a watch party' }).click();
  await watch.waitForFunction(() => window.chorusDebug?.['state'] === 'idle', undefined, { timeout: 20_000 });
  expect(await watch.locator('#guest-link').inputValue()).toMatch(new RegExp(`^${escape(lan)}/watch\\.html\\?room=[\\w-]+&token=[\\w.-]+$`));
  expect(pageErrors).toEqual([]);
}, 60_000);
