/**
 * The stored form of a room's playback state. It is read back from a store other nodes (and
 * other versions of this code) write, so it is validated like anything else from outside.
 */
import { z } from 'zod';
import type { WatchState } from '../protocol/watch.js';

const host = z.object({ peerId: z.string(), identity: z.string(), role: z.string(), nodeId: z.string() });

const storedState = z.object({
  url: z.string(),
  position: z.number().finite().min(0),
  updatedAt: z.number().finite(),
  playing: z.boolean(),
  rate: z.number().finite().positive(),
  host: host.nullable(),
  version: z.number().int().min(0),
});

/** The state, or undefined for anything unreadable (treated like no state at all). */
export function parseWatchState(raw: string): WatchState | undefined {
  try {
    const parsed = storedState.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
