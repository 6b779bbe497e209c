/**
 * Room tokens minted in the application's own server, with an API key's id and secret: the same
 * grant rules, claims and signature as a node's (the format is the node's own module, bundled).
 */
import { grantRefusal, signGrant, type RoomGrant, type SignedToken } from '../../../src/auth/roomToken.js';
import { ChorusApiError } from './errors.js';

export type { Grants, PublishGrant, RoomGrant, SignedToken } from '../../../src/auth/roomToken.js';

export interface ApiKey {
  /** The key id (`CHORUS_API_KEYS` `id:secret`). */
  id: string;
  secret: string;
}

/** A node's default lifetime of a join token: only long enough to reach the join. */
export const DEFAULT_TTL_SECONDS = 600;
const MAX_TTL_SECONDS = 7 * 24 * 3600;

/**
 * A join token for `grant`, signed with `key`: a node with that key accepts it once (listener
 * tokens marked `reusable` many times) until it expires. Throws `ChorusApiError` `BAD_REQUEST`
 * for a grant a node would refuse.
 */
export async function mintToken(key: ApiKey, grant: RoomGrant, options: { ttlSeconds?: number } = {}): Promise<SignedToken> {
  const refusal = grantRefusal(grant);
  if (refusal) throw new ChorusApiError(0, 'BAD_REQUEST', refusal, false);
  const ttl = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_SECONDS) throw new ChorusApiError(0, 'BAD_REQUEST', `ttl must be 1..${MAX_TTL_SECONDS} seconds`, false);
  if (key.secret.length < 32) throw new ChorusApiError(0, 'BAD_REQUEST', 'an API key secret has at least 32 characters');
  return signGrant(grant, { id: key.id, secret: new TextEncoder().encode(key.secret) }, ttl, { tokenId: crypto.randomUUID() });
}
