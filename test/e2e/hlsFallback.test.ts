/**
 * The listener page falls back to HLS in real headless Chromium when WebRTC cannot connect.
 * The failure is Chromium's own: before the page loads, the test makes every RTCPeerConnection
 * relay-only with no TURN server (what a network that allows nothing but an absent relay
 * amounts to), so the real ICE agent gathers no usable candidate and never connects. The page's
 * code is untouched; the broadcaster is the SDK on Node WebRTC, which connects normally. The
 * page must switch to HLS by itself, say so, play (the audio element's clock advances, the meter
 * shows the tone), and offer a way back to WebRTC.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { ChorusClient } from '../../src/client/chorusClient.js';
import { buildWeb, repoRoot } from '../support/buildWeb.js';
import { launchChromium } from '../support/chromium.js';
import { toneTrack, type ToneSource } from '../support/nodePeer.js';
import { nodeClient, startTestNode, tokenFor } from '../support/testNode.js';
import { blockWebRtc } from '../support/blockWebRtc.js';


const screenshots = join(repoRoot, 'artifacts', 'screenshots');

let node: ChorusNode;
let browser: Browser;
let context: BrowserContext;
let hlsDir: string;
let broadcaster: ChorusClient;
let tone: ToneSource;
const pageErrors: string[] = [];

beforeAll(async () => {
  const webDir = await buildWeb();
  hlsDir = mkdtempSync(join(tmpdir(), 'chorus-hls-e2e-'));
  node = await startTestNode({ CHORUS_WEB_DIR: webDir, CHORUS_HLS_DIR: hlsDir });
  browser = await launchChromium([]);
  mkdirSync(screenshots, { recursive: true });
  tone = toneTrack(440);
  broadcaster = nodeClient(node, 'fallback', await tokenFor(node, 'fallback', 'broadcaster'));
  await broadcaster.join();
  await broadcaster.publish(tone.track);
}, 120_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await broadcaster?.close();
  tone?.stop();
  await node?.close();
  rmSync(hlsDir, { recursive: true, force: true });
});

function debug<T>(page: Page, key: string): Promise<T> {
  return page.evaluate((k) => window.chorusDebug?.[k], key) as Promise<T>;
}

async function waitFor(page: Page, key: string, value: unknown, timeout: number): Promise<void> {
  await page.waitForFunction(([k, v]) => window.chorusDebug?.[k as string] === v, [key, value] as const, { timeout, polling: 50 }).catch(async (error: unknown) => {
    const state = await page.evaluate(() => JSON.stringify({ ...window.chorusDebug, error: window.chorusDebug?.['error'] }));
    throw new Error(`page never had ${key}=${String(value)}: ${state}`, { cause: error });
  });
}

/** The audio element's clock moves on by `seconds` (HLS media really plays). */
async function advances(page: Page, seconds: number, timeout = 20_000): Promise<void> {
  await page.waitForFunction(() => (window.chorusDebug?.['currentTime'] as number) > 0, undefined, { timeout, polling: 100 });
  const from = await debug<number>(page, 'currentTime');
  await page.waitForFunction((t) => (window.chorusDebug?.['currentTime'] as number) > t, from + seconds, { timeout, polling: 100 });
}

test('with WebRTC blocked the listener page falls back to HLS, plays, and can switch back', async () => {
  context = await browser.newContext();
  await context.addInitScript(blockWebRtc);
  const page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(`console: ${message.text()}`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) pageErrors.push(`HTTP ${response.status()} for ${response.url()}`);
  });
  const token = await tokenFor(node, 'fallback', 'listener');
  await page.goto(`${node.url}/listen.html?room=fallback&token=${token}`);
  await waitFor(page, 'state', 'idle', 20_000);
  await page.getByRole('button', { name: 'Play the broadcast' }).click();

  // Joined over signaling, but WebRTC never connects: after a few seconds, HLS.
  await waitFor(page, 'mode', 'hls', 20_000);
  await waitFor(page, 'state', 'hls', 5000);
  expect(await page.locator('#status').textContent()).toMatch(/HLS/);
  expect(await page.locator('#hls-note').isVisible()).toBe(true);
  expect(await page.locator('#hls-text').textContent()).toMatch(/could not connect/);
  await advances(page, 2);
  expect(await page.locator('#player').evaluate((a: HTMLAudioElement) => !a.paused && a.srcObject === null && a.src.startsWith('blob:'))).toBe(true);
  // The meter measures what plays: the broadcaster's tone, not silence.
  await page.waitForFunction(() => (window.chorusDebug?.['level'] as number) > 0.01, undefined, { timeout: 10_000, polling: 25 });
  expect(await debug(page, 'transport')).not.toBe('connected');
  // The room still counts this listener: the session stays joined for events.
  await page.waitForFunction(() => window.chorusDebug?.['listeners'] === 1, undefined, { timeout: 10_000 });
  expect(node.hls!.session('fallback')).toBeDefined();
  await page.screenshot({ path: join(screenshots, 'listener-hls-fallback.png'), fullPage: true });

  // Back to WebRTC on request: it is tried again (and, still blocked, falls back again).
  await page.getByRole('button', { name: 'Switch back to WebRTC' }).click();
  await waitFor(page, 'mode', 'webrtc', 5000);
  expect(await page.locator('#hls-note').isHidden()).toBe(true);
  await waitFor(page, 'mode', 'hls', 20_000);
  await advances(page, 1);

  expect(pageErrors).toEqual([]);
}, 120_000);
