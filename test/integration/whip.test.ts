/**
 * WHIP ingest with a publisher that is not Chorus code: a plain RTCPeerConnection (libwebrtc in
 * Node, @roamhq/wrtc) makes its offer, POSTs it with a broadcaster's token, and sets the answer.
 * SDK listeners hear its tone; DELETE ends the broadcast for them and leaves nothing on the node.
 * And what WHIP must refuse, with nothing changed.
 */
import wrtc from '@roamhq/wrtc';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { pinnedLocalDescription } from '../../src/client/node.js';
import { joinCallPeer } from '../support/callPeer.js';
import { joinListener, type TestListener } from '../support/listener.js';
import { colourMatches, colourTrack, palette } from '../support/nodeVideo.js';
import { mediaCounts } from '../support/mediaCounts.js';
import { probeAudio, toneTrack, type AudioProbe, type ToneSource } from '../support/nodePeer.js';
import { startTestNode, tokenFor, until } from '../support/testNode.js';
import { postWhep, whepPlayer, type WhepPlayer } from '../support/whepPlayer.js';

const PeerConnection = pinnedLocalDescription(wrtc.RTCPeerConnection, wrtc.RTCSessionDescription);
let node: ChorusNode;
const closers: Array<() => unknown> = [];

beforeAll(async () => {
  // A player gone without a DELETE is removed this long after its media stopped.
  node = await startTestNode({ CHORUS_STALE_PEER_MS: '3000' });
});
afterAll(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await node?.close();
});

interface Publisher {
  pc: InstanceType<typeof wrtc.RTCPeerConnection>;
  tone: ToneSource;
  offer: string;
}

async function publisher(frequency: number): Promise<Publisher> {
  const pc = new PeerConnection({ bundlePolicy: 'max-bundle' });
  const tone = toneTrack(frequency);
  pc.addTransceiver(tone.track as never, { direction: 'sendonly' });
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  closers.push(() => pc.close(), () => tone.stop());
  return { pc, tone, offer: offer.sdp! };
}

const post = (room: string, token: string | undefined, body: string, type = 'application/sdp'): Promise<Response> =>
  fetch(`${node.url}/whip/${room}`, { method: 'POST', headers: { 'content-type': type, ...(token ? { authorization: `Bearer ${token}` } : {}) }, body });

