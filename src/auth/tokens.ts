/**
 * Room tokens (first version): HS256 JWTs naming the room, the identity and the role. Signing
 * lives here too so the demo page, tests and benchmarks mint tokens the same way operators will.
 */
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { z } from 'zod';
import { ChorusError } from '../protocol/errors.js';
import { roles, roomId, type Role } from '../protocol/messages.js';

export interface RoomGrant {
  room: string;
  identity: string;
  role: Role;
  /** Display name, if the issuer gave one. */
  name?: string | undefined;
}

const claims = z.object({
  room: roomId,
  sub: z.string().min(1).max(256),
  role: z.enum(roles),
  name: z.string().max(128).optional(),
});

const ISSUER = 'chorus';
const ALGORITHM = 'HS256';

export class TokenService {
  constructor(
    private readonly secret: Uint8Array,
    private readonly defaultTtlSeconds: number,
  ) {}

  async mint(grant: RoomGrant, ttlSeconds = this.defaultTtlSeconds): Promise<string> {
    const payload: Record<string, string> = { room: grant.room, role: grant.role };
    if (grant.name !== undefined) payload['name'] = grant.name;
    return new SignJWT(payload)
      .setProtectedHeader({ alg: ALGORITHM })
      .setIssuer(ISSUER)
      .setSubject(grant.identity)
      .setIssuedAt()
      .setExpirationTime(`${ttlSeconds}s`)
      .sign(this.secret);
  }

  async verify(token: string): Promise<RoomGrant> {
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(token, this.secret, { issuer: ISSUER, algorithms: [ALGORITHM] }));
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw new ChorusError('TOKEN_EXPIRED', 'token has expired');
      throw new ChorusError('TOKEN_INVALID', 'token signature or format is invalid');
    }
    const parsed = claims.safeParse(payload);
    if (!parsed.success) throw new ChorusError('TOKEN_INVALID', 'token lacks a valid room, sub or role claim');
    const { room, sub, role, name } = parsed.data;
    return { room, identity: sub, role, name };
  }
}
