import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import { io, type ManagerOptions, type SocketOptions } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import type { AuditEvent } from '../../src/observability/audit.js';
import { toneTrack } from '../support/nodePeer.js';
import { joinListener } from '../support/listener.js';
import { captureLogs, WARN } from '../support/logCapture.js';
import { getFrom, RawSocket, rawConnection, rawEngineWebSocket, type RawConnection } from '../support/rawSocket.js';
import { startRedis } from '../support/redisServer.js';
import { nodeClient, startTestNode, startTestNodes, tokenFor, until } from '../support/testNode.js';

const run = promisify(execFile);
const KEY = { id: 'test', secret: 't'.repeat(40) };
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

let node: ChorusNode;
const audit: AuditEvent[] = [];
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  node = await startTestNode();
  node.audit.on('event', (e) => audit.push(e));
});
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
  await until(() => node.rooms.rooms.size === 0, 5000, 'rooms to close');
});
afterAll(async () => {
  await node?.close();
});

/** One HTTP/1.1 request written as-is on a TCP socket: fetch would normalise a malformed path. */
async function rawHttp(n: ChorusNode, path: string): Promise<{ status: number; headers: string; body: string }> {
  const { hostname, port } = new URL(n.url);
  const text = await new Promise<string>((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) });
    let data = '';
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer to GET ${path.slice(0, 60)}`)));
    socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
    socket.on('end', () => resolve(data));
    socket.on('close', () => resolve(data));
    socket.on('error', reject);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nConnection: close\r\n\r\n`);
  });
  const split = text.indexOf('\r\n\r\n');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]), headers: text.slice(0, split), body: text.slice(split + 4) };
}

async function raw(n: ChorusNode = node): Promise<RawSocket> {
  const s = await RawSocket.connect(n);
  cleanup.push(() => s.close());
  return s;
}

async function broadcasting(roomId: string) {
  const tone = toneTrack(1000);
  const client = nodeClient(node, roomId, await tokenFor(node, roomId, 'broadcaster', `b-${roomId}`));
  await client.join();
  await client.publish(tone.track);
  cleanup.push(() => tone.stop());
  cleanup.push(() => client.close());
  return client;
}

