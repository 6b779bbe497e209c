/**
 * Room tokens: HS256 JWTs signed with an API key's secret (header `kid` names the key), carrying
 * the room, the identity (`sub`), the role, a unique id (`jti`), an expiry and optional grants.
 * Join tokens are short-lived and single-use; on join the node hands back a resume token so the
 * SDK can reconnect as the same identity without a fresh join token.
 */
import { randomUUID } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import { ChorusError } from '../protocol/errors.js';
import type { RoomKind } from '../protocol/messages.js';
import type { ApiKeyring } from './apiKeys.js';
import { ALGORITHM, claims, grantRefusal, ISSUER, signGrant, type Grants, type RoomGrant } from './roomToken.js';

export { grantSchema, type Grants, type PublishGrant, type RoomGrant } from './roomToken.js';

export interface VerifiedGrant extends RoomGrant {
  grants: Grants;
  kind: RoomKind;
  tokenId: string;
  keyId: string;
  /** The tenant of the signing key: the only one whose rooms the token may join or open. */
  tenant: string;
  issuedAtMs: number;
  expiresAtMs: number;
  /** A resume token the node issued, not a join token from the operator. */
  resume: boolean;
}

const encoder = new TextEncoder();

export interface MintedToken {
  token: string;
  tokenId: string;
  keyId: string;
  expiresAtMs: number;
}

export class TokenService {
  readonly #secrets = new Map<string, Uint8Array>();
  readonly #tenants = new Map<string, string>();
  readonly #primary: string;

  /**
   * @param keys the API keyring, or one raw secret (used as key id `default`).
   * @param defaultTtlSeconds lifetime of a join token unless the caller asks otherwise.
   * @param maxTtlSeconds the longest lifetime anyone may ask for.
   */
  constructor(
    keys: ApiKeyring | Uint8Array,
    readonly defaultTtlSeconds: number,
    readonly maxTtlSeconds = 7 * 24 * 3600,
  ) {
    if (keys instanceof Uint8Array) {
      this.#secrets.set('default', keys);
      this.#tenants.set('default', 'default');
      this.#primary = 'default';
    } else {
      for (const id of keys.ids) {
        const key = keys.get(id)!;
        this.#secrets.set(id, encoder.encode(key.secret));
        this.#tenants.set(id, key.tenant);
      }
      this.#primary = keys.primary.id;
    }
  }

  async mint(grant: RoomGrant, ttlSeconds?: number): Promise<string> {
    return (await this.issue(grant, { ttlSeconds })).token;
  }

  async issue(grant: RoomGrant, options: { ttlSeconds?: number | undefined; keyId?: string | undefined; resume?: boolean } = {}): Promise<MintedToken> {
    const refusal = grantRefusal(grant);
    if (refusal) throw new ChorusError('BAD_REQUEST', refusal);
    const ttl = options.ttlSeconds ?? this.defaultTtlSeconds;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > this.maxTtlSeconds) {
      throw new ChorusError('BAD_REQUEST', `ttl must be 1..${this.maxTtlSeconds} seconds`);
    }
    const keyId = options.keyId ?? this.#primary;
    const secret = this.#secrets.get(keyId);
    if (!secret) throw new ChorusError('BAD_REQUEST', `no API key ${keyId}`);
    const signed = await signGrant(grant, { id: keyId, secret }, ttl, { resume: options.resume, tokenId: randomUUID() });
    return { ...signed, keyId };
  }

  /** A token that lets this session reconnect as itself; same key, same grants. */
  async resumeToken(grant: VerifiedGrant, ttlSeconds: number): Promise<string> {
    const { room, identity, role, name, grants, kind } = grant;
    return (await this.issue({ room, identity, role, name, grants, kind }, { ttlSeconds, keyId: grant.keyId, resume: true })).token;
  }

  async verify(token: string): Promise<VerifiedGrant> {
    let keyId: string;
    try {
      const header = decodeProtectedHeader(token);
      // Tokens without a key id are accepted only while a single key exists (no ambiguity).
      keyId = header.kid ?? (this.#secrets.size === 1 ? this.#primary : '');
    } catch {
      throw new ChorusError('TOKEN_INVALID', 'token is not a JWT');
    }
    const secret = this.#secrets.get(keyId);
    if (!secret) throw new ChorusError('TOKEN_INVALID', 'token names an unknown API key');
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(token, secret, { issuer: ISSUER, algorithms: [ALGORITHM] }));
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw new ChorusError('TOKEN_EXPIRED', 'token has expired');
      throw new ChorusError('TOKEN_INVALID', 'token signature or format is invalid');
    }
    const parsed = claims.safeParse(payload);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ChorusError('TOKEN_INVALID', `token claim ${issue?.path.join('.') || '?'} is invalid: ${issue?.message}`);
    }
    const c = parsed.data;
    const grants: Grants = { ...c.grants };
    if (c.role !== 'listener') delete grants.reusable;
    return {
      room: c.room,
      identity: c.sub,
      role: c.role,
      name: c.name,
      grants,
      kind: c.kind ?? 'broadcast',
      tokenId: c.jti,
      keyId,
      tenant: this.#tenants.get(keyId)!,
      issuedAtMs: c.ims !== undefined && Math.abs(c.ims - c.iat * 1000) < 1000 ? c.ims : c.iat * 1000,
      expiresAtMs: c.exp * 1000,
      resume: c.typ === 'resume',
    };
  }
}
