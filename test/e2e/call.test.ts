/**
 * The call page in real headless Chromium against a real node: three visitors open one call link
 * (no token in it: the demo node hands each its own), join with Chromium's fake camera and
 * microphone, and every page plays the two others' videos and hears them; a mute on one page
 * shows on the others. Screenshots go to artifacts/screenshots/.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { buildWeb, repoRoot } from '../support/buildWeb.js';
import { launchChromium } from '../support/chromium.js';
import { audibleStreams, playingVideos } from '../support/pageMedia.js';
import { Visitors } from '../support/visitors.js';
import { mediaCounts } from '../support/mediaCounts.js';
import { startTestNode } from '../support/testNode.js';

const screenshots = join(repoRoot, 'artifacts', 'screenshots');

let node: ChorusNode;
let browser: Browser;
const visitors = new Visitors(() => browser);

beforeAll(async () => {
  const webDir = await buildWeb();
  // Loopback is never the bottleneck: the floor keeps three busy browsers' delays from reading
  // as congestion, so a pause measured here is the switch's, not the layer policy's (which has
  // its own tests: test/unit/layerPolicy.test.ts, and a constrained link in classLayers.test.ts).
  node = await startTestNode({ CHORUS_WEB_DIR: webDir, CHORUS_DEMO: 'true', CHORUS_CALL_P2P_BACK_MS: '1000', RTC_MIN_BITRATE: '1000000' });
  browser = await launchChromium(['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream']);
  mkdirSync(screenshots, { recursive: true });
}, 120_000);

afterAll(async () => {
  await visitors.close();
  await browser?.close();
  await node?.close();
});

const visitor = (name: string, url: string): Promise<Page> => visitors.join(name, url);

/**
 * Watches, on the page, the tile showing `peerId`'s camera: the longest pause between two decoded
 * frames from now on (requestVideoFrameCallback), read with frameGap. Calling it again restarts
 * the measure.
 */
async function watchFrames(page: Page, peerId: string): Promise<void> {
  await page.evaluate((peer) => {
    type Watch = { last: number; max: number };
    const w = window as unknown as { frameWatch?: Record<string, Watch> };
    w.frameWatch ??= {};
    const known = w.frameWatch[peer];
    if (known) {
      known.last = performance.now();
      known.max = 0;
      return;
    }
    const video = document.querySelector<HTMLVideoElement>(`.tile:not(.screen)[data-peer="${peer}"] video`);
    if (!video) throw new Error(`no tile for ${peer}`);
    const watch: Watch = { last: performance.now(), max: 0 };
    w.frameWatch[peer] = watch;
    const tick = (): void => {
      const now = performance.now();
      watch.max = Math.max(watch.max, now - watch.last);
      watch.last = now;
      video.requestVideoFrameCallback(tick);
    };
    video.requestVideoFrameCallback(tick);
  }, peerId);
}

/** The longest pause between frames of that tile since watchFrames (a pause still running counts). */
async function frameGap(page: Page, peerId: string): Promise<number> {
  return page.evaluate((peer) => {
    const watch = (window as unknown as { frameWatch?: Record<string, { last: number; max: number }> }).frameWatch?.[peer];
    if (!watch) throw new Error(`not watching ${peer}`);
    return Math.round(Math.max(watch.max, performance.now() - watch.last));
  }, peerId);
}

/** A switch must not freeze a tile for longer than this (the target is 500 ms at p95; this is a test on a shared machine). */
const FRAME_GAP_BOUND_MS = 1500;

