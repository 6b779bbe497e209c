/**
 * A class in a cluster (two node processes behind nginx, one Redis): the node of a student on stage
 * dies (or drains) mid-class; everyone who was on it comes back on the other node by themselves,
 * and the student who was on stage is on stage again (its hand lives in Redis and follows it to its new
 * session): heard again by the others, with nobody inviting it twice. Redis going down and coming
 * back empty loses the hand queue; the node of a student on stage writes it back.
 */
import { afterEach, beforeEach, expect, test } from 'vitest';
import { startCluster, type Cluster, type ClusterNode } from '../support/cluster.js';
import { hears, joinCallPeer, type CallPeer } from '../support/callPeer.js';
import { toneTrack } from '../support/nodePeer.js';
import { until } from '../support/testNode.js';

let cluster: Cluster;
const peers: CallPeer[] = [];

// A cluster of its own for each test: a node taken down by one test, and the balancer's memory of
// it, must not shape the next.
beforeEach(async () => {
  cluster = await startCluster({ nodes: 2, rtcPortBase: 13_000 });
}, 120_000);

afterEach(async () => {
  for (const p of peers.splice(0)) await p.close();
  await cluster?.stop();
});

interface OnStage {
  teacher: CallPeer;
  /** A student on stage. */
  speaker: CallPeer;
  /** A student on the other node, hearing both. */
  listener: CallPeer;
  /** The speaker's node. */
  holder: ClusterNode;
  voiced: CallPeer;
  stop(): void;
}

/** A teacher, a student on stage, and one on the other node hearing both. */
async function classOnStage(room: string): Promise<OnStage> {
  const mint = (identity: string, role: 'teacher' | 'student'): Promise<string> => cluster.tokens.mint({ room, identity, role, kind: 'class', name: identity });
  const teacher = await joinCallPeer(cluster.url, room, 'teacher', 400, { token: await mint('teacher', 'teacher') });
  peers.push(teacher);
  // Students stay on the node they reach. The speaker comes through the balancer (so it can come
  // back through it); its node is the one the test takes down. The listener goes straight to the
  // other, which stays up.
  const speaker = await joinCallPeer(cluster.url, room, 'speaker', 0, { token: await mint('speaker', 'student'), receiveOnly: true });
  const holder = cluster.nodeOf(speaker.client.peerId)!;
  const other = cluster.nodes.find((n) => n !== holder)!;
  const listener = await joinCallPeer(other.url, room, 'listener', 0, { token: await mint('listener', 'student'), receiveOnly: true });
  peers.push(speaker, listener);
  expect([cluster.nodeOf(speaker.client.peerId), cluster.nodeOf(listener.client.peerId)]).toEqual([holder, other]);
  const voice = toneTrack(900);
  await speaker.client.moveHand('raise');
  await until(async () => (await teacher.client.handQueue()).hands.length === 1, 5000, 'the teacher to see the hand');
  const queue = await teacher.client.handQueue();
  await teacher.client.moveHand('invite', { peerId: speaker.client.peerId!, version: queue.version });
  await until(() => speaker.client.hand?.state === 'invited', 5000, 'the student to be invited');
  await speaker.client.moveHand('accept');
  await speaker.client.publish(voice.track, 'microphone');
  const voiced = { ...speaker, frequency: 900 };
  await until(() => hears(listener, voiced) && hears(listener, teacher), 20_000, 'the other student to hear the teacher and the one on stage');
  return { teacher, speaker, listener, holder, voiced, stop: () => voice.stop() };
}

async function stageSurvives(room: string, end: (node: ClusterNode) => Promise<unknown>): Promise<void> {
  const { teacher, speaker, listener, holder, voiced, stop } = await classOnStage(room);
  try {
    const before = speaker.client.peerId;
    await end(holder);
    await until(() => teacher.client.state === 'joined' && speaker.client.state === 'joined' && speaker.client.peerId !== before, 30_000, 'the student on stage (and the teacher, if it was there) to rejoin');
    await until(() => speaker.client.hand?.state === 'onstage', 10_000, 'the student to be on stage again');
    await until(() => hears(listener, voiced) && hears(listener, teacher) && hears(teacher, voiced), 30_000, 'everyone to hear the teacher and the student on stage again');
    const survivor = cluster.nodes.find((n) => n !== holder)!;
    expect(cluster.nodeOf(speaker.client.peerId)?.nodeId).toBe(survivor.nodeId);
    const hands = (await teacher.client.handQueue()).hands;
    expect(hands.map((h) => `${h.identity}:${h.state}:${h.peerId === speaker.client.peerId}`)).toEqual([`${speaker.identity}:onstage:true`]);
  } finally {
    stop();
  }
}

test('the node of a student on stage dies: it comes back on the other node, on stage again', async () => {
  await stageSurvives('cluster-class', (node) => node.kill('SIGKILL'));
}, 120_000);

test('that node drains (SIGTERM): the same, moved by the node instead of found out', async () => {
  await stageSurvives('cluster-class-drain', (node) => node.kill('SIGTERM'));
}, 120_000);

test('Redis goes down and comes back empty: the class goes on, and the student on stage is written back into the hand queue', async () => {
  const { teacher, speaker, listener, voiced, stop } = await classOnStage('cluster-class-redis');
  try {
    const before = await teacher.client.handQueue();
    await cluster.redis!.kill();
    // Media already flowing does not need Redis.
    await until(() => hears(listener, voiced) && hears(listener, teacher), 10_000, 'the class to go on while Redis is down');
    await cluster.redis!.restart();
    await until(async () => (await Promise.all(cluster.nodes.map((n) => n.readyz()))).every((r) => r?.status === 200), 30_000, 'every node ready again');
    // The queue came back empty; the speaker's node writes it back on stage, numbered past what clients saw.
    let healed = before;
    await until(async () => {
      healed = await teacher.client.handQueue().catch(() => before);
      return healed.hands.some((h) => h.peerId === speaker.client.peerId && h.state === 'onstage');
    }, 30_000, 'the student on stage to be back in the queue');
    expect(healed.version).toBeGreaterThan(before.version);
    expect(hears(listener, voiced)).toBe(true);
    // And hands move again: the other student raises, the teacher sees it.
    await listener.client.moveHand('raise');
    await until(async () => (await teacher.client.handQueue()).hands.some((h) => h.peerId === listener.client.peerId && h.state === 'raised'), 10_000, 'the new hand to be seen');
  } finally {
    stop();
  }
}, 120_000);
