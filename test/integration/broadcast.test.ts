import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { ChorusClient } from '../../src/client/chorusClient.js';
import { probeAudio, toneTrack, type ToneSource } from '../support/nodePeer.js';
import { joinListener, type TestListener } from '../support/listener.js';
import { mediaCounts } from '../support/mediaCounts.js';
import { nodeClient, startTestNode, tokenFor, until } from '../support/testNode.js';

let node: ChorusNode;
const cleanup: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  node = await startTestNode();
});
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
  await until(() => node.rooms.rooms.size === 0, 5000, 'rooms to close after the test');
});
afterAll(async () => {
  await node?.close();
});

/** A broadcaster joined to `roomId` with its tone ready, not yet publishing. */
async function seated(roomId: string, frequency: number): Promise<{ client: ChorusClient; tone: ToneSource }> {
  const tone = toneTrack(frequency);
  const client = nodeClient(node, roomId, await tokenFor(node, roomId, 'broadcaster', `imam-${roomId}`));
  cleanup.push(async () => {
    await client.close();
    tone.stop();
  });
  await client.join();
  return { client, tone };
}

async function broadcaster(roomId: string, frequency: number): Promise<{ client: ChorusClient; tone: ToneSource }> {
  const seat = await seated(roomId, frequency);
  await seat.client.publish(seat.tone.track);
  return seat;
}

async function listeners(roomId: string, n: number): Promise<TestListener[]> {
  const list = await Promise.all(Array.from({ length: n }, () => joinListener(node, roomId)));
  cleanup.push(() => Promise.all(list.map((l) => l.close())).then(() => undefined));
  return list;
}

