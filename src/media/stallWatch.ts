/**
 * When an ffmpeg run counts as hung: it was owed progress (a segment) and made none for `stallMs`.
 * The HLS fallback and class recordings notice progress differently (finished segments reported
 * by the run; a playlist's length against the bytes its transports sent), so they say what
 * happened and this keeps the clock.
 */
export class StallWatch {
  #progressAt: number;

  constructor(
    readonly stallMs: number,
    now: number,
  ) {
    this.#progressAt = now;
  }

  /** Progress was made, or none was owed (no media came to turn into a segment). */
  progressed(now: number): void {
    this.#progressAt = now;
  }

  /** The run has been owed progress for longer than `stallMs`. */
  stalled(now: number): boolean {
    return now - this.#progressAt > this.stallMs;
  }
}
