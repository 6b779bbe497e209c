/**
 * The room token's format, defined once: what a grant may say, the claims a token carries and how
 * it is signed (HS256 with an API key's secret, `kid` naming the key). The node mints and checks
 * tokens with it, and the server SDK (`packages/server-sdk`) bundles it, so an application mints
 * exactly what a node accepts without a node.
 */
import { SignJWT } from 'jose';
import { z } from 'zod';
import { displayName, identityText, roles, roomId, roomKinds, type Role, type RoomKind } from '../protocol/messages.js';
import { trackSources } from '../protocol/room.js';

export const ISSUER = 'chorus';
export const ALGORITHM = 'HS256';

const publishGrant = z.enum(['audio', 'video', ...trackSources]);
export type PublishGrant = z.infer<typeof publishGrant>;

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

export const grantsSchema = z.strictObject({
  publish: z.array(publishGrant).max(6).optional(),
  data: z.boolean().optional(),
  moderate: z.boolean().optional(),
  replace: z.boolean().optional(),
  reusable: z.boolean().optional(),
  control: z.boolean().optional(),
});

export const claims = z.object({
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


/** Why `grant` cannot be a token (its first problem), or undefined when it can. */
export function grantRefusal(grant: RoomGrant): string | undefined {
  const parsed = grantSchema.safeParse(grant);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return `invalid grant ${issue?.path.join('.') || ''}: ${issue?.message}`.replace(' :', ':');
  }
  if (grant.grants?.reusable && grant.role !== 'listener') return 'only listener tokens can be reusable';
  return undefined;
}

export interface SignedToken {
  token: string;
  /** The token's unique id (`jti`): a join token works once. */
  tokenId: string;
  expiresAtMs: number;
}

/** Signs an already checked `grant` with the key `keyId`'s `secret`, valid for `ttlSeconds`. */
export async function signGrant(grant: RoomGrant, key: { id: string; secret: Uint8Array }, ttlSeconds: number, options: { resume?: boolean | undefined; tokenId: string; nowMs?: number | undefined }): Promise<SignedToken> {
  const payload: Record<string, unknown> = { room: grant.room, role: grant.role };
  if (grant.name !== undefined) payload['name'] = grant.name;
  if (grant.grants && Object.keys(grant.grants).length > 0) payload['grants'] = grant.grants;
  if (grant.kind !== undefined && grant.kind !== 'broadcast') payload['kind'] = grant.kind;
  if (options.resume) payload['typ'] = 'resume';
  const nowMs = options.nowMs ?? Date.now();
  payload['ims'] = nowMs;
  const nowSeconds = Math.floor(nowMs / 1000);
  const token = await new SignJWT(payload)
    .setProtectedHeader({ alg: ALGORITHM, kid: key.id })
    .setIssuer(ISSUER)
    .setSubject(grant.identity)
    .setJti(options.tokenId)
    .setIssuedAt(nowSeconds)
    .setExpirationTime(nowSeconds + ttlSeconds)
    .sign(key.secret);
  return { token, tokenId: options.tokenId, expiresAtMs: (nowSeconds + ttlSeconds) * 1000 };
}
