import { describe, expect, test } from 'vitest';
import type { ParticipantInfo, TrackInfo } from '../../src/protocol/room.js';
import { RoomView } from '../../src/protocol/roomView.js';

const track = (trackId: string, muted = false): TrackInfo => ({ trackId, source: 'microphone', kind: 'audio', muted, mutedByModerator: false, layers: 1 });
const participant = (peerId: string, tracks: TrackInfo[] = []): ParticipantInfo => ({ peerId, identity: peerId, role: 'participant', tracks });

describe('RoomView: a versioned snapshot and the deltas after it', () => {
  test('deltas that follow on are applied; older ones are stale; a skipped version is a gap until the next snapshot', () => {
    const view = new RoomView();
    expect(view.apply({ version: 1, changes: [{ type: 'left', peerId: 'x' }] }).outcome).toBe('gap');
    view.reset({ version: 3, participants: [participant('a', [track('t1')])] });
    expect(view.apply({ version: 3, changes: [{ type: 'left', peerId: 'a' }] }).outcome).toBe('stale');
    expect(view.participants.has('a')).toBe(true);
    const batch = view.apply({ version: 5, changes: [{ type: 'joined', participant: participant('b') }, { type: 'published', peerId: 'b', track: track('t2') }] });
    expect(batch.outcome).toBe('applied');
    expect(view.version).toBe(5);
    expect(view.track('t2')?.participant.peerId).toBe('b');
    // Version 6 never arrived: 7 is a gap, and the view stops trusting itself.
    expect(view.apply({ version: 7, changes: [{ type: 'unpublished', peerId: 'a', trackId: 't1' }] }).outcome).toBe('gap');
    expect(view.synced).toBe(false);
    expect(view.apply({ version: 8, changes: [{ type: 'left', peerId: 'b' }] }).outcome).toBe('gap');
  });

  test('a fresh snapshot yields exactly the changes between the two views, tracks before their participant', () => {
    const view = new RoomView();
    view.reset({ version: 1, participants: [participant('a', [track('t1'), track('t2')]), participant('b', [track('t3')])] });
    const changes = view.reset({ version: 9, participants: [participant('a', [track('t1', true)]), participant('c', [track('t4')])] });
    expect(changes).toEqual([
      { type: 'muted', peerId: 'a', trackId: 't1', muted: true, mutedByModerator: false },
      { type: 'unpublished', peerId: 'a', trackId: 't2' },
      { type: 'unpublished', peerId: 'b', trackId: 't3' },
      { type: 'left', peerId: 'b' },
      { type: 'joined', participant: participant('c', [track('t4')]) },
    ]);
    expect(view.version).toBe(9);
    expect([...view.participants.keys()]).toEqual(['a', 'c']);
  });

  test("unversioned changes (another node's members) apply in order; changes about unknown members are dropped", () => {
    const view = new RoomView();
    view.reset({ version: 0, participants: [] });
    const applied = view.applyChanges([
      { type: 'published', peerId: 'ghost', track: track('t0') },
      { type: 'joined', participant: participant('a') },
      { type: 'published', peerId: 'a', track: track('t1') },
      { type: 'muted', peerId: 'a', trackId: 't1', muted: true, mutedByModerator: true },
      { type: 'unpublished', peerId: 'a', trackId: 'nope' },
    ]);
    expect(applied.map((c) => c.type)).toEqual(['joined', 'published', 'muted']);
    expect(view.track('t1')?.track).toMatchObject({ muted: true, mutedByModerator: true });
    expect(view.clear()).toEqual([{ type: 'unpublished', peerId: 'a', trackId: 't1' }, { type: 'left', peerId: 'a' }]);
  });
});
