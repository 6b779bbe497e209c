/**
 * Recording a class's stage: the teacher (a real SDK over Node WebRTC, a blue camera and a
 * 440 Hz tone) starts a recording; everyone is told where it plays; a student follows it live
 * over HLS with its own token; stopped, the playlist is ended and the replay decodes with real
 * ffmpeg as H.264 + AAC, blue, at 440 Hz. A student cannot start one; the files need a token of
 * that room or the tenant's API key; the admin API lists it.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { RecordingInfo } from '../../src/protocol/room.js';
import { joinCallPeer, type CallPeer } from '../support/callPeer.js';
import { colourTrack, palette } from '../support/nodeVideo.js';
import { startTestNode, until } from '../support/testNode.js';

const run = promisify(execFile);
const KEY = `Basic ${Buffer.from(`test:${'t'.repeat(40)}`).toString('base64')}`;
let node: ChorusNode;
let dir: string;
const peers: CallPeer[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'chorus-rec-'));
  node = await startTestNode({ CHORUS_RECORDINGS_DIR: dir });
});
afterAll(async () => {
  for (const p of peers) await p.close();
  await node?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The mean colour of the first decoded frame and the dominant frequency of the audio (zero crossings). */
async function decode(url: string, from = 1): Promise<{ codecs: string[]; colour: { r: number; g: number; b: number }; frequency: number; seconds: number }> {
  const probe = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name:format=duration', '-of', 'json', url]);
  const info = JSON.parse(probe.stdout) as { streams: Array<{ codec_name: string }>; format: { duration: string } };
  const frame = await run('ffmpeg', ['-v', 'error', '-i', url, '-ss', String(from), '-frames:v', '1', '-s', '64x36', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], { encoding: 'buffer', maxBuffer: 1 << 20 });
  const px = frame.stdout as Buffer;
  const sum = { r: 0, g: 0, b: 0 };
  for (let i = 0; i + 2 < px.length; i += 3) {
    sum.r += px[i]!;
    sum.g += px[i + 1]!;
    sum.b += px[i + 2]!;
  }
  const n = px.length / 3;
  const pcm = (await run('ffmpeg', ['-v', 'error', '-i', url, '-vn', '-ss', String(from), '-t', '2', '-ac', '1', '-ar', '16000', '-f', 's16le', '-'], { encoding: 'buffer', maxBuffer: 1 << 22 })).stdout as Buffer;
  let crossings = 0;
  for (let i = 2; i + 1 < pcm.length; i += 2) if (pcm.readInt16LE(i - 2) < 0 !== pcm.readInt16LE(i) < 0) crossings++;
  const seconds = pcm.length / 2 / 16000;
  return { codecs: info.streams.map((s) => s.codec_name).sort(), colour: { r: sum.r / n, g: sum.g / n, b: sum.b / n }, frequency: crossings / 2 / seconds, seconds: Number(info.format.duration) };
}

