/**
 * The ports the node hands ffmpeg are the ports ffmpeg takes: it reads RTP on the SDP's media
 * port and, whatever `a=rtcp` says, RTCP on the port above it. A run whose RTCP neighbour was
 * never checked could find it taken and end before it received anything; ports from the kernel's
 * ephemeral range could be given to any other socket before ffmpeg bound them.
 */
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { expect, test } from 'vitest';
import { FfmpegProcess, freeRtpPorts } from '../../src/media/ffmpegProcess.js';
import { stageSdp } from '../../src/recording/stageRun.js';
import { until } from '../support/testNode.js';

function bindable(port: number): Promise<boolean> {
  const socket = createSocket('udp4');
  return new Promise((resolve) => {
    socket.once('error', () => {
      socket.close();
      resolve(false);
    });
    socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
  });
}

test('port pairs are an RTP port and the one above it, all distinct and free', async () => {
  const pairs = await freeRtpPorts(3);
  expect(pairs).toHaveLength(3);
  for (const { rtp, rtcp } of pairs) expect(rtcp).toBe(rtp + 1);
  const ports = pairs.flatMap(({ rtp, rtcp }) => [rtp, rtcp]);
  expect(new Set(ports).size).toBe(6);
  for (const port of ports) expect(await bindable(port)).toBe(true);
  // Below the kernel's ephemeral range, where no bind(0) or outgoing socket can be given one of
  // them before ffmpeg binds it; RTP on the even port.
  const [ephemeralLow] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  for (const { rtp, rtcp } of pairs) {
    expect(rtp % 2).toBe(0);
    expect(rtp).toBeGreaterThanOrEqual(10_000);
    expect(rtcp).toBeLessThan(ephemeralLow!);
  }
});

test('ffmpeg reading a recording SDP binds exactly the pairs it was given', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'chorus-ffmpeg-ports-'));
  const [video, audio] = (await freeRtpPorts(2)) as [{ rtp: number; rtcp: number }, { rtp: number; rtcp: number }];
  writeFileSync(join(dir, 'stage.sdp'), stageSdp([
    { kind: 'video', rtpPort: video.rtp, rtcpPort: video.rtcp, payloadType: 101 },
    { kind: 'audio', rtpPort: audio.rtp, rtcpPort: audio.rtcp, payloadType: 100 },
  ]));
  const ffmpeg = new FfmpegProcess('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'error', '-protocol_whitelist', 'file,udp,rtp', '-f', 'sdp', '-i', 'stage.sdp', '-f', 'null', '-'], dir, pino({ level: 'silent' }));
  try {
    const ports = [video.rtp, video.rtcp, audio.rtp, audio.rtcp];
    await until(async () => (await Promise.all(ports.map(bindable))).every((free) => !free) || ffmpeg.exit !== undefined, 10_000, 'ffmpeg to bind all four ports');
    expect(ffmpeg.exit, ffmpeg.stderrTail.join('\n')).toBeUndefined();
  } finally {
    await ffmpeg.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});