test('a plain WebRTC publisher POSTs its offer: listeners hear it; DELETE ends it for them and leaves nothing behind', async () => {
  const room = 'whip-room';
  const before = await mediaCounts(node);
  const listener: TestListener = await joinListener(node, room);
  closers.push(() => listener.close());
  const source = await publisher(523);
  const token = await tokenFor(node, room, 'broadcaster');
  const response = await post(room, token, source.offer);
  expect(response.status).toBe(201);
  expect(response.headers.get('content-type')).toBe('application/sdp');
  const location = response.headers.get('location')!;
  expect(location).toMatch(new RegExp(`^/whip/${room}/[0-9a-f-]{36}$`));
  expect(response.headers.get('etag')).toMatch(/^"[0-9a-f-]{36}"$/);
  await source.pc.setRemoteDescription({ type: 'answer', sdp: await response.text() } as never);
  await listener.hears(523, 15_000);
  expect((await node.rooms.get(room)!.broadcastState()).live).toBe(true);

  // Someone else's token cannot end it; its own can.
  const other = await tokenFor(node, room, 'broadcaster');
  expect((await fetch(`${node.url}${location}`, { method: 'DELETE', headers: { authorization: `Bearer ${other}` } })).status).toBe(404);
  expect((await fetch(`${node.url}${location}`, { method: 'DELETE' })).status).toBe(401);
  const ended = await fetch(`${node.url}${location}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
  expect(ended.status).toBe(200);
  await until(() => listener.events.includes('trackended'), 5000, 'the listener to be told the broadcast ended');
  await listener.close();
  closers.pop();
  await until(async () => (await mediaCounts(node)).transports === before.transports, 5000, 'every transport to close');
  expect(await mediaCounts(node)).toEqual(before);
}, 30_000);

test('trickled candidates are taken (204), with the client\'s current credentials or none; other credentials are an ICE restart answered with the node\'s new ones; a stale ETag is refused', async () => {
  const room = 'whip-patch';
  const source = await publisher(440);
  const token = await tokenFor(node, room, 'broadcaster');
  const response = await post(room, token, source.offer);
  expect(response.status).toBe(201);
  const location = response.headers.get('location')!;
  const firstUfrag = /a=ice-ufrag:(\S+)/.exec(await response.text())![1];
  const etag = response.headers.get('etag')!;
  const patch = (body: string, ifMatch?: string): Promise<Response> =>
    fetch(`${node.url}${location}`, { method: 'PATCH', headers: { 'content-type': 'application/trickle-ice-sdpfrag', authorization: `Bearer ${token}`, ...(ifMatch ? { 'if-match': ifMatch } : {}) }, body });
  const candidate = 'a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n';
  expect((await patch(candidate)).status).toBe(204);
  // A trickle as RFC 9725 clients send it: the client's current credentials, the session's ETag.
  const clientUfrag = /a=ice-ufrag:(\S+)/.exec(source.offer)![1];
  const clientPwd = /a=ice-pwd:(\S+)/.exec(source.offer)![1];
  const trickled = await patch(`a=ice-ufrag:${clientUfrag}\r\na=ice-pwd:${clientPwd}\r\n${candidate}`, etag);
  expect(trickled.status).toBe(204);
  const stale = await patch(candidate, '"not-this-version"');
  expect([stale.status, ((await stale.json()) as { error: { code: string } }).error.code]).toEqual([412, 'PRECONDITION_FAILED']);
  const restart = await patch('a=ice-ufrag:newU\r\na=ice-pwd:newPasswordnewPassword12\r\na=mid:0\r\n', '*');
  expect(restart.status).toBe(200);
  const text = await restart.text();
  expect(text).toMatch(/a=ice-ufrag:\S+/);
  expect(/a=ice-ufrag:(\S+)/.exec(text)![1]).not.toBe(firstUfrag);
  // With the node's candidates, for a client that dropped the old ones with the old credentials.
  expect(text).toMatch(/^a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 \d+ typ host\r$/m);
  expect(restart.headers.get('etag')).toMatch(/^"[0-9a-f-]{36}"$/);
  // The restart made a new version: the old ETag is stale, the new one current, and the new
  // credentials are now the client's (a trickle with them restarts nothing).
  expect((await patch(candidate, etag)).status).toBe(412);
  expect((await patch(`a=ice-ufrag:newU\r\na=ice-pwd:newPasswordnewPassword12\r\n${candidate}`, restart.headers.get('etag')!)).status).toBe(204);
  expect((await fetch(`${node.url}${location}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
});

test('what WHIP refuses, each a typed error, with nothing changed on the node', async () => {
  const room = 'whip-refusals';
  const source = await publisher(440);
  const before = await mediaCounts(node);
  const participants = node.gatewayParticipants.size;
  const code = async (response: Response): Promise<[number, string]> => [response.status, ((await response.json()) as { error: { code: string } }).error.code];
  const broadcaster = await tokenFor(node, room, 'broadcaster');
  expect(await code(await post(room, undefined, source.offer))).toEqual([401, 'UNAUTHORIZED']);
  expect(await code(await post(room, 'not-a-token', source.offer))).toEqual([401, 'TOKEN_INVALID']);
  expect(await code(await post(room, await tokenFor(node, room, 'listener'), source.offer))).toEqual([403, 'FORBIDDEN_ROLE']);
  expect(await code(await post(room, broadcaster, 'hello'))).toEqual([400, 'BAD_REQUEST']);
  expect(await code(await post(room, broadcaster, source.offer, 'application/json'))).toEqual([400, 'BAD_REQUEST']);
  expect(await code(await post(room, broadcaster, source.offer.replace(/a=group:BUNDLE.*\r\n/, '')))).toEqual([400, 'BAD_REQUEST']);
  const pcmuOnly = source.offer.replace(/^(m=audio \d+ [A-Z/]+) .*$/m, '$1 0').replace(/^a=(rtpmap|fmtp|rtcp-fb):(?!0 ).*\r\n/gm, '');
  expect(await code(await post(room, broadcaster, pcmuOnly))).toEqual([422, 'MEDIA_REJECTED']);
  expect((await post(room, broadcaster, `${source.offer}${'a=x:y\r\n'.repeat(12_000)}`)).status).toBe(413);
  expect(await mediaCounts(node)).toEqual(before);
  expect(node.gatewayParticipants.size).toBe(participants);
  // The token refused for bad offers was not spent: it still publishes.
  const ok = await post(room, broadcaster, source.offer);
  expect(ok.status).toBe(201);
  // A second broadcaster while one is live.
  const second = await publisher(660);
  expect(await code(await post(room, await tokenFor(node, room, 'broadcaster'), second.offer))).toEqual([409, 'BROADCASTER_PRESENT']);
});

test('a teacher over WHIP: its camera and microphone reach a student of the class; video into a broadcast is declined while its audio goes on', async () => {
  const room = 'whip-class';
  const pc = new PeerConnection({ bundlePolicy: 'max-bundle' });
  const tone = toneTrack(698);
  const camera = colourTrack(palette.red, 320, 180);
  closers.push(() => pc.close(), () => tone.stop(), () => camera.stop());
  pc.addTransceiver(tone.track as never, { direction: 'sendonly' });
  pc.addTransceiver(camera.track as never, { direction: 'sendonly' });
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  const teacherToken = await node.tokens.mint({ room, identity: 'whip-teacher', role: 'teacher', kind: 'class' });
  const response = await post(room, teacherToken, offer.sdp!);
  expect(response.status).toBe(201);
  const answer = await response.text();
  expect(answer.match(/^m=\w+ \d+/gm)).toEqual(['m=audio 9', 'm=video 9']);
  await pc.setRemoteDescription({ type: 'answer', sdp: answer } as never);
  const student = await joinCallPeer(node, room, 'student', 0, { token: await node.tokens.mint({ room, identity: 'student', role: 'student', kind: 'class' }), receiveOnly: true });
  closers.push(() => student.close());
  await until(() => {
    const probe = [...student.heard.values()][0];
    return probe !== undefined && probe.rms > 0.05 && Math.abs(probe.frequency - 698) < 70;
  }, 15_000, 'the student to hear the WHIP teacher');
  await until(() => [...student.seen.values()].some((s) => colourMatches(s.probe, palette.red)), 15_000, 'the student to see the WHIP teacher\'s red camera');

  // The same kind of offer into a broadcast: its video section is declined, its audio published.
  const broadcast = await post('whip-video-broadcast', await tokenFor(node, 'whip-video-broadcast', 'broadcaster'), offer.sdp!);
  expect(broadcast.status).toBe(201);
  expect((await broadcast.text()).match(/^m=\w+ \d+/gm)).toEqual(['m=audio 9', 'm=video 0']);
});

test('a WHEP player (a plain peer connection) plays a WHIP broadcast, counted as a listener; its DELETE ends only its session', async () => {
  const room = 'whep-room';
  const player = new PeerConnection({ bundlePolicy: 'max-bundle' });
  closers.push(() => player.close());
  player.addTransceiver('audio', { direction: 'recvonly' });
  player.addTransceiver('video', { direction: 'recvonly' });
  const listenerToken = await tokenFor(node, room, 'listener');
  const playerOffer = await player.createOffer();
  await player.setLocalDescription(playerOffer);
  // Nothing published yet.
  const early = await fetch(`${node.url}/whep/${room}`, { method: 'POST', headers: { 'content-type': 'application/sdp', authorization: `Bearer ${listenerToken}` }, body: playerOffer.sdp! });
  expect([early.status, ((await early.json()) as { error: { code: string } }).error.code]).toEqual([409, 'NOTHING_TO_CONSUME']);

  const source = await publisher(587);
  const published = await post(room, await tokenFor(node, room, 'broadcaster'), source.offer);
  await source.pc.setRemoteDescription({ type: 'answer', sdp: await published.text() } as never);
  // A broadcaster's token is no player's.
  const wrongRole = await fetch(`${node.url}/whep/${room}`, { method: 'POST', headers: { 'content-type': 'application/sdp', authorization: `Bearer ${await tokenFor(node, room, 'broadcaster')}` }, body: playerOffer.sdp! });
  expect(wrongRole.status).toBe(403);

  const heard: { probe?: AudioProbe } = {};
  player.ontrack = (event: { track: MediaStreamTrack }) => {
    if (event.track.kind === 'audio') heard.probe = probeAudio(event.track);
  };
  const played = await fetch(`${node.url}/whep/${room}`, { method: 'POST', headers: { 'content-type': 'application/sdp', authorization: `Bearer ${listenerToken}` }, body: playerOffer.sdp! });
  expect(played.status).toBe(201);
  const location = played.headers.get('location')!;
  expect(location).toMatch(new RegExp(`^/whep/${room}/[0-9a-f-]{36}$`));
  const answer = await played.text();
  // The broadcast is audio: the video section is declined.
  expect(answer.match(/^m=\w+ \d+/gm)).toEqual(['m=audio 9', 'm=video 0']);
  await player.setRemoteDescription({ type: 'answer', sdp: answer } as never);
  closers.push(() => heard.probe?.stop());
  await until(() => (heard.probe?.rms ?? 0) > 0.05 && Math.abs((heard.probe?.frequency ?? 0) - 587) < 59, 15_000, 'the WHEP player to hear 587 Hz');
  expect([...node.rooms.get(room)!.peers.values()].filter((p) => p.role === 'listener')).toHaveLength(1);

  expect((await fetch(`${node.url}${location}`, { method: 'DELETE', headers: { authorization: `Bearer ${listenerToken}` } })).status).toBe(200);
  await until(() => [...node.rooms.get(room)!.peers.values()].every((p) => p.role !== 'listener'), 5000, 'the player to leave');
  // The broadcast goes on.
  expect((await node.rooms.get(room)!.broadcastState()).live).toBe(true);
});

/** A WHEP player, closed with the file's other resources. */
async function player(...args: Parameters<typeof whepPlayer>): Promise<WhepPlayer> {
  const made = await whepPlayer(...args);
  closers.push(() => made.close());
  return made;
}

const play = (room: string, token: string | undefined, body: string, type = 'application/sdp'): Promise<Response> => postWhep(node.url, room, token, body, type);

/** The a=extmap lines of each m-section of an SDP, in order. */
const extmaps = (sdp: string): string[][] => sdp.split(/^(?=m=)/m).slice(1).map((section) => section.match(/^a=extmap:.*$/gm)?.map((l) => l.trim()) ?? []);

/** The payload types each m-section of an SDP names, in order. */
const payloadTypes = (sdp: string): string[][] => [...sdp.matchAll(/^m=\w+ \d+ [A-Z/]+ (.*)$/gm)].map((m) => m[1]!.trim().split(' '));

/** A WHIP teacher publishing a tone and a coloured camera into `room` (a class). */
async function whipTeacher(room: string, frequency: number, colour: (typeof palette)[keyof typeof palette]): Promise<void> {
  const pc = new PeerConnection({ bundlePolicy: 'max-bundle' });
  const tone = toneTrack(frequency);
  const camera = colourTrack(colour, 320, 180);
  closers.push(() => pc.close(), () => tone.stop(), () => camera.stop());
  pc.addTransceiver(tone.track as never, { direction: 'sendonly' });
  pc.addTransceiver(camera.track as never, { direction: 'sendonly' });
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  const response = await post(room, await node.tokens.mint({ room, identity: `teacher-${room}`, role: 'teacher', kind: 'class' }), offer.sdp!);
  expect(response.status).toBe(201);
  await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() } as never);
}