test('the teacher records the stage: followed live, then a replay that decodes as H.264 + AAC with the teacher\'s colour and tone', async () => {
  const room = 'class-rec';
  const mint = (identity: string, role: 'teacher' | 'student'): Promise<string> => node.tokens.mint({ room, identity, role, kind: 'class', name: identity });
  const teacher = await joinCallPeer(node, room, 'teacher', 440, { token: await mint('teacher', 'teacher'), camera: { colour: palette.blue, width: 640, height: 360 } });
  peers.push(teacher);
  const studentToken = await mint('student', 'student');
  const student = await joinCallPeer(node, room, 'student', 0, { token: studentToken, receiveOnly: true });
  peers.push(student);
  const told: Array<{ recording: RecordingInfo | null; playlist: string | undefined }> = [];
  student.client.on('recording', (recording, playlist) => told.push({ recording, playlist }));
  await until(() => [...student.client.participants.values()].some((p) => p.tracks.size === 2), 10_000, 'the teacher\'s two tracks to be published');

  await expect(student.client.record('start')).rejects.toMatchObject({ code: 'FORBIDDEN_ROLE' });
  const started = await teacher.client.record('start');
  expect(started).toMatchObject({ roomId: room, by: 'teacher' });
  // A second start is the same recording.
  expect((await teacher.client.record('start'))?.id).toBe(started!.id);
  await until(() => told.some((t) => t.recording?.id === started!.id), 5000, 'the student to be told of the recording');
  const path = told.find((t) => t.recording)!.playlist!;
  const url = `${node.url}${path}?token=${encodeURIComponent(studentToken)}`;

  // Live: segments appear while the class goes on; their addresses carry the token.
  let live = '';
  await until(async () => {
    const res = await fetch(url);
    live = res.ok ? await res.text() : '';
    return (live.match(/^seg-\d+\.ts\?token=/gm) ?? []).length >= 3;
  }, 30_000, 'three live segments');
  expect(live).not.toContain('#EXT-X-ENDLIST');

  // The teacher shares a (red) screen: the recording follows the stage to it, in the same
  // playlist after a discontinuity, and back to the (blue) camera when the share ends.
  const screen = colourTrack(palette.red, 640, 360);
  /** The segments of each run after the first, split at the discontinuities ffmpeg writes between runs. */
  const segmentsAfterBreaks = async (): Promise<string[][]> => {
    const text = await (await fetch(url)).text();
    const runs = text.split('#EXT-X-DISCONTINUITY').map((part) => part.match(/^seg-\d+\.ts/gm) ?? []).filter((segments) => segments.length > 0);
    return runs.slice(1);
  };
  let screenSegment: string | undefined;
  try {
    await teacher.client.publish(screen.track, 'screen');
    await until(async () => ((await segmentsAfterBreaks())[0]?.length ?? 0) >= 2, 30_000, 'two recorded segments of the screen share');
    screenSegment = (await segmentsAfterBreaks())[0]![1];
    await teacher.client.unpublish('screen');
  } finally {
    screen.stop();
  }
  await until(async () => ((await segmentsAfterBreaks())[1]?.length ?? 0) >= 2, 30_000, 'two recorded segments of the camera again');
  const cameraAgain = (await segmentsAfterBreaks())[1]![1]!;
  // While it runs the playlist never says it is over, even between two runs.
  expect(await (await fetch(url)).text()).not.toContain('#EXT-X-ENDLIST');
  // The files need credentials of that room.
  expect((await fetch(`${node.url}${path}`)).status).toBe(401);
  const foreign = await node.tokens.mint({ room: 'another', identity: 'x', role: 'student', kind: 'class' });
  expect((await fetch(`${node.url}${path}?token=${foreign}`)).status).toBe(403);
  expect((await fetch(`${node.url}/recordings/${room}/not-a-uuid/index.m3u8?token=${studentToken}`)).status).toBe(400);
  expect((await fetch(`${node.url}/recordings/${room}/${started!.id}/..%2Fx.ts?token=${studentToken}`)).status).toBe(400);

  expect(await teacher.client.record('stop')).toBeNull();
  await until(() => told.at(-1)?.recording === null, 5000, 'the student to be told it stopped');
  const replay = await (await fetch(url)).text();
  expect(replay).toContain('#EXT-X-ENDLIST');

  const decoded = await decode(url);
  console.log(JSON.stringify({ test: 'class-recording', ...decoded }));
  expect(decoded.codecs).toEqual(['aac', 'h264']);
  expect(decoded.seconds).toBeGreaterThan(4);
  expect(decoded.colour.b).toBeGreaterThan(decoded.colour.r + 80);
  expect(decoded.colour.b).toBeGreaterThan(decoded.colour.g + 80);
  expect(Math.abs(decoded.frequency - 440)).toBeLessThan(44);
  const segmentUrl = (name: string): string => `${node.url}/recordings/${room}/${started!.id}/${name}?token=${encodeURIComponent(studentToken)}`;
  const sharing = await decode(segmentUrl(screenSegment!), 0);
  const back = await decode(segmentUrl(cameraAgain), 0);
  console.log(JSON.stringify({ test: 'class-recording', sharing: sharing.colour, back: back.colour }));
  expect(sharing.colour.r).toBeGreaterThan(sharing.colour.b + 80);
  expect(back.colour.b).toBeGreaterThan(back.colour.r + 80);

  // Listed for the tenant's API key, ended.
  const listed = (await (await fetch(`${node.url}/api/admin/recordings`, { headers: { authorization: KEY } })).json()) as { recordings: RecordingInfo[] };
  expect(listed.recordings.find((r) => r.id === started!.id)).toMatchObject({ roomId: room, node: started!.node, by: 'teacher', endedAt: expect.any(Number) });
  expect((await fetch(`${node.url}/recordings/${room}/${started!.id}/index.m3u8`, { headers: { authorization: KEY } })).status).toBe(200);
}, 90_000);