test('three visitors of one call link see and hear each other (two of them directly, then through the SFU, then directly again); a mute shows everywhere', async () => {
  const room = 'e2e-call';
  const pages: Page[] = [];
  for (const name of ['Amina', 'Bilal']) pages.push(await visitor(name, `${node.url}/call.html?room=${room}`));
  // Two: peer-to-peer. The node holds no consumer, yet each page plays and hears the other.
  await expect.poll(() => node.rooms.get(room)?.mediaPath.path, { timeout: 15_000 }).toBe('p2p');
  for (const page of pages) {
    await page.waitForFunction(() => window.chorusDebug?.['mediaPath'] === 'p2p', undefined, { timeout: 20_000 });
    await expect.poll(() => playingVideos(page, '.tile:not(.self) video'), { timeout: 20_000, interval: 200 }).toBe(1);
    await expect.poll(() => audibleStreams(page), { timeout: 20_000, interval: 200 }).toBe(1);
  }
  expect((await mediaCounts(node)).consumers).toBe(0);
  for (const [i, page] of pages.entries()) await page.screenshot({ path: join(screenshots, `call-p2p-${i + 1}.png`) });
  // The pair's tiles of each other, watched across the switches: the video must not freeze.
  const ids = (await Promise.all(pages.map((page) => page.evaluate(() => window.chorusDebug?.['peerId'])))) as [string, string];
  const pairTiles: Array<[Page, string]> = [
    [pages[0]!, ids[1]],
    [pages[1]!, ids[0]],
  ];
  const gaps: Record<string, number[]> = { toSfu: [], toP2p: [] };
  for (const [page, peer] of pairTiles) await watchFrames(page, peer);

  pages.push(await visitor('Chen', `${node.url}/call.html?room=${room}`));
  const callRoom = node.rooms.get(room);
  expect(callRoom?.kind).toBe('call');
  expect(callRoom?.peers.size).toBe(3);

  for (const page of pages) {
    await page.waitForFunction(() => window.chorusDebug?.['participants'] === 2, undefined, { timeout: 15_000 });
    await expect.poll(() => playingVideos(page, '.tile:not(.self) video'), { timeout: 20_000, interval: 200 }).toBe(2);
    await expect.poll(() => audibleStreams(page), { timeout: 20_000, interval: 200 }).toBe(2);
  }
  for (const [page, peer] of pairTiles) gaps['toSfu']!.push(await frameGap(page, peer));

  // Amina mutes: the two others show her tile muted.
  const amina = (await pages[0]!.evaluate(() => window.chorusDebug?.['peerId'])) as string;
  await pages[0]!.click('#toggle-mic');
  for (const page of pages.slice(1)) {
    await page.waitForSelector(`.tile[data-peer="${amina}"][data-mic-muted="true"]`, { timeout: 10_000 });
    // Only Amina is shown muted.
    expect(await page.locator('.tile[data-mic-muted="true"]').count()).toBe(1);
  }
  for (const [i, page] of pages.entries()) await page.screenshot({ path: join(screenshots, `call-${i + 1}.png`) });
  // And unmutes: heard again everywhere.
  await pages[0]!.click('#toggle-mic');
  for (const page of pages.slice(1)) await page.waitForSelector('.tile[data-mic-muted="true"]', { state: 'detached', timeout: 10_000 });

  // The share link carries no token: every visitor gets their own.
  const share = await pages[0]!.inputValue('#share-link');
  expect(new URL(share).searchParams.get('room')).toBe(room);
  expect(new URL(share).searchParams.has('token')).toBe(false);

  for (const [page, peer] of pairTiles) await watchFrames(page, peer);
  await pages[2]!.click('#leave');
  for (const page of pages.slice(0, 2)) await page.waitForFunction(() => window.chorusDebug?.['participants'] === 1, undefined, { timeout: 10_000 });
  // Back to two: after the delay the call is direct again, in the same elements.
  await expect.poll(() => node.rooms.get(room)?.mediaPath.path, { timeout: 15_000 }).toBe('p2p');
  for (const page of pages.slice(0, 2)) {
    await page.waitForFunction(() => window.chorusDebug?.['mediaPath'] === 'p2p', undefined, { timeout: 20_000 });
    await expect.poll(() => playingVideos(page, '.tile:not(.self) video'), { timeout: 20_000, interval: 200 }).toBe(1);
    await expect.poll(() => audibleStreams(page), { timeout: 20_000, interval: 200 }).toBe(1);
  }
  await expect.poll(async () => (await mediaCounts(node)).consumers, { timeout: 10_000 }).toBe(0);
  for (const [page, peer] of pairTiles) gaps['toP2p']!.push(await frameGap(page, peer));
  console.log(`[e2e] longest video pause across the switch, per tile of the pair: to the SFU ${gaps['toSfu']!.join('/')} ms, back to peer-to-peer ${gaps['toP2p']!.join('/')} ms`);
  for (const gap of [...gaps['toSfu']!, ...gaps['toP2p']!]) expect(gap).toBeLessThan(FRAME_GAP_BOUND_MS);
  expect(visitors.errors).toEqual([]);
}, 120_000);
