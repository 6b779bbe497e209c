/**
 * API-key authentication for the operator's backend (token minting, admin API): HTTP Basic with
 * the key id and secret, over TLS in production.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ApiKey, ApiKeyring } from '../auth/apiKeys.js';
import { ChorusError } from '../protocol/errors.js';

/** HTTP Basic credentials (`keyId:secret`), or undefined when absent or malformed. */
export function basicCredentials(header: string | undefined): { id: string; secret: string } | undefined {
  const match = /^Basic ([A-Za-z0-9+/=]{1,1024})$/.exec(header ?? '');
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const at = decoded.indexOf(':');
  return at > 0 ? { id: decoded.slice(0, at), secret: decoded.slice(at + 1) } : undefined;
}

/** The API key the request authenticates with, or an UNAUTHORIZED error with a Basic challenge. */
export function requireApiKey(request: FastifyRequest, reply: FastifyReply, keys: ApiKeyring): ApiKey {
  const credentials = basicCredentials(request.headers.authorization);
  const key = credentials && keys.authenticate(credentials.id, credentials.secret);
  if (!key) {
    void reply.header('www-authenticate', 'Basic realm="chorus"');
    throw new ChorusError('UNAUTHORIZED', 'an API key id and secret are required (HTTP Basic)');
  }
  return key;
}