describe('tokens', () => {
  test('POST /api/tokens mints for a valid key and refuses a wrong secret, an unknown key and no credentials', async () => {
    const body = JSON.stringify({ room: 'minted', identity: 'amina', role: 'listener', ttlSeconds: 120 });
    const post = (authorization?: string) =>
      fetch(`${node.url}/api/tokens`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) } });
    const ok = await post(basic(KEY.id, KEY.secret));
    expect(ok.status).toBe(201);
    const { token, tokenId, expiresAt } = (await ok.json()) as { token: string; tokenId: string; expiresAt: string };
    const verified = await node.tokens.verify(token);
    expect(verified).toMatchObject({ room: 'minted', identity: 'amina', role: 'listener', keyId: 'test', tokenId });
    expect(Date.parse(expiresAt) - Date.now()).toBeGreaterThan(100_000);
    expect(audit.some((e) => e.type === 'token.minted' && e.tokenId === tokenId && e.via === 'http')).toBe(true);
    for (const bad of [basic(KEY.id, 'wrong'.repeat(8)), basic('nokey', KEY.secret), undefined]) {
      const refused = await post(bad);
      expect(refused.status).toBe(401);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED');
    }
    const invalid = await fetch(`${node.url}/api/tokens`, {
      method: 'POST',
      body: JSON.stringify({ room: 'x', identity: 'y', role: 'god' }),
      headers: { 'content-type': 'application/json', authorization: basic(KEY.id, KEY.secret) },
    });
    expect(invalid.status).toBe(400);
    const reusableBroadcaster = await fetch(`${node.url}/api/tokens`, {
      method: 'POST',
      body: JSON.stringify({ room: 'x', identity: 'y', role: 'broadcaster', grants: { reusable: true } }),
      headers: { 'content-type': 'application/json', authorization: basic(KEY.id, KEY.secret) },
    });
    expect(reusableBroadcaster.status).toBe(400);
  });

  test('identities and names must be printable: POST /api/tokens refuses control characters, separators, bidi overrides and unpaired surrogates', async () => {
    const post = (body: Record<string, unknown>) =>
      fetch(`${node.url}/api/tokens`, {
        method: 'POST',
        // JSON.stringify escapes an unpaired surrogate (\\ud800), so it arrives as one.
        body: JSON.stringify({ room: 'printable', role: 'listener', ...body }),
        headers: { 'content-type': 'application/json', authorization: basic(KEY.id, KEY.secret) },
      });
    const refused = ['a\u0000b', '\u0000', 'bell\u0007', 'tab\there', 'new\nline', 'del\u007f', 'c1\u0085', 'line\u2028sep', 'evil\u202egnp.exe', 'half\ud800', '\udc00tail'];
    for (const identity of refused) {
      const r = await post({ identity });
      expect(r.status, JSON.stringify(identity)).toBe(400);
      const { error } = (await r.json()) as { error: { code: string; message: string } };
      expect(error.code).toBe('BAD_REQUEST');
      expect(error.message).toMatch(/^identity: must be printable text/);
    }
    const badName = await post({ identity: 'fine', name: 'Fatima\u0000' });
    expect(badName.status).toBe(400);
    expect(((await badName.json()) as { error: { message: string } }).error.message).toMatch(/^name: must be printable text/);
    expect((await post({ identity: 'x'.repeat(257) })).status).toBe(400);
    // Scripts, emoji sequences (with their zero-width joiners) and spaces are people's names.
    for (const identity of ['أمينة', 'Zaid ibn Thabit', '👩‍👩‍👧 family', 'ज़ैद', 'x'.repeat(256)]) {
      const r = await post({ identity, name: identity.slice(0, 128) });
      expect(r.status, identity).toBe(201);
      expect((await node.tokens.verify(((await r.json()) as { token: string }).token)).identity).toBe(identity);
    }
    // The demo endpoints' display names follow the same rule.
    const demo = await fetch(`${node.url}/api/demo/broadcasts`, { method: 'POST', body: JSON.stringify({ name: 'imam\u0000' }), headers: { 'content-type': 'application/json' } });
    expect(demo.status).toBe(400);
    expect(audit.some((e) => e.type === 'token.minted' && e.identity.includes('\u0000'))).toBe(false);
  });

  test('a token signed with the key but carrying an unprintable identity or name is refused at join with TOKEN_INVALID', async () => {
    const now = Math.floor(Date.now() / 1000);
    const sign = (claims: Record<string, unknown>) =>
      new SignJWT({ room: 'handmade', role: 'listener', ...claims })
        .setProtectedHeader({ alg: 'HS256', kid: KEY.id })
        .setIssuer('chorus')
        .setJti(`jti-${Math.random().toString(36).slice(2)}`)
        .setIssuedAt(now)
        .setExpirationTime(now + 60)
        .sign(new TextEncoder().encode(KEY.secret));
    for (const claims of [{ sub: 'a\u0000b' }, { sub: 'bell\u0007' }, { sub: 'half\ud800' }, { sub: 'rtl\u202e' }, { sub: 'ok', name: 'n\u0000' }]) {
      const s = await raw();
      const reply = await s.call('join', { roomId: 'handmade', token: await sign(claims) });
      expect(reply.error, JSON.stringify(claims)).toMatchObject({ code: 'TOKEN_INVALID', retryable: false });
      expect(reply.error?.message).toMatch(/^token claim (sub|name) is invalid: must be printable text/);
    }
    // The same signer with a printable identity is let in: the refusals above are for the text.
    await (await raw()).ok('join', { roomId: 'handmade', token: await sign({ sub: 'أمينة' }) });
    expect(node.rooms.get('handmade')?.peers.size).toBe(1);
  });

  test('the CLI mints tokens the node accepts, with the configured key', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/chorus.ts', 'token', '--room', 'cli', '--role', 'moderator', '--identity', 'ops', '--ttl', '60'], {
      env: { ...process.env, CHORUS_API_KEYS: `${KEY.id}:${KEY.secret}` },
    });
    expect(await node.tokens.verify(stdout.trim())).toMatchObject({ room: 'cli', identity: 'ops', role: 'moderator', keyId: 'test' });
    await expect(run(process.execPath, ['--import', 'tsx', 'src/cli/chorus.ts', 'token', '--room', 'cli'])).rejects.toMatchObject({ code: 2 });
    // Call tokens: --kind names the room kind; an unknown kind is refused.
    const call = await run(process.execPath, ['--import', 'tsx', 'src/cli/chorus.ts', 'token', '--room', 'standup', '--role', 'participant', '--kind', 'call', '--identity', 'amina'], {
      env: { ...process.env, CHORUS_API_KEYS: `${KEY.id}:${KEY.secret}` },
    });
    expect(await node.tokens.verify(call.stdout.trim())).toMatchObject({ room: 'standup', identity: 'amina', role: 'participant', kind: 'call' });
    await expect(
      run(process.execPath, ['--import', 'tsx', 'src/cli/chorus.ts', 'token', '--room', 'x', '--role', 'participant', '--kind', 'meeting'], { env: { ...process.env, CHORUS_API_KEYS: `${KEY.id}:${KEY.secret}` } }),
    ).rejects.toMatchObject({ code: 2 });
  });

  test('the CLI signs with the key the node uses (its data dir\'s development key), says which and from where, and makes none unasked', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'chorus-cli-'));
    const devFile = join(dataDir, 'api-keys.json');
    const env: NodeJS.ProcessEnv = { ...process.env, CHORUS_DATA_DIR: dataDir };
    delete env['CHORUS_API_KEYS'];
    delete env['CHORUS_TOKEN_SECRET'];
    const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli/chorus.ts', 'token', '--room', 'devroom', '--role', 'listener', ...args], { env });
    // No key anywhere: refused, saying where it looked, and nothing is made behind the node's back.
    const refused = await cli().then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(refused?.code).toBe(2);
    expect(refused?.stderr).toContain(`no API key to sign with: CHORUS_API_KEYS and CHORUS_TOKEN_SECRET are unset and there is no development key at ${devFile}`);
    expect(existsSync(devFile)).toBe(false);
    // A node on embedded defaults makes its development key there; the CLI then signs with it.
    const n = await startTestNode({ CHORUS_API_KEYS: '', CHORUS_DATA_DIR: dataDir });
    cleanup.push(() => n.close());
    expect(existsSync(devFile)).toBe(true);
    const signed = await cli('--identity', 'dev-user');
    expect(signed.stderr).toBe(`chorus: signed with API key "dev" from the development key file ${devFile}\n`);
    const s = await raw(n);
    expect(await s.ok('join', { roomId: 'devroom', token: signed.stdout.trim() })).toMatchObject({ identity: 'dev-user' });
    // With the node's CHORUS_API_KEYS it says so.
    const viaEnv = await run(process.execPath, ['--import', 'tsx', 'src/cli/chorus.ts', 'token', '--room', 'r', '--role', 'listener'], {
      env: { ...env, CHORUS_API_KEYS: `${KEY.id}:${KEY.secret}` },
    });
    expect(viaEnv.stderr).toBe(`chorus: signed with API key "test" from CHORUS_API_KEYS\n`);
    expect((await node.tokens.verify(viaEnv.stdout.trim())).keyId).toBe('test');
    // Asked to, it creates the development key where a node with that data dir will find it.
    const fresh = mkdtempSync(join(tmpdir(), 'chorus-cli-'));
    const created = await run(process.execPath, ['--import', 'tsx', 'src/cli/chorus.ts', 'token', '--room', 'r', '--role', 'listener', '--create-dev-key'], {
      env: { ...env, CHORUS_DATA_DIR: fresh },
    });
    expect(created.stderr).toContain(`chorus: created a new development key at ${join(fresh, 'api-keys.json')}`);
    const later = await startTestNode({ CHORUS_API_KEYS: '', CHORUS_DATA_DIR: fresh });
    cleanup.push(() => later.close());
    expect((await later.tokens.verify(created.stdout.trim())).keyId).toBe('dev');
  });

  test('rotation: tokens of every configured key are accepted, new ones are signed with the first', async () => {
    const n = await startTestNode({ CHORUS_API_KEYS: `new:${'n'.repeat(32)},old:${'o'.repeat(32)}` });
    cleanup.push(() => n.close());
    const { TokenService } = await import('../../src/auth/tokens.js');
    const { ApiKeyring } = await import('../../src/auth/apiKeys.js');
    const oldOnly = new TokenService(new ApiKeyring([{ id: 'old', secret: 'o'.repeat(32) }]), 60);
    const s = await raw(n);
    await s.ok('join', { roomId: 'rot', token: await oldOnly.mint({ room: 'rot', identity: 'a', role: 'listener' }) });
    expect((await n.tokens.verify(await n.tokens.mint({ room: 'r', identity: 'b', role: 'listener' }))).keyId).toBe('new');
  });

  test('a join token works once; a reusable listener link works many times with distinct identities', async () => {
    const token = await tokenFor(node, 'once', 'listener', 'zaid');
    const first = await raw();
    await first.ok('join', { roomId: 'once', token });
    const second = await raw();
    expect(await second.code('join', { roomId: 'once', token })).toBe('TOKEN_USED');
    const link = await node.tokens.mint({ room: 'once', identity: 'public', role: 'listener', grants: { reusable: true } }, 3600);
    const identities = new Set<unknown>();
    for (let i = 0; i < 3; i++) identities.add((await (await raw()).ok('join', { roomId: 'once', token: link }))['identity']);
    expect(identities.size).toBe(3);
    expect(audit.some((e) => e.type === 'join.refused' && e.code === 'TOKEN_USED' && e.identity === 'zaid')).toBe(true);
  });
});