test('a WHEP student plays a class\'s stage with the payload types and header extension ids its offer named', async () => {
  const room = 'whep-class';
  await whipTeacher(room, 740, palette.green);
  const studentToken = (identity: string): Promise<string> => node.tokens.mint({ room, identity, role: 'student', kind: 'class' });
  // libwebrtc's numbering: MID is extension 4, where the router's video carries abs-send-time.
  // The worker renumbers this player's packets (patch 002 of scripts/mediasoup/patches).
  const chromeLike = await player();
  expect(chromeLike.offer).toMatch(/a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid/);
  const response = await play(room, await studentToken('whep-libwebrtc'), chromeLike.offer);
  expect(response.status).toBe(201);
  const answer = await response.text();
  expect(answer.match(/^m=\w+ \d+/gm)).toEqual(['m=audio 9', 'm=video 9']);
  // Every payload type and extension the answer names is one the offer named for that section.
  const offered = payloadTypes(chromeLike.offer);
  payloadTypes(answer).forEach((types, i) => expect(offered[i]).toEqual(expect.arrayContaining(types)));
  extmaps(answer).forEach((lines, i) => expect(extmaps(chromeLike.offer)[i]).toEqual(expect.arrayContaining(lines)));
  expect(extmaps(answer)[1]).toContain('a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid');
  await chromeLike.pc.setRemoteDescription({ type: 'answer', sdp: answer } as never);
  await until(() => (chromeLike.heard.probe?.rms ?? 0) > 0.05 && Math.abs((chromeLike.heard.probe?.frequency ?? 0) - 740) < 74, 15_000, 'the WHEP student to hear 740 Hz');
  await until(() => chromeLike.seen.probe !== undefined && colourMatches(chromeLike.seen.probe, palette.green), 15_000, 'the audio-first libwebrtc player to see the green camera');

  // A player that gives MID another id (Firefox uses 3; here 9, free in this offer) gets the camera too.
  const elsewhere = await player((sdp) => sdp.replaceAll('a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid', 'a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid'));
  const second = await play(room, await studentToken('whep-other'), elsewhere.offer);
  expect(second.status).toBe(201);
  const secondAnswer = await second.text();
  expect(secondAnswer.match(/^m=\w+ \d+/gm)).toEqual(['m=audio 9', 'm=video 9']);
  payloadTypes(secondAnswer).forEach((types, i) => expect(payloadTypes(elsewhere.offer)[i]).toEqual(expect.arrayContaining(types)));
  await elsewhere.pc.setRemoteDescription({ type: 'answer', sdp: secondAnswer } as never);
  await until(() => elsewhere.seen.probe !== undefined && colourMatches(elsewhere.seen.probe, palette.green), 15_000, 'the second player to see the green camera');
  await until(() => (elsewhere.heard.probe?.rms ?? 0) > 0.05 && Math.abs((elsewhere.heard.probe?.frequency ?? 0) - 740) < 74, 15_000, 'the second player to hear 740 Hz');
  // Students like any: counted; on one router numbered as their offers (they number codecs alike).
  const students = [...node.rooms.get(room)!.peers.values()].filter((p) => p.role === 'student');
  expect(students).toHaveLength(2);
  expect(node.rooms.get(room)!.requireMedia().slots.filter((s) => s.profile !== '')).toHaveLength(1);

  // A libwebrtc offer of video alone numbers MID 9: it plays the camera.
  const videoOnly = await player((sdp) => sdp, ['video']);
  expect(videoOnly.offer).toMatch(/a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid/);
  const third = await play(room, await studentToken('whep-video-only'), videoOnly.offer);
  expect(third.status).toBe(201);
  await videoOnly.pc.setRemoteDescription({ type: 'answer', sdp: await third.text() } as never);
  await until(() => videoOnly.seen.probe !== undefined && colourMatches(videoOnly.seen.probe, palette.green), 15_000, 'the video-only player to see the green camera');

  // MID on 12, where the router's video carries toffset: renumbered as well.
  const twelve = await player((sdp) => sdp.replaceAll('a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid', 'a=extmap:9 urn:x-unused\r\na=extmap:12 urn:ietf:params:rtp-hdrext:sdes:mid'), ['video']);
  const fourth = await play(room, await studentToken('whep-mid-12'), twelve.offer);
  expect(fourth.status).toBe(201);
  await twelve.pc.setRemoteDescription({ type: 'answer', sdp: await fourth.text() } as never);
  await until(() => twelve.seen.probe !== undefined && colourMatches(twelve.seen.probe, palette.green), 15_000, 'the player with MID on 12 to see the green camera');
});

