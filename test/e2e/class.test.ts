/**
 * The class page in real headless Chromium against a real node (demo mode: each link asks for
 * its own token): a teacher and two students; a student raises a hand, the teacher invites it,
 * it joins the stage and the other student sees and hears it; the teacher removes it and it is
 * gone; a question to the teacher reaches the teacher alone. Screenshots go to
 * artifacts/screenshots/.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { buildWeb, repoRoot } from '../support/buildWeb.js';
import { launchChromium } from '../support/chromium.js';
import { Visitors } from '../support/visitors.js';
import { blockWebRtc } from '../support/blockWebRtc.js';
import { joinCallPeer } from '../support/callPeer.js';
import { startTestNode } from '../support/testNode.js';
import { captureLogs, type LogLine } from '../support/logCapture.js';

const screenshots = join(repoRoot, 'artifacts', 'screenshots');

let node: ChorusNode;
let recordings: string;
let browser: Browser;
/** The node's recording lines (ffmpeg's stderr, runs ending, keyframe asks): what a failure prints. */
let logLines: LogLine[] = [];
const visitors = new Visitors(() => browser, { width: 1000, height: 900 });

beforeAll(async () => {
  const webDir = await buildWeb();
  recordings = mkdtempSync(join(tmpdir(), 'chorus-e2e-rec-'));
  const captured = captureLogs('debug', 'e2e-class');
  logLines = captured.lines;
  node = await startTestNode({ CHORUS_WEB_DIR: webDir, CHORUS_DEMO: 'true', CHORUS_RECORDINGS_DIR: recordings }, captured.log);
  browser = await launchChromium(['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream']);
  mkdirSync(screenshots, { recursive: true });
}, 120_000);

afterAll(async () => {
  await visitors.close();
  await browser?.close();
  await node?.close();
  rmSync(recordings, { recursive: true, force: true });
});

/** Every file under `dir` with its size: what ffmpeg wrote so far. */
function filesUnder(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? filesUnder(join(dir, entry.name), `${prefix}${entry.name}/`) : [`${prefix}${entry.name} ${statSync(join(dir, entry.name)).size}`]));
}

/** The node's log lines about `room`'s recording, the last 40, without their common fields. */
function recordingLines(room: string): string {
  return logLines
    .filter((line) => line['room'] === room || (typeof line['producer'] === 'string' && line.msg === 'dynacast'))
    .slice(-40)
    .map(({ level, time, pid, hostname, node: _node, ...fields }) => JSON.stringify({ level, time, ...fields }))
    .join('\n');
}

const visitor = (name: string, url: string): Promise<Page> => visitors.join(name, url);

/** Video tiles of `role` whose video has frames and whose playback advances. */
async function playing(page: Page, role: string): Promise<number> {
  return page.evaluate(async (r) => {
    const videos = [...document.querySelectorAll<HTMLVideoElement>(`.tile[data-role="${r}"] video`)];
    const before = videos.map((v) => v.currentTime);
    await new Promise((resolve) => setTimeout(resolve, 300));
    return videos.filter((v, i) => v.videoWidth > 0 && v.currentTime > before[i]!).length;
  }, role);
}

async function until(page: Page, check: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) {
      await page.screenshot({ path: join(screenshots, 'class-timeout.png') });
      throw new Error(`timed out waiting for ${what}`);
    }
    await page.waitForTimeout(100);
  }
}

test('raise, invite, join the stage: the other student sees and hears it; removed, it is gone; a question reaches the teacher alone', async () => {
  const room = 'e2e-class';
  const teacher = await visitor('Teacher', `${node.url}/class.html?room=${room}&role=teacher`);
  const asker = await visitor('Amina', `${node.url}/class.html?room=${room}&role=student`);
  const other = await visitor('Bilal', `${node.url}/class.html?room=${room}&role=student`);
  for (const page of [asker, other]) await until(page, async () => (await playing(page, 'teacher')) === 1, 'each student to play the teacher');
  // Students have no stage of their own yet and do not see each other; each sees its own connection's quality.
  expect(await other.locator('.tile[data-role="student"]').count()).toBe(0);
  await other.waitForSelector('#quality[data-quality="excellent"], #quality[data-quality="good"]', { timeout: 20_000 });

  await asker.click('#raise-hand');
  await teacher.waitForSelector('#hands li[data-state="raised"] button[data-action="invite"]', { timeout: 10_000 });
  await teacher.click('#hands li[data-state="raised"] button[data-action="invite"]');
  await asker.waitForSelector('#accept:not([hidden])', { timeout: 10_000 });
  await asker.click('#accept');
  await asker.waitForFunction(() => window.chorusDebug?.['hand'] === 'onstage', undefined, { timeout: 10_000, polling: 50 });
  for (const page of [other, teacher]) await until(page, async () => (await playing(page, 'student')) === 1, 'the student on stage to be seen by the others');
  expect(await other.locator('audio').count()).toBe(2);
  await teacher.screenshot({ path: join(screenshots, 'class-teacher.png') });
  await asker.screenshot({ path: join(screenshots, 'class-student-on-stage.png') });
  await other.screenshot({ path: join(screenshots, 'class-student.png') });

  await teacher.click('#hands li[data-state="onstage"] button[data-action="remove"]');
  await until(other, async () => (await other.locator('.tile[data-role="student"]').count()) === 0 && (await other.locator('audio').count()) === 1, 'the removed student to be gone for the other');
  await asker.waitForFunction(() => window.chorusDebug?.['hand'] === 'back', undefined, { timeout: 10_000, polling: 50 });
  expect(await asker.locator('#raise-hand').isVisible()).toBe(true);

  // A question to the teacher: the teacher reads it, the other student does not.
  await other.check('#chat-staff');
  await other.fill('#chat-input', 'Can you repeat the last example?');
  await other.click('#chat-send');
  await teacher.waitForSelector('#chat-log li:has-text("Can you repeat the last example?")', { timeout: 10_000 });
  await teacher.fill('#chat-input', 'Page 12, everyone');
  await teacher.click('#chat-send');
  await asker.waitForSelector('#chat-log li:has-text("Page 12, everyone")', { timeout: 10_000 });
  expect(await asker.locator('#chat-log li').count()).toBe(1);
  expect(visitors.errors).toEqual([]);
});

