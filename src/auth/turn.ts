/**
 * Ephemeral TURN credentials in the TURN REST scheme that coturn's `use-auth-secret` checks:
 * username `<expiry unix seconds>:<identity>`, password base64(HMAC-SHA1(shared secret, username)).
 * Nothing is stored; coturn recomputes the password and refuses it after the expiry.
 */
import { createHash, createHmac } from 'node:crypto';

export interface TurnSettings {
  urls: string[];
  secret: string;
  ttlSeconds: number;
}

export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

export function turnCredentials(secret: string, identity: string, ttlSeconds: number, nowMs = Date.now()): { username: string; credential: string } {
  const expiry = Math.floor(nowMs / 1000) + ttlSeconds;
  // coturn refuses usernames with spaces, quotes, backslashes or a second colon, and logs every
  // username it sees: an opaque digest of the identity avoids both problems and still lets an
  // operator match a TURN log line to a session (sha256 of the identity, first 24 hex digits).
  const username = `${expiry}:${turnUserTag(identity)}`;
  return { username, credential: createHmac('sha1', secret).update(username).digest('base64') };
}

/** The identity's tag in TURN usernames and coturn logs. */
export function turnUserTag(identity: string): string {
  return createHash('sha256').update(identity).digest('hex').slice(0, 24);
}

/** ICE servers for one session: the TURN servers with fresh credentials, or none. */
export function iceServersFor(turn: TurnSettings | undefined, identity: string): IceServer[] {
  if (!turn || turn.urls.length === 0) return [];
  return [{ urls: turn.urls, ...turnCredentials(turn.secret, identity, turn.ttlSeconds) }];
}
