/**
 * Watch parties on this node. The playback state of each watch room lives in the StateStore (so
 * any node can answer a late joiner) and changes go through compare-and-set, so two nodes changing
 * it at once never lose a change; every change fans out to the room's clients on every node
 * through the room channel (the Socket.IO adapter in a cluster).
 *
 * This node tracks its own members: their heartbeats (position reports), removal after missed
 * ones, and hosting passing on when its host leaves. A periodic sweep also notices a host that
 * vanished with another node, and an empty room's state is archived after a timeout.
 */
import type { AuditSink } from '../observability/audit.js';
import type { Logger } from '../observability/logger.js';
import { ChorusError } from '../protocol/errors.js';
import type { WatchCause, WatchControl, WatchHost, WatchMember, WatchReport, WatchSnapshot, WatchState } from '../protocol/watch.js';
import type { RoomChannel } from '../rooms/channel.js';
import type { Peer } from '../rooms/peer.js';
import type { Room, SessionEndReason } from '../rooms/room.js';
import type { RoomManager } from '../rooms/roomManager.js';
import type { PeerRecord, StateStore } from '../store/stateStore.js';
import { applyControl, initialState, measureDrift, nextHost, takesHostOnJoin, withHost, type Drift } from './state.js';
import { parseWatchState } from './stored.js';
import { repeatOnGrid, type GridTimer } from '../time/gridTimer.js';

export interface WatchSettings {
  /** Drift beyond which a member is told to resync. */
  driftThresholdMs: number;
  /** How often members report their position; two missed reports remove a member. */
  reportIntervalMs: number;
  /** How long an empty room's state is kept for people coming back before it is archived. */
  archiveAfterMs: number;
  /** Lease of a room's state in the store, renewed while anyone is in the room. */
  stateTtlSeconds: number;
}

export interface WatchServiceDeps {
  store: StateStore;
  channel: RoomChannel;
  audit: AuditSink;
  log: Logger;
  nodeId: string;
  settings: WatchSettings;
}

/** What the signaling handlers need from watch parties. */
export interface WatchRequests {
  /** Called once a session is joined and subscribed to room events; undefined for other kinds. */
  joined(room: Room, peer: Peer): Promise<WatchSnapshot | undefined>;
  control(room: Room, peer: Peer, control: WatchControl): Promise<WatchState>;
  report(room: Room, peer: Peer, report: WatchReport, receivedAt: number): Promise<Drift & { version: number }>;
}

interface Member {
  room: Room;
  peer: Peer;
  lastSeen: number;
}

/** A report sampled further than this from the server's clock is refused (a broken clock estimate). */
const MAX_SAMPLE_SKEW_MS = 10_000;
const SWAP_ATTEMPTS = 8;

const stateKey = (roomId: string): string => `watch:${roomId}`;

const asMember = (p: PeerRecord): WatchMember => ({ peerId: p.id, identity: p.identity, role: p.role, joinedAt: p.joinedAt });

export class WatchService implements WatchRequests {
  readonly #members = new Map<string, Member>();
  /** Last state this node read or wrote per room, with its stored form (for compare-and-set). */
  readonly #cache = new Map<string, { raw: string; state: WatchState; touchedAt: number }>();
  readonly #archiveTimers = new Map<string, NodeJS.Timeout>();
  /** Per room, the tail of this node's queued changes. */
  readonly #queues = new Map<string, Promise<void>>();
  readonly #sweepTimer: GridTimer;
  /** The sweep under way, if any (close waits for it). */
  #sweeping: Promise<void> | undefined;
  #closed = false;
  readonly #log: Logger;

