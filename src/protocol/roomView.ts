/**
 * A client's copy of the room: the participants and tracks the node shows it, kept from a
 * versioned snapshot and the ordered deltas after it. A delta that does not follow on from the
 * version held is a gap: the copy is not trusted until a fresh snapshot replaces it, so a track
 * that is gone is never shown as present.
 *
 * Replacing the copy (after a gap or a reconnect) yields the changes between the old and the new
 * one, so the application sees the same events whichever way the news came.
 */
import type { ParticipantInfo, RoomChange, RoomDelta, RoomSnapshot, TrackInfo } from './room.js';

export type DeltaOutcome = 'applied' | 'stale' | 'gap';

export class RoomView {
  #version = -1;
  readonly #participants = new Map<string, ParticipantInfo>();

  get version(): number {
    return this.#version;
  }

  /** No snapshot held (before the first, or after a gap): deltas wait for one. */
  get synced(): boolean {
    return this.#version >= 0;
  }

  get participants(): ReadonlyMap<string, ParticipantInfo> {
    return this.#participants;
  }

  track(trackId: string): { participant: ParticipantInfo; track: TrackInfo } | undefined {
    for (const participant of this.#participants.values()) {
      const track = participant.tracks.find((t) => t.trackId === trackId);
      if (track) return { participant, track };
    }
    return undefined;
  }

  /**
   * Applies `delta` if it follows on from the version held. Older news (already in the snapshot)
   * is `stale`; anything that skips a version is a `gap`, after which the view waits for a
   * snapshot. Returns the changes applied.
   */
  apply(delta: RoomDelta): { outcome: DeltaOutcome; changes: RoomChange[] } {
    if (!this.synced) return { outcome: 'gap', changes: [] };
    const first = delta.version - delta.changes.length;
    if (delta.version <= this.#version) return { outcome: 'stale', changes: [] };
    if (first !== this.#version) {
      this.#version = -1;
      return { outcome: 'gap', changes: [] };
    }
    for (const change of delta.changes) this.#applyChange(change);
    this.#version = delta.version;
    return { outcome: 'applied', changes: delta.changes };
  }

  /**
   * Applies changes that carry no versions (another node's members, in the order that node
   * sent them); returns those that changed something.
   */
  applyChanges(changes: readonly RoomChange[]): RoomChange[] {
    const applied: RoomChange[] = [];
    for (const change of changes) if (this.#applyChange(change)) applied.push(change);
    return applied;
  }

  /** Replaces the view with `snapshot`; returns the changes that turn the old view into it. */
  reset(snapshot: RoomSnapshot): RoomChange[] {
    const before = new Map(this.#participants);
    const changes: RoomChange[] = [];
    const after = new Map(snapshot.participants.map((p) => [p.peerId, p]));
    for (const [peerId, old] of before) {
      const now = after.get(peerId);
      if (!now) {
        for (const track of old.tracks) changes.push({ type: 'unpublished', peerId, trackId: track.trackId });
        changes.push({ type: 'left', peerId });
        continue;
      }
      for (const track of old.tracks) {
        const current = now.tracks.find((t) => t.trackId === track.trackId);
        if (!current) changes.push({ type: 'unpublished', peerId, trackId: track.trackId });
        else if (current.muted !== track.muted || current.mutedByModerator !== track.mutedByModerator) {
          changes.push({ type: 'muted', peerId, trackId: track.trackId, muted: current.muted, mutedByModerator: current.mutedByModerator });
        }
      }
      for (const track of now.tracks) {
        if (!old.tracks.some((t) => t.trackId === track.trackId)) changes.push({ type: 'published', peerId, track });
      }
    }
    for (const [peerId, now] of after) if (!before.has(peerId)) changes.push({ type: 'joined', participant: now });
    this.#participants.clear();
    for (const [peerId, p] of after) this.#participants.set(peerId, { ...p, tracks: p.tracks.map((t) => ({ ...t })) });
    this.#version = snapshot.version;
    return changes;
  }

  /** Forgets everything (leaving, or moving to another node whose versions are its own). */
  clear(): RoomChange[] {
    const changes = this.reset({ version: -1, participants: [] });
    this.#version = -1;
    return changes;
  }

  /** Whether the change found what it names (a change about someone unknown is dropped). */
  #applyChange(change: RoomChange): boolean {
    switch (change.type) {
      case 'joined':
        this.#participants.set(change.participant.peerId, { ...change.participant, tracks: change.participant.tracks.map((t) => ({ ...t })) });
        return true;
      case 'left':
        return this.#participants.delete(change.peerId);
      case 'published': {
        const p = this.#participants.get(change.peerId);
        if (p) p.tracks = [...p.tracks.filter((t) => t.trackId !== change.track.trackId), { ...change.track }];
        return p !== undefined;
      }
      case 'unpublished': {
        const p = this.#participants.get(change.peerId);
        const before = p?.tracks.length ?? 0;
        if (p) p.tracks = p.tracks.filter((t) => t.trackId !== change.trackId);
        return p !== undefined && p.tracks.length < before;
      }
      case 'muted': {
        const p = this.#participants.get(change.peerId);
        const t = p?.tracks.find((x) => x.trackId === change.trackId);
        if (t) {
          t.muted = change.muted;
          t.mutedByModerator = change.mutedByModerator;
        }
        return t !== undefined;
      }
    }
  }
}
