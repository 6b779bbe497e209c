/**
 * The media REST API end to end: a participant driven only through HTTP + Server-Sent Events
 * (its media a Node WebRTC peer, no Chorus SDK) and an SDK participant in one call hear and see
 * each other; its events stream resumes from Last-Event-ID; leaving closes everything it held.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { hears, joinCallPeer, type CallPeer } from '../support/callPeer.js';
import { mediaCounts } from '../support/mediaCounts.js';
import { probeAudio, toneTrack, type AudioProbe, type ToneSource } from '../support/nodePeer.js';
import { colourMatches, colourTrack, palette, probeVideo, type VideoSource } from '../support/nodeVideo.js';
import { RestPeer } from '../support/restPeer.js';
import { startTestNode, until } from '../support/testNode.js';

const KEY = `Basic ${Buffer.from(`test:${'t'.repeat(40)}`).toString('base64')}`;
let node: ChorusNode;
const sources: Array<ToneSource | VideoSource> = [];
const closers: Array<() => unknown> = [];

beforeAll(async () => {
  node = await startTestNode();
});
afterAll(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  for (const s of sources) s.stop();
  await node?.close();
});

test('a REST participant (HTTP + SSE, a Node WebRTC peer) and an SDK participant hear and see each other in one call', async () => {
  const room = 'gw-call';
  const rest = await RestPeer.join(node.url, KEY, room, 'call', 'gateway-user', 'participant');
  closers.push(() => rest.close());
  // The REST participant publishes a 660 Hz tone and a green camera.
  const tone = toneTrack(660);
  const camera = colourTrack(palette.green, 320, 180);
  sources.push(tone, camera);
  const mic = await rest.publish(tone.track, 'microphone');
  await rest.publish(camera.track, 'camera');

  // The SDK participant: a 440 Hz tone and a blue camera.
  const sdk: CallPeer = await joinCallPeer(node, room, 'sdk-user', 440, { camera: { colour: palette.blue, width: 320, height: 180 } });
  closers.push(() => sdk.close());

  // The REST participant learns of the SDK participant's tracks from its event stream.
  const published = (): Array<{ peerId: string; track: { trackId: string; kind: string; source: string } }> =>
    rest.events.flatMap((e) => (e.event === 'room:delta' ? ((e.data as { changes: Array<{ type: string; peerId: string; track?: { trackId: string; kind: string; source: string } }> }).changes ?? []) : []))
      .filter((c): c is { type: string; peerId: string; track: { trackId: string; kind: string; source: string } } => c.type === 'published' && c.peerId === sdk.client.peerId && c.track !== undefined);
  await until(() => published().length === 2, 10_000, 'the SDK participant\'s two tracks announced on the stream');
  const audioId = published().find((p) => p.track.kind === 'audio')!.track.trackId;
  const videoId = published().find((p) => p.track.kind === 'video')!.track.trackId;
  const audioConsumer = await rest.consume(audioId);
  const heard: AudioProbe = probeAudio(audioConsumer.track);
  const seen = probeVideo((await rest.consume(videoId)).track);
  closers.push(() => heard.stop(), () => seen.stop());

  await until(() => heard.rms > 0.05 && Math.abs(heard.frequency - 440) < 44, 15_000, 'the REST participant to hear 440 Hz');
  await until(() => colourMatches(seen, palette.blue), 15_000, 'the REST participant to see blue');
  const restPeerId = rest.participantId;
  await until(() => {
    const probe = sdk.heard.get(restPeerId);
    return probe !== undefined && probe.rms > 0.05 && Math.abs(probe.frequency - 660) < 66;
  }, 15_000, 'the SDK participant to hear 660 Hz');
  await until(() => [...sdk.seen.values()].some((s) => s.peerId === restPeerId && colourMatches(s.probe, palette.green)), 15_000, 'the SDK participant to see green');
  expect(hears(sdk, sdk)).toBe(false);

  // The socket's events, on the stream: the loudest speaker; the SDK participant muting and
  // unmuting its microphone (the REST participant's consumer paused and resumed); a moderator
  // (the admin API) muting the REST participant's camera.
  const named = (event: string): unknown[] => rest.events.filter((e) => e.event === event).map((e) => e.data);
  await until(() => named('speaker:changed').some((d) => [sdk.client.peerId, restPeerId].includes((d as { peerId: string }).peerId)), 10_000, 'a speaker:changed event');
  await sdk.client.setMuted('microphone', true);
  await until(() => named('consumer:paused').some((d) => (d as { consumerId: string }).consumerId === audioConsumer.id), 10_000, 'consumer:paused');
  expect(named('room:delta').some((d) => (d as { changes: Array<{ type: string; trackId?: string; muted?: boolean }> }).changes.some((c) => c.type === 'muted' && c.trackId === audioId && c.muted))).toBe(true);
  await sdk.client.setMuted('microphone', false);
  await until(() => named('consumer:resumed').some((d) => (d as { consumerId: string }).consumerId === audioConsumer.id), 10_000, 'consumer:resumed');
  const muted = await fetch(`${node.url}/api/admin/rooms/${room}/participants/${restPeerId}/mute`, { method: 'POST', headers: { authorization: KEY, 'content-type': 'application/json' }, body: JSON.stringify({ muted: true, source: 'camera' }) });
  expect(muted.status).toBe(200);
  await until(() => named('session:muted').some((d) => (d as { muted: boolean; source?: string }).muted && (d as { source?: string }).source === 'camera'), 10_000, 'session:muted');

  // Every event carries an increasing id.
  const ids = rest.events.filter((e) => e.id !== '').map((e) => Number(e.id));
  expect(ids).toEqual([...ids].sort((a, b) => a - b));

  // Unpublishing over REST reaches the SDK participant.
  await rest.call('DELETE', `/producers/${mic.id}?participantId=${rest.participantId}`);
  await until(() => !sdk.heard.has(restPeerId), 10_000, 'the SDK participant to drop the REST participant\'s microphone');

  // Leaving closes its transports, producers and consumers on the node.
  const before = await mediaCounts(node);
  await rest.leave();
  await until(async () => (await mediaCounts(node)).transports === before.transports - 2, 10_000, 'the REST participant\'s transports to close');
  const after = await mediaCounts(node);
  expect(after.producers).toBe(before.producers - 1);
  expect(after.consumers).toBeLessThan(before.consumers);
  // Gone: its id is unknown now, and the node keeps nothing of it.
  await expect(rest.call('POST', '/transports', { direction: 'recv' })).rejects.toMatchObject({ status: 404 });
  expect(node.gatewayParticipants.size).toBe(0);
}, 90_000);

test('the event stream resumes from Last-Event-ID with what it missed, and says when that is no longer kept', async () => {
  const room = 'gw-resume';
  const rest = await RestPeer.join(node.url, KEY, room, 'call', 'gw-resume-user', 'participant');
  closers.push(() => rest.close());
  // A participant joining while the stream is closed: its join is in the log.
  rest.closeEvents();
  const lastSeen = rest.events.at(-1)?.id ?? '0';
  const other = await joinCallPeer(node, room, 'gw-resume-sdk', 550);
  closers.push(() => other.close());
  const response = await fetch(`${node.url}/api/rooms/${room}/participants/${rest.participantId}/events`, {
    headers: { authorization: KEY, accept: 'text/event-stream', 'last-event-id': lastSeen },
  });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const reader = response.body!.getReader();
  let text = '';
  const deadline = Date.now() + 10_000;
  while (!text.includes(other.client.peerId!) && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  await reader.cancel();
  expect(text).toContain('event: room:delta');
  expect(text).toContain(other.client.peerId!);
  expect(text).toMatch(new RegExp(`id: ${Number(lastSeen) + 1}\\n`));

  // An id this participant never had: a gap, read the room again.
  const gap = await fetch(`${node.url}/api/rooms/${room}/participants/${rest.participantId}/events`, {
    headers: { authorization: KEY, accept: 'text/event-stream', 'last-event-id': '999999' },
  });
  const gapReader = gap.body!.getReader();
  let gapText = '';
  while (!gapText.includes('stream:gap')) {
    const { value, done } = await gapReader.read();
    if (done) break;
    gapText += new TextDecoder().decode(value);
  }
  await gapReader.cancel();
  expect(gapText).toContain('event: stream:gap');
});
