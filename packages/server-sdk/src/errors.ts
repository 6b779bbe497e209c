/** A refusal: the node's stable error code (or the SDK's own check, `status` 0), and whether trying again may work. */
export class ChorusApiError extends Error {
  constructor(
    /** The HTTP status (0: refused by the SDK before any request). */
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryable = false,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ChorusApiError';
  }
}
