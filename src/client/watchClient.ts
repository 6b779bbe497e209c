/**
 * The SDK for watch-party rooms: joins, keeps a clock offset to the node (NTP-style pings), keeps
 * an attached player (an HTMLVideoElement, or anything shaped like one) on the room's playback,
 * reports its position as a heartbeat, and follows the server's resync requests. The host (or a
 * token with the control grant) steers the room with play/pause/seek/setRate/load.
 *
 * No WebRTC here: a watch room carries playback state only. Reconnects (network drops, a node
 * draining, a removal after missed heartbeats) rejoin as the same identity with the resume token.
 */
import { Emitter } from '@socket.io/component-emitter';
import type { ManagerOptions, SocketOptions } from 'socket.io-client';
import type { Responses } from '../protocol/messages.js';
import type { WatchCause, WatchControl, WatchHost, WatchMember, WatchState } from '../protocol/watch.js';
import { positionAt } from '../protocol/basics.js';
import { ClockEstimate, clockSample, type ClockSample } from './clock.js';
import { NodeLink, nodeUrl } from './nodeLink.js';
import { ChorusClientError, request, requireProtocol, type ClientSocket } from './signaling.js';

export { ChorusClientError } from './signaling.js';

/** The part of HTMLMediaElement the client drives. */
export interface PlayerLike {
  currentTime: number;
  playbackRate: number;
  readonly paused: boolean;
  readonly ended: boolean;
  /** Media length in seconds (NaN until known), when the player knows it. */
  readonly duration?: number;
  src: string;
  play(): Promise<void> | void;
  pause(): void;
  /** When present, the client hears `ended` and pauses the room at the end (if it may steer). */
  addEventListener?(type: 'ended', listener: () => void): void;
  removeEventListener?(type: 'ended', listener: () => void): void;
}

/** The player's media length, when it knows it. */
function durationOf(player: PlayerLike): number | undefined {
  const duration = player.duration;
  return duration !== undefined && Number.isFinite(duration) && duration > 0 ? duration : undefined;
}

export interface WatchClientOptions {
  url: string;
  roomId: string;
  token: string;
  /** A resume token from an earlier session (kept in sessionStorage across reloads). */
  resumeToken?: string;
  /** Clock samples taken on each (re)join; the one with the smallest round trip is used. */
  syncSamples?: number;
  /** How often the clock is sampled again while joined. */
  resyncClockEveryMs?: number;
  socket?: Partial<ManagerOptions & SocketOptions>;
}

export type WatchClientState = 'idle' | 'connecting' | 'joined' | 'reconnecting' | 'closed';

export interface WatchClientEvents {
  state: (state: WatchClientState) => void;
  joined: (info: Responses['join']) => void;
  /** The room's playback changed (or was first received: cause `joined`). */
  playback: (state: WatchState, cause: WatchCause | 'joined' | 'resync') => void;
  host: (host: WatchHost | null) => void;
  members: (members: WatchMember[]) => void;
  /** This player's distance from the room at its last report, ms (null: not comparable). */
  drift: (driftMs: number | null) => void;
  /** The server asked this player to resync. */
  resync: (driftMs: number | null) => void;
  clock: (sample: ClockSample) => void;
  /** The player refused to play (autoplay policy): the page should ask for a tap. */
  blocked: (error: unknown) => void;
  error: (error: ChorusClientError) => void;
}

/** How close to the media's end counts as the end (players stop a frame or so early). */
const END_SLACK_SECONDS = 0.1;

const transientCodes = new Set<string>(['TIMEOUT', 'DISCONNECTED', 'UNAVAILABLE', 'INTERNAL', 'LIMIT_REACHED', 'ROOM_FULL', 'NOT_JOINED']);

export class WatchClient extends Emitter<WatchClientEvents, WatchClientEvents> {
  readonly #options: WatchClientOptions;
  /** The connection: to the configured URL, or to the node a draining one sent us to. */
  readonly #link: NodeLink;
  readonly #clock: ClockEstimate;
  #state: WatchClientState = 'idle';
  #info: Responses['join'] | undefined;
  #playback: WatchState | undefined;
  readonly #members = new Map<string, WatchMember>();
  #player: PlayerLike | undefined;
  #loadedUrl: string | undefined;
  #driftMs: number | null = null;
  #reportTimer: ReturnType<typeof setInterval> | undefined;
  #clockTimer: ReturnType<typeof setInterval> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #generation = 0;
  #joinWaiter: { resolve(info: Responses['join']): void; reject(error: ChorusClientError): void } | undefined;

  constructor(options: WatchClientOptions) {
    super();
    this.#options = options;
    this.#clock = new ClockEstimate(Math.max(8, options.syncSamples ?? 5));
    this.#link = new NodeLink(options.url, options.socket, (socket) => this.#wireSocket(socket));
  }

