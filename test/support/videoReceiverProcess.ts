/**
 * A class student in its own process (run inside a network namespace by the test): joins
 * receive-only, asks for the teacher's camera as a large tile, and prints one JSON line every
 * 200 ms with the decoded frame width, the frames so far and the longest pause between frames
 * since the last line. Stops when its stdin closes.
 * Usage: tsx videoReceiverProcess.ts <url> <roomId> <token>
 */
import { CallClient } from '../../src/client/callClient.js';
import { webrtcHandlerFactory } from './nodePeer.js';
import wrtc from '@roamhq/wrtc';

const [url, roomId, token] = process.argv.slice(2);
if (!url || !roomId || !token) throw new Error('usage: videoReceiverProcess.ts <url> <roomId> <token>');
const client = new CallClient({ url, roomId, token, handlerFactory: webrtcHandlerFactory(), socket: { transports: ['websocket'] } });
client.on('error', (error) => process.stderr.write(`receiver error: ${error.code} ${error.message}\n`));
let width = 0;
let frames = 0;
let last = 0;
let longest = 0;
let sink: { stop(): void } | undefined;
client.on('tracksubscribed', (track) => {
  if (track.kind !== 'video' || !track.mediaTrack) return;
  sink?.stop();
  const video = new wrtc.nonstandard.RTCVideoSink(track.mediaTrack as never);
  video.onframe = ({ frame }: { frame: { width: number } }) => {
    const now = performance.now();
    if (last > 0) longest = Math.max(longest, now - last);
    last = now;
    width = frame.width;
    frames++;
  };
  sink = video;
  void client.setView(track.trackId, { visible: true, width: 1280, height: 720 });
});
await client.join();
const timer = setInterval(() => {
  process.stdout.write(`${JSON.stringify({ width, frames, longestGapMs: Math.round(longest) })}\n`);
  longest = 0;
}, 200);
process.stdin.on('close', () => {
  clearInterval(timer);
  sink?.stop();
  void client.close().then(() => process.exit(0));
});
process.stdin.resume();
