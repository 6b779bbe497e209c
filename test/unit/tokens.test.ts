import { SignJWT } from 'jose';
import { describe, expect, test } from 'vitest';
import { TokenService } from '../../src/auth/tokens.js';
import { ChorusError } from '../../src/protocol/errors.js';

const secret = new TextEncoder().encode('s'.repeat(32));
const tokens = new TokenService(secret, 60);

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'resolved';
  } catch (error) {
    return error instanceof ChorusError ? error.code : `other: ${String(error)}`;
  }
}

describe('room tokens', () => {
  test('carry the room kind (broadcast when absent) and the control grant, also into resume tokens', async () => {
    expect((await tokens.verify(await tokens.mint({ room: 'r', identity: 'a', role: 'listener' }))).kind).toBe('broadcast');
    const watch = await tokens.verify(await tokens.mint({ room: 'r', identity: 'b', role: 'participant', kind: 'watch', grants: { control: true } }));
    expect(watch).toMatchObject({ kind: 'watch', grants: { control: true } });
    const resumed = await tokens.verify(await tokens.resumeToken(watch, 60));
    expect(resumed).toMatchObject({ kind: 'watch', grants: { control: true }, resume: true });
    expect(await codeOf(tokens.mint({ room: 'r', identity: 'c', role: 'host', kind: 'cinema' as never }))).toBe('BAD_REQUEST');
  });

  test('round-trips room, identity, role and name', async () => {
    const token = await tokens.mint({ room: 'r1', identity: 'imam', role: 'broadcaster', name: 'Imam' });
    const verified = await tokens.verify(token);
    expect(verified).toMatchObject({ room: 'r1', identity: 'imam', role: 'broadcaster', name: 'Imam', keyId: 'default', resume: false });
    expect(verified.tokenId).toMatch(/^[0-9a-f-]{36}$/);
    expect(verified.expiresAtMs - verified.issuedAtMs).toBeGreaterThan(59_000);
  });

  test('a token signed with another secret is invalid', async () => {
    const other = new TokenService(new TextEncoder().encode('x'.repeat(32)), 60);
    expect(await codeOf(tokens.verify(await other.mint({ room: 'r', identity: 'i', role: 'listener' })))).toBe('TOKEN_INVALID');
  });

  test('an expired token says so', async () => {
    const expired = await new SignJWT({ room: 'r', role: 'listener' })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('chorus')
      .setSubject('i')
      .setIssuedAt(Math.floor(Date.now() / 1000) - 120)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(secret);
    expect(await codeOf(tokens.verify(expired))).toBe('TOKEN_EXPIRED');
  });

  test('unknown roles, bad room ids, missing subjects and garbage are refused', async () => {
    const sign = (claims: Record<string, unknown>, sub?: string) => {
      const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuer('chorus').setExpirationTime('1m');
      if (sub) jwt.setSubject(sub);
      return jwt.sign(secret);
    };
    expect(await codeOf(tokens.verify(await sign({ room: 'r', role: 'admin' }, 'i')))).toBe('TOKEN_INVALID');
    expect(await codeOf(tokens.verify(await sign({ room: '../x', role: 'listener' }, 'i')))).toBe('TOKEN_INVALID');
    expect(await codeOf(tokens.verify(await sign({ room: 'r', role: 'listener' })))).toBe('TOKEN_INVALID');
    expect(await codeOf(tokens.verify('not-a-jwt'))).toBe('TOKEN_INVALID');
  });

  test('the "none" algorithm is not accepted', async () => {
    const header = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');
    const body = Buffer.from(JSON.stringify({ room: 'r', role: 'broadcaster', sub: 'i', iss: 'chorus', exp: 9e9 })).toString('base64url');
    expect(await codeOf(tokens.verify(`${header}.${body}.`))).toBe('TOKEN_INVALID');
  });
});

describe('API key tenants', () => {
  test('a key is its own tenant unless it names one (id@tenant:secret); tokens carry their key\'s tenant, resume tokens too', async () => {
    const { ApiKeyring } = await import('../../src/auth/apiKeys.js');
    const ring = ApiKeyring.parse(`new@prod:${'n'.repeat(32)}, prod:${'p'.repeat(32)},other:${'o'.repeat(32)}`);
    expect(ring.ids.map((id) => [id, ring.get(id)!.tenant])).toEqual([['new', 'prod'], ['prod', 'prod'], ['other', 'other']]);
    const service = new TokenService(ring, 60);
    const minted = await service.verify(await service.mint({ room: 'r', identity: 'a', role: 'listener' }));
    expect(minted).toMatchObject({ keyId: 'new', tenant: 'prod' });
    expect(await service.verify(await service.resumeToken(minted, 60))).toMatchObject({ keyId: 'new', tenant: 'prod', resume: true });
    expect((await service.verify((await service.issue({ room: 'r', identity: 'a', role: 'listener' }, { keyId: 'other' })).token)).tenant).toBe('other');
    expect((await tokens.verify(await tokens.mint({ room: 'r', identity: 'a', role: 'listener' }))).tenant).toBe('default');
    for (const bad of [`a@b@c:${'s'.repeat(32)}`, `a@:${'s'.repeat(32)}`, `a@b c:${'s'.repeat(32)}`]) expect(() => ApiKeyring.parse(bad), bad).toThrow();
  });
});