describe('a broadcast on one node', () => {
  test('every listener hears the broadcaster\'s tone, not silence', async () => {
    await broadcaster('tone', 1000);
    const room = await listeners('tone', 4);
    await Promise.all(room.map((l) => l.hears(1000)));
    // One send transport, four receive transports, one producer, four consumers: nothing more but
    // the pipe to the second worker's router (a broadcast uses both workers from its first
    // listener): a pipe transport on each router, a pipe consumer and a pipe producer.
    const counts = await mediaCounts(node);
    expect(counts).toMatchObject({ routers: 2, transports: 5 + 2, producers: 1 + 1, consumers: 4 + 1 });
    // Both routers carry listeners (how many each depends on the workers' load from every room).
    const spread = node.rooms.get('tone')!.requireMedia().slots.map((s) => s.recvTransports);
    expect(spread.reduce((a, b) => a + b)).toBe(4);
    expect(spread.every((n) => n > 0)).toBe(true);
  });

  test('the stream reaching listeners is Opus tuned for speech: mono, DTX, in-band FEC, capped bitrate', async () => {
    await broadcaster('opus', 1000);
    const [l] = await listeners('opus', 1);
    await l!.hears(1000);
    const codec = l!.client.consumer!.rtpParameters.codecs[0]!;
    expect(codec.mimeType.toLowerCase()).toBe('audio/opus');
    expect(codec.parameters).toMatchObject({ usedtx: 1, useinbandfec: 1, stereo: 0, maxaveragebitrate: 24000 });
  });

  test('pausing is pushed to listeners as paused, resuming as live, and audio returns', async () => {
    const { client } = await broadcaster('pause', 1000);
    const [l] = await listeners('pause', 1);
    await l!.hears(1000);
    await client.setPaused(true);
    await until(() => l!.client.broadcast.paused, 5000, 'listener told of the pause');
    await client.setPaused(false);
    await until(() => l!.client.broadcast.live && !l!.client.broadcast.paused, 5000, 'listener told of the resume');
    await l!.hears(1000);
  });

  test('a moderator hears the broadcast like a listener', async () => {
    await broadcaster('moderated', 523);
    const client = nodeClient(node, 'moderated', await tokenFor(node, 'moderated', 'moderator', 'steward'));
    cleanup.push(() => client.close());
    let probe: ReturnType<typeof probeAudio> | undefined;
    client.on('track', (track) => (probe = probeAudio(track)));
    cleanup.push(() => probe?.stop());
    await client.join();
    await until(() => probe !== undefined && probe.frames > 50 && probe.rms > 0.05 && Math.abs(probe.frequency - 523) <= 150, 10_000, 'the moderator to hear the tone');
  });

  test('a listener whose network blocks UDP gets the audio over ICE-TCP', async () => {
    await broadcaster('tcp', 1000);
    const l = await joinListener(node, 'tcp', { forceTcp: true });
    cleanup.push(() => l.close());
    await l.hears(1000);
    const [peer] = [...node.rooms.get('tcp')!.peers.values()].filter((p) => p.role === 'listener');
    const [transport] = [...peer!.transports.values()];
    expect(transport!.iceSelectedTuple?.protocol).toBe('tcp');
  });

  test('a listener whose join crosses the start of the broadcast hears it', async () => {
    const { client: b, tone } = await seated('crossing', 784);
    // The broadcast starts the moment the listener's join is accepted, so its news reaches the
    // listener while it is still loading its device and creating its receive transport.
    node.rooms.get('crossing')!.once('peerjoined', () => void b.publish(tone.track));
    const [l] = await listeners('crossing', 1);
    await l!.hears(784);
  });

  test('a listener whose join answer is older than the news it already got (the broadcast started while the answer was made) hears it', async () => {
    const { client: b, tone } = await seated('stale-answer', 659);
    // The listener's join reads the broadcast's state (nothing live), then, before its answer
    // leaves, the broadcast starts and its news goes out to the room, the listener included: on
    // the wire the news comes first and the answer, older, after it. A slow transport or a
    // node elsewhere in a cluster makes that window; here it is held open.
    const room = node.rooms.get('stale-answer')!;
    const read = room.broadcastState.bind(room);
    let held = false;
    room.broadcastState = async () => {
      const state = await read();
      if (held) return state;
      held = true;
      const started = new Promise<void>((resolve) => {
        const seen = (e: { type: string; room?: string }): void => {
          if (e.type !== 'broadcast.started' || e.room !== 'stale-answer') return;
          node.audit.off('event', seen);
          resolve();
        };
        node.audit.on('event', seen);
      });
      void b.publish(tone.track);
      await started;
      expect(state.live).toBe(false);
      return state;
    };
    const [l] = await listeners('stale-answer', 1);
    expect(held).toBe(true);
    await l!.hears(659);
    expect(l!.client.broadcast.live).toBe(true);
  });

  test('listeners who arrive first wait, then hear the broadcast when it starts', async () => {
    const early = await listeners('early', 2);
    for (const l of early) {
      expect(l.client.broadcast.live).toBe(false);
      expect(l.events).toContain('waiting');
    }
    await broadcaster('early', 1000);
    await Promise.all(early.map((l) => l.hears(1000)));
  });

  test('when the broadcaster stops, listeners are told; when it starts again they hear it without rejoining', async () => {
    const { client, tone } = await broadcaster('restart', 1000);
    const [l] = await listeners('restart', 1);
    await l!.hears(1000);
    const peerId = l!.client.peerId;
    await client.unpublish();
    await until(() => l!.events.includes('trackended') && !l!.client.broadcast.live, 5000, 'broadcast ended');
    await client.publish(tone.track);
    await l!.hears(1000);
    expect(l!.client.peerId).toBe(peerId);
  });

  test('a broadcaster that leaves and comes back (new session) is heard again by the same listeners', async () => {
    const first = await broadcaster('return', 1000);
    const [l] = await listeners('return', 1);
    await l!.hears(1000);
    await first.client.close();
    await until(() => !l!.client.broadcast.live, 5000, 'listener told the broadcaster left');
    const back = toneTrack(600);
    cleanup.push(() => back.stop());
    const again = nodeClient(node, 'return', await tokenFor(node, 'return', 'broadcaster', 'imam-return'));
    cleanup.push(() => again.close());
    await again.join();
    await again.publish(back.track);
    await l!.hears(600);
  });

  test('a broadcaster that drops (process killed) frees the seat; listeners recover when it returns', async () => {
    const [l] = await listeners('drop', 1);
    const start = async (frequency: number): Promise<ChildProcess> => {
      const token = await tokenFor(node, 'drop', 'broadcaster', 'imam-drop');
      const script = fileURLToPath(new URL('../support/broadcasterProcess.ts', import.meta.url));
      const child = spawn(process.execPath, ['--import', 'tsx', script, node.url, 'drop', token, String(frequency)], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      cleanup.push(() => void child.kill('SIGKILL'));
      const [line] = (await once(child.stdout!, 'data')) as [Buffer];
      expect(line.toString()).toContain('publishing');
      return child;
    };
    const child = await start(1000);
    await l!.hears(1000);
    child.kill('SIGKILL');
    await until(() => !l!.client.broadcast.live, 15_000, 'listener told the broadcaster dropped');
    expect(l!.events).toContain('trackended');
    await start(600);
    await l!.hears(600);
  });

  test('a second broadcaster is refused with BROADCASTER_PRESENT and the first keeps going', async () => {
    await broadcaster('one', 1000);
    const [l] = await listeners('one', 1);
    const second = nodeClient(node, 'one', await tokenFor(node, 'one', 'broadcaster', 'intruder'));
    cleanup.push(() => second.close());
    await expect(second.join()).rejects.toMatchObject({ code: 'BROADCASTER_PRESENT' });
    await l!.hears(1000);
  });

  test('the listener count is pushed, throttled, to everyone in the room', async () => {
    const { client } = await broadcaster('count', 1000);
    const seen: number[] = [];
    client.on('listeners', (n) => seen.push(n));
    const room = await listeners('count', 6);
    await until(() => client.audience === 6, 5000, 'broadcaster to see 6 listeners');
    // Six joins within one interval produce far fewer than six pushes.
    expect(seen.length).toBeLessThan(6);
    await until(() => room.every((l) => l.client.audience === 6), 5000, 'listeners to see the count');
    await room[0]!.close();
    await until(() => client.audience === 5, 5000, 'count to drop after a leave');
  });

  test('everything a session created is closed when it leaves, and empty rooms free their router', async () => {
    await broadcaster('leak', 1000);
    const room = await listeners('leak', 3);
    await Promise.all(room.map((l) => l.hears(1000)));
    // (Each count has the pipe to the second worker's router in it: two transports, one consumer.)
    expect(await mediaCounts(node)).toMatchObject({ transports: 4 + 2, consumers: 3 + 1 });
    await room[0]!.close();
    await room[1]!.close();
    await until(async () => (await mediaCounts(node)).transports === 2 + 2, 5000, 'two transports to close');
    expect(await mediaCounts(node)).toMatchObject({ routers: 2, transports: 2 + 2, producers: 1 + 1, consumers: 1 + 1 });
    for (const fn of cleanup.splice(0).reverse()) await fn();
    await until(() => node.rooms.rooms.size === 0, 5000, 'room to close');
    expect(await mediaCounts(node)).toEqual({ routers: 0, transports: 0, producers: 0, consumers: 0 });
    expect(node.workers.slots.every((s) => s.load === 0)).toBe(true);
  });
});
