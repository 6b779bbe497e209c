/**
 * The pages in real headless Chromium against a real node: create a broadcast on the home page,
 * go live with Chromium's fake microphone (a periodic beep), hear it on two listener pages, stop,
 * start again without reloading. Screenshots go to artifacts/screenshots/.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { buildWeb, repoRoot } from '../support/buildWeb.js';
import { launchChromium } from '../support/chromium.js';
import { microphoneProducer, timestampSteps } from '../support/rtpSteps.js';
import { startTestNode, tokenFor } from '../support/testNode.js';

const screenshots = join(repoRoot, 'artifacts', 'screenshots');
const phone: BrowserContextOptions = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
/** RMS the fake microphone's beep comfortably exceeds (-40 dBFS); silence and DTX noise do not. */
const audible = 0.01;

let node: ChorusNode;
let browser: Browser;
let webDir: string;
const contexts: BrowserContext[] = [];
const pageErrors: string[] = [];

beforeAll(async () => {
  webDir = await buildWeb();
  node = await startTestNode({ CHORUS_WEB_DIR: webDir, CHORUS_DEMO: 'true' });
  browser = await launchChromium(['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream']);
  mkdirSync(screenshots, { recursive: true });
}, 120_000);

afterEach(async () => {
  await Promise.all(contexts.splice(0).map((context) => context.close()));
  pageErrors.length = 0;
});

afterAll(async () => {
  await browser?.close();
  await node?.close();
});

