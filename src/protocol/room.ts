/**
 * The room as its members see it: participants and their published tracks, as a versioned
 * snapshot followed by ordered deltas. Every delta moves the version on by one per change, so a
 * client that sees `version - changes.length` differ from its own missed something and asks for
 * a fresh snapshot (`room.sync`) instead of showing a track that may be gone.
 *
 * Versions belong to the node a client is connected to: a client that moves to another node
 * starts again from that node's snapshot.
 */
import { z } from 'zod';
import { trackSources, type TrackSource } from './basics.js';
import type { Role } from './messages.js';

export { kindOfSource, recordingPlaylist, trackSources, type TrackSource } from './basics.js';
export const trackSource = z.enum(trackSources);

/** The source a produce without one means: what a broadcast or an older client publishes. */
export function defaultSource(kind: 'audio' | 'video'): TrackSource {
  return kind === 'audio' ? 'microphone' : 'camera';
}

export interface TrackInfo {
  /** The producer id: what `consume` takes. */
  trackId: string;
  source: TrackSource;
  kind: 'audio' | 'video';
  /** Paused by its publisher or by a moderator. */
  muted: boolean;
  /** A moderator muted it: its publisher cannot unmute it. */
  mutedByModerator: boolean;
  /** Spatial layers it is sent in (1: no simulcast). */
  layers: number;
  /** The size the publisher captures at (video), when it said. */
  width?: number | undefined;
  height?: number | undefined;
}

/** Which way a call's media goes. */
export type MediaPath = 'sfu' | 'p2p';
/** Why it changed. */
export type CallPathReason = 'two_participants' | 'back_to_two' | 'third_participant' | 'participant_left' | 'spans_nodes' | 'p2p_failed';

/**
 * How well a participant's media gets through, from the SFU's scores of its streams (what it
 * sends, as received; what it receives, as delivered): `lost` when nothing gets through.
 */
export const connectionQualities = ['excellent', 'good', 'poor', 'lost'] as const;
export type ConnectionQuality = (typeof connectionQualities)[number];

export interface ParticipantInfo {
  peerId: string;
  identity: string;
  name?: string | undefined;
  role: Role;
  tracks: TrackInfo[];
}

/**
 * Classes: a student's raised hand. `raised` → `invited` (by staff) → `onstage` (the student
 * accepted: it may publish) → `back` (removed by staff, or it stepped down); `lower` and
 * `decline` return a hand to nothing.
 */
export type HandState = 'raised' | 'invited' | 'onstage' | 'back';

export interface Hand {
  peerId: string;
  identity: string;
  name?: string | undefined;
  state: HandState;
  /** When the hand was raised (the queue's order). */
  at: number;
}

/** The class's hands in the order they were raised; every change increments `version`. */
export interface HandQueue {
  version: number;
  hands: Hand[];
}

/** Classes: a recording of the stage (HLS; live while it runs, the replay once `endedAt` is set). */
export interface RecordingInfo {
  id: string;
  roomId: string;
  /** The node holding its files (it serves them). */
  node: string;
  startedAt: number;
  endedAt?: number | undefined;
  /** Who started it (an identity; `always`: the node). */
  by: string;
}


export const handActions = ['raise', 'lower', 'invite', 'accept', 'decline', 'remove'] as const;
export type HandAction = (typeof handActions)[number];

export interface RoomSnapshot {
  version: number;
  participants: ParticipantInfo[];
}

export type RoomChange =
  | { type: 'joined'; participant: ParticipantInfo }
  | { type: 'left'; peerId: string }
  | { type: 'published'; peerId: string; track: TrackInfo }
  | { type: 'unpublished'; peerId: string; trackId: string }
  | { type: 'muted'; peerId: string; trackId: string; muted: boolean; mutedByModerator: boolean };

export interface RoomDelta {
  /** The version after the last change. */
  version: number;
  changes: RoomChange[];
}

/** What a subscriber shows of a video: the SFU sends the layer that fits, or nothing when hidden. */
export const trackView = z.strictObject({
  consumerId: z.string().min(1).max(128),
  /** False when the tile is hidden or off-screen: the consumer is paused. */
  visible: z.boolean(),
  /** Rendered size in CSS pixels times the device pixel ratio. */
  width: z.number().int().min(0).max(16_384),
  height: z.number().int().min(0).max(16_384),
});
