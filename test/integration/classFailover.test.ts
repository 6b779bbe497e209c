/**
 * A class in a cluster (two node processes behind nginx, one Redis) whose node dies (or drains) mid-class:
 * the teacher and the students who were on it come back on the other node by themselves, and a
 * student who was on stage is on stage again (its hand lives in Redis and follows it to its new
 * session): heard again by the others, with nobody inviting it twice.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startCluster, type Cluster, type ClusterNode } from '../support/cluster.js';
import { hears, joinCallPeer, type CallPeer } from '../support/callPeer.js';
import { toneTrack } from '../support/nodePeer.js';
import { until } from '../support/testNode.js';

let cluster: Cluster;
const peers: CallPeer[] = [];

beforeAll(async () => {
  cluster = await startCluster({ nodes: 2, rtcPortBase: 13_000 });
}, 120_000);

afterAll(async () => {
  for (const p of peers) await p.close();
  await cluster?.stop();
});

async function stageSurvives(room: string, end: (node: ClusterNode) => Promise<unknown>): Promise<void> {
  const mint = (identity: string, role: 'teacher' | 'student'): Promise<string> => cluster.tokens.mint({ room, identity, role, kind: 'class', name: identity });
  const teacher = await joinCallPeer(cluster.url, room, 'teacher', 400, { token: await mint('teacher', 'teacher') });
  peers.push(teacher);
  const holder = cluster.nodeOf(teacher.client.peerId)!;
  // Students stay where the balancer sends them: enough of them for one on each node.
  const students: CallPeer[] = [];
  for (let i = 0; i < 8 && !(students.some((s) => cluster.nodeOf(s.client.peerId) === holder) && students.some((s) => cluster.nodeOf(s.client.peerId) !== holder)); i++) {
    students.push(await joinCallPeer(cluster.url, room, `s${i}`, 0, { token: await mint(`s${i}`, 'student'), receiveOnly: true }));
  }
  peers.push(...students);
  const speaker = students.find((s) => cluster.nodeOf(s.client.peerId) === holder);
  const listener = students.find((s) => cluster.nodeOf(s.client.peerId) !== holder);
  expect(speaker && listener, `students on both nodes (placed: ${students.map((s) => cluster.nodeOf(s.client.peerId)?.nodeId).join(', ')})`).toBeTruthy();

  const voice = toneTrack(900);
  try {
    await speaker!.client.moveHand('raise');
    await until(async () => (await teacher.client.handQueue()).hands.length === 1, 5000, 'the teacher to see the hand');
    const queue = await teacher.client.handQueue();
    await teacher.client.moveHand('invite', { peerId: speaker!.client.peerId!, version: queue.version });
    await until(() => speaker!.client.hand?.state === 'invited', 5000, 'the student to be invited');
    await speaker!.client.moveHand('accept');
    await speaker!.client.publish(voice.track, 'microphone');
    const voiced = { ...speaker!, frequency: 900 };
    await until(() => hears(listener!, voiced) && hears(listener!, teacher), 20_000, 'the other student to hear the teacher and the one on stage');
    const before = speaker!.client.peerId;

    await end(holder);
    await until(() => teacher.client.state === 'joined' && speaker!.client.state === 'joined' && speaker!.client.peerId !== before, 30_000, 'the teacher and the student on stage to rejoin');
    await until(() => speaker!.client.hand?.state === 'onstage', 10_000, 'the student to be on stage again');
    await until(() => hears(listener!, voiced) && hears(listener!, teacher) && hears(teacher, voiced), 30_000, 'everyone to hear the teacher and the student on stage again');
    const survivor = cluster.nodes.find((n) => n !== holder)!;
    expect(cluster.nodeOf(speaker!.client.peerId)?.nodeId).toBe(survivor.nodeId);
    const hands = (await teacher.client.handQueue()).hands;
    expect(hands.map((h) => `${h.identity}:${h.state}:${h.peerId === speaker!.client.peerId}`)).toEqual([`${speaker!.identity}:onstage:true`]);
  } finally {
    voice.stop();
  }
}

test('the class\'s node dies: teacher and students come back on the other, and the student on stage is on stage again', async () => {
  await stageSurvives('cluster-class', (node) => node.kill('SIGKILL'));
}, 120_000);

test('the class\'s node drains (SIGTERM): the same, moved by the node instead of found out', async () => {
  // The node killed above is back first: a class needs somewhere to go.
  for (const node of cluster.nodes) if (!node.alive) await node.restart();
  await stageSurvives('cluster-class-drain', (node) => node.kill('SIGTERM'));
}, 120_000);