test('the home page starts a class: a teacher link and a student link to one room, each joining with its role', async () => {
  const context = await browser.newContext();
  visitors.contexts.push(context);
  const home = await context.newPage();
  await home.goto(`${node.url}/`);
  await home.click('#start-class');
  const teacherLink = new URL(await home.inputValue('#teacher-link'));
  const studentLink = new URL(await home.inputValue('#student-link'));
  expect([teacherLink.pathname, studentLink.pathname]).toEqual(['/class.html', '/class.html']);
  expect(teacherLink.searchParams.get('room')).toBe(studentLink.searchParams.get('room'));
  expect([teacherLink.searchParams.get('role'), studentLink.searchParams.get('role')]).toEqual(['teacher', 'student']);
  const teacher = await visitor('Ustadh', `${node.url}${teacherLink.pathname}${teacherLink.search}`);
  const student = await visitor('Yusuf', `${node.url}${studentLink.pathname}${studentLink.search}`);
  expect(await teacher.evaluate(() => window.chorusDebug?.['role'])).toBe('staff');
  expect(await student.evaluate(() => window.chorusDebug?.['role'])).toBe('student');
  await until(student, async () => (await playing(student, 'teacher')) === 1, 'the student to play the teacher');
});

test('dynacast: the teacher page stops encoding the layer no student receives, and starts it again when one does', async () => {
  const room = 'e2e-dynacast';
  const teacher = await visitor('Teacher', `${node.url}/class.html?room=${room}&role=teacher`);
  await teacher.waitForFunction(() => window.chorusDebug?.['state'] === 'joined', undefined, { timeout: 20_000, polling: 50 });
  const token = await node.tokens.mint({ room, identity: 'watcher', role: 'student', kind: 'class', name: 'watcher' });
  const student = await joinCallPeer(node, room, 'watcher', 0, { token, receiveOnly: true });
  try {
    const camera = async (): Promise<string | undefined> => [...student.client.participants.values()].flatMap((p) => [...p.tracks.values()]).find((t) => t.source === 'camera')?.trackId;
    await until(teacher, async () => (await camera()) !== undefined && [...student.seen.values()].some((s) => s.probe.frames > 0), 'the student to see the teacher');
    const trackId = (await camera())!;
    /** Bytes per layer the teacher's page sends over about a second. */
    const sentOver = async (): Promise<number[]> => {
      const read = (): Promise<Record<string, number>> => teacher.evaluate(() => (window.chorusDebug as unknown as { sentLayers(): Promise<Record<string, number>> }).sentLayers());
      const before = await read();
      await teacher.waitForTimeout(1000);
      const after = await read();
      return Object.keys(after).sort().map((rid) => after[rid]! - (before[rid] ?? 0));
    };
    const width = (): number => [...student.seen.values()].find((s) => s.source === 'camera')?.probe.width ?? 0;

    await student.client.setView(trackId, { visible: true, width: 1280, height: 720 });
    let large: number[] = [];
    await until(teacher, async () => (large = await sentOver()).filter((bytes) => bytes > 2000).length >= 2 && width() > 160, 'two layers sent, the upper one received');
    const layers = large.filter((bytes) => bytes > 0).length;
    console.log(JSON.stringify({ test: 'dynacast', phase: 'large', bytesPerLayer: large }));

    // A thumbnail is all anyone receives: within the node's hold (3 s) the upper layers stop.
    await student.client.setView(trackId, { visible: true, width: 160, height: 90 });
    let thumb: number[] = [];
    await until(teacher, async () => (thumb = await sentOver()).slice(1).every((bytes) => bytes === 0), 'the teacher page to stop its upper layers', 15_000);
    console.log(JSON.stringify({ test: 'dynacast', phase: 'thumbnail', bytesPerLayer: thumb }));
    expect(thumb[0]).toBeGreaterThan(0);
    expect(width()).toBe(160);

    await student.client.setView(trackId, { visible: true, width: 1280, height: 720 });
    let back: number[] = [];
    await until(teacher, async () => (back = await sentOver()).slice(0, layers).every((bytes) => bytes > 0) && width() > 160, 'the upper layers sent and received again', 15_000);
    console.log(JSON.stringify({ test: 'dynacast', phase: 'large again', bytesPerLayer: back }));
  } finally {
    await student.close();
  }
});

