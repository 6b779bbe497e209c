/**
 * Ephemeral TURN credentials in the TURN REST scheme that coturn's `use-auth-secret` checks:
 * username `<expiry unix seconds>:<identity>`, password base64(HMAC-SHA1(shared secret, username)).
 * Nothing is stored; coturn recomputes the password and refuses it after the expiry.
 */
import { createHmac } from 'node:crypto';

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
  // A colon inside the identity would shift coturn's parse of the username; keep it out.
  const username = `${expiry}:${identity.replaceAll(':', '_')}`;
  return { username, credential: createHmac('sha1', secret).update(username).digest('base64') };
}

/** ICE servers for one session: the TURN servers with fresh credentials, or none. */
export function iceServersFor(turn: TurnSettings | undefined, identity: string): IceServer[] {
  if (!turn || turn.urls.length === 0) return [];
  return [{ urls: turn.urls, ...turnCredentials(turn.secret, identity, turn.ttlSeconds) }];
}
