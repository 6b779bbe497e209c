/**
 * The recording's ffmpeg with real RTP: a microphone that starts before the camera's first frame
 * (a WebRTC camera's keyframe often comes a second or two after the recording starts). ffmpeg
 * then ends its probe knowing no frame rate for the video; the recording must still write
 * segments of picture and sound.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, expect, test } from 'vitest';
import { FfmpegProcess, freeRtpPorts } from '../../src/media/ffmpegProcess.js';
import { PLAYLIST, recordingArgs, stageSdp } from '../../src/recording/stageRun.js';
import { until } from '../support/testNode.js';

const silent = pino({ level: 'silent' });
const running: FfmpegProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.kill()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const segments = (dir: string): number => {
  try {
    return readFileSync(join(dir, PLAYLIST), 'utf8').split('#EXTINF').length - 1;
  } catch {
    return 0;
  }
};

test('a camera whose first frame comes after ffmpeg has probed the microphone is recorded all the same', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'chorus-rec-ffmpeg-'));
  dirs.push(dir);
  const [video, audio] = (await freeRtpPorts(2)) as [{ rtp: number; rtcp: number }, { rtp: number; rtcp: number }];
  writeFileSync(join(dir, 'stage.sdp'), stageSdp([
    { kind: 'video', rtpPort: video.rtp, rtcpPort: video.rtcp, payloadType: 101 },
    { kind: 'audio', rtpPort: audio.rtp, rtcpPort: audio.rtcp, payloadType: 100 },
  ]));
  const recorder = new FfmpegProcess('ffmpeg', recordingArgs(true, true, 2, false, { width: 320, height: 180 }), dir, silent);
  running.push(recorder);
  // The microphone from the first moment; the camera only once the recorder has given up
  // probing it (ffmpeg says so), as when a WebRTC camera's keyframe is late.
  const tone = new FfmpegProcess('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-c:a', 'libopus', '-payload_type', '100', '-f', 'rtp', `rtp://127.0.0.1:${audio.rtp}`], dir, silent);
  running.push(tone);
  await until(() => recorder.stderrTail.some((line) => /Could not find codec parameters for stream 0/.test(line)) || recorder.exit !== undefined, 15_000, 'the recorder to end its probe without the camera');
  const camera = new FfmpegProcess('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc=size=320x180:rate=30', '-c:v', 'libvpx', '-deadline', 'realtime', '-g', '30', '-payload_type', '101', '-f', 'rtp', `rtp://127.0.0.1:${video.rtp}`], dir, silent);
  running.push(camera);
  await until(() => segments(dir) >= 2 || recorder.exit !== undefined, 20_000, 'two segments').catch((error: unknown) => {
    throw new Error(`${String(error)}; ffmpeg said: ${recorder.stderrTail.join(' | ')}`);
  });
  expect(recorder.exit, recorder.stderrTail.join('\n')).toBeUndefined();
  expect(recorder.stderrTail.join('\n')).not.toMatch(/frames duplicated/);
});
