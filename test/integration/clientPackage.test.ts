/**
 * The client SDK as another application gets it (`@chorus-rtc/client`, built, packed and
 * installed from its tarball into a project of its own): in Node, with its Node entry on the
 * application's @roamhq/wrtc, it joins a real node's call and hears and is heard by a participant
 * on the repository's SDK; an example using it compiles under `strict` against the packed
 * `.d.ts`; its browser entry, bundled as an application would, stays under its size budget and
 * leaves hls.js out unless the fallback is imported.
 */
import wrtc from '@roamhq/wrtc';
import { build } from 'esbuild';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { joinCallPeer, type CallPeer } from '../support/callPeer.js';
import { probeAudio, toneTrack, type AudioProbe, type ToneSource } from '../support/nodePeer.js';
import { installPacked, type PackedApp } from '../support/packedPackages.js';
import { startTestNode, until } from '../support/testNode.js';

type Client = typeof import('../../src/client/index.js');
type NodeEntry = typeof import('../../src/client/node.js');

/** The browser entry, minified and gzipped, as an application bundles it (its dependencies included: 64 KB at 0.1.0). */
const BUDGET_GZIP_BYTES = 80 * 1024;

let app: PackedApp;
let client: Client;
let nodeEntry: NodeEntry;
let node: ChorusNode;
const closers: Array<() => unknown> = [];

beforeAll(async () => {
  app = await installPacked(['client']);
  client = (await import(app.moduleUrl('@chorus-rtc/client', 'dist/index.js'))) as Client;
  nodeEntry = (await import(app.moduleUrl('@chorus-rtc/client', 'dist/node.js'))) as NodeEntry;
  node = await startTestNode();
}, 180_000);
afterAll(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await node?.close();
  app?.remove();
});

test('in Node, the packed client joins a call and hears and is heard by a participant on the repository\'s SDK', async () => {
  const room = 'packed-call';
  const token = await node.tokens.mint({ room, identity: 'packed', role: 'participant', kind: 'call' });
  const packed = new client.CallClient({ url: node.url, roomId: room, token, handlerFactory: nodeEntry.nodeHandlerFactory(wrtc), socket: { transports: ['websocket'] } });
  closers.push(() => packed.close());
  const heard = new Map<string, AudioProbe>();
  packed.on('tracksubscribed', (track) => {
    if (track.source === 'microphone' && track.mediaTrack) heard.set(track.peerId, probeAudio(track.mediaTrack));
  });
  closers.push(() => heard.forEach((p) => p.stop()));
  const answer = await packed.join();
  expect(answer.protocol).toBe(client.PROTOCOL_VERSION);
  const tone: ToneSource = toneTrack(700);
  closers.push(() => tone.stop());
  await packed.publish(tone.track, 'microphone');

  const other: CallPeer = await joinCallPeer(node, room, 'repository-sdk', 440);
  closers.push(() => other.close());
  await until(() => {
    const probe = other.heard.get(packed.peerId!);
    return probe !== undefined && probe.rms > 0.05 && Math.abs(probe.frequency - 700) < 70;
  }, 15_000, 'the repository SDK to hear the packed client\'s 700 Hz');
  await until(() => {
    const probe = heard.get(other.client.peerId!);
    return probe !== undefined && probe.rms > 0.05 && Math.abs(probe.frequency - 440) < 44;
  }, 15_000, 'the packed client to hear 440 Hz');
}, 60_000);

test('an example using it compiles under strict against the packed .d.ts, and a wrong call does not', async () => {
  writeFileSync(
    join(app.dir, 'example.ts'),
    [
      "import { CallClient, ChorusClient, ChorusClientError, PROTOCOL_VERSION, type RemoteTrack } from '@chorus-rtc/client';",
      "import { nodeHandlerFactory, type NodeWebRtc } from '@chorus-rtc/client/node';",
      "import { playHls } from '@chorus-rtc/client/hls';",
      'declare const wrtc: NodeWebRtc;',
      "const call = new CallClient({ url: 'http://localhost:3000', roomId: 'r', token: 't', handlerFactory: nodeHandlerFactory(wrtc) });",
      "call.on('tracksubscribed', (track: RemoteTrack) => console.log(track.source, track.kind));",
      'const joined = await call.join();',
      'const protocol: number = joined.protocol;',
      "const listener = new ChorusClient({ url: 'http://localhost:3000', roomId: 'r', token: 't' });",
      "const error = new ChorusClientError('PROTOCOL_MISMATCH', 'x', false);",
      "declare const audio: HTMLAudioElement;",
      "playHls(audio, listener.hlsUrl).stop();",
      '// @ts-expect-error a source that does not exist',
      "await call.publish({} as MediaStreamTrack, 'hologram');",
      'console.log(protocol, PROTOCOL_VERSION, error.code);',
      '',
    ].join('\n'),
  );
  expect(await app.typecheck('example.ts')).toBe('ok');
  writeFileSync(join(app.dir, 'wrong.ts'), "import { CallClient } from '@chorus-rtc/client';\nnew CallClient({ url: 'u', roomId: 'r' });\n");
  expect(await app.typecheck('wrong.ts')).toMatch(/wrong\.ts.*error TS2345/);
});

test('the browser entry bundled as an application would stays under its budget, and leaves hls.js out until the fallback is imported', async () => {
  const bundle = async (source: string): Promise<{ bytes: number; gzip: number; text: string }> => {
    writeFileSync(join(app.dir, 'entry.js'), source);
    const result = await build({ entryPoints: [join(app.dir, 'entry.js')], bundle: true, minify: true, format: 'esm', platform: 'browser', write: false, absWorkingDir: app.dir, logLevel: 'silent' });
    const text = result.outputFiles[0]!.text;
    return { bytes: Buffer.byteLength(text), gzip: gzipSync(text).length, text };
  };
  const main = await bundle("import { CallClient, ChorusClient } from '@chorus-rtc/client';\nconsole.log(CallClient, ChorusClient);\n");
  const withHls = await bundle("import { CallClient } from '@chorus-rtc/client';\nimport Hls from 'hls.js';\nconsole.log(CallClient, Hls);\n");
  console.log(JSON.stringify({ test: 'client-bundle', browserEntry: { bytes: main.bytes, gzipBytes: main.gzip, budgetGzipBytes: BUDGET_GZIP_BYTES }, withHlsJs: { gzipBytes: withHls.gzip } }));
  expect(main.gzip).toBeLessThan(BUDGET_GZIP_BYTES);
  // hls.js is its own weight, not in the entry: bundling it in adds more than the entry itself.
  expect(withHls.gzip - main.gzip).toBeGreaterThan(100 * 1024);
  expect(main.text).not.toContain('hls.js');
});
