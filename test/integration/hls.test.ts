/**
 * The HLS fallback against a real node, a real Node WebRTC broadcaster sending a tone and real
 * ffmpeg: the playlist parses (hls-parser, strict), segments are AAC that ffprobe reads and that
 * decode to the broadcaster's tone; ffmpeg killed or hung is restarted and the playlist goes on
 * with a discontinuity; a broadcaster's stop and return yields one continuous playlist; idle HLS
 * stops and removes its files; bad paths and tokens get typed errors and read nothing.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { ChorusClient } from '../../src/client/chorusClient.js';
import { analyse, decodeSegment, fetchPlaylist, PCM_RATE, pollPlaylist, probeSegment, rawGet, type MediaPlaylist, type PollingPlayer } from '../support/hls.js';
import { gatedHandlerFactory, probeAudio, toneTrack, type AudioProbe, type ToneSource } from '../support/nodePeer.js';
import { nodeClient, startTestNode, tokenFor, until } from '../support/testNode.js';

const SECRET = 't'.repeat(40);
const LIST_SIZE = 5;
const VIEWER_WINDOW_MS = 1500;
let node: ChorusNode;
let hlsDir: string;
const cleanup: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  hlsDir = mkdtempSync(join(tmpdir(), 'chorus-hls-test-'));
  node = await startTestNode({
    CHORUS_HLS_DIR: hlsDir,
    CHORUS_HLS_SEGMENT_SECONDS: '1',
    CHORUS_HLS_LIST_SIZE: String(LIST_SIZE),
    CHORUS_HLS_IDLE_MS: '4000',
    CHORUS_HLS_STALL_MS: '4000',
    CHORUS_HLS_START_TIMEOUT_MS: '6000',
    CHORUS_HLS_VIEWER_WINDOW_MS: String(VIEWER_WINDOW_MS),
    // Players behind a reusable link are told apart by address: the test gives them several.
    CHORUS_TRUST_PROXY: 'true',
  });
});
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});
afterAll(async () => {
  await node?.close();
  // The node removes its own HLS directory on close.
  expect(existsSync(join(hlsDir, node.config.nodeId))).toBe(false);
  rmSync(hlsDir, { recursive: true, force: true });
});

async function broadcaster(roomId: string, frequency: number): Promise<{ client: ChorusClient; tone: ToneSource }> {
  const tone = toneTrack(frequency);
  const client = nodeClient(node, roomId, await tokenFor(node, roomId, 'broadcaster', `speaker-${roomId}`));
  await client.join();
  await client.publish(tone.track);
  cleanup.push(async () => {
    await client.close();
    tone.stop();
  });
  return { client, tone };
}

/** A listener's view of a room's HLS, through a token in the address as players use it. */
async function hlsListener(roomId: string) {
  const token = await tokenFor(node, roomId, 'listener');
  const playlistPath = `/hls/${roomId}/index.m3u8?token=${token}`;
  const listener = {
    token,
    playlist: async (): Promise<MediaPlaylist> => (await fetchPlaylist(node.url, playlistPath)).playlist,
    segment: async (uri: string): Promise<Buffer> => {
      const answer = await rawGet(node.url, `/hls/${roomId}/${uri}`);
      if (answer.status !== 200) throw new Error(`segment ${uri}: HTTP ${answer.status} ${answer.body.toString('utf8')}`);
      expect(answer.headers['content-type']).toBe('video/mp2t');
      return answer.body;
    },
    /** Polls the playlist (keeping HLS alive, as a player does) until `predicate` holds. */
    async until(predicate: (p: MediaPlaylist) => boolean, ms: number, what: string): Promise<MediaPlaylist> {
      let last: MediaPlaylist | undefined;
      await until(async () => predicate((last = await listener.playlist())), ms, what);
      return last!;
    },
    /** Decodes the given segments and checks they carry the tone. */
    async hearsTone(uris: string[], frequency: number): Promise<void> {
      const audio = Buffer.concat(await Promise.all(uris.map((u) => listener.segment(u))));
      const pcm = await decodeSegment(audio);
      // About a second of audio per segment: the gaps Opus DTX leaves are filled, not dropped.
      expect(pcm.length / PCM_RATE).toBeGreaterThan(uris.length * 0.5);
      const { rms, frequency: measured } = analyse(pcm);
      expect(rms, 'RMS of the decoded HLS audio').toBeGreaterThan(0.05);
      expect(Math.abs(measured - frequency), `pitch ${measured.toFixed(0)} Hz vs ${frequency} Hz`).toBeLessThan(60);
    },
  };
  return listener;
}

