import { afterEach, describe, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { ChorusClient } from '../../src/client/chorusClient.js';
import { toneTrack } from '../support/nodePeer.js';
import { joinListener, type TestListener } from '../support/listener.js';
import { nodeClient, startTestNode, tokenFor, until } from '../support/testNode.js';
import { hears, joinCallPeer, videoOf, type CallPeer } from '../support/callPeer.js';
import { colourMatches, palette } from '../support/nodeVideo.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function node(env: Record<string, string> = {}): Promise<ChorusNode> {
  const n = await startTestNode(env);
  cleanup.push(() => n.close());
  return n;
}

async function broadcast(n: ChorusNode, roomId: string, frequency: number): Promise<ChorusClient> {
  const tone = toneTrack(frequency);
  const client = nodeClient(n, roomId, await tokenFor(n, roomId, 'broadcaster', `b-${roomId}`));
  await client.join();
  await client.publish(tone.track);
  cleanup.push(async () => {
    await client.close();
    tone.stop();
  });
  return client;
}

async function listen(n: ChorusNode, roomId: string, count: number): Promise<TestListener[]> {
  const list: TestListener[] = [];
  for (let i = 0; i < count; i++) list.push(await joinListener(n, roomId));
  cleanup.push(() => Promise.all(list.map((l) => l.close())).then(() => undefined));
  return list;
}

describe('worker pool', () => {
  test('a broadcast spreads its listeners over both workers well under the per-worker budget, its track piped to the second', async () => {
    const n = await node({ MEDIASOUP_WORKERS: '2' });
    // Three listeners before the broadcast: some already land on the fan-out router, which must
    // receive the producer when it appears.
    const before = await listen(n, 'big', 3);
    await broadcast(n, 'big', 1000);
    const after = await listen(n, 'big', 2);
    await Promise.all([...before, ...after].map((l) => l.hears(1000)));
    const media = n.rooms.get('big')!.requireMedia();
    expect(media.slots.length).toBe(2);
    expect(new Set(media.slots.map((s) => s.worker.pid)).size).toBe(2);
    expect(media.slots.map((s) => s.recvTransports).sort()).toEqual([2, 3]);
    expect(n.workers.slots.every((s) => s.load > 0)).toBe(true);
  });

  test('a class over the per-worker budget: students on the other worker see and hear the teacher', async () => {
    const n = await node({ CHORUS_MAX_CONSUMERS_PER_WORKER: '2', MEDIASOUP_WORKERS: '2', RTC_INITIAL_BITRATE: '3000000' });
    const room = 'big-class';
    const mint = (identity: string, role: 'teacher' | 'student'): Promise<string> => n.tokens.mint({ room, identity, role, kind: 'class', name: identity });
    const teacher = await joinCallPeer(n, room, 'teacher', 500, { token: await mint('teacher', 'teacher'), camera: { colour: palette.green, width: 320, height: 180 } });
    const students: CallPeer[] = [];
    cleanup.push(async () => {
      for (const p of [...students, teacher]) await p.close();
    });
    for (let i = 0; i < 4; i++) students.push(await joinCallPeer(n, room, `s${i}`, 0, { token: await mint(`s${i}`, 'student'), receiveOnly: true }));
    await until(() => students.every((s) => hears(s, teacher) && colourMatches(videoOf(s, teacher) ?? ({ frames: 0 } as never), palette.green)), 20_000, 'every student to hear and see the teacher');
    const media = n.rooms.get(room)!.requireMedia();
    expect(new Set(media.slots.map((s) => s.worker.pid)).size).toBe(2);
    // Five receive transports (the teacher receives too) over two routers of two per worker, then the emptier.
    expect(media.slots.map((s) => s.recvTransports).sort()).toEqual([2, 3]);
  });

  test('rooms are placed on the least-loaded worker', async () => {
    const n = await node({ MEDIASOUP_WORKERS: '2' });
    await broadcast(n, 'a', 1000);
    await broadcast(n, 'b', 1000);
    const pids = ['a', 'b'].map((id) => n.rooms.get(id)!.requireMedia().origin.worker.pid);
    expect(new Set(pids).size).toBe(2);
  });

  test('a killed worker is respawned; its room\'s clients rejoin by themselves; other rooms are untouched', async () => {
    const n = await node({ MEDIASOUP_WORKERS: '2' });
    await broadcast(n, 'hit', 1000);
    await broadcast(n, 'safe', 600);
    const [hit] = await listen(n, 'hit', 1);
    const [safe] = await listen(n, 'safe', 1);
    await hit!.hears(1000);
    await safe!.hears(600);
    const victim = n.rooms.get('hit')!.requireMedia().origin.worker;
    const victimPid = victim.pid;
    // A broadcast spreads its listeners over the workers: a room is untouched by a worker's death
    // only when none of its routers is there. Here the safe room's listener went to its own
    // origin's worker, the least loaded then (the hit room's listener was on the hit origin's).
    expect(n.rooms.get('safe')!.requireMedia().slots.map((s) => s.worker.pid)).not.toContain(victimPid);
    const safeEventsBefore = safe!.events.length;

    process.kill(victimPid, 'SIGKILL');
    await until(() => victim.died, 5000, 'worker death to be noticed');
    await until(() => n.workers.healthy && !n.workers.slots.some((s) => s.worker.pid === victimPid), 10_000, 'respawn');
    // The broadcaster and listener of the hit room come back without anyone calling join().
    await hit!.hears(1000, 20_000);
    expect(hit!.events).toContain('state:reconnecting');
    await safe!.hears(600);
    expect(safe!.events.slice(safeEventsBefore)).toEqual([]);
    expect((await fetch(`${n.url}/readyz`)).status).toBe(200);
  });
});
