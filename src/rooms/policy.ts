/**
 * What each kind of room allows. The room enforces these on every request; pages only mirror
 * them. Later kinds (class, call, watch) add their own policy beside `broadcastPolicy`.
 */
import type { Role, RoomKind } from '../protocol/messages.js';
import type { Seat } from '../store/stateStore.js';

export type MediaKind = 'audio' | 'video';

export interface RoomPolicy {
  readonly kind: RoomKind;
  /** Roles a token may carry to join this kind of room. */
  readonly roles: readonly Role[];
  canSend(role: Role): boolean;
  /** Media kinds a sender may publish, at most one producer each. */
  sendableKinds(role: Role): readonly MediaKind[];
  /** A seat the role must hold alone, if any. */
  exclusiveSeat(role: Role): Seat | undefined;
  /** Whether peers of this role count as the room's audience (the pushed listener count). */
  isAudience(role: Role): boolean;
  /**
   * The room keeps a shared playback state its members follow (watch parties: src/watch/).
   * Rooms without it carry only media.
   */
  readonly sharedPlayback: boolean;
  /** The room sends media, so it needs a router (and transports); a watch party does not. */
  readonly carriesMedia: boolean;
}

/**
 * One speaker, any number of receive-only listeners; audio only (video is for class rooms).
 * Moderators listen like anyone else and may mute, kick and end.
 */
export const broadcastPolicy: RoomPolicy = {
  kind: 'broadcast',
  roles: ['broadcaster', 'listener', 'moderator'],
  canSend: (role) => role === 'broadcaster',
  sendableKinds: (role) => (role === 'broadcaster' ? ['audio'] : []),
  exclusiveSeat: (role) => (role === 'broadcaster' ? 'broadcaster' : undefined),
  isAudience: (role) => role === 'listener',
  sharedPlayback: false,
  carriesMedia: true,
};

/**
 * Watch parties: everyone follows one video's playback; whoever hosts (or holds the control grant)
 * steers it. No media is sent yet (voice chat would reuse the call room's rules when it lands).
 * `host` tokens take hosting on arrival; `listener` tokens allow reusable viewing links.
 */
export const watchPolicy: RoomPolicy = {
  kind: 'watch',
  roles: ['host', 'participant', 'listener', 'moderator'],
  canSend: () => false,
  sendableKinds: () => [],
  exclusiveSeat: () => undefined,
  isAudience: (role) => role === 'listener',
  sharedPlayback: true,
  carriesMedia: false,
};

const policies: Record<RoomKind, RoomPolicy> = { broadcast: broadcastPolicy, watch: watchPolicy };

export function policyFor(kind: RoomKind): RoomPolicy {
  return policies[kind];
}