const uris = (segments: MediaPlaylist['segments']): string[] => segments.map((s) => s.uri);
const fileName = (uri: string): string => uri.split('?')[0]!;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('HLS from a live broadcast', () => {
  test('the playlist parses and lists short AAC segments that decode to the broadcaster\'s tone; the window rolls and disk stays bounded', async () => {
    await broadcaster('radio', 1000);
    const hls = await hlsListener('radio');
    const first = await hls.playlist();
    expect(first.segments.length).toBeGreaterThan(0);
    expect(first.endlist).toBe(false);
    expect(first.targetDuration).toBeLessThanOrEqual(2);

    const playlist = await hls.until((p) => p.segments.length >= 3, 15_000, 'three segments');
    for (const segment of playlist.segments) {
      expect(segment.duration).toBeGreaterThan(0);
      expect(segment.duration).toBeLessThanOrEqual(2);
      // Players without headers (hls.js, radio apps) get the token on every segment address.
      expect(segment.uri).toMatch(/^seg-\d+-\d+\.ts\?token=/);
    }
    const last = playlist.segments.slice(-2);
    const probed = await probeSegment(await hls.segment(last[0]!.uri));
    const audio = probed.streams.filter((s) => s.codec_type === 'audio');
    expect(audio).toHaveLength(1);
    expect(audio[0]).toMatchObject({ codec_name: 'aac', sample_rate: '48000', channels: 1 });
    expect(probed.format).toBe('mpegts');
    await hls.hearsTone(uris(last), 1000);

    // The same through an Authorization header: segment addresses carry no token then.
    const viaHeader = await fetchPlaylist(node.url, '/hls/radio/index.m3u8', { authorization: `Bearer ${hls.token}` });
    const bare = viaHeader.playlist.segments.at(-1)!.uri;
    expect(bare).toMatch(/^seg-\d+-\d+\.ts$/);
    const segment = await rawGet(node.url, `/hls/radio/${bare}`, { authorization: `Bearer ${hls.token}` });
    expect(segment.status).toBe(200);

    // The window rolls: older segments leave the playlist and, soon after, the disk.
    const rolled = await hls.until((p) => (p.mediaSequenceBase ?? 0) >= 4, 20_000, 'the window to roll');
    expect(rolled.segments).toHaveLength(LIST_SIZE);
    const session = node.hls!.session('radio')!;
    const onDisk = readdirSync(session.dir);
    for (const name of onDisk) expect(name).toMatch(/^(seg-\d+-\d+\.ts|run-\d+\.(csv|sdp)(\.tmp)?)$/);
    // Listed + a few rolled-off ones kept for late readers + the one being written.
    expect(onDisk.filter((n) => n.endsWith('.ts')).length).toBeLessThanOrEqual(LIST_SIZE + 6);
  });

  test('HLS players are in the room\'s listener count while they play: one per identity, one per address on a reusable link, sessions not twice', async () => {
    const { client: speaker } = await broadcaster('counted', 700);
    const session = nodeClient(node, 'counted', await tokenFor(node, 'counted', 'listener'));
    cleanup.push(() => session.close());
    await session.join();
    await until(() => speaker.audience === 1 && session.audience === 1, 5000, 'the session to be counted');

    const players: PollingPlayer[] = [];
    cleanup.push(() => Promise.all(players.map((p) => p.stop())).then(() => undefined));
    const play = (token: string, from?: string): PollingPlayer => {
      const player = pollPlaylist(node.url, `/hls/counted/index.m3u8?token=${token}`, from ? { headers: { 'x-forwarded-for': from } } : {});
      players.push(player);
      return player;
    };
    // Two players with their own tokens.
    play(await tokenFor(node, 'counted', 'listener', 'radio-app-1'));
    play(await tokenFor(node, 'counted', 'listener', 'radio-app-2'));
    await until(() => speaker.audience === 3 && session.audience === 3, 15_000, 'two HLS players to be counted');
    // A reusable link shared by three players at two addresses: two viewers.
    const link = await node.tokens.mint({ room: 'counted', identity: 'public-link', role: 'listener', grants: { reusable: true } });
    play(link, '198.51.100.7');
    play(link, '198.51.100.8');
    play(link, '198.51.100.7');
    // The SDK session fetching the playlist with its resume token (its HLS fallback) is already counted.
    play(session.resumeToken!);
    await until(() => speaker.audience === 5, 15_000, 'the reusable link\'s two addresses to be counted');
    expect(node.hls!.viewers('counted')).toBe(4);
    const metrics = await (await fetch(`${node.url}/metrics`)).text();
    expect(metrics).toMatch(/^chorus_hls_viewers\{node="[^"]+"\} 4$/m);
    // And the admin API's view of the room, beside its sessions.
    const view = (await (await fetch(`${node.url}/api/admin/rooms/counted`, { headers: { authorization: `Basic ${Buffer.from(`test:${SECRET}`).toString('base64')}` } })).json()) as {
      peers: number;
      hlsViewers: number;
      nodes: Array<{ hlsViewers: number }>;
    };
    expect(view).toMatchObject({ peers: 2, hlsViewers: 4 });
    expect(view.nodes[0]!.hlsViewers).toBe(4);
    expect(players.every((p) => p.answers.length > 0 && p.answers.every((status) => status === 200))).toBe(true);

    // Players that stop drop out once the window passes.
    await Promise.all(players.splice(0).map((p) => p.stop()));
    await until(() => speaker.audience === 1 && session.audience === 1, VIEWER_WINDOW_MS + 10_000, 'stopped players to leave the count');
    expect(node.hls!.viewers('counted')).toBe(0);
  });

  test('without fetches for the idle time, ffmpeg stops and the room\'s files are removed', async () => {
    await broadcaster('quiet', 1000);
    const hls = await hlsListener('quiet');
    await hls.until((p) => p.segments.length >= 1, 15_000, 'a segment');
    const session = node.hls!.session('quiet')!;
    const pid = session.pid!;
    expect(alive(pid)).toBe(true);
    expect(existsSync(session.dir)).toBe(true);
    await until(() => node.hls!.session('quiet') === undefined, 15_000, 'HLS to stop after the idle time');
    expect(session.closed).toBe(true);
    expect(existsSync(session.dir)).toBe(false);
    await until(() => !alive(pid), 5000, 'ffmpeg to exit');
    // The broadcast itself goes on, and HLS starts again when asked.
    await hls.until((p) => p.segments.length >= 1, 15_000, 'HLS to start again');
  });

  test('ffmpeg killed with SIGKILL is restarted and the playlist continues after a discontinuity', async () => {
    await broadcaster('crash', 1000);
    const hls = await hlsListener('crash');
    const before = await hls.until((p) => p.segments.length >= 2, 15_000, 'two segments');
    const session = node.hls!.session('crash')!;
    const pid = session.pid!;
    const lastBefore = before.segments.at(-1)!.mediaSequenceNumber;
    process.kill(pid, 'SIGKILL');
    const after = await hls.until(
      (p) => p.segments.some((s) => s.discontinuity) && p.segments.at(-1)!.mediaSequenceNumber >= lastBefore + 2,
      20_000,
      'segments from a restarted ffmpeg',
    );
    // At least the one the kill caused: on a machine loaded by parallel test files the new run's
    // first segment can come late enough for the stall watchdog to restart it once more.
    expect(session.restarts).toBeGreaterThanOrEqual(1);
    expect(session.failed).toBe(false);
    expect(session.pid).not.toBe(pid);
    expect(alive(pid)).toBe(false);
    // One playlist: numbering continues, the restart is marked, the new segments carry the tone.
    const at = after.segments.findIndex((s) => s.discontinuity);
    expect(after.segments[at]!.mediaSequenceNumber).toBeGreaterThan(lastBefore);
    expect(fileName(after.segments[at]!.uri)).not.toBe(fileName(before.segments.at(-1)!.uri));
    await hls.hearsTone(uris(after.segments.slice(at)), 1000);
  });

  test('a hung ffmpeg (SIGSTOP) is noticed by its missing segments, killed and replaced', async () => {
    await broadcaster('hang', 1000);
    const hls = await hlsListener('hang');
    await hls.until((p) => p.segments.length >= 2, 15_000, 'two segments');
    const session = node.hls!.session('hang')!;
    const pid = session.pid!;
    process.kill(pid, 'SIGSTOP');
    cleanup.push(() => void (alive(pid) && process.kill(pid, 'SIGKILL')));
    const after = await hls.until((p) => p.segments.some((s) => s.discontinuity) && session.pid !== pid, 20_000, 'a replacement ffmpeg');
    await until(() => !alive(pid), 5000, 'the hung ffmpeg to be killed');
    expect(session.restarts).toBe(1);
    const at = after.segments.findIndex((s) => s.discontinuity);
    const fresh = await hls.until((p) => p.segments.length - p.segments.findIndex((s) => s.discontinuity) >= 2, 15_000, 'two fresh segments');
    expect(at).toBeGreaterThanOrEqual(0);
    await hls.hearsTone(uris(fresh.segments.slice(fresh.segments.findIndex((s) => s.discontinuity))), 1000);
  });

  test('a broadcaster that stops and comes back with another tone yields one continuous playlist with a discontinuity', async () => {
    const { client } = await broadcaster('again', 1000);
    const hls = await hlsListener('again');
    const before = await hls.until((p) => p.segments.length >= 2, 15_000, 'two segments');
    const session = node.hls!.session('again')!;
    await client.unpublish();
    await hls.until(() => session.pid === undefined, 10_000, 'the run to end with the broadcast');
    // Between broadcasts the playlist stays up (no end tag): players wait instead of giving up.
    const between = await hls.playlist();
    expect(between.endlist).toBe(false);
    expect(between.segments.length).toBeGreaterThan(0);

    const second = toneTrack(600);
    cleanup.push(() => second.stop());
    await client.publish(second.track);
    const after = await hls.until((p) => {
      const at = p.segments.findIndex((s) => s.discontinuity);
      return at >= 0 && p.segments.length - at >= 2;
    }, 20_000, 'two segments of the new broadcast');
    const sequence = after.segments.map((s) => s.mediaSequenceNumber);
    expect(sequence).toEqual(sequence.map((_, i) => sequence[0]! + i));
    expect(sequence[0]).toBeGreaterThanOrEqual(before.segments[0]!.mediaSequenceNumber);
    const at = after.segments.findIndex((s) => s.discontinuity);
    expect(after.segments.filter((s) => s.discontinuity)).toHaveLength(1);
    expect(session.restarts).toBe(0);
    await hls.hearsTone(uris(after.segments.slice(at)), 600);
    if (at > 0) await hls.hearsTone(uris(after.segments.slice(0, at)).slice(-1), 1000);
  });

  test('malformed paths get BAD_REQUEST, unknown segments NOT_FOUND, and no file outside the room directory is read', async () => {
    await broadcaster('safe', 1000);
    const hls = await hlsListener('safe');
    await hls.until((p) => p.segments.length >= 1, 15_000, 'a segment');
    const roomDir = node.hls!.session('safe')!.dir;
    // Files a traversal would aim for: beside the room, in the node's HLS root, in the HLS dir.
    const secret = 'SECRET-DO-NOT-SERVE';
    writeFileSync(join(hlsDir, 'secret.ts'), secret);
    writeFileSync(join(roomDir, '..', 'seg-1-0.ts'), secret);
    mkdirSync(join(roomDir, '..', 'other'), { recursive: true });
    writeFileSync(join(roomDir, '..', 'other', 'index.m3u8'), secret);
    const t = `token=${hls.token}`;
    const malformed = [
      `/hls/safe/../../secret.ts?${t}`,
      `/hls/safe/..%2F..%2Fsecret.ts?${t}`,
      `/hls/safe/%2e%2e%2fseg-1-0.ts?${t}`,
      `/hls/..%2Fother/index.m3u8?${t}`,
      `/hls/safe%2F..%2Fother/index.m3u8?${t}`,
      `/hls/../other/index.m3u8?${t}`,
      `/hls/safe/seg-1-0.ts%2F..%2F..%2Fseg-1-0.ts?${t}`,
      `/hls/safe/seg-1-0.ts%00.m3u8?${t}`,
      `/hls/bad.room/index.m3u8?${t}`,
      `/hls/safe/run-1.csv?${t}`,
      `/hls/safe/run-1.sdp?${t}`,
      `/hls/safe/secret.ts?${t}`,
      `/hls/safe/index.m3u8.tmp?${t}`,
      `/hls/safe?${t}`,
      `/hls/safe/a/index.m3u8?${t}`,
      `/hls/safe/..?${t}`,
    ];
    for (const path of malformed) {
      const answer = await rawGet(node.url, path);
      expect(answer.status, path).toBe(400);
      expect(answer.error?.code, path).toBe('BAD_REQUEST');
      expect(answer.body.toString('utf8')).not.toContain(secret);
    }
    // A well-formed name that is not in the playlist: the file next door is never read.
    const unlisted = await rawGet(node.url, `/hls/safe/seg-999-0.ts?${t}`);
    expect(unlisted.status).toBe(404);
    expect(unlisted.error?.code).toBe('NOT_FOUND');
  });

  test('tokens: missing, forged, expired, for another room, of a sending role or ended room are refused with typed errors, and start nothing', async () => {
    await broadcaster('guarded', 1000);
    const path = (token?: string): string => `/hls/guarded/index.m3u8${token === undefined ? '' : `?token=${token}`}`;
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ room: 'guarded', role: 'listener' })
      .setProtectedHeader({ alg: 'HS256', kid: 'test' })
      .setIssuer('chorus')
      .setSubject('late')
      .setJti('expired-token-1')
      .setIssuedAt(now - 120)
      .setExpirationTime(now - 60)
      .sign(new TextEncoder().encode(SECRET));
    const cases: Array<[string, string | undefined, Record<string, string>, number, string]> = [
      ['no token', undefined, {}, 401, 'UNAUTHORIZED'],
      ['garbage', 'not-a-token', {}, 401, 'TOKEN_INVALID'],
      ['bad bearer', undefined, { authorization: 'Bearer not.a.jwt' }, 401, 'TOKEN_INVALID'],
      ['expired', expired, {}, 401, 'TOKEN_EXPIRED'],
      ['other room', await tokenFor(node, 'elsewhere', 'listener'), {}, 403, 'TOKEN_WRONG_ROOM'],
      ['broadcaster', await tokenFor(node, 'guarded', 'broadcaster'), {}, 403, 'FORBIDDEN_ROLE'],
    ];
    for (const [what, token, headers, status, code] of cases) {
      const answer = await rawGet(node.url, path(token), headers);
      expect(answer.status, what).toBe(status);
      expect(answer.error, what).toMatchObject({ code, retryable: false });
      expect(typeof answer.error?.message).toBe('string');
    }
    const twice = await rawGet(node.url, `/hls/guarded/index.m3u8?token=a&token=b`);
    expect(twice.error?.code).toBe('BAD_REQUEST');
    // None of those started ffmpeg for the room.
    expect(node.hls!.session('guarded')).toBeUndefined();

    // A token issued before the room was ended is refused; a moderator's token is accepted.
    const moderator = await tokenFor(node, 'guarded', 'moderator');
    const ok = await rawGet(node.url, path(moderator));
    expect(ok.status).toBe(200);
    const listener = await tokenFor(node, 'guarded', 'listener');
    await node.store.setMark('ended\0guarded', Date.now(), 60);
    const ended = await rawGet(node.url, path(listener));
    expect(ended.status).toBe(410);
    expect(ended.error?.code).toBe('ROOM_ENDED');
  });

  test('nothing live: NOTHING_TO_CONSUME; a paused broadcast: UNAVAILABLE after the start timeout, then HLS once resumed', async () => {
    const token = await tokenFor(node, 'silent', 'listener');
    const nothing = await rawGet(node.url, `/hls/silent/index.m3u8?token=${token}`);
    expect(nothing.status).toBe(409);
    expect(nothing.error).toMatchObject({ code: 'NOTHING_TO_CONSUME', retryable: true });

    const { client } = await broadcaster('silent', 1000);
    await client.setPaused(true);
    const paused = await rawGet(node.url, `/hls/silent/index.m3u8?token=${token}`);
    expect(paused.status).toBe(503);
    expect(paused.error).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
    expect(paused.error?.message).toMatch(/did not produce a segment within 6000 ms/);
    await client.setPaused(false);
    const resumed = await fetchPlaylist(node.url, `/hls/silent/index.m3u8?token=${token}`);
    expect(resumed.playlist.segments.length).toBeGreaterThan(0);
  });
});

