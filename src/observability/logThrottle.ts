/**
 * At most one log line per offender per interval. A flood is many refusals from one place; one
 * line per refusal buries everything else in the log (and costs the node the flood's rate in
 * writes). The lines held back are counted and the count travels in the offender's next line.
 */
export class LogThrottle {
  /** Offender key -> when its last line was written and how many were held back since. */
  readonly #seen = new Map<string, { at: number; suppressed: number }>();

  /**
   * @param maxKeys bounds memory under a flood from many addresses: past it, offenders quiet for
   *   a whole interval are forgotten first, then the longest-quiet ones.
   */
  constructor(
    readonly intervalMs: number,
    private readonly maxKeys = 10_000,
  ) {}

  /**
   * Calls `write(suppressed)` unless `key` had a line less than an interval ago; then only
   * counts. `suppressed` is how many lines `key` was refused since its previous line.
   */
  run(key: string, write: (suppressed: number) => void): void {
    const now = Date.now();
    const entry = this.#seen.get(key);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      return;
    }
    if (entry) this.#seen.delete(key);
    else if (this.#seen.size >= this.maxKeys) this.#forget(now);
    // Re-inserted so the map's order is the order of last lines, oldest first.
    this.#seen.set(key, { at: now, suppressed: 0 });
    write(entry?.suppressed ?? 0);
  }

  #forget(now: number): void {
    for (const [key, entry] of this.#seen) {
      if (this.#seen.size < this.maxKeys && now - entry.at < this.intervalMs) break;
      this.#seen.delete(key);
    }
  }
}
