/**
 * Who is playing a room's HLS right now. A player reloads the live playlist about once per
 * segment, so a viewer is someone who fetched it within the window; one that stopped (closed
 * the app, lost the network) drops out once the window passes. Only players without a
 * signaling session are counted here: a session is already in the room's audience.
 */
export class ViewerWindow {
  /** Viewer key → when it last fetched the playlist. */
  readonly #seen = new Map<string, number>();

  constructor(private readonly windowMs: number) {}

  /** Records a playlist fetch; true when this viewer was not counted a moment ago. */
  seen(key: string, now = Date.now()): boolean {
    const last = this.#seen.get(key);
    // Re-inserted so the map stays ordered by last fetch: pruning stops at the first fresh one.
    this.#seen.delete(key);
    this.#seen.set(key, now);
    return last === undefined || now - last > this.windowMs;
  }

  /** Viewers within the window, forgetting the rest. */
  count(now = Date.now()): number {
    for (const [key, at] of this.#seen) {
      if (now - at <= this.windowMs) break;
      this.#seen.delete(key);
    }
    return this.#seen.size;
  }
}

/** Where a room's HLS viewer count is kept in the state store, for every node's audience count. */
export const hlsViewersKey = (roomId: string): string => `hlsviewers\0${roomId}`;
/** The count's lease: renewed every few seconds by the node running the room's HLS while it is not zero. */
export const HLS_VIEWERS_LEASE_SECONDS = 15;

/**
 * Reads rooms' HLS viewer counts from the store, each at most once per `maxAgeMs`: every join
 * answer carries the room's audience, and a burst of joins must not cost a store read each.
 */
export class ViewerCountReader {
  readonly #cache = new Map<string, { value: Promise<number>; at: number }>();

  constructor(
    private readonly read: (key: string) => Promise<string | undefined>,
    private readonly maxAgeMs: number,
  ) {}

  /** The count changed here: the next read goes to the store. */
  forget(roomId: string): void {
    this.#cache.delete(roomId);
  }

  count(roomId: string, now = Date.now()): Promise<number> {
    const cached = this.#cache.get(roomId);
    if (cached && now - cached.at < this.maxAgeMs) return cached.value;
    // Bounded: rooms come and go, and a stale entry is only ever re-read.
    if (this.#cache.size >= 10_000) this.#cache.clear();
    const value = this.read(hlsViewersKey(roomId)).then(
      (raw) => Number(raw ?? 0) || 0,
      () => 0,
    );
    this.#cache.set(roomId, { value, at: now });
    return value;
  }
}

