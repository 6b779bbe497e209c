/**
 * Room tokens: HS256 JWTs signed with an API key's secret (header `kid` names the key), carrying
 * the room, the identity (`sub`), the role, a unique id (`jti`), an expiry and optional grants.
 * Join tokens are short-lived and single-use; on join the node hands back a resume token so the
 * SDK can reconnect as the same identity without a fresh join token.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import { z } from 'zod';
import { ChorusError } from '../protocol/errors.js';
import { displayName, identityText, roles, roomId, roomKinds, type Role, type RoomKind } from '../protocol/messages.js';
import { trackSources } from '../protocol/room.js';

const publishGrant = z.enum(['audio', 'video', ...trackSources]);
export type PublishGrant = z.infer<typeof publishGrant>;
import type { ApiKeyring } from './apiKeys.js';

export interface Grants {
  /**
   * What this token may publish, where the role allows it: media kinds (`audio` means every
   * audio source) or sources (`camera`, `screen`, ...).
   */
  publish?: PublishGrant[] | undefined;
  /** May publish data messages (chat, reactions) where the room has them. */
  data?: boolean | undefined;
  /** May mute, kick and end (moderator powers for any role). */
  moderate?: boolean | undefined;
  /** A broadcaster token with `replace` takes the seat from a present broadcaster. */
  replace?: boolean | undefined;
  /** Listener tokens only: may be used by many joins (a public listening link). */
  reusable?: boolean | undefined;
  /** Watch rooms: may change playback whoever hosts (a co-host). */
  control?: boolean | undefined;
}

export interface RoomGrant {
  room: string;
  identity: string;
  role: Role;
  name?: string | undefined;
  grants?: Grants | undefined;
  /** The kind of room the token opens or joins; broadcast when absent. */
  kind?: RoomKind | undefined;
}

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

const grantsSchema = z.strictObject({
  publish: z.array(publishGrant).max(6).optional(),
  data: z.boolean().optional(),
  moderate: z.boolean().optional(),
  replace: z.boolean().optional(),
  reusable: z.boolean().optional(),
  control: z.boolean().optional(),
});

const claims = z.object({
  room: roomId,
  // The same rule as minting: a token made with the key but not through the API (a hand-rolled
  // signer, an older node) must not bring an identity the API would refuse.
  sub: identityText,
  role: z.enum(roles),
  name: displayName.optional(),
  grants: grantsSchema.optional(),
  kind: z.enum(roomKinds).optional(),
  jti: z.string().min(8).max(128),
  iat: z.number(),
  exp: z.number(),
  typ: z.literal('resume').optional(),
  /** Issue time in ms: `iat` has whole seconds, too coarse to order a token against a kick. */
  ims: z.number().optional(),
});

export const grantSchema = z.strictObject({
  room: roomId,
  identity: identityText,
  role: z.enum(roles),
  name: displayName.optional(),
  grants: grantsSchema.optional(),
  kind: z.enum(roomKinds).optional(),
});

const ISSUER = 'chorus';
const ALGORITHM = 'HS256';
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
    const parsed = grantSchema.safeParse(grant);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ChorusError('BAD_REQUEST', `invalid grant ${issue?.path.join('.') || ''}: ${issue?.message}`.replace(' :', ':'));
    }
    if (grant.grants?.reusable && grant.role !== 'listener') {
      throw new ChorusError('BAD_REQUEST', 'only listener tokens can be reusable');
    }
    const ttl = options.ttlSeconds ?? this.defaultTtlSeconds;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > this.maxTtlSeconds) {
      throw new ChorusError('BAD_REQUEST', `ttl must be 1..${this.maxTtlSeconds} seconds`);
    }
    const keyId = options.keyId ?? this.#primary;
    const secret = this.#secrets.get(keyId);
    if (!secret) throw new ChorusError('BAD_REQUEST', `no API key ${keyId}`);
    const tokenId = randomUUID();
    const payload: Record<string, unknown> = { room: grant.room, role: grant.role };
    if (grant.name !== undefined) payload['name'] = grant.name;
    if (grant.grants && Object.keys(grant.grants).length > 0) payload['grants'] = grant.grants;
    if (grant.kind !== undefined && grant.kind !== 'broadcast') payload['kind'] = grant.kind;
    if (options.resume) payload['typ'] = 'resume';
    const nowMs = Date.now();
    payload['ims'] = nowMs;
    const nowSeconds = Math.floor(nowMs / 1000);
    const token = await new SignJWT(payload)
      .setProtectedHeader({ alg: ALGORITHM, kid: keyId })
      .setIssuer(ISSUER)
      .setSubject(grant.identity)
      .setJti(tokenId)
      .setIssuedAt(nowSeconds)
      .setExpirationTime(nowSeconds + ttl)
      .sign(secret);
    return { token, tokenId, keyId, expiresAtMs: (nowSeconds + ttl) * 1000 };
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