/** A page in its own browser context (own cookies, own permissions: a separate visitor). */
async function openPage(name: string, url: string, options: BrowserContextOptions = {}): Promise<Page> {
  const context = await browser.newContext(options);
  contexts.push(context);
  const page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(`${name}: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(`${name} console: ${message.text()} (${message.location().url})`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) pageErrors.push(`${name}: HTTP ${response.status()} for ${response.url()}`);
  });
  await page.goto(url);
  return page;
}

function debug<T>(page: Page, key: string): Promise<T> {
  return page.evaluate((k) => window.chorusDebug?.[k], key) as Promise<T>;
}

async function waitForState(page: Page, state: string, timeout = 20_000): Promise<void> {
  await page.waitForFunction((s) => window.chorusDebug?.['state'] === s, state, { timeout, polling: 50 }).catch(async (error: unknown) => {
    throw new Error(`page stayed in state ${String(await debug(page, 'state'))} (wanted ${state}; error shown: ${String(await debug(page, 'error'))})`, {
      cause: error,
    });
  });
  expect(await page.locator('#status').getAttribute('data-state')).toBe(state);
}

/** The fake microphone beeps periodically, so poll fast until one beep shows up in the level. */
async function waitForSound(page: Page, timeout = 20_000): Promise<number> {
  const handle = await page.waitForFunction(
    (min) => {
      const level = window.chorusDebug?.['level'] as number;
      return level > min ? level : false;
    },
    audible,
    { timeout, polling: 10 },
  );
  return (await handle.jsonValue()) as number;
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}

/** The same page at phone width, for a look at the responsive layout. */
async function phoneShot(page: Page, name: string): Promise<void> {
  const size = page.viewportSize();
  await page.setViewportSize(phone.viewport!);
  await shot(page, name);
  if (size) await page.setViewportSize(size);
}

describe('the web pages in Chromium', () => {
  test('create a broadcast, go live, two listeners hear it, stop and start again without reloading', async () => {
    // Home: create the broadcast through the form.
    const home = await openPage('home', `${node.url}/`);
    await waitForState(home, 'ready');
    expect(await debug(home, 'role')).toBeNull();
    await home.getByLabel(/Room name/).fill('E2E test room');
    await home.getByRole('button', { name: 'Start a broadcast' }).click();
    await waitForState(home, 'created');
    const broadcasterLink = await home.locator('#broadcaster-link').inputValue();
    const listenerLink = await home.locator('#listener-link').inputValue();
    expect(broadcasterLink).toMatch(new RegExp(`^${node.url}/broadcast\\.html\\?room=E2E-test-room&token=[\\w.-]+$`));
    expect(listenerLink).toMatch(new RegExp(`^${node.url}/listen\\.html\\?room=E2E-test-room&token=[\\w.-]+$`));
    expect(await home.locator('#share-text').inputValue()).toContain(listenerLink);
    await shot(home, 'home');
    await phoneShot(home, 'home-phone');

    // Broadcaster: joins on open, goes live on Start with the (fake) microphone.
    const broadcaster = await openPage('broadcaster', broadcasterLink);
    await waitForState(broadcaster, 'ready');
    expect(await debug(broadcaster, 'role')).toBe('broadcaster');
    await broadcaster.getByRole('button', { name: 'Start broadcasting' }).click();
    await waitForState(broadcaster, 'live');
    expect(await debug(broadcaster, 'publishing')).toBe(true);
    await waitForSound(broadcaster);
    // The node asks a broadcast for 60 ms packets (CHORUS_BROADCAST_FRAME_MS) and Chromium sends
    // them: every step of the RTP clock is whole 60 ms frames (48 kHz: 2880 ticks; more across
    // the silences between its fake microphone's beeps, where DTX skips frames; 20 ms frames
    // would step 960).
    const steps = await timestampSteps(await microphoneProducer(node, 'E2E-test-room'), 15, 20_000);
    expect(steps.filter((step) => step % 2880 !== 0)).toEqual([]);
    // Permission granted: the picker now lists the microphone by name.
    expect(await broadcaster.locator('#mic option').count()).toBeGreaterThan(1);

    // Two listeners, each a separate visitor, press Play.
    const listeners = [await openPage('listener-1', listenerLink), await openPage('listener-2', listenerLink)];
    for (const page of listeners) {
      await waitForState(page, 'idle');
      await page.getByRole('button', { name: 'Play the broadcast' }).click();
    }
    for (const page of listeners) {
      await waitForState(page, 'live');
      expect(await debug(page, 'role')).toBe('listener');
      expect(await debug(page, 'tracks')).toBe(1);
      expect(await waitForSound(page)).toBeGreaterThan(audible);
      expect(await page.locator('#player').evaluate((a: HTMLAudioElement) => !a.paused && a.srcObject !== null)).toBe(true);
    }
    await broadcaster.waitForFunction(() => window.chorusDebug?.['listeners'] === 2, undefined, { timeout: 10_000 });
    expect(await broadcaster.locator('#listener-count').textContent()).toBe('2');
    await shot(broadcaster, 'broadcaster-live');
    await phoneShot(broadcaster, 'broadcaster-phone');
    await shot(listeners[0]!, 'listener-live');

    // Pause: listeners are told, and hear again on resume.
    await broadcaster.getByLabel('Pause (mute) the broadcast').check();
    await waitForState(broadcaster, 'paused');
    for (const page of listeners) await waitForState(page, 'paused');
    await broadcaster.getByLabel('Pause (mute) the broadcast').uncheck();
    await waitForState(broadcaster, 'live');
    for (const page of listeners) {
      await waitForState(page, 'live');
      await waitForSound(page);
    }

    // Stop: listeners are told and wait, still joined.
    await broadcaster.getByRole('button', { name: 'Stop' }).click();
    await waitForState(broadcaster, 'ready');
    expect(await debug(broadcaster, 'publishing')).toBe(false);
    for (const page of listeners) {
      await waitForState(page, 'waiting');
      expect(await debug(page, 'level')).toBe(0);
    }
    await shot(listeners[1]!, 'listener-waiting');

    // Start again: the same pages hear the new track without a reload.
    await broadcaster.getByRole('button', { name: 'Start broadcasting' }).click();
    await waitForState(broadcaster, 'live');
    for (const page of listeners) {
      await waitForState(page, 'live');
      expect(await debug(page, 'tracks')).toBe(2);
      expect(await waitForSound(page)).toBeGreaterThan(audible);
    }

    // A phone-sized listener page: tap Play, hear it, and the broadcaster counts three.
    const mobile = await openPage('listener-phone', listenerLink, phone);
    await waitForState(mobile, 'idle');
    await shot(mobile, 'listener-phone-idle');
    await mobile.getByRole('button', { name: 'Play the broadcast' }).tap();
    await waitForState(mobile, 'live');
    await waitForSound(mobile);
    await broadcaster.waitForFunction(() => window.chorusDebug?.['listeners'] === 3, undefined, { timeout: 10_000 });
    await shot(mobile, 'listener-phone');
    await shot(broadcaster, 'broadcaster-restarted');

    expect(pageErrors).toEqual([]);
  }, 120_000);

  test('bad links and refusals are explained in plain words', async () => {
    const errorText = (page: Page) => page.locator('#error').textContent();

    const incomplete = await openPage('incomplete', `${node.url}/listen.html`);
    await waitForState(incomplete, 'error');
    expect(await errorText(incomplete)).toMatch(/link is incomplete/);

    const forged = await openPage('forged', `${node.url}/listen.html?room=bad&token=not-a-token`);
    await forged.getByRole('button', { name: 'Play the broadcast' }).click();
    await waitForState(forged, 'error');
    expect(await errorText(forged)).toMatch(/link is not valid/);

    // A listener link on the broadcaster page cannot broadcast.
    const listenerToken = await tokenFor(node, 'roles', 'listener');
    const wrongPage = await openPage('wrong-page', `${node.url}/broadcast.html?room=roles&token=${listenerToken}`);
    await waitForState(wrongPage, 'error');
    expect(await errorText(wrongPage)).toMatch(/listener link/);

    // A broadcaster link on the listener page leaves at once: the seat stays free for the speaker.
    const misusedToken = await tokenFor(node, 'roles', 'broadcaster', 'speaker');
    const misused = await openPage('misused', `${node.url}/listen.html?room=roles&token=${misusedToken}`);
    await misused.getByRole('button', { name: 'Play the broadcast' }).click();
    await waitForState(misused, 'error');
    expect(await errorText(misused)).toMatch(/broadcaster link/);
    // A broadcaster link works once: opened again elsewhere, it is refused in plain words...
    const reused = await openPage('reused', `${node.url}/broadcast.html?room=roles&token=${misusedToken}`);
    await waitForState(reused, 'error');
    expect(await errorText(reused)).toMatch(/already been used/);
    const speaker = await openPage('speaker', `${node.url}/broadcast.html?room=roles&token=${await tokenFor(node, 'roles', 'broadcaster', 'speaker')}`);
    await waitForState(speaker, 'ready');
    // ...while a reload in the same tab resumes the session.
    await speaker.reload();
    await waitForState(speaker, 'ready');

    // Two broadcasters for one room: the second is told someone is already on.
    const second = await openPage('second', `${node.url}/broadcast.html?room=roles&token=${await tokenFor(node, 'roles', 'broadcaster', 'other')}`);
    await waitForState(second, 'error');
    expect(await errorText(second)).toMatch(/already broadcasting/);
    await shot(second, 'broadcaster-refused');

    // Without demo mode the home page says where links come from instead of offering the form.
    const closed = await startTestNode({ CHORUS_WEB_DIR: webDir, CHORUS_DEMO: 'false' });
    try {
      const home = await openPage('home-no-demo', `${closed.url}/`);
      await waitForState(home, 'disabled');
      expect(await home.locator('#create').isHidden()).toBe(true);
      expect(await home.locator('#demo-off').textContent()).toMatch(/Ask the person who runs it/);
    } finally {
      await closed.close();
    }

    expect(pageErrors).toEqual([]);
  }, 90_000);
});
