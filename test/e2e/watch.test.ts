/**
 * The watch page in real headless Chromium: a host creates a party on the page, a guest opens
 * the guest link, both press Start watching; the host plays and seeks with the page's controls and
 * the guest's <video> follows (its currentTime within 500 ms of the host's). Real video: the VP8
 * sample the build generated with ffmpeg. Screenshots go to artifacts/screenshots/.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { buildWeb, repoRoot } from '../support/buildWeb.js';
import { launchChromium } from '../support/chromium.js';
import { startTestNode } from '../support/testNode.js';

const screenshots = join(repoRoot, 'artifacts', 'screenshots');

let node: ChorusNode;
let browser: Browser;
/** Another origin serving the sample over HTTPS, like the https:// videos people paste in. */
let videoServer: HttpsServer;
let videoOrigin: string;
const contexts: BrowserContext[] = [];
const pageErrors: string[] = [];

beforeAll(async () => {
  const webDir = await buildWeb();
  if (!existsSync(join(webDir, 'sample.webm'))) throw new Error('the build made no sample video: is ffmpeg installed? (scripts/setup.sh)');
  node = await startTestNode({ CHORUS_WEB_DIR: webDir, CHORUS_DEMO: 'true', CHORUS_WATCH_REPORT_INTERVAL_MS: '1000' });
  const certDir = mkdtempSync(join(tmpdir(), 'chorus-video-tls-'));
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem')]);
  const sample = readFileSync(join(webDir, 'sample.webm'));
  videoServer = createHttpsServer({ cert: readFileSync(join(certDir, 'cert.pem')), key: readFileSync(join(certDir, 'key.pem')) }, (request, response) => {
    if (request.url !== '/sample.webm') {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'video/webm', 'content-length': sample.length }).end(sample);
  });
  await new Promise<void>((resolve) => videoServer.listen(0, '127.0.0.1', resolve));
  videoOrigin = `https://127.0.0.1:${(videoServer.address() as { port: number }).port}`;
  // The test's own certificate: Chromium is told to accept it (the server is on loopback).
  browser = await launchChromium(['--mute-audio', '--ignore-certificate-errors']);
  mkdirSync(screenshots, { recursive: true });
}, 120_000);

afterAll(async () => {
  await Promise.all(contexts.map((c) => c.close()));
  await browser?.close();
  await node?.close();
  await new Promise((resolve) => videoServer?.close(resolve));
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

test('the watch page: an https video plays, bad addresses are explained, Play after the end starts over, nothing half-made shows', async () => {
  pageErrors.length = 0;
  const host = await openPage('host-2', `${node.url}/watch.html`);
  await waitForState(host, 'create');
  await host.getByRole('button', { name: 'Start a watch party' }).click();
  await waitForState(host, 'idle');
  // Before joining, nobody is known to host: the page does not claim "hosted by nobody".
  expect(await host.locator('#hosted-by').isVisible()).toBe(false);
  expect(await host.locator('#player-card').innerText()).not.toMatch(/nobody/);
  await host.getByRole('button', { name: 'Start watching' }).click();
  await waitForState(host, 'watching');
  await host.waitForFunction(() => window.chorusDebug?.['url'] === '/sample.webm', undefined, { timeout: 10_000 });
  await host.locator('#controls').waitFor({ state: 'visible', timeout: 5000 });
  expect(await host.locator('#hosted-by').innerText()).toMatch(/hosted by you/);
  // The host controls are a styled panel, not the browser's default grooved box.
  const box = await host.locator('#controls').evaluate((el) => {
    const style = getComputedStyle(el);
    return { border: style.borderTopStyle, radius: style.borderTopLeftRadius };
  });
  expect(box.border).not.toBe('groove');
  expect(box.radius).not.toBe('0px');

  // An address the room would refuse: the page says what to type, not "reload the page".
  await host.locator('#url').fill('ftp://example.com/film.webm');
  await host.getByRole('button', { name: 'Load' }).click();
  await expect.poll(() => host.locator('#error').innerText(), { timeout: 5000 }).toMatch(/video address cannot be used.*https:\/\//);
  expect(await debug(host, 'url')).toBe('/sample.webm');

  // An https video on another origin, as the placeholder invites: it plays (the CSP allows it).
  const remote = `${videoOrigin}/sample.webm`;
  await host.locator('#url').fill(remote);
  await host.getByRole('button', { name: 'Load' }).click();
  await host.waitForFunction((u) => window.chorusDebug?.['url'] === u, remote, { timeout: 10_000 });
  await host.waitForFunction((u) => {
    const v = document.getElementById('video') as HTMLVideoElement;
    return v.currentSrc === u && v.readyState >= 1 && Number.isFinite(v.duration);
  }, remote, { timeout: 10_000 });
  expect(await host.locator('#error').isVisible()).toBe(false);

  // An https address the browser cannot play: a message, not a silent black player.
  await host.locator('#url').fill(`${videoOrigin}/missing.webm`);
  await host.getByRole('button', { name: 'Load' }).click();
  await expect.poll(() => host.locator('#error').innerText(), { timeout: 10_000 }).toMatch(/cannot be played here/);

  // Back to the sample; play to its end: the room pauses there instead of running on.
  await host.locator('#url').fill('/sample.webm');
  await host.getByRole('button', { name: 'Load' }).click();
  await host.waitForFunction(() => {
    const v = document.getElementById('video') as HTMLVideoElement;
    return window.chorusDebug?.['url'] === '/sample.webm' && v.readyState >= 1 && Number.isFinite(v.duration);
  }, undefined, { timeout: 10_000 });
  const duration = await host.evaluate(() => (document.getElementById('video') as HTMLVideoElement).duration);
  await host.getByRole('button', { name: 'Play', exact: true }).click();
  await host.waitForFunction(() => window.chorusDebug?.['playing'] === true, undefined, { timeout: 10_000 });
  await host.locator('#seek').fill(String(Math.max(0, duration - 1.5)));
  await host.waitForFunction(() => (document.getElementById('video') as HTMLVideoElement).ended, undefined, { timeout: 15_000 });
  await host.waitForFunction(() => window.chorusDebug?.['playing'] === false, undefined, { timeout: 10_000 });
  await expect.poll(() => host.locator('#playing-word').innerText(), { timeout: 5000 }).toBe('ended');

  // Play after the end starts over from the beginning, and the player is with the room.
  await host.getByRole('button', { name: 'Play', exact: true }).click();
  await host.waitForFunction(() => window.chorusDebug?.['playing'] === true, undefined, { timeout: 10_000 });
  await host.waitForFunction(() => {
    const v = document.getElementById('video') as HTMLVideoElement;
    return !v.paused && v.currentTime > 0.3;
  }, undefined, { timeout: 10_000 });
  expect(await debug<number>(host, 'expected')).toBeLessThan(5);
  expect(await host.evaluate(() => (document.getElementById('video') as HTMLVideoElement).currentTime)).toBeLessThan(5);
  // The next position report measures the player against the room: close, not the media's length behind.
  await host.waitForFunction(() => typeof window.chorusDebug?.['drift'] === 'number' && Math.abs(window.chorusDebug['drift'] as number) < 1000, undefined, { timeout: 10_000 });
  await host.screenshot({ path: join(screenshots, 'watch-host-controls.png'), fullPage: true });
  // The 404 above is the browser's own console line for the failed load; nothing else went wrong.
  expect(pageErrors.filter((e) => !/missing\.webm|404/.test(e))).toEqual([]);
}, 120_000);
