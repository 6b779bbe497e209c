/**
 * What each kind of room allows. The room core enforces these on every request; pages only
 * mirror them. A kind is a policy on the same core (publications, subscriptions, seats), never a
 * branch on role names inside the room.
 */
import type { Role, RoomKind } from '../protocol/messages.js';
import { kindOfSource, type TrackSource } from '../protocol/room.js';
import type { Seat } from '../store/stateStore.js';

export type MediaKind = 'audio' | 'video';

/** The caps a policy chooses between (from the node's settings). */
export interface PeerCaps {
  /** Sessions per room on this node, whatever its kind. */
  maxPeers: number;
  /** Participants in a call, across the cluster. */
  maxCallParticipants: number;
  /** Students in a class (CHORUS_CLASS_MAX_STUDENTS). */
  maxClassStudents: number;
}

/** How many sessions of a role a room admits, which roles count toward it, and the error beyond it. */
export interface Capacity {
  max: number;
  /** The sessions already in the room that count against `max`. */
  counts(role: Role): boolean;
  code: 'ROOM_FULL' | 'LIMIT_REACHED';
}

export interface RoomPolicy {
  readonly kind: RoomKind;
  /** Roles a token may carry to join this kind of room. */
  readonly roles: readonly Role[];
  /** Sources a role may publish, at most one track each (none: receive-only). */
  publishable(role: Role): readonly TrackSource[];
  /** Whether sessions of this role receive media (and report when it started). */
  receives(role: Role): boolean;
  /** Whether a subscriber of `role` may consume a track of `source` published by a `publisher`. */
  mayReceive(role: Role, publisher: Role, source: TrackSource): boolean;
  /**
   * The track a consume without a producer id means, and that `broadcast:*` events announce:
   * the broadcaster's microphone. Kinds without one have every track addressed by its id.
   */
  isPrimary(role: Role, source: TrackSource): boolean;
  /** Whether the role may mute, kick and end (a token's `moderate` grant gives it to any role). */
  moderates(role: Role): boolean;
  /** Sources a role may publish once brought on stage (a class's raised hand); none: no stage. */
  stageSources(role: Role): readonly TrackSource[];
  /** Members may send chat messages through the node (to the room, or to its moderators). */
  readonly chats: boolean;
  /** Its stage (the staff's tracks) can be recorded on the server (classes). */
  readonly recordsStage: boolean;
  /** A seat the role must hold alone, if any. */
  exclusiveSeat(role: Role): Seat | undefined;
  /**
   * In a cluster, whether members of this role join on the room's origin node (where its
   * publishers are), so their media need not cross nodes unless one fails.
   */
  onOrigin(role: Role): boolean;
  /** Whether peers of this role count as the room's audience (the pushed listener count). */
  isAudience(role: Role): boolean;
  /**
   * Whether members of this role are shown to the others (the join snapshot and joined/left
   * deltas). Those that are not are only counted: a broadcast of thousands must not flood them.
   * A member is always shown once it publishes.
   */
  announced(role: Role): boolean;
  /** How many sessions a joiner of `role` may find in the room before it, and the error beyond it. */
  capacity(caps: PeerCaps, role: Role): Capacity;
  /**
   * Members on other nodes are shown here and their tracks pulled one by one when consumed (a
   * call whose participant landed elsewhere). Kinds without it cascade their broadcast instead.
   */
  readonly spansNodes: boolean;
  /** Runs mediasoup's active-speaker and audio-level observers over the room's microphones. */
  readonly detectsSpeakers: boolean;
  /** A room where nothing is published for the idle window is ended. */
  readonly endsWhenIdle: boolean;
  /**
   * The room keeps a shared playback state its members follow (watch parties: src/watch/).
   * Rooms without it carry only media.
   */
  readonly sharedPlayback: boolean;
  /** The room sends media, so it needs a router (and transports); a watch party does not. */
  readonly carriesMedia: boolean;
  /** Two participants may carry the room's media directly (CHORUS_CALL_P2P), the SFU from three on. */
  readonly peerToPeer: boolean;
  /**
   * Media goes one way, to an audience that does not answer in real time (a broadcast): its
   * publisher is asked for longer audio packets (CHORUS_BROADCAST_FRAME_MS), fewer of them for
   * every listener, at the cost of that much delay nobody converses across.
   */
  readonly oneWay: boolean;
}

/** Whether `role` may publish anything at all in rooms of `policy`. */
export function canSend(policy: RoomPolicy, role: Role): boolean {
  return policy.publishable(role).length > 0;
}

/** The media kinds `role` may publish: what the sources it may publish carry. */
export function sendableKinds(policy: RoomPolicy, role: Role): MediaKind[] {
  return [...new Set(policy.publishable(role).map(kindOfSource))];
}

const none: readonly TrackSource[] = [];
const everyone = (): boolean => true;

/**
 * One speaker, any number of receive-only listeners; audio only (video is for class rooms).
 * Moderators listen like anyone else and may mute, kick and end.
 */