describe('tenants: a room belongs to the tenant whose key opened it', () => {
  const A = { id: 'alpha', secret: 'a'.repeat(40) };
  const B = { id: 'beta', secret: 'b'.repeat(40) };
  // alpha rotated to alpha2: the new key names alpha's tenant, so alpha's live rooms carry on.
  const A2 = { id: 'alpha2', secret: 'c'.repeat(40) };
  const keys = `${A.id}:${A.secret},${B.id}:${B.secret},${A2.id}@${A.id}:${A2.secret}`;
  const as = (n: ChorusNode, keyId: string, room: string, role: 'listener' | 'moderator' | 'broadcaster', identity: string, grants = {}) =>
    n.tokens.issue({ room, identity, role, grants }, { keyId, ttlSeconds: 600 }).then((t) => t.token);
  const admin = (n: ChorusNode, key: { id: string; secret: string }, method: string, path: string, body?: unknown) =>
    fetch(`${n.url}/api/admin/rooms${path}`, {
      method,
      headers: { authorization: basic(key.id, key.secret), ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });

  test('another key\'s tokens (listener, moderator, broadcaster, reusable link, HLS) are refused with TOKEN_WRONG_ROOM; its admin API finds nothing; a rotated key of the same tenant and resume tokens carry on', async () => {
    const n = await startTestNode({ CHORUS_API_KEYS: keys });
    const events: AuditEvent[] = [];
    n.audit.on('event', (e) => events.push(e));
    cleanup.push(() => n.close());
    const room = 'owned';
    const mod = await raw(n);
    const joined = await mod.ok('join', { roomId: room, token: await as(n, A.id, room, 'moderator', 'alpha-mod') });
    const listener = await raw(n);
    const listenerPeer = (await listener.ok('join', { roomId: room, token: await as(n, A.id, room, 'listener', 'alpha-listener') }))['peerId'] as string;

    for (const [role, grants] of [['listener', {}], ['moderator', {}], ['broadcaster', { replace: true }], ['listener', { reusable: true }]] as const) {
      const reply = await (await raw(n)).call('join', { roomId: room, token: await as(n, B.id, room, role, `beta-${role}`, grants) });
      expect(reply.error, `${role} ${JSON.stringify(grants)}`).toMatchObject({ code: 'TOKEN_WRONG_ROOM', retryable: false });
      expect(reply.error?.message).toBe(`room ${room} belongs to another tenant: tokens signed with this API key cannot join it`);
    }
    expect(events.filter((e) => e.type === 'join.refused' && e.code === 'TOKEN_WRONG_ROOM')).toHaveLength(4);
    const hls = await fetch(`${n.url}/hls/${room}/index.m3u8?token=${await as(n, B.id, room, 'listener', 'beta-hls')}`);
    expect(hls.status).toBe(403);
    expect(((await hls.json()) as { error: { code: string } }).error.code).toBe('TOKEN_WRONG_ROOM');
    expect((await fetch(`${n.url}/hls/${room}/index.m3u8?token=${await as(n, A.id, room, 'listener', 'alpha-hls')}`)).status).toBe(409); // nothing live yet

    // B's admin API: no such room, nobody to kick or mute, nothing to end.
    expect((await admin(n, B, 'GET', '')).status).toBe(200);
    expect(((await (await admin(n, B, 'GET', '')).json()) as { rooms: unknown[] }).rooms).toEqual([]);
    for (const [method, path, body] of [['GET', `/${room}`], ['DELETE', `/${room}/participants/${listenerPeer}`], ['POST', `/${room}/participants/${listenerPeer}/mute`, { muted: true }], ['DELETE', `/${room}`]] as const) {
      const r = await admin(n, B, method, path, body);
      expect(r.status, `${method} ${path}`).toBe(404);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND');
    }
    expect(n.rooms.get(room)?.peers.has(listenerPeer)).toBe(true);
    expect(n.rooms.get(room)?.peers.get(listenerPeer)?.moderatorMuted.size).toBe(0);

    // The rotated key (tenant alpha) joins and administers alpha's room.
    await (await raw(n)).ok('join', { roomId: room, token: await as(n, A2.id, room, 'listener', 'alpha2-listener') });
    const seen = (await (await admin(n, A2, 'GET', `/${room}`)).json()) as { id: string; participants: unknown[] };
    expect(seen).toMatchObject({ id: room });
    expect(seen.participants).toHaveLength(3);
    // A resume token (signed with the session's own key) brings the session back.
    mod.close();
    await until(() => !n.rooms.get(room)?.peers.has(joined['peerId'] as string), 5000, 'the moderator to leave');
    await (await raw(n)).ok('join', { roomId: room, token: joined['resumeToken'] as string, previousPeerId: joined['peerId'] });

    // Ownership lasts as long as the room: once everyone left, the id is free for anyone.
    for (const fn of cleanup.splice(1).reverse()) await fn();
    await until(() => n.rooms.rooms.size === 0, 5000, 'the room to close');
    expect(await n.store.getRoom(room)).toBeUndefined();
    await (await raw(n)).ok('join', { roomId: room, token: await as(n, B.id, room, 'moderator', 'beta-mod') });
    expect((await (await raw(n)).call('join', { roomId: room, token: await as(n, A.id, room, 'listener', 'alpha-late') })).error?.code).toBe('TOKEN_WRONG_ROOM');
  });

  test('across two nodes sharing a real Redis the first tenant\'s claim holds, and ends with the room on every node', async () => {
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    const [one, two] = (await startTestNodes(['tenant-1', 'tenant-2'], { REDIS_URL: redis.url, CHORUS_API_KEYS: keys, CHORUS_ORIGIN_PLACEMENT: 'local' })) as [ChorusNode, ChorusNode];
    cleanup.push(() => one.close(), () => two.close());
    const room = 'owned-cluster';
    const first = await raw(one);
    await first.ok('join', { roomId: room, token: await as(one, A.id, room, 'listener', 'alpha-1') });
    // Node two has no room of its own yet: the claim it meets is the shared one.
    for (const role of ['listener', 'moderator', 'broadcaster'] as const) {
      expect(await (await raw(two)).code('join', { roomId: room, token: await as(two, B.id, room, role, `beta-${role}`) }), role).toBe('TOKEN_WRONG_ROOM');
    }
    const second = await raw(two);
    await second.ok('join', { roomId: room, token: await as(two, A2.id, room, 'listener', 'alpha-2') });
    expect((await admin(two, B, 'DELETE', `/${room}`)).status).toBe(404);
    expect((await admin(one, B, 'DELETE', `/${room}`)).status).toBe(404);
    expect(((await (await admin(two, A, 'GET', `/${room}`)).json()) as { participants: unknown[] }).participants).toHaveLength(2);

    // Node one's share closes first, node two's last (which deletes the record): node one must
    // not bring the record (and alpha's claim) back when it next refreshes its leases.
    first.close();
    await until(() => one.rooms.get(room) === undefined, 5000, 'node one to close its share');
    second.close();
    await until(async () => two.rooms.get(room) === undefined && (await two.store.getRoom(room)) === undefined, 5000, 'the room to close everywhere');
    await one.store.refresh();
    await two.store.refresh();
    expect(await one.store.getRoom(room)).toBeUndefined();
    await (await raw(two)).ok('join', { roomId: room, token: await as(two, B.id, room, 'listener', 'beta-now') });
    expect(await (await raw(one)).code('join', { roomId: room, token: await as(one, A.id, room, 'listener', 'alpha-now') })).toBe('TOKEN_WRONG_ROOM');
  });
});

describe('roles and moderation', () => {
  test('a moderator mutes the broadcaster (who cannot unmute), kicks a listener (whose old tokens stop working) and ends the room', async () => {
    const broadcaster = await broadcasting('mod');
    const muted: boolean[] = [];
    broadcaster.on('muted', (m) => muted.push(m));
    const listener = await joinListener(node, 'mod');
    cleanup.push(() => listener.close());
    await listener.hears(1000);
    const spare = await tokenFor(node, 'mod', 'listener', 'troll');
    const trollClient = nodeClient(node, 'mod', await tokenFor(node, 'mod', 'listener', 'troll'));
    const trollErrors: string[] = [];
    trollClient.on('error', (e) => trollErrors.push(e.code));
    await trollClient.join();
    cleanup.push(() => trollClient.close());

    const mod = await raw();
    await mod.ok('join', { roomId: 'mod', token: await tokenFor(node, 'mod', 'moderator', 'sheikh') });
    const peers = (await mod.ok('listPeers', {}))['peers'] as Array<{ peerId: string; identity: string; role: string }>;
    const broadcasterPeer = peers.find((p) => p.role === 'broadcaster')!;
    const troll = peers.find((p) => p.identity === 'troll')!;

    await mod.ok('moderate', { action: 'mute', peerId: broadcasterPeer.peerId });
    await until(() => listener.client.broadcast.paused && muted.includes(true), 5000, 'mute to reach everyone');
    await expect(broadcaster.setPaused(false)).rejects.toMatchObject({ code: 'MUTED' });
    await mod.ok('moderate', { action: 'unmute', peerId: broadcasterPeer.peerId });
    await broadcaster.setPaused(false);
    await listener.hears(1000);

    await mod.ok('moderate', { action: 'kick', peerId: troll.peerId });
    await until(() => trollErrors.includes('KICKED') && trollClient.state === 'closed', 5000, 'troll to be kicked');
    expect(await (await raw()).code('join', { roomId: 'mod', token: spare })).toBe('KICKED');
    // A token minted after the kick is the operator's decision to let them back.
    await (await raw()).ok('join', { roomId: 'mod', token: await tokenFor(node, 'mod', 'listener', 'troll') });

    const preEnd = await tokenFor(node, 'mod', 'listener', 'late');
    await mod.ok('moderate', { action: 'end' });
    await until(() => listener.client.state === 'closed', 5000, 'listener to be told the room ended');
    expect(await (await raw()).code('join', { roomId: 'mod', token: preEnd })).toBe('ROOM_ENDED');
    const actions = audit.filter((e) => e.type === 'moderator.action').map((e) => (e as { action: string }).action);
    expect(actions).toEqual(expect.arrayContaining(['mute', 'kick', 'end']));
  });

  test('listeners and broadcasters cannot moderate; a moderator cannot publish', async () => {
    await broadcasting('nomod');
    const l = await raw();
    await l.ok('join', { roomId: 'nomod', token: await tokenFor(node, 'nomod', 'listener') });
    expect(await l.code('listPeers', {})).toBe('FORBIDDEN_ROLE');
    expect(await l.code('moderate', { action: 'end' })).toBe('FORBIDDEN_ROLE');
    const m = await raw();
    await m.ok('join', { roomId: 'nomod', token: await tokenFor(node, 'nomod', 'moderator') });
    expect(await m.code('createTransport', { direction: 'send' })).toBe('FORBIDDEN_ROLE');
    expect(await m.code('moderate', { action: 'kick', peerId: 'nobody' })).toBe('NOT_FOUND');
    const host = await raw();
    expect(await host.code('join', { roomId: 'nomod', token: await tokenFor(node, 'nomod', 'host') })).toBe('FORBIDDEN_ROLE');
  });

  test('a broadcaster token with the replace grant takes over the seat; the old broadcaster is told', async () => {
    const first = await broadcasting('swap');
    const firstErrors: string[] = [];
    first.on('error', (e) => firstErrors.push(e.code));
    const listener = await joinListener(node, 'swap');
    cleanup.push(() => listener.close());
    await listener.hears(1000);
    const tone = toneTrack(600);
    cleanup.push(() => tone.stop());
    const second = nodeClient(node, 'swap', await node.tokens.mint({ room: 'swap', identity: 'relief', role: 'broadcaster', grants: { replace: true } }));
    cleanup.push(() => second.close());
    await second.join();
    await second.publish(tone.track);
    await until(() => firstErrors.includes('KICKED'), 5000, 'old broadcaster to be told');
    await listener.hears(600);
  });

  test('a token limited to video cannot publish audio', async () => {
    const s = await raw();
    await s.ok('join', { roomId: 'grant', token: await node.tokens.mint({ room: 'grant', identity: 'b', role: 'broadcaster', grants: { publish: ['video'] } }) });
    const t = await s.ok('createTransport', { direction: 'send' });
    const rtpParameters = { codecs: [{ mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2 }], encodings: [{ ssrc: 1 }] };
    expect(await s.code('produce', { transportId: t['id'], kind: 'audio', rtpParameters })).toBe('FORBIDDEN_ROLE');
  });
});

describe('rate limits and quotas', () => {
  test('signaling: a connection over its message rate gets LIMIT_REACHED with a retry delay; others are unaffected', async () => {
    const n = await startTestNode({ CHORUS_LIMIT_MESSAGES_PER_CONNECTION_PER_SECOND: '5', CHORUS_LIMIT_MESSAGE_BURST_PER_CONNECTION: '0' });
    cleanup.push(() => n.close());
    const noisy = await raw(n);
    const replies = await Promise.all(Array.from({ length: 12 }, () => noisy.call('getRouterRtpCapabilities', {})));
    const limited = replies.filter((r) => r.error?.code === 'LIMIT_REACHED');
    expect(limited.length).toBeGreaterThanOrEqual(7);
    expect(limited[0]!.error).toMatchObject({ retryable: true });
    expect((limited[0]!.error as { retryAfterMs?: number }).retryAfterMs).toBeGreaterThan(0);
    const quiet = await raw(n);
    expect(await quiet.code('getRouterRtpCapabilities', {})).toBe('NOT_JOINED');
    expect(audit.some((e) => e.type === 'limit.exceeded' && e.limit === 'messagesPerConnection')).toBe(false); // other node's audit
    expect(n.audit).not.toBe(node.audit);
  });

  test('HTTP: over the per-IP rate answers 429 with Retry-After', async () => {
    const n = await startTestNode({ CHORUS_LIMIT_HTTP_PER_IP_PER_MINUTE: '3' });
    cleanup.push(() => n.close());
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${n.url}/healthz`);
      statuses.push(r.status);
      if (r.status === 429) retryAfter = r.headers.get('retry-after');
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    // HLS fetches with a room token are not counted per address (players behind one carrier NAT
    // share it): past the limit, such a request still gets its own answer (here: nothing live)...
    const token = await tokenFor(n, 'some-room', 'listener');
    for (let i = 0; i < 3; i++) expect((await fetch(`${n.url}/hls/some-room/index.m3u8?token=${token}`)).status).toBe(409);
    // ...while one refused before its token is accepted is charged to the address, so a flood of
    // bad tokens is cut off like any other.
    const refused = await fetch(`${n.url}/hls/some-room/index.m3u8?token=forged`);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  test('HLS: refused requests spend the address\'s budget, accepted ones do not', async () => {
    const n = await startTestNode({ CHORUS_LIMIT_HTTP_PER_IP_PER_MINUTE: '3' });
    cleanup.push(() => n.close());
    const token = await tokenFor(n, 'budget-room', 'listener');
    const path = '/hls/budget-room/index.m3u8';
    // Accepted (nothing live: 409) any number of times: no budget spent.
    for (let i = 0; i < 6; i++) expect((await fetch(`${n.url}${path}?token=${token}`)).status).toBe(409);
    // Refused ones: missing, forged, another room's token; each costs a point.
    expect((await fetch(`${n.url}${path}`)).status).toBe(401);
    expect((await fetch(`${n.url}${path}?token=forged`)).status).toBe(401);
    expect((await fetch(`${n.url}${path}?token=${await tokenFor(n, 'elsewhere', 'listener')}`)).status).toBe(403);
    const over = await fetch(`${n.url}${path}?token=forged`);
    expect(over.status).toBe(429);
    expect(((await over.json()) as { error: { code: string } }).error.code).toBe('LIMIT_REACHED');
    // The budget is spent for other paths too, and a valid player still gets through.
    expect((await fetch(`${n.url}/healthz`)).status).toBe(429);
    expect((await fetch(`${n.url}${path}?token=${token}`)).status).toBe(409);
  });

  test('connections per IP: the one over the limit is refused at the handshake with LIMIT_REACHED', async () => {
    // The TCP cap (which would close the third connection before any handshake) is raised, as
    // behind a proxy, so the signaling layer's own count is what refuses.
    const n = await startTestNode({ CHORUS_LIMIT_CONNECTIONS_PER_IP: '2', CHORUS_LIMIT_TCP_CONNECTIONS_PER_ADDRESS: '100' });
    cleanup.push(() => n.close());
    await raw(n);
    await raw(n);
    const third = io(n.url, { transports: ['websocket'], forceNew: true, reconnection: false });
    cleanup.push(() => third.close());
    const error = await new Promise<{ message: string; data?: { code: string } }>((resolve) => third.once('connect_error', resolve));
    expect(error.data?.code).toBe('LIMIT_REACHED');
    expect(n.limits.connectionsFrom('127.0.0.1')).toBe(2);
  });

  test('joins per room per second, and rooms per API key', async () => {
    const n = await startTestNode({ CHORUS_LIMIT_JOINS_PER_ROOM_PER_SECOND: '2', CHORUS_LIMIT_ROOMS_PER_API_KEY: '1' });
    cleanup.push(() => n.close());
    const codes: Array<string | undefined> = [];
    for (let i = 0; i < 3; i++) codes.push(await (await raw(n)).code('join', { roomId: 'busy', token: await tokenFor(n, 'busy', 'listener') }));
    expect(codes).toEqual([undefined, undefined, 'LIMIT_REACHED']);
    expect(await (await raw(n)).code('join', { roomId: 'second', token: await tokenFor(n, 'second', 'listener') })).toBe('LIMIT_REACHED');
  });
});

describe('HTTP hardening', () => {
  test('security headers are set and errors carry no stack', async () => {
    const r = await fetch(`${node.url}/healthz`);
    expect(r.headers.get('x-content-type-options')).toBe('nosniff');
    expect(r.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(r.headers.get('content-security-policy')).not.toContain('upgrade-insecure-requests');
    const bad = await fetch(`${node.url}/api/tokens`, { method: 'POST', body: '{"broken', headers: { 'content-type': 'application/json', authorization: basic(KEY.id, KEY.secret) } });
    expect(bad.status).toBe(400);
    const text = await bad.text();
    expect(text).not.toMatch(/at .*\.(ts|js):\d+/);
    expect(JSON.parse(text)).toMatchObject({ error: { code: 'BAD_REQUEST' } });
  });

  test('malformed and over-long URLs get the documented JSON error shape with a code, never Fastify\'s own', async () => {
    const webDir = mkdtempSync(join(tmpdir(), 'chorus-web-'));
    writeFileSync(join(webDir, 'index.html'), '<!doctype html><title>t</title>');
    const n = await startTestNode({ CHORUS_WEB_DIR: webDir });
    cleanup.push(() => n.close());
    const cases: Array<[string, number]> = [
      ['/%', 400],
      ['/api/%E0%A4%A', 400],
      ['/hls/%ZZ/index.m3u8', 400],
      ['/watch.html%', 400],
      [`/api/admin/rooms/${'a'.repeat(300)}`, 404],
      [`/${'a'.repeat(5000)}`, 404],
      [`/${'a'.repeat(20_000)}`, 431],
    ];
    // Without the pages' wildcard route, a path parameter over Fastify's maxParamLength is a 414.
    const apiOnly: Array<[string, number]> = [[`/api/admin/rooms/${'a'.repeat(300)}`, 414], ['/api/%E0%A4%A', 400]];
    for (const [target, path, status] of [...cases.map(([p, c]) => [n, p, c] as const), ...apiOnly.map(([p, c]) => [node, p, c] as const)]) {
      const reply = await rawHttp(target, path);
      const what = `GET ${path.slice(0, 40)} → ${reply.status} ${reply.body.slice(0, 200)}`;
      expect(reply.status, what).toBe(status);
      expect(reply.headers, what).toMatch(/content-type: application\/json/i);
      const body = JSON.parse(reply.body) as Record<string, unknown>;
      expect(Object.keys(body), what).toEqual(['error']);
      expect(body['error'], what).toEqual({ code: expect.stringMatching(/^[A-Z_]+$/), message: expect.any(String), retryable: false });
      expect(reply.body, what).not.toMatch(/FST_|statusCode/);
      expect(reply.body.length, what).toBeLessThan(1000);
    }
  });

  test('CORS allow-list applies to the API and to the signaling handshake', async () => {
    const n = await startTestNode({ CHORUS_CORS_ORIGINS: 'https://masjid.example' });
    cleanup.push(() => n.close());
    const allowed = await fetch(`${n.url}/api/config`, { headers: { origin: 'https://masjid.example' } });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://masjid.example');
    const other = await fetch(`${n.url}/api/config`, { headers: { origin: 'https://evil.example' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    const refused = io(n.url, { transports: ['websocket'], forceNew: true, reconnection: false, extraHeaders: { origin: 'https://evil.example' } });
    cleanup.push(() => refused.close());
    await new Promise((resolve) => refused.once('connect_error', resolve));
    const welcome = io(n.url, { transports: ['websocket'], forceNew: true, reconnection: false, extraHeaders: { origin: 'https://masjid.example' } });
    cleanup.push(() => welcome.close());
    await new Promise<void>((resolve) => welcome.once('connect', () => resolve()));
    // The node's own pages (Origin = the node's URL) keep their WebSocket whatever the list says.
    const own = io(n.url, { transports: ['websocket'], forceNew: true, reconnection: false, extraHeaders: { origin: n.url } });
    cleanup.push(() => own.close());
    await new Promise<void>((resolve, reject) => {
      own.once('connect', () => resolve());
      own.once('connect_error', reject);
    });
    // A foreign origin naming the node's port on another host is still foreign.
    const lookalike = io(n.url, { transports: ['websocket'], forceNew: true, reconnection: false, extraHeaders: { origin: n.url.replace('127.0.0.1', 'evil.example') } });
    cleanup.push(() => lookalike.close());
    await new Promise((resolve) => lookalike.once('connect_error', resolve));
  });

  test('TLS: with a certificate and key the node serves HTTPS itself', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chorus-tls-'));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);
    const n = await startTestNode({ CHORUS_TLS_CERT: cert, CHORUS_TLS_KEY: key });
    cleanup.push(() => n.close());
    expect(n.url.startsWith('https://')).toBe(true);
    const body = await new Promise<string>((resolve, reject) => {
      httpsRequest(`${n.url}/healthz`, { ca: readFileSync(cert) }, (res) => {
        let data = '';
        res.on('data', (c: Buffer) => (data += c.toString()));
        res.on('end', () => resolve(`${res.statusCode} ${res.headers['strict-transport-security'] ? 'hsts ' : ''}${data}`));
      }).on('error', reject).end();
    });
    expect(body).toBe('200 hsts {"status":"ok"}');
  });
});

describe('audit', () => {
  test('join refusals carry their reason; broadcasts record start and stop', async () => {
    const before = audit.length;
    const s = await raw();
    await s.code('join', { roomId: 'aud', token: await tokenFor(node, 'elsewhere', 'listener', 'lost') });
    const client = await broadcasting('aud');
    await client.unpublish();
    await until(() => audit.slice(before).some((e) => e.type === 'broadcast.stopped'), 5000, 'broadcast.stopped');
    const types = audit.slice(before).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(['join.refused', 'join.accepted', 'broadcast.started', 'broadcast.stopped']));
    expect(audit.slice(before).find((e) => e.type === 'join.refused')).toMatchObject({ code: 'TOKEN_WRONG_ROOM', identity: 'lost' });
    expect(audit.slice(before).find((e) => e.type === 'broadcast.stopped')).toMatchObject({ room: 'aud', reason: 'stopped' });
  });
});

/** 127.0.0.0/8 is all loopback on Linux: a second client address on the same machine. */
const SECOND = '127.0.0.2';
const fromSecond = { transports: ['websocket'], localAddress: SECOND } as Partial<ManagerOptions & SocketOptions>;


function metric(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.split(' ').at(-1)) : Number.NaN;
}

describe('connection exhaustion', () => {
  test('one address holds at most its share of TCP connections; the rest are closed at once, /healthz and other addresses are served', async () => {
    const captured = captureLogs();
    // Handshakes are not timed out here: the connections below are held by the cap alone.
    const n = await startTestNode({ CHORUS_LIMIT_CONNECTIONS_PER_IP: '20', CHORUS_HANDSHAKE_TIMEOUT_MS: '60000', CHORUS_LIMIT_LOG_INTERVAL_MS: '3600000' }, captured.log);
    cleanup.push(() => n.close());
    const held: RawConnection[] = [];
    cleanup.push(() => held.forEach((c) => c.close()));
    // Every layer counts: Engine.IO WebSockets that never send the Socket.IO connect packet,
    // a header that never ends, a bare socket, and a real Socket.IO session.
    for (let i = 0; i < 8; i++) {
      const ws = await rawEngineWebSocket(n);
      expect(ws.upgraded).toBe(true);
      held.push(ws);
    }
    for (let i = 0; i < 6; i++) held.push(await rawConnection(n, { send: 'GET /healthz HTTP/1.1\r\nHost: x\r\n' }));
    for (let i = 0; i < 5; i++) held.push(await rawConnection(n));
    const session = await raw(n);
    await until(() => n.connections.openFrom('127.0.0.1') === 20, 5000, 'twenty connections counted');

    const over = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? rawEngineWebSocket(n) : rawConnection(n))));
    await until(() => over.every((c) => c.isClosed()), 5000, 'connections over the cap to be closed');
    expect(over.filter((c) => 'upgraded' in c && c.upgraded)).toEqual([]);
    expect(n.connections.openFrom('127.0.0.1')).toBe(20);
    // The held ones are untouched: the real session still answers.
    expect(await session.code('getRouterRtpCapabilities', {})).toBe('NOT_JOINED');

    // Another address is served: health, metrics, and a real broadcast heard through the SDK.
    expect(await getFrom(`${n.url}/healthz`, SECOND)).toEqual({ status: 200, body: '{"status":"ok"}' });
    const tone = toneTrack(880);
    cleanup.push(() => tone.stop());
    const speaker = nodeClient(n, 'flooded', await tokenFor(n, 'flooded', 'broadcaster'), { socket: fromSecond });
    cleanup.push(() => speaker.close());
    await speaker.join();
    await speaker.publish(tone.track);
    const listener = await joinListener(n, 'flooded', { socket: fromSecond });
    cleanup.push(() => listener.close());
    await listener.hears(880);

    const metrics = (await getFrom(`${n.url}/metrics`, SECOND)).body;
    expect(metric(metrics, 'chorus_connections_refused_total', 'reason="address_cap"')).toBeGreaterThanOrEqual(30);
    expect(metric(metrics, 'chorus_connections_open')).toBeGreaterThanOrEqual(22);
    // Visible, and once: one line for the address however many were refused.
    const refusals = captured.lines.filter((l) => l.msg.startsWith('connection refused'));
    expect(refusals).toHaveLength(1);
    expect(refusals[0]).toMatchObject({ level: WARN, address: '127.0.0.1', limit: 20 });

    // Released as they close: the address is served again.
    for (const c of held.splice(0)) c.close();
    session.close();
    await until(() => n.connections.openFrom('127.0.0.1') === 0, 5000, 'the address to hold nothing');
    expect((await fetch(`${n.url}/healthz`)).status).toBe(200);
  });

  test('a forged X-Forwarded-For does not get around the cap: it counts the socket\'s address', async () => {
    const n = await startTestNode({ CHORUS_LIMIT_CONNECTIONS_PER_IP: '5', CHORUS_TRUST_PROXY: 'true', CHORUS_LIMIT_TCP_CONNECTIONS_PER_ADDRESS: '5', CHORUS_HANDSHAKE_TIMEOUT_MS: '60000' });
    cleanup.push(() => n.close());
    const held = await Promise.all(
      Array.from({ length: 5 }, (_, i) => rawConnection(n, { send: `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.${i}\r\n` })),
    );
    cleanup.push(() => held.forEach((c) => c.close()));
    await until(() => n.connections.openFrom('127.0.0.1') === 5, 5000, 'five connections counted');
    const forged = await rawConnection(n, { send: 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n' });
    await until(() => forged.isClosed(), 5000, 'the connection with a forged address to be closed');
    expect(forged.received()).toBe('');
  });

  test('idle handshakes are dropped after the handshake timeout; connected sessions and polling stay', async () => {
    const n = await startTestNode({ CHORUS_HANDSHAKE_TIMEOUT_MS: '1000' });
    cleanup.push(() => n.close());
    const session = await raw(n);
    const polling = await RawSocket.connect(n, { transports: ['polling'] });
    cleanup.push(() => polling.close());
    const idle = [await rawEngineWebSocket(n), await rawConnection(n), await rawConnection(n, { send: 'GET / HTTP/1.1\r\n' })];
    cleanup.push(() => idle.forEach((c) => c.close()));
    expect(idle[0]).toMatchObject({ upgraded: true });
    // Well within Socket.IO's former 45 s and Node's 60 s header timeout.
    await until(() => idle.every((c) => c.isClosed()), 10_000, 'idle handshakes to be closed').catch((e: Error) => {
      throw new Error(`${e.message}: still open ${idle.map((c, i) => (c.isClosed() ? '' : i)).join(' ')}`);
    });
    expect(await session.code('getRouterRtpCapabilities', {})).toBe('NOT_JOINED');
    expect(await polling.code('getRouterRtpCapabilities', {})).toBe('NOT_JOINED');
    const metrics = await (await fetch(`${n.url}/metrics`)).text();
    expect(metric(metrics, 'chorus_connections_refused_total', 'reason="idle"')).toBeGreaterThanOrEqual(2);
  });

  test('a flood over many connections from one address logs one warning per kind of refusal, and each flooding connection is cut once', async () => {
    const captured = captureLogs();
    const n = await startTestNode({ CHORUS_LIMIT_MESSAGES_PER_CONNECTION_PER_SECOND: '5', CHORUS_LIMIT_MESSAGE_BURST_PER_CONNECTION: '0', CHORUS_LIMIT_CONNECTIONS_PER_IP: '3', CHORUS_LIMIT_TCP_CONNECTIONS_PER_ADDRESS: '100', CHORUS_LIMIT_LOG_INTERVAL_MS: '3600000' }, captured.log);
    cleanup.push(() => n.close());
    const flooders = await Promise.all(Array.from({ length: 3 }, () => raw(n)));
    // Past the per-address session cap: refused at the handshake, each one.
    const refused = await Promise.all(
      Array.from({ length: 6 }, () =>
        RawSocket.connect(n).then(
          (s) => (s.close(), 'connected'),
          (error: { data?: { code: string } }) => error.data?.code,
        ),
      ),
    );
    expect(refused).toEqual(Array(6).fill('LIMIT_REACHED'));
    // Each connection ignores LIMIT_REACHED until the server cuts it.
    await Promise.all(flooders.map((f) => Promise.all(Array.from({ length: 400 }, () => f.call('getRouterRtpCapabilities', {}).catch(() => undefined)))));
    await until(() => flooders.every((f) => !f.socket.connected), 10_000, 'flooders to be cut off');
    // Refusal lines name their offender (ip or address); other warnings are not this test's business.
    const warnings = captured.lines.filter((l) => l.level >= WARN && (l['ip'] !== undefined || l['address'] !== undefined));
    const byOffence = new Map<string, number>();
    for (const l of warnings) {
      const offence = `${l.msg} ${String(l['ip'] ?? l['address'])}`;
      byOffence.set(offence, (byOffence.get(offence) ?? 0) + 1);
    }
    expect(Object.fromEntries(byOffence)).toEqual({
      'connection kept flooding past its limit; closing it 127.0.0.1': 1,
      'signaling connection refused: this address holds its share 127.0.0.1': 1,
    });
    const metrics = await (await fetch(`${n.url}/metrics`)).text();
    expect(metric(metrics, 'chorus_connections_refused_total', 'reason="flood"')).toBe(3);
    expect(metric(metrics, 'chorus_connections_refused_total', 'reason="signaling_cap"')).toBe(6);
  });
});

describe('shared listening links', () => {
  test('a venue: 320 people behind one address join through one reusable link within a minute', async () => {
    // The per-room rate (joins per second) is another limit; it is lifted so only the link's budget is tested.
    const n = await startTestNode({ CHORUS_LIMIT_JOINS_PER_ROOM_PER_SECOND: '100000' });
    cleanup.push(() => n.close());
    const link = await n.tokens.mint({ room: 'masjid', identity: 'public', role: 'listener', grants: { reusable: true } }, 3600);
    const people: RawSocket[] = [];
    cleanup.push(() => people.forEach((p) => p.close()));
    const codes: Array<string | undefined> = [];
    for (let batch = 0; batch < 16; batch++) {
      const joined = await Promise.all(
        Array.from({ length: 20 }, async () => {
          const s = await RawSocket.connect(n);
          people.push(s);
          return s.code('join', { roomId: 'masjid', token: link });
        }),
      );
      codes.push(...joined);
    }
    expect(codes.filter((c) => c !== undefined)).toEqual([]);
    expect(n.rooms.get('masjid')?.peers.size).toBe(320);
  }, 60_000);

  test('a flood through a shared link beyond its budget is refused with LIMIT_REACHED and a retry delay, and changes nothing', async () => {
    const n = await startTestNode({ CHORUS_LIMIT_JOINS_PER_SHARED_LINK_PER_MINUTE: '40', CHORUS_LIMIT_JOINS_PER_ROOM_PER_SECOND: '100000' });
    cleanup.push(() => n.close());
    const events: AuditEvent[] = [];
    n.audit.on('event', (e) => events.push(e));
    const link = await n.tokens.mint({ room: 'venue', identity: 'public', role: 'listener', grants: { reusable: true } }, 3600);
    const sockets: RawSocket[] = [];
    cleanup.push(() => sockets.forEach((p) => p.close()));
    const join = async (options = {}) => {
      const s = await RawSocket.connect(n, options);
      sockets.push(s);
      return s.call('join', { roomId: 'venue', token: link });
    };
    for (let i = 0; i < 40; i++) expect((await join()).ok).toBe(true);
    const flood = await Promise.all(Array.from({ length: 25 }, () => join()));
    for (const reply of flood) {
      expect(reply.error).toMatchObject({ code: 'LIMIT_REACHED', retryable: true });
      expect((reply.error as { retryAfterMs?: number }).retryAfterMs).toBeGreaterThan(0);
    }
    expect(n.rooms.get('venue')?.peers.size).toBe(40);
    expect(events.filter((e) => e.type === 'limit.exceeded')).toEqual([expect.objectContaining({ limit: 'joinsPerSharedLink' })]);
    // Keys written to records and logs carry no control characters.
    expect(events.filter((e) => e.type === 'limit.exceeded').map((e) => (e as { key: string }).key).join('')).not.toMatch(/[\u0000-\u001f]/);
    // The budget is per address: a household elsewhere still gets in.
    expect((await join(fromSecond)).ok).toBe(true);
  });

  test('a full room answers ROOM_FULL (not a rate limit)', async () => {
    const n = await startTestNode({ CHORUS_MAX_PEERS_PER_ROOM: '2' });
    cleanup.push(() => n.close());
    const link = await n.tokens.mint({ room: 'small', identity: 'public', role: 'listener', grants: { reusable: true } }, 3600);
    const codes: Array<string | undefined> = [];
    for (let i = 0; i < 3; i++) codes.push(await (await raw(n)).code('join', { roomId: 'small', token: link }));
    expect(codes).toEqual([undefined, undefined, 'ROOM_FULL']);
  });
});
