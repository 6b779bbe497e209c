/**
 * Which way a call's media goes: through the SFU, or peer-to-peer between its two participants.
 * Two participants who can both carry the call directly go peer-to-peer at once; a third, the
 * call spreading over nodes, or the direct connection failing puts it back on the SFU (at once);
 * back to two, it returns to peer-to-peer only after a hysteresis delay, so someone dropping and
 * rejoining does not flap the call. A pair whose direct connection failed is not tried again.
 *
 * This decides and remembers; the room tells the participants (`call:path`) and relays their
 * offers, answers and candidates only between the pair, only while the path is peer-to-peer.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { CallPathReason, MediaPath } from '../protocol/room.js';

export interface PathMember {
  peerId: string;
  /** The client said it can carry the call peer-to-peer. */
  p2p: boolean;
}

export interface PathChange {
  id: string;
  from: MediaPath;
  to: MediaPath;
  reason: CallPathReason;
  /** Peer-to-peer: the two, the first making the offer (impolite), the second polite. */
  pair?: [string, string] | undefined;
  /** Who must report media on the new path for the switch to be done. */
  members: string[];
  at: number;
}

export interface CallPathSettings {
  /** CHORUS_CALL_P2P=auto. */
  enabled: boolean;
  /** CHORUS_CALL_P2P_BACK_MS: how long a call is back to two before it returns to peer-to-peer. */
  backMs: number;
}

interface CallPathEvents {
  change: [change: PathChange];
  /** Everyone in the switch reported media on the new path. */
  settled: [change: PathChange, durationMs: number, gaps: Record<string, number>];
}

const pairKey = (a: string, b: string): string => [a, b].sort().join('\0');

export class CallPath extends EventEmitter<CallPathEvents> {
  #path: MediaPath = 'sfu';
  #pair: [string, string] | undefined;
  readonly #failed = new Set<string>();
  #members: PathMember[] = [];
  #spans = false;
  /** Set once the call has had more than two or left peer-to-peer: a return waits `backMs`. */
  #waitBeforeP2p = false;
  #backTimer: NodeJS.Timeout | undefined;
  #current: PathChange | undefined;
  /** Who of the current switch renders on its path, and the gap each reported. */
  readonly #ready = new Map<string, number | undefined>();
  #closed = false;

  constructor(private readonly settings: CallPathSettings) {
    super();
  }

  get path(): MediaPath {
    return this.#path;
  }

  get pair(): readonly [string, string] | undefined {
    return this.#pair;
  }

  /** The switch in progress or last made (its id is what clients report readiness for). */
  get current(): PathChange | undefined {
    return this.#current;
  }

  /** The call's members here changed (or whether it spans nodes did): decide again. */
  update(members: PathMember[], spansNodes: boolean): void {
    if (this.#closed) return;
    this.#members = members;
    this.#spans = spansNodes;
    if (members.length > 2) this.#waitBeforeP2p = true;
    this.#decide();
  }

  /** A participant of the pair says the direct connection failed: back to the SFU, for good for this pair. */
  fail(peerId: string): boolean {
    if (this.#path !== 'p2p' || !this.#pair?.includes(peerId)) return false;
    this.#failed.add(pairKey(...this.#pair));
    this.#switch('sfu', 'p2p_failed', undefined);
    return true;
  }

  /** Whether `from` may send offers, answers and candidates to `to` now. */
  mayRelay(from: string, to: string): boolean {
    return this.#path === 'p2p' && from !== to && this.#pair !== undefined && this.#pair.includes(from) && this.#pair.includes(to);
  }

  /**
   * `peerId` renders media on the path of switch `id`. When every member of the switch has, it is
   * settled (once). Returns false for a switch that is not the current one.
   */
  ready(peerId: string, id: string, gapMs?: number): boolean {
    const change = this.#current;
    if (!change || change.id !== id || !change.members.includes(peerId)) return false;
    if (this.#ready.has(peerId)) return true;
    this.#ready.set(peerId, gapMs);
    if (change.members.every((m) => this.#ready.has(m))) {
      const gaps: Record<string, number> = {};
      for (const [member, gap] of this.#ready) if (gap !== undefined) gaps[member] = gap;
      this.emit('settled', change, Date.now() - change.at, gaps);
    }
    return true;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#backTimer);
  }

  #eligible(): boolean {
    const m = this.#members;
    return this.settings.enabled && !this.#spans && m.length === 2 && m.every((x) => x.p2p) && !this.#failed.has(pairKey(m[0]!.peerId, m[1]!.peerId));
  }

  #decide(): void {
    if (this.#path === 'p2p') {
      const [a, b] = this.#pair!;
      const samePair = this.#members.length === 2 && this.#members.some((m) => m.peerId === a) && this.#members.some((m) => m.peerId === b);
      if (this.#eligible() && samePair) return;
      const reason: CallPathReason = this.#spans ? 'spans_nodes' : this.#members.length > 2 ? 'third_participant' : 'participant_left';
      this.#switch('sfu', reason, undefined);
      // A new pair (one left, another joined) may go direct again, after the delay.
    }
    if (!this.#eligible()) {
      clearTimeout(this.#backTimer);
      this.#backTimer = undefined;
      return;
    }
    if (!this.#waitBeforeP2p) return this.#toP2p('two_participants');
    if (this.#backTimer) return;
    this.#backTimer = setTimeout(() => {
      this.#backTimer = undefined;
      if (!this.#closed && this.#path === 'sfu' && this.#eligible()) this.#toP2p('back_to_two');
    }, this.settings.backMs);
    this.#backTimer.unref();
  }

  #toP2p(reason: CallPathReason): void {
    // The earlier joiner offers: members come in join order.
    const [first, second] = this.#members as [PathMember, PathMember];
    this.#switch('p2p', reason, [first.peerId, second.peerId]);
  }

  #switch(to: MediaPath, reason: CallPathReason, pair: [string, string] | undefined): void {
    const from = this.#path;
    const members = to === 'p2p' ? [...pair!] : this.#members.map((m) => m.peerId);
    this.#path = to;
    this.#pair = pair;
    if (to === 'sfu') this.#waitBeforeP2p = true;
    this.#ready.clear();
    this.#current = { id: randomUUID(), from, to, reason, pair, members, at: Date.now() };
    this.emit('change', this.#current);
  }
}
