/**
 * Quality per student: a student whose downlink is 250 kbit/s (its own network namespace, `tc`
 * on the link to it) receives the teacher's camera on the low simulcast layer and keeps moving,
 * while a student on a free link receives the high one; when the limit is lifted, the
 * constrained student climbs back; when it narrows again under the larger picture, the student
 * steps down and moves again within seconds, and the node's retransmissions stay under the link's
 * rate. The node's bandwidth estimate per transport (transport-cc) and its receivers' loss reports
 * decide; nothing here tells it which student is constrained.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { joinCallPeer, videoOf, type CallPeer } from '../support/callPeer.js';
import { createNetns, type Netns } from '../support/netns.js';
import { palette } from '../support/nodeVideo.js';
import { startTestNode, until } from '../support/testNode.js';
import { watchTransports, type TransportWatch } from '../support/transportWatch.js';

let netns: Netns;
let node: ChorusNode;
const peers: CallPeer[] = [];
let receiver: ChildProcess | undefined;
let transports: TransportWatch;

beforeAll(async () => {
  netns = await createNetns();
  transports = watchTransports();
  // Signaling and media on the host end of the veth: reachable from the namespace and from here.
  node = await startTestNode({ CHORUS_HOST: netns.hostIp, RTC_LISTEN_IP: netns.hostIp, RTC_ANNOUNCED_ADDRESS: netns.hostIp });
});

afterAll(async () => {
  receiver?.stdin?.end();
  receiver?.kill('SIGKILL');
  for (const p of peers) await p.close();
  await node?.close();
  await netns?.close();
  transports?.stop();
});

interface Sample {
  width: number;
  frames: number;
  longestGapMs: number;
}

test('a student on a 250 kbit/s link gets the low layer and keeps moving, a free one the high layer; lifted, it climbs back; narrowed again, it steps down and moves again', async () => {
  const room = 'class-layers';
  const mint = (identity: string, role: 'teacher' | 'student'): Promise<string> => node.tokens.mint({ room, identity, role, kind: 'class', name: identity });
  const teacher = await joinCallPeer(node, room, 'teacher', 400, { token: await mint('teacher', 'teacher'), camera: { colour: palette.blue, width: 640, height: 360, grain: 128 } });
  peers.push(teacher);
  const free = await joinCallPeer(node, room, 'free', 0, { token: await mint('free', 'student'), receiveOnly: true });
  peers.push(free);
  await until(() => videoOf(free, teacher) !== undefined, 10_000, 'the free student to subscribe to the camera');
  const camera = [...free.client.participants.values()].flatMap((p) => [...p.tracks.values()]).find((t) => t.source === 'camera')!;
  await free.client.setView(camera.trackId, { visible: true, width: 1280, height: 720 });

  // 250 kbit/s: the larger picture's base layer (measured 210–240 kbit/s) and the audio do not fit.
  // At 350 they do, and by its rules (frame rate goes before picture size) the policy may give the
  // larger picture at a quarter of the frame rate (seen once in twelve runs under load).
  await netns.limit(250);
  receiver = spawn('ip', ['netns', 'exec', netns.name, process.execPath, '--import', 'tsx', 'test/support/videoReceiverProcess.ts', node.url, room, await mint('constrained', 'student')], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const samples: Sample[] = [];
  createInterface({ input: receiver.stdout! }).on('line', (line) => samples.push(JSON.parse(line) as Sample));
  const latest = (): Sample | undefined => samples.at(-1);

  await until(() => (videoOf(free, teacher)?.width ?? 0) === 320, 30_000, 'the free student to receive the high layer (320 wide: at 640×360 the encoder sends two layers)');
  // Settled means two seconds (ten samples) in a row on the low layer with frames: a new
  // subscriber starts there, and in its first second the policy can still lift it on the
  // transport's initial estimate before the link's feedback brings it down (seen once in CI, a
  // 490 ms stall; a known startup transient, not what this test measures).
  await until(() => samples.length >= 10 && samples.slice(-10).every((s) => s.width === 160 && s.frames > 0), 30_000, 'the constrained student to settle on the low layer (160 wide, 2 s in a row)');
  // Settled: five seconds mostly on the low layer, frames coming, no stall. The node's layer
  // policy keeps the ceiling where the estimate fits, so mediasoup does not wander up by itself
  // (left to itself it did, and the picture stalled up to ~0.9 s while it came back down). This
  // link is marginal for the high layer, though: once the probed estimate makes it fit, the policy
  // tries it again after its up-hold (4 s) and comes back down; CI saw 23 of 25 samples low, a
  // 613 ms gap. Each climb that fails doubles the next up-hold (up to 16 s; test/unit/layerPolicy),
  // so such retries thin out but one can fall in this window: at least 20 of 25 low, and no gap of
  // a second, is what the policy guarantees here.
  const from = samples.length;
  await until(() => samples.length >= from + 25, 10_000, 'five seconds of samples');
  const window = samples.slice(from, from + 25);
  console.log(JSON.stringify({ test: 'class-layers', constrainedLongestGapMs: Math.max(...window.map((s) => s.longestGapMs)), lowLayerSamples: window.filter((s) => s.width === 160).length }));
  expect(window.filter((s) => s.width === 160).length, JSON.stringify(window)).toBeGreaterThanOrEqual(20);
  expect(Math.max(...window.map((s) => s.longestGapMs)), JSON.stringify(window)).toBeLessThan(1000);
  // Temporal layers may go first (a quarter of the frame rate on the lowest): slower, still moving.
  expect(window.at(-1)!.frames).toBeGreaterThan(window[0]!.frames + 12);
  expect(videoOf(free, teacher)!.width).toBe(320);

  // The limit lifted: the node's estimate for that student rises, and so does its layer.
  await netns.limit(undefined);
  await until(() => (latest()?.width ?? 0) >= 320, 45_000, 'the constrained student to climb back above the low layer');
  // The link narrows under a flowing picture (to where the larger picture's base layer does not
  // fit): the node steps it down, and it moves again within 6 s. The transport-cc estimate
  // follows such a link over seconds (it cuts for loss by steps, and a full queue shows no growing
  // delay); with it alone, the picture froze over 3 s in 11 of 16 runs, up to 7.1 s. The
  // receiver's loss reports step it down within a report or two (deliveredBitrate). What the node
  // retransmits to it is read from its transport every half second: mediasoup answered every NACK
  // (up to 1.2 Mbit/s into this 250 kbit/s link, keeping its queue full after the step down);
  // the worker's patch 003 holds retransmissions to what the link can carry.
  const link = await transports.sendingTo(netns.nsIp);
  expect(link, 'the node\'s transport to the constrained student').toBeDefined();
  await netns.limit(250);
  const narrowed = samples.length;
  const retransmitted: number[] = [];
  const reading = setInterval(() => {
    link!.getStats().then(([stats]) => retransmitted.push(Math.round((stats?.rtxSendBitrate ?? 0) / 1000)), () => undefined);
  }, 500);
  let after: number;
  try {
    await until(() => samples.length > narrowed && (latest()?.width ?? 0) === 160, 30_000, 'the constrained student to step back down to the low layer');
    after = samples.length;
    await until(() => latest()!.frames > samples[after - 1]!.frames + 2, 20_000, 'frames on the low layer after the step down');
  } finally {
    clearInterval(reading);
  }
  const frozeMs = Math.max(...samples.slice(narrowed).map((s) => s.longestGapMs));
  console.log(JSON.stringify({ test: 'class-layers-narrowed', stepDownMs: (after - narrowed) * 200, longestGapMs: frozeMs, retransmittedKbps: retransmitted }));
  expect(frozeMs, JSON.stringify(samples.slice(narrowed))).toBeLessThan(6000);
  expect(Math.max(...retransmitted), 'retransmissions (kbit/s, every 500 ms) into the 250 kbit/s link').toBeLessThan(250);
  // Each step was counted.
  const metrics = await (await fetch(`${node.url}/metrics`)).text();
  const changes = (direction: string): number => Number(new RegExp(`chorus_consumer_layer_changes_total\\{kind="class",direction="${direction}"[^}]*\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
  expect(changes('down')).toBeGreaterThanOrEqual(1);
  expect(changes('up')).toBeGreaterThanOrEqual(1);
});