test('CHORUS_CLASS_RECORD=always records a class from its teacher\'s tracks to the teacher\'s leaving, with nobody asking', async () => {
  const always = await startTestNode({ CHORUS_RECORDINGS_DIR: dir, CHORUS_CLASS_RECORD: 'always' });
  try {
    const room = 'class-rec-always';
    const mint = (identity: string, role: 'teacher' | 'student'): Promise<string> => always.tokens.mint({ room, identity, role, kind: 'class', name: identity });
    const student = await joinCallPeer(always, room, 'student', 0, { token: await mint('student', 'student'), receiveOnly: true });
    peers.push(student);
    const told: Array<RecordingInfo | null> = [];
    student.client.on('recording', (recording) => told.push(recording));
    const teacher = await joinCallPeer(always, room, 'teacher', 440, { token: await mint('teacher', 'teacher'), camera: { colour: palette.red, width: 320, height: 180 } });
    await until(() => told.some((r) => r?.by === 'always'), 15_000, 'the recording to start by itself');
    const id = told.find((r) => r)!.id;
    await teacher.close();
    await until(() => told.at(-1) === null, 10_000, 'the recording to end with the teacher');
    const listed = (await (await fetch(`${always.url}/api/admin/recordings`, { headers: { authorization: KEY } })).json()) as { recordings: RecordingInfo[] };
    expect(listed.recordings.find((r) => r.id === id)).toMatchObject({ roomId: room, by: 'always', endedAt: expect.any(Number) });
  } finally {
    for (const p of peers.splice(0)) await p.close();
    await always.close();
  }
}, 60_000);

/** The ffmpeg processes whose working directory is `dir` (a recording's runs). */
function ffmpegsIn(dir: string): number[] {
  return readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).map(Number).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'ffmpeg' && readlinkSync(`/proc/${pid}/cwd`) === dir;
    } catch {
      return false;
    }
  });
}