describe('HLS settings and failures', () => {
  test('an ffmpeg that cannot run is retried a bounded number of times, then requests get UNAVAILABLE', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chorus-hls-broken-'));
    const broken = await startTestNode({ CHORUS_HLS_DIR: dir, CHORUS_HLS_FFMPEG: join(dir, 'no-such-ffmpeg'), CHORUS_HLS_MAX_RESTARTS: '2', RTC_MIN_PORT: '30000', RTC_MAX_PORT: '30999' });
    cleanup.push(async () => {
      await broken.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const tone = toneTrack(1000);
    cleanup.push(() => tone.stop());
    const client = nodeClient(broken, 'nope', await tokenFor(broken, 'nope', 'broadcaster'));
    cleanup.push(() => client.close());
    await client.join();
    await client.publish(tone.track);
    const answer = await rawGet(broken.url, `/hls/nope/index.m3u8?token=${await tokenFor(broken, 'nope', 'listener')}`);
    expect(answer.status).toBe(503);
    expect(answer.error?.code).toBe('UNAVAILABLE');
    expect(answer.error?.message).toMatch(/failed/);
    const session = broken.hls!.session('nope')!;
    expect(session.failed).toBe(true);
    expect(session.restarts).toBe(2);
  });

  test('with CHORUS_HLS_ALWAYS a live broadcast gets HLS before anyone asks; CHORUS_HLS=false serves none', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chorus-hls-always-'));
    const always = await startTestNode({ CHORUS_HLS_DIR: dir, CHORUS_HLS_ALWAYS: 'true', CHORUS_HLS_IDLE_MS: '1000', RTC_MIN_PORT: '31000', RTC_MAX_PORT: '31999' });
    const off = await startTestNode({ CHORUS_HLS: 'false', RTC_MIN_PORT: '32000', RTC_MAX_PORT: '32999' });
    cleanup.push(async () => {
      await always.close();
      await off.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const tone = toneTrack(1000);
    cleanup.push(() => tone.stop());
    const client = nodeClient(always, 'onair', await tokenFor(always, 'onair', 'broadcaster'));
    cleanup.push(() => client.close());
    await client.join();
    await client.publish(tone.track);
    await until(() => (always.hls!.session('onair')?.playlist.length ?? 0) >= 3, 15_000, 'HLS segments without any request');
    // Longer than the idle time without fetches, and it keeps going while the broadcast is live.
    expect(always.hls!.session('onair')!.closed).toBe(false);

    expect(off.hls).toBeUndefined();
    const none = await rawGet(off.url, `/hls/onair/index.m3u8?token=${await tokenFor(off, 'onair', 'listener')}`);
    expect(none.status).toBe(404);
    expect(none.error?.code).toBe('NOT_FOUND');
  });
});

describe('the SDK\'s HLS fallback', () => {
  test('a listener whose WebRTC cannot connect switches to HLS by itself, hears the tone there, and can go back', async () => {
    const { client: speaker } = await broadcaster('sdk', 1000);
    // Relay-only with no TURN server: libwebrtc gathers no candidate and never connects.
    const listener = nodeClient(node, 'sdk', await tokenFor(node, 'sdk', 'listener'), { iceTransportPolicy: 'relay', hlsFallback: { afterMs: 1500 } });
    cleanup.push(() => listener.close());
    const modes: string[] = [];
    listener.on('mode', (mode, reason) => modes.push(`${mode}:${reason}`));
    await listener.join();
    await until(() => listener.mode === 'hls', 10_000, 'the fallback to HLS');
    expect(modes).toEqual(['hls:timeout']);
    // Still in the room for its events, but without a WebRTC media path on the server.
    await until(() => listener.state === 'joined', 5000, 'the session to rejoin');
    const peer = [...node.rooms.get('sdk')!.peers.values()].find((p) => p.role === 'listener')!;
    expect(peer.transports.size).toBe(0);
    expect(listener.transport).toBeUndefined();

    const url = new URL(listener.hlsUrl);
    expect(url.pathname).toBe('/hls/sdk/index.m3u8');
    const { playlist } = await fetchPlaylist(node.url, `${url.pathname}${url.search}`);
    // Its fetch with the session's resume token is what counts it: it has no WebRTC media.
    await until(() => speaker.audience === 1 && listener.audience === 1, 5000, 'the HLS session to be counted');
    expect(node.hls!.viewers('sdk')).toBe(0);
    const segments = playlist.segments.slice(-2).map((s) => s.uri);
    const audio = Buffer.concat(await Promise.all(segments.map(async (u) => (await rawGet(node.url, `/hls/sdk/${u}`)).body)));
    const { rms, frequency } = analyse(await decodeSegment(audio));
    expect(rms).toBeGreaterThan(0.05);
    expect(Math.abs(frequency - 1000)).toBeLessThan(60);

    // Back to WebRTC when asked; still blocked, it falls back again.
    listener.useWebRtc();
    expect(listener.mode).toBe('webrtc');
    await until(() => listener.mode === 'hls' && modes.length === 3, 10_000, 'a second fallback');
    expect(modes).toEqual(['hls:timeout', 'webrtc:asked', 'hls:timeout']);
  });

  test('a broadcast starting late in the window opened at join() still gets a whole window: the listener stays on WebRTC and hears it', async () => {
    const windowMs = 2000;
    const tone = toneTrack(880);
    cleanup.push(() => tone.stop());
    const speaker = nodeClient(node, 'late', await tokenFor(node, 'late', 'broadcaster', 'speaker-late'));
    cleanup.push(() => speaker.close());
    await speaker.join();
    // The listener's stream set-up is held until the test lets it go, so its media arrives when
    // the test says: after a window counted from join() closed, well within one counted from the
    // broadcast's start.
    const gated = gatedHandlerFactory();
    const listener = nodeClient(node, 'late', await tokenFor(node, 'late', 'listener'), { hlsFallback: { afterMs: windowMs }, handlerFactory: gated.factory });
    cleanup.push(() => listener.close());
    const modes: string[] = [];
    listener.on('mode', (mode, reason) => modes.push(`${mode}:${reason}`));
    let probe: AudioProbe | undefined;
    listener.on('track', (track) => (probe = probeAudio(track)));
    cleanup.push(() => probe?.stop());
    const joinCalledAt = performance.now();
    await listener.join();
    // Nothing to play yet: no window runs.
    expect(listener.hlsFallbackSince).toBeUndefined();

    // The broadcast starts 60 % into a window counted from join().
    await until(() => performance.now() - joinCalledAt >= windowMs * 0.6, windowMs, 'the start time');
    await speaker.publish(tone.track);
    await gated.entered;
    // Held until a window counted from join() has closed (200 ms past it), then let go.
    await until(() => performance.now() - joinCalledAt >= windowMs + 200, windowMs * 2, 'the window counted from join() to close');
    expect(modes).toEqual([]);
    // The window runs from when the listener heard the broadcast is live, and is still open.
    const dueAt = listener.hlsFallbackSince!;
    expect(dueAt - joinCalledAt).toBeGreaterThanOrEqual(windowMs * 0.6);
    gated.open();
    await until(() => probe !== undefined && probe.frames > 50 && probe.rms > 0.05 && Math.abs(probe.frequency - 880) <= 150, 10_000, 'the listener to hear the tone');
    // The window counted from the start ended with media flowing: no switch.
    await until(() => listener.hlsFallbackSince === undefined, windowMs + 5000, 'the window to end');
    expect(modes).toEqual([]);
    expect(listener.mode).toBe('webrtc');
  });

  test('a paused broadcast is not due: a listener whose WebRTC cannot connect waits on WebRTC while it is paused, and falls back a window after it resumes', async () => {
    const windowMs = 1500;
    const { client: speaker } = await broadcaster('paused-fb', 990);
    await speaker.setPaused(true);
    const listener = nodeClient(node, 'paused-fb', await tokenFor(node, 'paused-fb', 'listener'), { iceTransportPolicy: 'relay', hlsFallback: { afterMs: windowMs } });
    cleanup.push(() => listener.close());
    const modes: string[] = [];
    listener.on('mode', (mode, reason) => modes.push(`${mode}:${reason}`));
    const joinCalledAt = performance.now();
    await listener.join();
    expect(listener.broadcast).toMatchObject({ live: true, paused: true });
    expect(listener.hlsFallbackSince).toBeUndefined();
    // Past a whole window (and then some) while paused: still on WebRTC.
    await until(() => performance.now() - joinCalledAt >= windowMs + 1000, windowMs * 3, 'more than a window to pass');
    expect(modes).toEqual([]);
    await speaker.setPaused(false);
    await until(() => listener.hlsFallbackSince !== undefined, 5000, 'media to be due once resumed');
    await until(() => listener.mode === 'hls', windowMs + 10_000, 'the fallback once resumed');
    expect(modes).toEqual(['hls:timeout']);
  });

  test('a listener whose WebRTC works stays on WebRTC', async () => {
    await broadcaster('fine', 1000);
    const listener = nodeClient(node, 'fine', await tokenFor(node, 'fine', 'listener'), { hlsFallback: { afterMs: 1500 } });
    cleanup.push(() => listener.close());
    const modes: string[] = [];
    listener.on('mode', (mode) => modes.push(mode));
    await listener.join();
    await until(() => listener.transport?.connectionState === 'connected' && listener.consumer !== undefined, 10_000, 'WebRTC audio');
    // Checked past the fallback delay: connected audio never triggers it.
    const at = Date.now();
    await until(() => Date.now() - at > 2500, 5000, 'the fallback delay to pass');
    expect(modes).toEqual([]);
    expect(listener.mode).toBe('webrtc');
  });
});
