/**
 * The server SDK as another application gets it: built and packed (`npm pack`), installed from
 * the tarball into a project of its own in a temporary directory, then used against a real node:
 * a token it mints without a node joins; a grant a node refuses it refuses with the node's words;
 * it verifies a node's webhook signature; its typed client calls the admin and media REST APIs;
 * and an example using it compiles under `strict` against the packed `.d.ts`.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ChorusNode } from '../../src/app.js';
import { signWebhook } from '../../src/webhooks/signature.js';
import { installPacked, type PackedApp } from '../support/packedPackages.js';
import { startTestNode } from '../support/testNode.js';

type Sdk = typeof import('../../packages/server-sdk/src/index.js');

const SECRET = 't'.repeat(40);
const key = { id: 'test', secret: SECRET };
let app: PackedApp;
let sdk: Sdk;
let node: ChorusNode;

beforeAll(async () => {
  app = await installPacked(['server-sdk']);
  sdk = (await import(app.moduleUrl('@chorus-rtc/server-sdk', 'dist/index.js'))) as Sdk;
  node = await startTestNode();
}, 180_000);
afterAll(async () => {
  await node?.close();
  app?.remove();
});

test('a token it mints without a node joins one; a grant a node refuses it refuses, in the node\'s words', async () => {
  const { token, tokenId, expiresAtMs } = await sdk.mintToken(key, { room: 'sdk-room', identity: 'amina', role: 'participant', kind: 'call', name: 'Amina' }, { ttlSeconds: 120 });
  const verified = await node.tokens.verify(token);
  expect(verified).toMatchObject({ room: 'sdk-room', identity: 'amina', role: 'participant', kind: 'call', name: 'Amina', tokenId, keyId: 'test', resume: false });
  expect(Math.abs(expiresAtMs - Date.now() - 120_000)).toBeLessThan(2000);
  const server = new sdk.ChorusServer({ url: node.url, key });
  await server.createRoom('sdk-room', 'call');
  const joined = await server.join('sdk-room', { token });
  expect(joined.identity).toBe('amina');
  expect(node.rooms.get('sdk-room')?.peers.has(joined.participantId)).toBe(true);

  for (const grant of [
    { room: 'sdk-room', identity: 'x'.repeat(300), role: 'participant' as const },
    { room: 'bad room', identity: 'x', role: 'listener' as const },
    { room: 'sdk-room', identity: 'x', role: 'participant' as const, grants: { reusable: true } },
  ]) {
    const byNode = (await (await fetch(`${node.url}/api/tokens`, { method: 'POST', headers: { authorization: server.authorization, 'content-type': 'application/json' }, body: JSON.stringify(grant) })).json()) as { error: { code: string; message: string } };
    const bySdk = await sdk.mintToken(key, grant).then(() => undefined, (error: unknown) => error as { code: string; message: string; status: number });
    expect(bySdk, JSON.stringify(grant).slice(0, 60)).toMatchObject({ name: 'ChorusApiError', status: 0, code: byNode.error.code });
    expect(bySdk!.message).toContain(byNode.error.message);
  }
  await expect(sdk.mintToken({ id: 'test', secret: 'short' }, { room: 'r', identity: 'i', role: 'listener' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
});

test('it verifies a node\'s webhook signature, and refuses a tampered body or a stale signature', () => {
  const body = JSON.stringify({ id: 'w1', event: 'room_started', room: 'sdk-room' });
  const signature = signWebhook(body, SECRET);
  expect(sdk.verifyWebhook(body, signature, SECRET)).toBe(true);
  expect(sdk.verifyWebhook(body.replace('sdk-room', 'sdk-roon'), signature, SECRET)).toBe(false);
  expect(sdk.verifyWebhook(body, signWebhook(body, SECRET, Math.floor(Date.now() / 1000) - 3600), SECRET)).toBe(false);
  expect(sdk.verifyWebhook(body, undefined, SECRET)).toBe(false);
  expect(sdk.SIGNATURE_HEADER).toBe('chorus-signature');
});

test('its client calls the admin API and the media REST API; a refusal is a ChorusApiError with the node\'s code', async () => {
  const server = new sdk.ChorusServer({ url: `${node.url}/`, key });
  const created = await server.createRoom('sdk-media', 'class');
  expect(created).toMatchObject({ roomId: 'sdk-media', kind: 'class', node: expect.any(String) });
  const student = await server.join('sdk-media', { identity: 'student-1', role: 'student' });
  const transport = await server.createTransport('sdk-media', student.participantId, { direction: 'recv' });
  expect(transport.id).toMatch(/^[0-9a-f-]{36}$/);
  await expect(server.createTransport('sdk-media', student.participantId, { direction: 'send' })).rejects.toMatchObject({ name: 'ChorusApiError', status: 403, code: 'FORBIDDEN_ROLE', retryable: false });
  const { rooms } = await server.listRooms();
  expect(rooms.find((r) => r.id === 'sdk-media')).toMatchObject({ kind: 'class', peers: 1 });
  const room = await server.getRoom('sdk-media');
  expect(room.participants.map((p) => p.identity)).toEqual(['student-1']);
  expect(await server.leave('sdk-media', student.participantId)).toEqual({});
  const minted = await server.createToken({ room: 'sdk-media', identity: 'teacher', role: 'teacher', kind: 'class' }, 60);
  expect((await node.tokens.verify(minted.token)).role).toBe('teacher');
  const wrong = new sdk.ChorusServer({ url: node.url, key: { id: 'test', secret: 'w'.repeat(40) } });
  await expect(wrong.listRooms()).rejects.toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
  await expect(server.getRoom('no-such-room')).rejects.toMatchObject({ status: 404, code: 'NOT_FOUND' });
});

test('an example using it compiles under strict against the packed .d.ts, and a wrong call does not', async () => {
  writeFileSync(
    join(app.dir, 'example.ts'),
    [
      "import { ChorusApiError, ChorusServer, mintToken, verifyWebhook, type RoomView } from '@chorus-rtc/server-sdk';",
      "const key = { id: 'prod', secret: 'p'.repeat(40) };",
      "const minted: { token: string; tokenId: string; expiresAtMs: number } = await mintToken(key, { room: 'maths', identity: 'amina', role: 'student', kind: 'class' });",
      "const server = new ChorusServer({ url: 'http://localhost:3000', key });",
      'const rooms: RoomView[] = (await server.listRooms()).rooms;',
      "const joined = await server.join('maths', { token: minted.token });",
      "const transport = await server.createTransport('maths', joined.participantId, { direction: 'recv' });",
      'const ok: boolean = verifyWebhook(\'{}\', undefined, key.secret);',
      'const code: string | undefined = new ChorusApiError(401, \'UNAUTHORIZED\', \'no\').code;',
      '// @ts-expect-error a role no room has',
      "await mintToken(key, { room: 'maths', identity: 'x', role: 'king' });",
      '// @ts-expect-error a direction that does not exist',
      "await server.createTransport('maths', joined.participantId, { direction: 'sideways' });",
      'console.log(rooms, transport.id, ok, code);',
      '',
    ].join('\n'),
  );
  expect(await app.typecheck('example.ts')).toBe('ok');
  // And the check is real: the same example with the expectations removed does not compile.
  writeFileSync(join(app.dir, 'wrong.ts'), "import { mintToken } from '@chorus-rtc/server-sdk';\nawait mintToken({ id: 'a', secret: 'b' }, { room: 'r', identity: 'i', role: 'king' });\n");
  expect(await app.typecheck('wrong.ts')).toMatch(/wrong\.ts.*error TS2322/);
}, 120_000);