export const broadcastPolicy: RoomPolicy = {
  kind: 'broadcast',
  roles: ['broadcaster', 'listener', 'moderator'],
  publishable: (role) => (role === 'broadcaster' ? ['microphone'] : none),
  receives: (role) => role !== 'broadcaster',
  mayReceive: (role, publisher) => role !== 'broadcaster' && publisher === 'broadcaster',
  isPrimary: (role, source) => role === 'broadcaster' && source === 'microphone',
  moderates: (role) => role === 'moderator',
  stageSources: () => none,
  exclusiveSeat: (role) => (role === 'broadcaster' ? 'broadcaster' : undefined),
  onOrigin: (role) => role === 'broadcaster',
  isAudience: (role) => role === 'listener',
  announced: (role) => role === 'broadcaster',
  capacity: (caps) => ({ max: caps.maxPeers, counts: everyone, code: 'ROOM_FULL' }),
  spansNodes: false,
  detectsSpeakers: false,
  endsWhenIdle: true,
  sharedPlayback: false,
  carriesMedia: true,
  peerToPeer: false,
  oneWay: true,
  chats: false,
  recordsStage: false,
};

/**
 * Watch parties: everyone follows one video's playback; whoever hosts (or holds the control grant)
 * steers it. No media is sent yet (voice chat would reuse the call room's rules when it lands).
 * `host` tokens take hosting on arrival; `listener` tokens allow reusable viewing links. Members
 * are announced by the watch service's own `watch:member` events.
 */
export const watchPolicy: RoomPolicy = {
  kind: 'watch',
  roles: ['host', 'participant', 'listener', 'moderator'],
  publishable: () => none,
  receives: () => true,
  mayReceive: () => false,
  isPrimary: () => false,
  moderates: (role) => role === 'moderator',
  stageSources: () => none,
  exclusiveSeat: () => undefined,
  onOrigin: () => false,
  isAudience: (role) => role === 'listener',
  announced: () => false,
  capacity: (caps) => ({ max: caps.maxPeers, counts: everyone, code: 'ROOM_FULL' }),
  spansNodes: false,
  detectsSpeakers: false,
  endsWhenIdle: true,
  sharedPlayback: true,
  carriesMedia: false,
  peerToPeer: false,
  chats: false,
  recordsStage: false,
  oneWay: false,
};

const callSources: readonly TrackSource[] = ['microphone', 'camera', 'screen', 'screen-audio'];

/**
 * Group calls: everyone publishes microphone, camera and screen and receives everyone else's
 * tracks (never their own). Moderators are participants who may also mute, kick and end. A call
 * of people with every track off is still a call: it ends when they leave, not when idle.
 */
export const callPolicy: RoomPolicy = {
  kind: 'call',
  roles: ['participant', 'moderator'],
  publishable: () => callSources,
  receives: () => true,
  mayReceive: () => true,
  isPrimary: () => false,
  moderates: (role) => role === 'moderator',
  stageSources: () => none,
  exclusiveSeat: () => undefined,
  // A call lives on one node (as LiveKit places a room); the cascade carries it only when a
  // participant lands elsewhere (a drain, a failover).
  onOrigin: () => true,
  isAudience: () => false,
  announced: () => true,
  capacity: (caps) => ({ max: Math.min(caps.maxPeers, caps.maxCallParticipants), counts: everyone, code: 'LIMIT_REACHED' }),
  spansNodes: true,
  detectsSpeakers: true,
  endsWhenIdle: false,
  sharedPlayback: false,
  carriesMedia: true,
  peerToPeer: true,
  chats: false,
  recordsStage: false,
  oneWay: false,
};

/** Teachers and assistants a class admits besides its students. */
export const CLASS_MAX_STAFF = 20;
const isStudent = (role: Role): boolean => role === 'student';
const stageSources: readonly TrackSource[] = ['microphone', 'camera'];

/**
 * Live classes: teachers (and assistants, who also moderate) publish camera, microphone and
 * screen to students who only receive. Students are not shown to each other (a class of
 * hundreds must not flood them): they are counted, as a broadcast's listeners are; staff are
 * shown to everyone. Students and staff have separate caps, so a full class still admits its
 * teacher.
 */
export const classPolicy: RoomPolicy = {
  kind: 'class',
  roles: ['teacher', 'assistant', 'student'],
  publishable: (role) => (isStudent(role) ? none : callSources),
  receives: () => true,
  // A student's tracks (once it can publish, on stage) reach everyone like the staff's.
  mayReceive: () => true,
  isPrimary: () => false,
  moderates: (role) => !isStudent(role),
  // On stage a student is seen and heard; sharing a screen stays with the staff.
  stageSources: (role) => (isStudent(role) ? stageSources : none),
  exclusiveSeat: () => undefined,
  // The staff join where the class is held; students pull its tracks from wherever they land.
  onOrigin: (role) => !isStudent(role),
  isAudience: isStudent,
  announced: (role) => !isStudent(role),
  capacity: (caps, role) =>
    isStudent(role)
      ? { max: Math.min(caps.maxPeers, caps.maxClassStudents), counts: isStudent, code: 'ROOM_FULL' }
      : { max: Math.min(caps.maxPeers, CLASS_MAX_STAFF), counts: (r) => !isStudent(r), code: 'LIMIT_REACHED' },
  spansNodes: true,
  detectsSpeakers: true,
  endsWhenIdle: false,
  sharedPlayback: false,
  carriesMedia: true,
  peerToPeer: false,
  chats: true,
  recordsStage: true,
  oneWay: false,
};

const policies: Record<RoomKind, RoomPolicy> = { broadcast: broadcastPolicy, watch: watchPolicy, call: callPolicy, class: classPolicy };

export function policyFor(kind: RoomKind): RoomPolicy {
  return policies[kind];
}
