/**
 * The watch page in real headless Chromium: a host creates a party on the page, a guest opens
 * the guest link, both press Start watching; the host plays and seeks with the page's controls and
 * the guest's <video> follows (its currentTime within 500 ms of the host's). Real video: the VP8
 * sample the build generated with ffmpeg. Screenshots go to artifacts/screenshots/.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { buildWeb, repoRoot } from '../support/buildWeb.js';
import { launchChromium } from '../support/chromium.js';
import { startTestNode } from '../support/testNode.js';

const screenshots = join(repoRoot, 'artifacts', 'screenshots');

let node: ChorusNode;
let browser: Browser;
const contexts: BrowserContext[] = [];
const pageErrors: string[] = [];

beforeAll(async () => {
  const webDir = await buildWeb();
  if (!existsSync(join(webDir, 'sample.webm'))) throw new Error('the build made no sample video: is ffmpeg installed? (scripts/setup.sh)');
  node = await startTestNode({ CHORUS_WEB_DIR: webDir, CHORUS_DEMO: 'true', CHORUS_WATCH_REPORT_INTERVAL_MS: '1000' });
  browser = await launchChromium(['--mute-audio']);
  mkdirSync(screenshots, { recursive: true });
}, 120_000);

afterAll(async () => {
  await Promise.all(contexts.map((c) => c.close()));
  await browser?.close();
  await node?.close();
});

async function openPage(name: string, url: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 900, height: 1100 } });
  contexts.push(context);
  const page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(`${name}: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(`${name} console: ${message.text()}`);
  });
  await page.goto(url);
  return page;
}

function debug<T>(page: Page, key: string): Promise<T> {
  return page.evaluate((k) => window.chorusDebug?.[k], key) as Promise<T>;
}

async function waitForState(page: Page, state: string): Promise<void> {
  await page.waitForFunction((s) => window.chorusDebug?.['state'] === s, state, { timeout: 20_000, polling: 50 }).catch(async (error: unknown) => {
    throw new Error(`page stayed in ${String(await debug(page, 'state'))} (wanted ${state}; error: ${String(await debug(page, 'error'))})`, { cause: error });
  });
}

/** The video's position and when it was read (both pages share this machine's clock). */
async function videoAt(page: Page): Promise<{ t: number; position: number; paused: boolean }> {
  return page.evaluate(() => {
    const v = document.getElementById('video') as HTMLVideoElement;
    return { t: Date.now(), position: v.currentTime, paused: v.paused };
  });
}

/** Guest position minus host position, both brought to the guest's reading time. */
async function gap(host: Page, guest: Page): Promise<number> {
  const h = await videoAt(host);
  const g = await videoAt(guest);
  const hostNow = h.paused ? h.position : h.position + (g.t - h.t) / 1000;
  return g.position - hostNow;
}

test('the host seeks on its page and the guest page\'s video follows within 500 ms', async () => {
  const host = await openPage('host', `${node.url}/watch.html`);
  await waitForState(host, 'create');
  await host.getByRole('button', { name: 'Start a watch party' }).click();
  await waitForState(host, 'idle');
  const guestLink = await host.locator('#guest-link').inputValue();
  expect(guestLink).toMatch(new RegExp(`^${node.url}/watch\\.html\\?room=[\\w-]+&token=[\\w.-]+$`));
  await host.getByRole('button', { name: 'Start watching' }).click();
  await waitForState(host, 'watching');
  await host.waitForFunction(() => window.chorusDebug?.['url'] === '/sample.webm', undefined, { timeout: 10_000 });
  expect(await debug(host, 'isHost')).toBe(true);
  // The page renders on its next tick after learning it hosts.
  await host.locator('#controls').waitFor({ state: 'visible', timeout: 5000 });

  const guest = await openPage('guest', guestLink);
  await guest.getByRole('button', { name: 'Start watching' }).click();
  await waitForState(guest, 'watching');
  expect(await debug(guest, 'isHost')).toBe(false);
  expect(await guest.locator('#controls').isHidden()).toBe(true);
  await host.waitForFunction(() => window.chorusDebug?.['members'] === 2, undefined, { timeout: 10_000 });
  await guest.waitForFunction(() => window.chorusDebug?.['members'] === 2, undefined, { timeout: 10_000 });
  // The guest's player has the sample loaded and able to seek.
  await guest.waitForFunction(() => (document.getElementById('video') as HTMLVideoElement).readyState >= 1, undefined, { timeout: 10_000 });

  await host.getByRole('button', { name: 'Play', exact: true }).click();
  for (const page of [host, guest]) {
    await page.waitForFunction(() => !(document.getElementById('video') as HTMLVideoElement).paused && (document.getElementById('video') as HTMLVideoElement).currentTime > 0.5, undefined, { timeout: 10_000 });
  }

  // Seek with the range control, as a person would: the guest jumps there too.
  const target = 12;
  const seekedAt = Date.now();
  await host.locator('#seek').fill(String(target));
  await guest.waitForFunction((t) => (document.getElementById('video') as HTMLVideoElement).currentTime >= t - 0.5, target, { timeout: 10_000, polling: 10 });
  const followedAfterMs = Date.now() - seekedAt;
  // Positions converge: the guest's video within 500 ms of the host's at the same moment.
  let last = Number.NaN;
  await expect
    .poll(async () => (last = Math.abs(await gap(host, guest))), { timeout: 10_000, interval: 100 })
    .toBeLessThan(0.5);
  const position = (await videoAt(guest)).position;
  expect(position).toBeGreaterThanOrEqual(target - 0.5);
  expect(position).toBeLessThan(target + 5);
  console.log(JSON.stringify({ e2e: 'watch-seek', followedAfterMs, gapMs: Math.round(last * 1000), guestDriftMs: await debug(guest, 'drift') }));

  // Pause: both stop at (nearly) the same frame.
  await host.getByRole('button', { name: 'Pause' }).click();
  await guest.waitForFunction(() => (document.getElementById('video') as HTMLVideoElement).paused, undefined, { timeout: 10_000 });
  await expect.poll(async () => Math.abs(await gap(host, guest)), { timeout: 5000, interval: 100 }).toBeLessThan(0.5);

  // The guest has no controls: a control request from its page would be refused by the server.
  await guest.waitForFunction(() => typeof window.chorusDebug?.['drift'] === 'number', undefined, { timeout: 10_000 });
  await host.screenshot({ path: join(screenshots, 'watch-host.png'), fullPage: true });
  await guest.screenshot({ path: join(screenshots, 'watch-guest.png'), fullPage: true });
  expect(pageErrors).toEqual([]);
}, 120_000);