  get #socket(): ClientSocket {
    return this.#link.socket;
  }

  /** Drops the current connection and connects to `url` (a node that stays, or back to the entry URL). */
  #moveTo(url: string, delayMs: number): void {
    this.#stopTimers();
    this.#setState('reconnecting');
    const socket = this.#link.switchTo(url);
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => socket.connect(), delayMs);
  }

  get state(): WatchClientState {
    return this.#state;
  }
  get peerId(): string | undefined {
    return this.#info?.peerId;
  }
  get identity(): string | undefined {
    return this.#info?.identity;
  }
  get resumeToken(): string | undefined {
    return this.#info?.resumeToken;
  }
  get playback(): WatchState | undefined {
    return this.#playback;
  }
  get host(): WatchHost | null {
    return this.#playback?.host ?? null;
  }
  get isHost(): boolean {
    return this.#info !== undefined && this.#playback?.host?.peerId === this.#info.peerId;
  }
  /** May steer playback: hosting now, or holding the control grant. */
  get canControl(): boolean {
    return this.isHost || this.#info?.watch?.controlGrant === true;
  }
  get members(): WatchMember[] {
    return [...this.#members.values()].sort((a, b) => a.joinedAt - b.joinedAt);
  }
  get driftMs(): number | null {
    return this.#driftMs;
  }
  /** Best clock sample so far (server minus client, and its round trip). */
  get clock(): ClockSample | undefined {
    return this.#clock.best;
  }
  /** Now on the server's clock, as estimated. */
  serverNow(): number {
    return Date.now() + this.#clock.offsetMs;
  }
  /** Where the room's media is now (seconds), or undefined before joining. */
  expectedPosition(): number | undefined {
    return this.#playback && positionAt(this.#playback, this.serverNow());
  }

  /** Keeps `player` on the room's playback from now on (and reports its position). */
  attach(player: PlayerLike): void {
    this.#player?.removeEventListener?.('ended', this.#onEnded);
    this.#player = player;
    this.#loadedUrl = undefined;
    player.addEventListener?.('ended', this.#onEnded);
    if (this.#playback) this.#applyToPlayer(this.#playback, true);
  }

  /**
   * The video reached its end while the room plays: whoever may steer pauses the room there, so
   * the room does not run on past the media (showing "playing", and drift against a player that
   * cannot follow).
   */
  readonly #onEnded = (): void => {
    const player = this.#player;
    const duration = player && durationOf(player);
    if (!this.canControl || !this.#playback?.playing || duration === undefined) return;
    this.pause(duration).catch((error: unknown) => {
      if (error instanceof ChorusClientError) this.emit('error', error);
    });
  };

  /** Puts the player where the room is now (e.g. once a newly loaded video can seek). */
  realign(): void {
    if (this.#playback) this.#applyToPlayer(this.#playback, true);
  }

  async join(): Promise<Responses['join']> {
    if (this.#state !== 'idle') throw new ChorusClientError('ALREADY_JOINED', 'join() was already called', false);
    this.#setState('connecting');
    const joined = new Promise<Responses['join']>((resolve, reject) => {
      this.#joinWaiter = { resolve, reject };
    });
    this.#socket.connect();
    return joined;
  }

  /** Plays from `position`, else from where the room is; at the end of the media, from the start. */
  play(position?: number): Promise<WatchState> {
    const from = position ?? (this.#atEnd() ? 0 : undefined);
    return this.control({ action: 'play', ...(from !== undefined ? { position: from } : {}) });
  }

  /** The room's position is at (or past) the end of the attached player's media. */
  #atEnd(): boolean {
    const player = this.#player;
    const duration = player && durationOf(player);
    const expected = this.expectedPosition();
    return duration !== undefined && expected !== undefined && expected >= duration - END_SLACK_SECONDS;
  }
  pause(position?: number): Promise<WatchState> {
    return this.control({ action: 'pause', ...(position !== undefined ? { position } : {}) });
  }
  seek(position: number): Promise<WatchState> {
    return this.control({ action: 'seek', position });
  }
  setRate(rate: number): Promise<WatchState> {
    return this.control({ action: 'rate', rate });
  }
  load(url: string, options: { position?: number; playing?: boolean } = {}): Promise<WatchState> {
    return this.control({ action: 'load', url, ...options });
  }

  /** Any control; refused with NOT_HOST unless this session may steer. */
  async control(control: WatchControl): Promise<WatchState> {
    const { state } = await request(this.#socket, 'watch.control', control);
    this.#accept(state, 'control', false);
    return state;
  }

  /** Samples the clock `count` times, one after the other. */
  async syncClock(count = this.#options.syncSamples ?? 5): Promise<ClockSample | undefined> {
    for (let i = 0; i < count && this.#socket.connected; i++) {
      const t0 = Date.now();
      const reply = await request(this.#socket, 'time.sync', { clientSentAt: t0 }, 5000);
      const sample = clockSample(t0, reply.receivedAt, reply.sentAt, Date.now());
      this.#clock.add(sample);
    }
    const best = this.#clock.best;
    if (best) this.emit('clock', best);
    return best;
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#stopTimers();
    clearTimeout(this.#retryTimer);
    this.#joinWaiter?.reject(new ChorusClientError('DISCONNECTED', 'client closed before joining', false));
    this.#joinWaiter = undefined;
    if (this.#socket.connected && this.#info) await request(this.#socket, 'leave', {}, 2000).catch(() => undefined);
    this.#socket.disconnect();
    this.#setState('closed');
  }

  #setState(state: WatchClientState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit('state', state);
  }

  #wireSocket(s: ClientSocket): void {
    s.on('connect', () => void this.#establish());
    s.on('connect_error', () => {
      // The node a drain notice sent us to does not take connections (gone, or draining too):
      // start over at the entry URL instead of knocking on its door forever.
      if (this.#link.redirected && this.#state !== 'closed') this.#moveTo(this.#link.entryUrl, 200 + Math.random() * 800);
    });
    s.on('disconnect', (reason) => {
      if (this.#state === 'closed') return;
      this.#stopTimers();
      this.#setState('reconnecting');
      // The node we were sent to went away: start over at the entry URL, which places us again.
      if (this.#link.redirected && reason !== 'io client disconnect') {
        this.#moveTo(this.#link.entryUrl, Math.random() * 500);
        return;
      }
      // A node that disconnects us itself (closing, or shedding a flooding connection) is not
      // reconnected to by Socket.IO on its own: come back later, through the entry URL.
      if (reason === 'io server disconnect') {
        clearTimeout(this.#retryTimer);
        this.#retryTimer = setTimeout(() => {
          if (this.#state !== 'closed' && !this.#socket.connected) this.#socket.connect();
        }, 500 + Math.random() * 1000);
      }
    });
    s.on('watch:state', ({ state, cause }) => this.#accept(state, cause, false));
    s.on('watch:resync', ({ state, driftMs }) => {
      this.emit('resync', driftMs);
      this.#accept(state, 'resync', true);
    });
    s.on('watch:member', ({ change, member }) => {
      if (change === 'joined') this.#members.set(member.peerId, member);
      else this.#members.delete(member.peerId);
      this.emit('members', this.members);
    });
    s.on('watch:removed', () => {
      // The server dropped this session (no heartbeat reached it): come back as the same identity.
      if (this.#state === 'closed') return;
      this.#stopTimers();
      this.#setState('reconnecting');
      void this.#establish();
    });
    s.on('node:draining', ({ moveTo }) => {
      // Straight to the node it names when it names one (a cluster whose clients reach nodes
      // directly: the entry URL may be this very node); else a new connection through the
      // entry URL. Spread over a second so a whole node's members do not arrive at once.
      const next = nodeUrl(moveTo) ?? (this.#link.redirected ? this.#link.entryUrl : undefined);
      if (next) {
        this.#moveTo(next, Math.random() * 1000);
        return;
      }
      this.#stopTimers();
      this.#setState('reconnecting');
      s.disconnect();
      this.#retryTimer = setTimeout(() => s.connect(), Math.random() * 1000);
    });
    s.on('session:kicked', ({ reason }) => this.#end(new ChorusClientError('KICKED', reason, false)));
    s.on('room:ended', ({ reason }) => this.#end(new ChorusClientError('ROOM_ENDED', reason, false)));
  }

  #end(reason: ChorusClientError): void {
    this.#info = undefined;
    this.emit('error', reason);
    void this.close();
  }

  async #establish(): Promise<void> {
    clearTimeout(this.#retryTimer);
    const generation = ++this.#generation;
    const previousPeerId = this.#info?.peerId;
    try {
      await this.syncClock();
      if (generation !== this.#generation) return;
      const info = await request(this.#socket, 'join', {
        roomId: this.#options.roomId,
        token: this.#info?.resumeToken ?? this.#options.resumeToken ?? this.#options.token,
        ...(previousPeerId ? { previousPeerId } : {}),
      });
      if (generation !== this.#generation) return;
      await requireProtocol(this.#socket, info);
      if (!info.watch) {
        await request(this.#socket, 'leave', {}).catch(() => undefined);
        throw new ChorusClientError('WRONG_ROOM_KIND', `this is a ${info.kind} room, not a watch party`, false);
      }
      this.#info = info;
      this.#members.clear();
      for (const m of info.watch.members) this.#members.set(m.peerId, m);
      this.#setState('joined');
      this.#joinWaiter?.resolve(info);
      this.#joinWaiter = undefined;
      this.emit('joined', info);
      this.emit('members', this.members);
      this.#playback = undefined;
      this.#accept(info.watch.state, 'joined', true);
      this.#startTimers(generation, info.watch.reportIntervalMs);
    } catch (error) {
      if (generation !== this.#generation || this.#state === 'closed') return;
      const failure = error instanceof ChorusClientError ? error : new ChorusClientError('INTERNAL', String(error), true);
      this.emit('error', failure);
      if (failure.code === 'ALREADY_JOINED' && this.#socket.connected) {
        await request(this.#socket, 'leave', {}).catch(() => undefined);
        if (generation === this.#generation) void this.#establish();
        return;
      }
      const everJoined = this.#info !== undefined;
      if (transientCodes.has(failure.code) || (everJoined && failure.retryable)) {
        this.#setState('reconnecting');
        this.#retryTimer = setTimeout(() => {
          if (this.#socket.connected) void this.#establish();
        }, Math.max(failure.retryAfterMs ?? 0, 500 + Math.random() * 1000));
      } else {
        this.#joinWaiter?.reject(failure);
        this.#joinWaiter = undefined;
        void this.close();
      }
    }
  }

  #startTimers(generation: number, reportIntervalMs: number): void {
    this.#stopTimers();
    this.#reportTimer = setInterval(() => void this.#report(generation), reportIntervalMs);
    const every = this.#options.resyncClockEveryMs ?? 30_000;
    this.#clockTimer = setInterval(() => void this.syncClock(2).catch(() => undefined), every);
  }

  #stopTimers(): void {
    clearInterval(this.#reportTimer);
    clearInterval(this.#clockTimer);
    this.#reportTimer = undefined;
    this.#clockTimer = undefined;
  }

  /** One heartbeat: where this player is, sampled now (a client without a player follows exactly). */
  async #report(generation: number): Promise<void> {
    const playback = this.#playback;
    if (!playback || generation !== this.#generation || !this.#socket.connected) return;
    const sampledAt = this.serverNow();
    const player = this.#player;
    const position = player ? player.currentTime : positionAt(playback, sampledAt);
    try {
      const reply = await request(this.#socket, 'watch.report', {
        position: Math.max(0, position),
        playing: player ? !player.paused : playback.playing,
        version: playback.version,
        sampledAt: Math.round(sampledAt),
        ...(player?.ended ? { ended: true } : {}),
      });
      this.#driftMs = reply.driftMs;
      this.emit('drift', reply.driftMs);
    } catch (error) {
      if (error instanceof ChorusClientError) this.emit('error', error);
    }
  }

  /** Takes a state newer than ours (or any, when `force`), tells listeners, moves the player. */
  #accept(state: WatchState, cause: WatchCause | 'joined' | 'resync' | 'control', force: boolean): void {
    const current = this.#playback;
    if (current && state.version < current.version) return;
    if (current && state.version === current.version && !force) return;
    const hostChanged = current?.host?.peerId !== state.host?.peerId;
    this.#playback = state;
    this.emit('playback', state, cause === 'control' ? 'control' : cause);
    if (hostChanged) this.emit('host', state.host);
    this.#applyToPlayer(state, force);
  }

  #applyToPlayer(state: WatchState, force: boolean): void {
    const player = this.#player;
    if (!player) return;
    if (state.url && state.url !== this.#loadedUrl) {
      this.#loadedUrl = state.url;
      player.src = state.url;
    }
    if (player.playbackRate !== state.rate) player.playbackRate = state.rate;
    const expected = positionAt(state, this.serverNow());
    const duration = durationOf(player);
    if (duration !== undefined && expected >= duration - END_SLACK_SECONDS) {
      // The room is past this media's end: stay on its last frame. play() on an ended element
      // would start it over from 0, far from the room.
      if (!player.ended && Math.abs(player.currentTime - duration) > END_SLACK_SECONDS) player.currentTime = duration;
      if (!player.paused) player.pause();
      return;
    }
    const thresholdMs = this.#info?.watch?.driftThresholdMs ?? 300;
    // Small differences are left alone: a seek costs a stall, which is worse than a few frames.
    if (force || Math.abs(player.currentTime - expected) * 1000 > thresholdMs / 2) player.currentTime = expected;
    if (state.playing && player.paused) {
      try {
        const started = player.play();
        if (started) started.catch((error: unknown) => this.emit('blocked', error));
      } catch (error) {
        this.emit('blocked', error);
      }
    } else if (!state.playing && !player.paused) player.pause();
  }
}