test('a hung recording ffmpeg (SIGSTOP) is noticed by the segments it stops writing while media comes, killed, and a new run continues the playlist', async () => {
  const stalls = await startTestNode({ CHORUS_RECORDINGS_DIR: dir, CHORUS_RECORDING_STALL_MS: '3000' });
  let stopped: number | undefined;
  try {
    const room = 'class-rec-hang';
    const teacher = await joinCallPeer(stalls, room, 'teacher', 440, { token: await stalls.tokens.mint({ room, identity: 'teacher', role: 'teacher', kind: 'class' }), camera: { colour: palette.green, width: 320, height: 180 } });
    peers.push(teacher);
    const started = (await teacher.client.record('start'))!;
    const recording = join(dir, room, started.id);
    const playlist = (): string => {
      try {
        return readFileSync(join(recording, 'index.m3u8'), 'utf8');
      } catch {
        return '';
      }
    };
    await until(() => (playlist().match(/^seg-\d+\.ts$/gm) ?? []).length >= 2, 30_000, 'two segments');
    const [hung] = ffmpegsIn(recording);
    expect(hung).toBeGreaterThan(0);
    stopped = hung;
    process.kill(hung!, 'SIGSTOP');
    // A new run: another ffmpeg in the same directory, writing after a discontinuity.
    await until(() => ffmpegsIn(recording).some((pid) => pid !== hung), 20_000, 'a new ffmpeg run');
    await until(() => (playlist().split('#EXT-X-DISCONTINUITY')[1]?.match(/^seg-\d+\.ts$/gm) ?? []).length >= 1, 20_000, 'a segment of the new run');
    await until(() => !ffmpegsIn(recording).includes(hung!), 5000, 'the hung ffmpeg to be killed');
    stopped = undefined;
    expect(await teacher.client.record('stop')).toBeNull();
    expect(playlist()).toContain('#EXT-X-ENDLIST');
  } finally {
    if (stopped !== undefined) {
      try {
        process.kill(stopped, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    for (const p of peers.splice(0)) await p.close();
    await stalls.close();
  }
}, 90_000);

test('a recording outlives its node\'s restart: the records list it, ended, and the same node serves its replay', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'chorus-rec-data-'));
  // Records on (PGlite in the data directory) and the memory store, which a restart empties.
  const env = { CHORUS_RECORDINGS_DIR: dir, CHORUS_DATA_DIR: dataDir, CHORUS_RECORDS: 'true', CHORUS_CLASS_RECORD: 'always', CHORUS_NODE_ID: 'rec-restart' };
  let first: ChorusNode | undefined = await startTestNode(env);
  let second: ChorusNode | undefined;
  try {
    const room = 'class-rec-restart';
    const token = await first.tokens.mint({ room, identity: 'teacher', role: 'teacher', kind: 'class', name: 'teacher' });
    const teacher = await joinCallPeer(first, room, 'teacher', 440, { token, camera: { colour: palette.green, width: 320, height: 180 } });
    peers.push(teacher);
    const told: Array<RecordingInfo | null> = [];
    teacher.client.on('recording', (recording) => told.push(recording));
    await until(() => told.some((r) => r !== null), 15_000, 'the recording to start');
    const id = told.find((r) => r)!.id;
    const playlist = `/recordings/${room}/${id}/index.m3u8`;
    // The camera starts on its lowest layer (80×45, odd, which x264 alone refuses); the recording's frame is the declared 320×180.
    await until(async () => (await (await fetch(`${first!.url}${playlist}`, { headers: { authorization: KEY } })).text()).includes('.ts'), 20_000, 'a first segment');
    await teacher.close();
    const ended = async (): Promise<boolean> => {
      const listed = (await (await fetch(`${first!.url}/api/admin/recordings`, { headers: { authorization: KEY } })).json()) as { recordings: RecordingInfo[] };
      return listed.recordings.some((r) => r.id === id && r.endedAt !== undefined);
    };
    await until(ended, 10_000, 'the recording to end with the teacher');
    await first.close();
    first = undefined;

    second = await startTestNode(env);
    const listed = (await (await fetch(`${second.url}/api/admin/recordings`, { headers: { authorization: KEY } })).json()) as { recordings: RecordingInfo[] };
    expect(listed.recordings).toEqual([{ id, roomId: room, node: 'rec-restart', startedAt: expect.any(Number), endedAt: expect.any(Number), by: 'always' }]);
    expect(listed.recordings[0]!.endedAt!).toBeGreaterThan(listed.recordings[0]!.startedAt);
    const replay = await fetch(`${second.url}${playlist}`, { headers: { authorization: KEY } });
    expect(replay.status).toBe(200);
    const text = await replay.text();
    expect(text).toContain('#EXT-X-ENDLIST');
    expect(text).toContain('.ts');
    const probe = await run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height', '-of', 'json', join(dir, room, id, 'index.m3u8')]);
    expect((JSON.parse(probe.stdout) as { streams: unknown[] }).streams).toEqual([{ width: 320, height: 180 }]);
  } finally {
    for (const p of peers.splice(0)) await p.close();
    await first?.close();
    await second?.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}, 90_000);