test('what WHEP refuses, each a typed error, with nothing changed; a session is only its holder\'s to end', async () => {
  const room = 'whep-refusals';
  const source = await publisher(494);
  const broadcaster = await tokenFor(node, room, 'broadcaster');
  const published = await post(room, broadcaster, source.offer);
  const whipLocation = published.headers.get('location')!;
  await source.pc.setRemoteDescription({ type: 'answer', sdp: await published.text() } as never);
  const viewer = await player();
  const listener = await tokenFor(node, room, 'listener');
  await until(async () => (await node.rooms.get(room)!.broadcastState()).live, 10_000, 'the broadcast to be live');
  const before = await mediaCounts(node);
  const participants = node.gatewayParticipants.size;
  const code = async (response: Response): Promise<[number, string]> => [response.status, ((await response.json()) as { error: { code: string } }).error.code];
  expect(await code(await play(room, undefined, viewer.offer))).toEqual([401, 'UNAUTHORIZED']);
  expect(await code(await play(room, 'not-a-token', viewer.offer))).toEqual([401, 'TOKEN_INVALID']);
  expect(await code(await play(room, await tokenFor(node, 'elsewhere', 'listener'), viewer.offer))).toEqual([403, 'TOKEN_WRONG_ROOM']);
  expect(await code(await play(room, listener, 'v=1'))).toEqual([400, 'BAD_REQUEST']);
  expect(await code(await play(room, listener, viewer.offer, 'text/plain'))).toEqual([400, 'BAD_REQUEST']);
  expect(await code(await play(room, listener, viewer.offer.replace(/a=group:BUNDLE.*\r\n/, '')))).toEqual([400, 'BAD_REQUEST']);
  expect(await code(await play(room, listener, source.offer))).toEqual([400, 'BAD_REQUEST']);
  const pcmuOnly = viewer.offer.replace(/^(m=audio \d+ [A-Z/]+) .*$/m, '$1 0').replace(/^a=(rtpmap|fmtp|rtcp-fb):(?!0 )\d+ .*\r\n(?=[\s\S]*m=video)/gm, '');
  expect(await code(await play(room, listener, pcmuOnly))).toEqual([422, 'MEDIA_REJECTED']);
  expect((await play(room, listener, `${viewer.offer}${'a=x:y\r\n'.repeat(12_000)}`)).status).toBe(413);
  expect(await mediaCounts(node)).toEqual(before);
  expect(node.gatewayParticipants.size).toBe(participants);

  // The listener's token was not spent by its refused offers.
  const played = await play(room, listener, viewer.offer);
  expect(played.status).toBe(201);
  const location = played.headers.get('location')!;
  await viewer.pc.setRemoteDescription({ type: 'answer', sdp: await played.text() } as never);
  await until(() => (viewer.heard.probe?.rms ?? 0) > 0.05, 15_000, 'the player to hear the broadcast');
  // Another listener cannot end or patch it; nor can the broadcaster's session be ended by its WHEP path.
  const stranger = await tokenFor(node, room, 'listener');
  expect(await code(await fetch(`${node.url}${location}`, { method: 'DELETE', headers: { authorization: `Bearer ${stranger}` } }))).toEqual([404, 'NOT_FOUND']);
  const patch = await fetch(`${node.url}${location}`, { method: 'PATCH', headers: { 'content-type': 'application/trickle-ice-sdpfrag', authorization: `Bearer ${stranger}` }, body: 'a=ice-ufrag:x\r\na=ice-pwd:yyyyyyyyyyyyyyyyyyyyyy\r\n' });
  expect(await code(patch)).toEqual([404, 'NOT_FOUND']);
  const crossed = whipLocation.replace('/whip/', '/whep/');
  expect(await code(await fetch(`${node.url}${crossed}`, { method: 'DELETE', headers: { authorization: `Bearer ${broadcaster}` } }))).toEqual([404, 'NOT_FOUND']);
  expect((await node.rooms.get(room)!.broadcastState()).live).toBe(true);
  expect(viewer.pc.connectionState).toBe('connected');
});

test('a player that goes away without a DELETE is removed once its media is gone, like any listener', async () => {
  const room = 'whep-reaped';
  const source = await publisher(415);
  const published = await post(room, await tokenFor(node, room, 'broadcaster'), source.offer);
  await source.pc.setRemoteDescription({ type: 'answer', sdp: await published.text() } as never);
  const viewer = await player();
  const played = await play(room, await tokenFor(node, room, 'listener'), viewer.offer);
  expect(played.status).toBe(201);
  await viewer.pc.setRemoteDescription({ type: 'answer', sdp: await played.text() } as never);
  await until(() => (viewer.heard.probe?.rms ?? 0) > 0.05, 15_000, 'the player to hear the broadcast');
  const listeners = (): number => [...node.rooms.get(room)!.peers.values()].filter((p) => p.role === 'listener').length;
  expect(listeners()).toBe(1);
  viewer.pc.close();
  await until(() => listeners() === 0, 15_000, 'the silent player to be removed');
  const session = played.headers.get('location')!.split('/').pop()!;
  await until(() => node.gatewayParticipants.get(session) === undefined, 10_000, 'the node to forget its session');
});
