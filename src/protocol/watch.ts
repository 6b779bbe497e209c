/**
 * Wire shapes of watch-party rooms: the shared playback state, the host's controls, members'
 * position reports and the NTP-style clock ping. Shared by the server and the SDK.
 *
 * Positions are seconds of media time (like HTMLMediaElement.currentTime); times are server
 * wall-clock milliseconds (Date.now() on the node that answered).
 */
import { z } from 'zod';
import { isAllowedVideoUrl, MAX_URL_LENGTH } from './basics.js';

export { isAllowedVideoUrl, MAX_URL_LENGTH } from './basics.js';

/** The longest media position accepted: a week of playback, far beyond any real video. */
export const MAX_POSITION_SECONDS = 7 * 24 * 3600;
export const MIN_RATE = 0.25;
export const MAX_RATE = 4;

export const videoUrl = z.string().max(MAX_URL_LENGTH).refine(isAllowedVideoUrl, 'url must be an http(s) URL or a same-origin path');
export const mediaPosition = z.number().finite().min(0).max(MAX_POSITION_SECONDS);
export const playbackRate = z.number().finite().min(MIN_RATE).max(MAX_RATE);

export const watchControl = z.discriminatedUnion('action', [
  /** Start playing, from `position` if given, else from where the room is. */
  z.strictObject({ action: z.literal('play'), position: mediaPosition.optional() }),
  z.strictObject({ action: z.literal('pause'), position: mediaPosition.optional() }),
  z.strictObject({ action: z.literal('seek'), position: mediaPosition }),
  z.strictObject({ action: z.literal('rate'), rate: playbackRate }),
  /** Point the room at another video (paused at `position`, or 0, unless `playing`). */
  z.strictObject({ action: z.literal('load'), url: videoUrl, position: mediaPosition.optional(), playing: z.boolean().optional() }),
]);
export type WatchControl = z.infer<typeof watchControl>;

export const watchReport = z.strictObject({
  /** The member's player position when sampled. */
  position: mediaPosition,
  playing: z.boolean(),
  /** The state version the member's player follows. */
  version: z.number().int().min(0),
  /** When the position was sampled, in server time as the SDK estimates it; default: arrival. */
  sampledAt: z.number().finite().optional(),
  /** The player reached the end of the media: it cannot follow a position past it. */
  ended: z.boolean().optional(),
});
export type WatchReport = z.infer<typeof watchReport>;

export const timeSync = z.strictObject({
  /** The client's send time (its own clock), echoed back so it can match replies. */
  clientSentAt: z.number().finite().optional(),
});

export interface WatchHost {
  peerId: string;
  identity: string;
  role: string;
  nodeId: string;
}

/** The room's playback: where the media was at `updatedAt` and how it moves from there. */
export interface WatchState {
  url: string;
  /** Seconds of media time at `updatedAt`. */
  position: number;
  /** Server time (ms) the position was taken at. */
  updatedAt: number;
  playing: boolean;
  rate: number;
  host: WatchHost | null;
  /** Increases with every change; clients ignore states older than the one they have. */
  version: number;
}

export { positionAt } from './basics.js';

export type WatchCause = 'control' | 'host' | 'created';

export interface WatchMember {
  peerId: string;
  identity: string;
  role: string;
  joinedAt: number;
}

/** What a member of a watch room gets on join. */
export interface WatchSnapshot {
  state: WatchState;
  serverTime: number;
  members: WatchMember[];
  driftThresholdMs: number;
  reportIntervalMs: number;
  /** The token carries the control grant: this session may change the state whoever hosts. */
  controlGrant: boolean;
}