test('the teacher records the class from the page: everyone sees it recording, then gets the replay', async () => {
  const room = 'e2e-record';
  const teacher = await visitor('Teacher', `${node.url}/class.html?room=${room}&role=teacher`);
  const student = await visitor('Student', `${node.url}/class.html?room=${room}&role=student`);
  await until(student, async () => (await playing(student, 'teacher')) === 1, 'the student to play the teacher');
  expect(await student.locator('#record').isVisible()).toBe(false);
  await teacher.click('#record');
  await teacher.waitForFunction(() => window.chorusDebug?.['recording'] === true, undefined, { timeout: 10_000, polling: 50 });
  // The student is offered the live recording: it has segments while the class goes on.
  const live = student.locator('#recording-status[data-recording="true"] a');
  await live.waitFor({ timeout: 10_000 });
  const url = new URL((await live.getAttribute('href'))!, node.url);
  await until(student, async () => /seg-\d+\.ts/.test(await (await fetch(url)).text()), 'the first recorded segment', 20_000);
  await teacher.click('#record');
  // Stopped: the same playlist, ended, is the replay the student is handed.
  const replay = student.locator('#recording-status[data-recording="false"] a');
  await replay.waitFor({ timeout: 15_000 });
  expect(new URL((await replay.getAttribute('href'))!, node.url).href).toBe(url.href);
  const playlist = await (await fetch(url)).text();
  expect(playlist).toContain('#EXT-X-ENDLIST');
  expect(playlist).toMatch(/seg-\d+\.ts\?token=/);
  await student.screenshot({ path: join(screenshots, 'class-recorded.png') });
});

test('a student whose WebRTC cannot connect watches the live recording over HLS instead', async () => {
  const room = 'e2e-fallback';
  const teacher = await visitor('Teacher', `${node.url}/class.html?room=${room}&role=teacher`);
  await teacher.waitForFunction(() => window.chorusDebug?.['state'] === 'joined', undefined, { timeout: 20_000, polling: 50 });
  await teacher.waitForFunction(() => window.chorusDebug?.['published'] === 2, undefined, { timeout: 20_000, polling: 50 });
  await teacher.click('#record');
  await teacher.waitForFunction(() => window.chorusDebug?.['recording'] === true, undefined, { timeout: 10_000, polling: 50 });
  const blocked = await visitors.join('Blocked', `${node.url}/class.html?room=${room}&role=student`, blockWebRtc);
  // On a timeout, what the page knew: its mode, the HLS player's trouble and time, and the recording's playlist.
  const explain = async (error: unknown): Promise<never> => {
    const state = await blocked.evaluate(() => ({ mode: window.chorusDebug?.['mode'], trouble: window.chorusDebug?.['hlsTrouble'], time: window.chorusDebug?.['hlsTime'], width: window.chorusDebug?.['hlsWidth'], state: window.chorusDebug?.['state'] }));
    const href = await blocked.locator('#recording-status a').getAttribute('href').catch(() => null);
    const playlist = href ? await (await fetch(new URL(href, node.url))).text() : 'no link';
    throw new Error(`${String(error)}\npage: ${JSON.stringify(state)}\nerrors: ${visitors.errors.join(' | ')}\nplaylist: ${playlist}\nfiles: ${filesUnder(recordings).join(', ')}\nnode: ${recordingLines(room)}`);
  };
  await blocked.waitForFunction(() => window.chorusDebug?.['mode'] === 'hls', undefined, { timeout: 30_000, polling: 100 }).catch(explain);
  // The recording plays: picture and time advancing.
  await blocked.waitForFunction(() => (window.chorusDebug?.['hlsWidth'] as number) > 0 && (window.chorusDebug?.['hlsTime'] as number) > 0, undefined, { timeout: 30_000, polling: 100 }).catch(explain);
  const from = (await blocked.evaluate(() => window.chorusDebug?.['hlsTime'])) as number;
  await blocked.waitForFunction((t) => (window.chorusDebug?.['hlsTime'] as number) > t + 1, from, { timeout: 20_000, polling: 100 }).catch(explain);
  expect(await blocked.locator('#hls-panel').isVisible()).toBe(true);
  await blocked.screenshot({ path: join(screenshots, 'class-student-hls.png') });
});
