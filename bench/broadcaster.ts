/**
 * The broadcast benchmark's speaker, in its own process so its WebRTC work is billed to the load
 * generator and not to the parent or the server: joins as broadcaster with the SDK on Node
 * WebRTC and publishes a sine tone, or (`source: 'speech'`) the shipped speech sample on a loop,
 * pauses included, so Opus DTX has silences to skip. Started by bench/broadcast.ts over IPC.
 *
 * The audio is fed by the clock (`clockedAudio`, test/support/nodePeer.ts), not one frame per timer
 * tick: on a busy machine timers fire late, and a source pushing one 10 ms frame per tick would
 * send fewer packets than real time, which looks like a lighter load rather than a worse one.
 * Frames it was too late to push, beyond a 200 ms catch-up burst, are skipped and counted.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TokenService } from '../src/auth/tokens.js';
import { ChorusClient } from '../src/client/chorusClient.js';
import { clockedAudio, FRAME, SAMPLE_RATE, sine, webrtcHandlerFactory } from '../test/support/nodePeer.js';
import type { BroadcasterProcConfig, ChildToParent, ParentToChild } from './lib/messages.js';

const config = JSON.parse(process.argv[2] ?? '{}') as BroadcasterProcConfig;
if (!config.url) throw new Error('broadcaster.ts is started by bench/broadcast.ts');
const send = (message: ChildToParent): void => {
  if (process.connected) process.send?.(message);
};
process.on('disconnect', () => process.exit(1));

/** The speech sample (bench/assets/speech.ogg, decoded by ffmpeg once), one 10 ms frame a call, looped. */
function speech(): (samples: Int16Array) => void {
  const file = fileURLToPath(new URL('./assets/speech.ogg', import.meta.url));
  const raw = execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', file, '-f', 's16le', '-ac', '1', '-ar', String(SAMPLE_RATE), '-'], { maxBuffer: 64 * 1024 * 1024 });
  const pcm = new Int16Array(raw.buffer, raw.byteOffset, Math.floor(raw.length / 2));
  const frames = Math.floor(pcm.length / FRAME);
  let at = 0;
  return (samples) => {
    samples.set(pcm.subarray(at * FRAME, (at + 1) * FRAME));
    at = (at + 1) % frames;
  };
}

const tokens = new TokenService(new TextEncoder().encode(config.secret), 3600);
const token = await tokens.mint({ room: config.roomId, identity: 'bench-broadcaster', role: 'broadcaster' });
const audio = clockedAudio(config.source === 'speech' ? speech() : sine(config.frequency, 0.5));
const client = new ChorusClient({
  url: config.url,
  roomId: config.roomId,
  token,
  handlerFactory: webrtcHandlerFactory(),
  socket: { transports: ['websocket'] },
});
client.on('error', (error) => send({ type: 'log', message: `broadcaster error: ${error.code} ${error.message}` }));
client.on('transport', (state) => {
  if (state !== 'connected' && state !== 'connecting' && state !== 'new') send({ type: 'log', message: `broadcaster transport ${state}` });
});

async function packetsSent(): Promise<number> {
  const transport = client.transport;
  if (!transport || transport.closed) return 0;
  const report = (await transport.getStats()) as Map<string, Record<string, unknown>>;
  let sent = 0;
  for (const stat of report.values()) if (stat['type'] === 'outbound-rtp') sent += Number(stat['packetsSent'] ?? 0);
  return sent;
}

process.on('message', (message: ParentToChild) => {
  if (message.type === 'baseline' || message.type === 'finish') {
    void packetsSent()
      .catch(() => 0)
      .then((sent) => send({ type: 'sent', packetsSent: sent, framesPushed: audio.stats.pushed, framesSkipped: audio.stats.skipped }));
    return;
  }
  if (message.type !== 'close') return;
  setTimeout(() => process.exit(0), 3000).unref();
  audio.stop();
  void client.close().finally(() => process.exit(0));
});

await client.join();
await client.publish(audio.track);
send({ type: 'publishing' });
