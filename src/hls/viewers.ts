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
