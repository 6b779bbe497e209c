/**
 * The arithmetic of a watch room, free of I/O so it can be tested on its own: where the media is
 * at a given server time, how a control changes the state, how far a member's report is off, and
 * who hosts next.
 */
import { positionAt, type WatchControl, type WatchHost, type WatchReport, type WatchState } from '../protocol/watch.js';
import type { Role } from '../protocol/messages.js';

// Shared with the SDK, which extrapolates the same way on the member's side.
export { positionAt };

export function initialState(host: WatchHost | null, now: number): WatchState {
  return { url: '', position: 0, updatedAt: now, playing: false, rate: 1, host, version: 1 };
}

/**
 * The state after `control` at server time `now`. The position is re-anchored at `now` in every
 * case, so later readers extrapolate from the newest anchor.
 */
export function applyControl(state: WatchState, control: WatchControl, now: number): WatchState {
  const here = positionAt(state, now);
  const next = { ...state, position: here, updatedAt: now, version: state.version + 1 };
  switch (control.action) {
    case 'play':
      return { ...next, playing: true, position: control.position ?? here };
    case 'pause':
      return { ...next, playing: false, position: control.position ?? here };
    case 'seek':
      return { ...next, position: control.position };
    case 'rate':
      return { ...next, rate: control.rate };
    case 'load':
      return { ...next, url: control.url, position: control.position ?? 0, playing: control.playing ?? false };
  }
}

/** The state with another host (or none: then it pauses where it is, so nobody misses a part). */
export function withHost(state: WatchState, host: WatchHost | null, now: number): WatchState {
  const here = positionAt(state, now);
  return { ...state, host, position: here, updatedAt: now, playing: host === null ? false : state.playing, version: state.version + 1 };
}

export interface Drift {
  /** Reported minus expected position, ms; null when the two cannot be compared. */
  driftMs: number | null;
  /** The member should take the room's state again. */
  resync: boolean;
}

/**
 * How far a member's player is from the room at the moment it sampled its position. A member on
 * an older version has not applied the latest change yet (or missed it): it resyncs. A player at
 * the end of its media cannot follow a position past it, which is not drift.
 */
export function measureDrift(state: WatchState, report: WatchReport, sampledAt: number, thresholdMs: number): Drift {
  if (report.version !== state.version) return { driftMs: null, resync: true };
  const expected = positionAt(state, sampledAt);
  if (report.ended && report.position <= expected) return { driftMs: null, resync: false };
  const driftMs = Math.round((report.position - expected) * 1000);
  const resync = Math.abs(driftMs) > thresholdMs || report.playing !== state.playing;
  return { driftMs, resync };
}

export interface HostCandidate {
  peerId: string;
  identity: string;
  role: Role;
  nodeId: string;
  joinedAt: number;
}

/** Host tokens first, then moderators, then everyone else. */
function rank(role: Role): number {
  return role === 'host' ? 0 : role === 'moderator' ? 1 : 2;
}

/**
 * Who hosts after the host left: the candidate of the best rank present longest (ties broken by id,
 * so every node picks the same one), or nobody.
 */
export function nextHost(candidates: readonly HostCandidate[], leaving?: string): WatchHost | null {
  const best = candidates
    .filter((c) => c.peerId !== leaving)
    .sort((a, b) => rank(a.role) - rank(b.role) || a.joinedAt - b.joinedAt || (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0))[0];
  return best ? { peerId: best.peerId, identity: best.identity, role: best.role, nodeId: best.nodeId } : null;
}

/**
 * Whether `joining` takes hosting on arrival: when nobody hosts, or when it holds a host token and
 * whoever hosts now only stood in (the real host arriving after the guests).
 */
export function takesHostOnJoin(current: WatchHost | null, joiningRole: Role): boolean {
  if (current === null) return true;
  return joiningRole === 'host' && current.role !== 'host';
}
