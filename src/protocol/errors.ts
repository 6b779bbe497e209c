/**
 * Stable error codes. Clients branch on `code`, never on `message`; a code, once shipped, keeps
 * its meaning. `retryable` tells the SDK whether trying the same request later can succeed.
 */
export const ErrorCodes = {
  BAD_REQUEST: { status: 400, retryable: false },
  UNAUTHORIZED: { status: 401, retryable: false },
  UNKNOWN_METHOD: { status: 400, retryable: false },
  NOT_JOINED: { status: 409, retryable: false },
  ALREADY_JOINED: { status: 409, retryable: false },
  TOKEN_INVALID: { status: 401, retryable: false },
  TOKEN_EXPIRED: { status: 401, retryable: false },
  TOKEN_WRONG_ROOM: { status: 403, retryable: false },
  FORBIDDEN_ROLE: { status: 403, retryable: false },
  TOKEN_USED: { status: 401, retryable: false },
  KICKED: { status: 403, retryable: false },
  ROOM_ENDED: { status: 410, retryable: false },
  MUTED: { status: 403, retryable: false },
  BROADCASTER_PRESENT: { status: 409, retryable: true },
  TRANSPORT_NOT_FOUND: { status: 404, retryable: false },
  PRODUCER_NOT_FOUND: { status: 404, retryable: false },
  CONSUMER_NOT_FOUND: { status: 404, retryable: false },
  NOTHING_TO_CONSUME: { status: 409, retryable: true },
  CANNOT_CONSUME: { status: 422, retryable: false },
  MEDIA_REJECTED: { status: 422, retryable: false },
  /** A rate limit or quota: `retryAfterMs` says when the same request can succeed. */
  LIMIT_REACHED: { status: 429, retryable: true },
  /** The room holds as many sessions as it may; a seat frees when someone leaves. */
  ROOM_FULL: { status: 503, retryable: true },
  NOT_FOUND: { status: 404, retryable: false },
  /** Watch rooms: only the host (or a token with the control grant) changes playback. */
  NOT_HOST: { status: 403, retryable: false },
  /** The token names a room kind other than the one the room already is. */
  WRONG_ROOM_KIND: { status: 409, retryable: false },
  UNAVAILABLE: { status: 503, retryable: true },
  /** Calls: a peer-to-peer message while the call is not peer-to-peer between these two. */
  NOT_PEER_TO_PEER: { status: 409, retryable: false },
  /** Classes: a hand transition named a queue version that is no longer current; read it again. */
  STALE_VERSION: { status: 409, retryable: false },
  /** Classes: that hand transition is not allowed from the hand's state (e.g. inviting a hand not raised). */
  BAD_TRANSITION: { status: 409, retryable: false },
  /** Classes: the stage holds CHORUS_CLASS_MAX_STAGE students already. */
  STAGE_FULL: { status: 409, retryable: true },
  /** WHIP/WHEP: a PATCH whose If-Match names another version of the session (RFC 9725). */
  PRECONDITION_FAILED: { status: 412, retryable: false },
  /** This room's publisher belongs on another node: connect to `redirectUrl` and join there. */
  WRONG_NODE: { status: 421, retryable: true },
  INTERNAL: { status: 500, retryable: true },
} as const satisfies Record<string, { status: number; retryable: boolean }>;

export type ErrorCode = keyof typeof ErrorCodes;

export interface WireError {
  code: ErrorCode;
  message: string;
  retryable: boolean;
  /** For LIMIT_REACHED: how long to wait before the same request can succeed. */
  retryAfterMs?: number;
  /** For WRONG_NODE: the node to connect to instead. */
  redirectUrl?: string;
}

export class ChorusError extends Error {
  override readonly name = 'ChorusError';

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly retryAfterMs?: number,
    readonly redirectUrl?: string,
  ) {
    super(message);
  }

  get status(): number {
    return ErrorCodes[this.code].status;
  }

  toWire(): WireError {
    const wire: WireError = { code: this.code, message: this.message, retryable: ErrorCodes[this.code].retryable };
    if (this.retryAfterMs !== undefined) wire.retryAfterMs = this.retryAfterMs;
    if (this.redirectUrl !== undefined) wire.redirectUrl = this.redirectUrl;
    return wire;
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ErrorCodes, value);
}