  constructor(private readonly deps: WatchServiceDeps) {
    this.#log = deps.log.child({ component: 'watch' });
    this.#sweepTimer = repeatOnGrid(Math.max(50, Math.floor(deps.settings.reportIntervalMs / 2)), () => {
      if (this.#sweeping || this.#closed) return;
      this.#sweeping = this.#sweep()
        .catch((error: unknown) => this.#log.warn({ err: error }, 'watch sweep failed'))
        .finally(() => (this.#sweeping = undefined));
    });
  }

  get settings(): WatchSettings {
    return this.deps.settings;
  }

  /** Follows the rooms `rooms` creates: leaves pass hosting on, closes schedule archiving. */
  attach(rooms: RoomManager): void {
    rooms.on('room', (room) => {
      if (!room.policy.sharedPlayback) return;
      clearTimeout(this.#archiveTimers.get(room.id));
      this.#archiveTimers.delete(room.id);
      room.on('peerleft', (peer, reason) => void this.#left(room, peer, reason));
      room.once('close', () => this.#scheduleArchive(room.id));
    });
  }

  async joined(room: Room, peer: Peer): Promise<WatchSnapshot | undefined> {
    if (!room.policy.sharedPlayback) return undefined;
    const now = Date.now();
    this.#members.set(peer.id, { room, peer, lastSeen: now });
    const me: WatchHost = { peerId: peer.id, identity: peer.identity, role: peer.role, nodeId: this.deps.nodeId };
    const created = { value: false };
    const { state, previous, changed } = await this.#update(room.id, (current) => {
      created.value = !current;
      if (!current) return initialState(me, now);
      return takesHostOnJoin(current.host, peer.role) ? withHost(current, me, now) : undefined;
    });
    if (changed) {
      if (created.value) this.#auditState(room.id, peer, 'create', state);
      else this.#auditHost(room.id, previous?.host ?? null, state, 'joined');
      this.#announce(room.id, state, created.value ? 'created' : 'host', peer.identity);
    }
    const member: WatchMember = { peerId: peer.id, identity: peer.identity, role: peer.role, joinedAt: peer.joinedAt };
    this.deps.channel.toRoom(room.id, 'watch:member', { change: 'joined', member });
    const members = (await this.deps.store.listPeers(room.id)).map(asMember).sort((a, b) => a.joinedAt - b.joinedAt);
    return {
      state,
      serverTime: Date.now(),
      members,
      driftThresholdMs: this.deps.settings.driftThresholdMs,
      reportIntervalMs: this.deps.settings.reportIntervalMs,
      controlGrant: peer.grants.control === true,
    };
  }

  async control(room: Room, peer: Peer, control: WatchControl): Promise<WatchState> {
    this.#memberOf(room, peer);
    const { state } = await this.#update(room.id, (current) => {
      const base = current ?? this.#cache.get(room.id)?.state;
      if (!base) throw new ChorusError('UNAVAILABLE', 'the room has no playback state right now; join again');
      if (base.host?.peerId !== peer.id && peer.grants.control !== true) {
        throw new ChorusError('NOT_HOST', `only the host (${base.host?.identity ?? 'nobody'}) can change playback`);
      }
      return applyControl(base, control, Date.now());
    });
    this.#auditState(room.id, peer, control.action, state);
    this.#announce(room.id, state, 'control', peer.identity);
    return state;
  }

  async report(room: Room, peer: Peer, report: WatchReport, receivedAt: number): Promise<Drift & { version: number }> {
    const member = this.#memberOf(room, peer);
    const sampledAt = report.sampledAt ?? receivedAt;
    if (Math.abs(sampledAt - receivedAt) > MAX_SAMPLE_SKEW_MS) {
      throw new ChorusError('BAD_REQUEST', `sampledAt is more than ${MAX_SAMPLE_SKEW_MS} ms from server time; sync the clock again`);
    }
    member.lastSeen = Date.now();
    let state = this.#cache.get(room.id)?.state;
    // A member ahead of this node's copy saw a change made elsewhere: read the newest.
    if (!state || report.version > state.version) state = (await this.#load(room.id)) ?? state;
    if (!state) return { driftMs: null, resync: false, version: 0 };
    const drift = measureDrift(state, report, sampledAt, this.deps.settings.driftThresholdMs);
    if (drift.resync) this.deps.channel.toPeer(peer.id, 'watch:resync', { state, driftMs: drift.driftMs, serverTime: Date.now() });
    return { ...drift, version: state.version };
  }

  /** Stops sweeping; resolves once a sweep under way has ended (bounded: a few store reads). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#sweepTimer.stop();
    for (const timer of this.#archiveTimers.values()) clearTimeout(timer);
    this.#archiveTimers.clear();
    this.#members.clear();
    await this.#sweeping;
  }

  #memberOf(room: Room, peer: Peer): Member {
    if (!room.policy.sharedPlayback) throw new ChorusError('WRONG_ROOM_KIND', `a ${room.kind} room has no shared playback`);
    const member = this.#members.get(peer.id);
    if (!member || peer.closed) throw new ChorusError('NOT_JOINED', 'join the room first');
    return member;
  }

  async #left(room: Room, peer: Peer, reason: SessionEndReason): Promise<void> {
    if (!this.#members.delete(peer.id)) return;
    const member: WatchMember = { peerId: peer.id, identity: peer.identity, role: peer.role, joinedAt: peer.joinedAt };
    this.deps.channel.toRoom(room.id, 'watch:member', { change: 'left', member });
    try {
      await this.#succeed(room.id, peer.id, reason === 'dropped' || reason === 'expired' || reason === 'stale' || reason === 'closed' ? 'gone' : 'left');
    } catch (error) {
      // The sweep tries again: it finds a host that is no longer anywhere.
      this.#log.warn({ err: error, room: room.id, peer: peer.id }, 'passing hosting on failed');
    }
  }

  /** If `leavingPeerId` hosts, hosting passes to the best candidate present (or nobody). */
  async #succeed(roomId: string, leavingPeerId: string, reason: 'left' | 'gone'): Promise<void> {
    if ((await this.#load(roomId))?.host?.peerId !== leavingPeerId) return;
    const candidates = (await this.deps.store.listPeers(roomId)).map((p) => ({ peerId: p.id, identity: p.identity, role: p.role, nodeId: p.nodeId, joinedAt: p.joinedAt }));
    const { state, previous, changed } = await this.#update(roomId, (current) =>
      current && current.host?.peerId === leavingPeerId ? withHost(current, nextHost(candidates, leavingPeerId), Date.now()) : undefined,
    );
    if (!changed) return;
    this.#auditHost(roomId, previous?.host ?? null, state, reason);
    this.#announce(roomId, state, 'host', undefined);
  }

  /** Heartbeats, hosts lost with their node, and state leases, for the rooms with members here. */
  async #sweep(): Promise<void> {
    const now = Date.now();
    const deadline = now - this.deps.settings.reportIntervalMs * 2.5;
    const rooms = new Map<string, Room>();
    for (const member of [...this.#members.values()]) {
      if (this.#closed) return;
      if (member.lastSeen < deadline && !member.peer.closed) await this.#expire(member);
      else if (!member.room.closed) rooms.set(member.room.id, member.room);
    }
    for (const roomId of rooms.keys()) {
      if (this.#closed) return;
      await this.#checkRoom(roomId, now).catch((error: unknown) => this.#log.warn({ err: error, room: roomId }, 'watch sweep failed'));
    }
  }

  async #expire(member: Member): Promise<void> {
    const { room, peer } = member;
    this.#log.info({ room: room.id, peer: peer.id }, 'watch member missed its heartbeats; removing it');
    this.deps.audit.record({ type: 'watch.member.removed', room: room.id, peer: peer.id, identity: peer.identity, reason: 'missed heartbeats' });
    this.deps.channel.toPeer(peer.id, 'watch:removed', { reason: 'no position report for two intervals' });
    this.deps.channel.detach(peer.id, room.id);
    await room.leave(peer, 'expired').catch((error: unknown) => this.#log.warn({ err: error, room: room.id, peer: peer.id }, 'removing a silent member failed'));
  }

  async #checkRoom(roomId: string, now: number): Promise<void> {
    const cached = this.#cache.get(roomId);
    const state = await this.#load(roomId);
    if (!state) {
      // The store lost it (Redis restarted empty): put back the last state this node knew.
      if (cached) await this.#update(roomId, (current) => (current ? undefined : cached.state));
      return;
    }
    const host = state.host;
    const hostGone =
      host === null ||
      (host.nodeId === this.deps.nodeId ? !this.#members.has(host.peerId) : (await this.deps.store.getPeer(roomId, host.peerId)) === undefined);
    // A sweep that was under way when this node closed finds its members cleared: its hosts are
    // not gone, the node is, and the nodes that stay hand hosting over.
    if (this.#closed) return;
    if (hostGone) {
      if (host) await this.#succeed(roomId, host.peerId, 'gone');
      else {
        const candidates = (await this.deps.store.listPeers(roomId)).map((p) => ({ peerId: p.id, identity: p.identity, role: p.role, nodeId: p.nodeId, joinedAt: p.joinedAt }));
        const { state: next, changed } = await this.#update(roomId, (current) => (current && current.host === null ? withHost(current, nextHost(candidates), Date.now()) : undefined));
        if (changed && next.host) {
          this.#auditHost(roomId, null, next, 'gone');
          this.#announce(roomId, next, 'host', undefined);
        }
      }
    }
    const entry = this.#cache.get(roomId);
    if (entry && now - entry.touchedAt > (this.deps.settings.stateTtlSeconds * 1000) / 3) {
      if (await this.deps.store.swapValue(stateKey(roomId), entry.raw, entry.raw, this.deps.settings.stateTtlSeconds)) entry.touchedAt = now;
    }
  }

  #scheduleArchive(roomId: string): void {
    if (this.#closed) return;
    clearTimeout(this.#archiveTimers.get(roomId));
    const timer = setTimeout(() => {
      this.#archiveTimers.delete(roomId);
      void this.#archive(roomId).catch((error: unknown) => this.#log.warn({ err: error, room: roomId }, 'archiving a watch room failed'));
    }, this.deps.settings.archiveAfterMs);
    timer.unref();
    this.#archiveTimers.set(roomId, timer);
  }

  /** Drops the state of a room nobody is in anymore; one node wins the compare-and-delete. */
  async #archive(roomId: string): Promise<void> {
    if ([...this.#members.values()].some((m) => m.room.id === roomId)) return;
    if ((await this.deps.store.countPeers(roomId)) > 0) return;
    const raw = await this.deps.store.getValue(stateKey(roomId));
    this.#cache.delete(roomId);
    if (raw === undefined) return;
    if (!(await this.deps.store.swapValue(stateKey(roomId), raw, undefined, 1))) return;
    const state = parseWatchState(raw);
    this.#log.info({ room: roomId }, 'watch room archived');
    this.deps.audit.record({ type: 'watch.archived', room: roomId, url: state?.url ?? '', position: state?.position ?? 0, version: state?.version ?? 0 });
  }

  async #load(roomId: string): Promise<WatchState | undefined> {
    const raw = await this.deps.store.getValue(stateKey(roomId));
    const state = raw === undefined ? undefined : parseWatchState(raw);
    if (raw !== undefined && state) this.#remember(roomId, raw, state);
    return state;
  }

  #remember(roomId: string, raw: string, state: WatchState): void {
    const previous = this.#cache.get(roomId);
    // Never step back: a slow read may return what a faster write already replaced.
    if (previous && previous.state.version > state.version) return;
    this.#cache.set(roomId, { raw, state, touchedAt: previous?.raw === raw ? previous.touchedAt : Date.now() });
  }

  /**
   * Read, change, compare-and-set, until it lands. `change` returns the next state, or undefined
   * for "no change"; it may throw (a refusal) and is then not retried. Changes to one room are
   * queued on this node, so its own requests never race each other for the swap; the first try
   * trusts this node's copy (one round trip), a failed swap reads the store.
   */
  #update(roomId: string, change: (current: WatchState | undefined) => WatchState | undefined): Promise<{ state: WatchState; previous: WatchState | undefined; changed: boolean }> {
    const previous = this.#queues.get(roomId) ?? Promise.resolve();
    const run = previous.then(() => this.#swap(roomId, change));
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.#queues.set(roomId, tail);
    void tail.then(() => {
      if (this.#queues.get(roomId) === tail) this.#queues.delete(roomId);
    });
    return run;
  }

  async #swap(
    roomId: string,
    change: (current: WatchState | undefined) => WatchState | undefined,
  ): Promise<{ state: WatchState; previous: WatchState | undefined; changed: boolean }> {
    for (let attempt = 0; attempt < SWAP_ATTEMPTS; attempt++) {
      const cached = attempt === 0 ? this.#cache.get(roomId) : undefined;
      const raw = cached ? cached.raw : await this.deps.store.getValue(stateKey(roomId));
      const current = cached ? cached.state : raw === undefined ? undefined : parseWatchState(raw);
      let next: WatchState | undefined;
      try {
        next = change(current);
      } catch (error) {
        // A refusal judged on this node's copy is checked again against the store's.
        if (cached) continue;
        throw error;
      }
      if (next === undefined) {
        if (cached) continue; // "no change" must hold for the stored state, not only our copy
        if (!current) throw new ChorusError('UNAVAILABLE', 'the room has no playback state right now; join again');
        if (raw !== undefined) this.#remember(roomId, raw, current);
        return { state: current, previous: current, changed: false };
      }
      const nextRaw = JSON.stringify(next);
      if (await this.deps.store.swapValue(stateKey(roomId), raw, nextRaw, this.deps.settings.stateTtlSeconds)) {
        this.#remember(roomId, nextRaw, next);
        return { state: next, previous: current, changed: true };
      }
    }
    throw new ChorusError('UNAVAILABLE', 'playback state is changing too fast; try again');
  }

  #announce(roomId: string, state: WatchState, cause: WatchCause, by: string | undefined): void {
    this.deps.channel.toRoom(roomId, 'watch:state', { state, cause, serverTime: Date.now(), ...(by ? { by } : {}) });
  }

  #auditState(roomId: string, peer: Peer, action: WatchControl['action'] | 'create', state: WatchState): void {
    const { version, url, position, playing, rate } = state;
    this.deps.audit.record({ type: 'watch.state', room: roomId, peer: peer.id, identity: peer.identity, action, version, url, position, playing, rate });
  }

  #auditHost(roomId: string, from: WatchHost | null, state: WatchState, reason: 'joined' | 'left' | 'gone'): void {
    this.#log.info({ room: roomId, from: from?.peerId, to: state.host?.peerId, reason }, 'hosting passed on');
    this.deps.audit.record({ type: 'watch.host', room: roomId, from: from?.identity, to: state.host?.identity, peer: state.host?.peerId, reason, version: state.version });
  }
}
