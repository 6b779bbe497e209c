/**
 * Audio listeners in a process of their own, for a test or bench that runs them inside a network
 * namespace (a lossy or narrow link of their own): real SDK listeners on Node WebRTC (libwebrtc,
 * NetEq), each playing into an audio sink as a player would, so NetEq decodes and conceals as it
 * does for a person listening.
 *
 * One JSON line each way: it prints `{"type":"ready"}` once every listener plays audio; for each
 * `sample` line on stdin it prints `{"type":"sample","listeners":[AudioCounters, …]}`; it leaves
 * when stdin closes (or after `maxLifetimeMs`, whatever became of its parent).
 * Usage: tsx test/support/listenersProcess.ts '<ListenersProcessConfig as JSON>'
 */
import { createInterface } from 'node:readline';
import wrtc from '@roamhq/wrtc';
import { ChorusClient } from '../../src/client/chorusClient.js';
import { audioCounters, type ListenersProcessConfig } from './audioCounters.js';
import { webrtcHandlerFactory } from './nodePeer.js';

const config = JSON.parse(process.argv[2] ?? '{}') as ListenersProcessConfig;
if (!config.url || !Array.isArray(config.tokens) || config.tokens.length === 0) throw new Error("usage: listenersProcess.ts '<ListenersProcessConfig as JSON>'");
const say = (message: object): void => void process.stdout.write(`${JSON.stringify(message)}\n`);

type Sink = InstanceType<typeof wrtc.nonstandard.RTCAudioSink>;
const handlerFactory = webrtcHandlerFactory();
const clients: ChorusClient[] = [];
const sinks = new Map<ChorusClient, Sink>();

async function join(token: string, index: number): Promise<void> {
  const client = new ChorusClient({ url: config.url, roomId: config.roomId, token, handlerFactory, socket: { transports: ['websocket'] } });
  clients.push(client);
  client.on('error', (error) => process.stderr.write(`[listener ${index}] ${error.code}: ${error.message}\n`));
  client.on('track', (track) => {
    sinks.get(client)?.stop();
    const sink = new wrtc.nonstandard.RTCAudioSink(track as never);
    (sink as unknown as { ondata: () => void }).ondata = () => undefined;
    sinks.set(client, sink);
  });
  await client.join();
  // Ready once audio is being played out, so a window opened after it does not count the join.
  const deadline = Date.now() + 30_000;
  while ((await audioCounters(client)).samples === 0) {
    if (Date.now() > deadline) throw new Error(`listener ${index} played no audio within 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

let closing = false;
async function close(): Promise<void> {
  if (closing) return;
  closing = true;
  for (const sink of sinks.values()) sink.stop();
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  process.exit(0);
}

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'sample') return;
  void Promise.all(clients.map(audioCounters)).then((listeners) => say({ type: 'sample', listeners }));
});
process.stdin.on('close', () => void close());
setTimeout(() => void close(), config.maxLifetimeMs).unref();

try {
  await Promise.all(config.tokens.map((token, i) => join(token, i)));
  say({ type: 'ready' });
} catch (error) {
  process.stderr.write(`[listeners] ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
