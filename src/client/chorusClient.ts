/**
 * The Chorus client SDK: joins a room, publishes (broadcaster) or listens (listener), and keeps
 * doing so across network drops, server-side resets and broadcaster restarts without the page
 * having to do anything. Runs in browsers; in Node, pass a mediasoup-client `handlerFactory`
 * backed by a Node WebRTC implementation.
 */
import { Emitter } from '@socket.io/component-emitter';
import { Device } from 'mediasoup-client';
import type { types } from 'mediasoup-client';
import type { ManagerOptions, SocketOptions } from 'socket.io-client';
import type { BroadcastState, CreatedTransport, RequestOf, Responses, Role } from '../protocol/messages.js';
import { NodeLink, nodeUrl } from './nodeLink.js';
import { ChorusClientError, request, requireProtocol, type ClientSocket } from './signaling.js';

export { ChorusClientError } from './signaling.js';

/** Failures of the path, not refusals by the server: always worth another try. */
const transientCodes = new Set<string>(['TIMEOUT', 'DISCONNECTED', 'UNAVAILABLE', 'INTERNAL', 'LIMIT_REACHED', 'ROOM_FULL']);

export type ClientState = 'idle' | 'connecting' | 'joined' | 'reconnecting' | 'closed';

/** How a listener receives the broadcast: WebRTC (sub-second), or the HLS fallback (seconds behind). */
export type MediaMode = 'webrtc' | 'hls';

export interface ChorusClientOptions {
  /** Base URL of a Chorus node, e.g. https://chorus.example.org */
  url: string;
  roomId: string;
  token: string;
  handlerFactory?: types.HandlerFactory;
  /** Opus average bitrate for publishing (16-32 kbit/s suits one voice). Default: what the node's join answer asks for. */
  opusBitrate?: number;
  /**
   * Audio per packet when publishing, in ms (Opus: 10, 20, 40 or 60). Longer packets mean fewer
   * of them: less header overhead on every listener's link and less work per listener on the
   * node, for that much more delay. Default: what the node's join answer asks for.
   */
  opusFrameMs?: number;
  /**
   * A resume token from an earlier session of this client (see `resumeToken`), e.g. kept in
   * sessionStorage so a page reload rejoins as the same identity without a new join token.
   */
  resumeToken?: string;
  /** 'relay' sends everything through the TURN servers the node hands out. */
  iceTransportPolicy?: 'all' | 'relay';
  /** ICE over TCP only, for networks that block UDP. */
  forceTcp?: boolean;
  /** Backoff for re-joining after a failure: first delay and cap, in ms (jittered). */
  retry?: { initialMs: number; maxMs: number };
  socket?: Partial<ManagerOptions & SocketOptions>;
  /**
   * Listeners: switch to HLS by themselves when WebRTC audio is not flowing `afterMs` after it
   * became due (joined with a live, unpaused broadcast, or it started or resumed since; the
   * window starts again each time), or when the WebRTC transport fails. Nothing is due while the
   * room waits for a broadcast or it is paused. The client then emits `mode` ('hls'); play
   * `hlsUrl` (e.g. with `playHls` from ./hlsPlayer.js). Off unless set.
   */
  hlsFallback?: { afterMs: number };
}

export interface ClientEvents {
  state: (state: ClientState) => void;
  joined: (info: Responses['join']) => void;
  broadcast: (state: BroadcastState) => void;
  listeners: (count: number) => void;
  /** A remote track to play (listeners). */
  track: (track: MediaStreamTrack) => void;
  /** The remote track stopped (broadcast ended, or a reconnect is under way). */
  trackended: () => void;
  /** ICE/DTLS state of the media transport. */
  transport: (state: string) => void;
  error: (error: ChorusClientError) => void;
  /** A moderator muted (true) or unmuted (false) this broadcaster. */
  muted: (muted: boolean) => void;
  /** Listeners: the broadcast now comes over `mode` (why: 'timeout', 'failed' or 'asked'). */
  mode: (mode: MediaMode, reason: 'timeout' | 'failed' | 'asked') => void;
  /**
   * Listeners: the first media packet arrived, `afterMs` after join() was called (once per
   * client; also reported to the node for its join-to-first-media histogram).
   */
  mediastarted: (afterMs: number) => void;
}

export class ChorusClient extends Emitter<ClientEvents, ClientEvents> {
  #options: ChorusClientOptions;
  /** The connection: to the configured URL, or to a node a server sent us to. */
  readonly #link: NodeLink;
  /** Redirects followed since the last successful join, so two confused nodes cannot loop us. */
  #redirects = 0;
  #state: ClientState = 'idle';
  #device: Device | undefined;
  #info: Responses['join'] | undefined;
  #transport: types.Transport | undefined;
  #producer: types.Producer | undefined;
  #consumer: types.Consumer | undefined;
  #publishTrack: MediaStreamTrack | undefined;
  /** The broadcaster's wish, kept across reconnects so a paused broadcast stays paused. */
  #paused = false;
  #broadcast: BroadcastState = { live: false, paused: false };
  #listeners = 0;
  #generation = 0;
  #retries = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #consuming: Promise<void> | undefined;
  #consumeRetries = 0;
  /**
   * Producers this client has been told are over (replaced by a newer broadcast, or ended). A
   * consume answered while that news was in flight can still hand one of them out — an edge
   * whose registry still counts a dead origin alive serves its old, silent pipe — and a
   * consumer of one must be dropped, not played. Only the last few matter.
   */
  #superseded: string[] = [];
  /** Broadcast news received so far (started, paused, resumed, ended): a join answer older than some is not taken in. */
  #broadcastNews = 0;
  /**
   * The node predates the short join path (its schema refused `join.transport`): use the classic
   * requests with it. A rolling upgrade serves new pages while some nodes are still old.
   */
  #classic = false;
  #consumeTimer: ReturnType<typeof setTimeout> | undefined;
  #joinWaiter: { resolve(info: Responses['join']): void; reject(error: ChorusClientError): void } | undefined;
  #mode: MediaMode = 'webrtc';
  #fallbackTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the running fallback window opened (performance.now()), if one runs. */
  #fallbackSince: number | undefined;
  /** Whether media was due when the fallback was last judged (a window opens when it becomes due). */
  #mediaDue = false;
  /** When join() was called (performance.now()), and whether the first media since has been seen. */
  #joinCalledAt = 0;
  #mediaStarted = false;

  constructor(options: ChorusClientOptions) {
    super();
    this.#options = options;
    this.#link = new NodeLink(options.url, options.socket, (socket) => this.#wireSocket(socket));
  }

  get #socket(): ClientSocket {
    return this.#link.socket;
  }

  /** Drops the current connection and connects to `url` (another node, or back to the entry URL). */
  #moveTo(url: string, delayMs = 0): void {
    const socket = this.#link.switchTo(url);
    this.#teardownMedia();
    this.#setState('reconnecting');
    this.#classic = false; // another node, maybe a newer one
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => socket.connect(), delayMs);
  }

  get state(): ClientState {
    return this.#state;
  }
  get role(): Role | undefined {
    return this.#info?.role;
  }
  get peerId(): string | undefined {
    return this.#info?.peerId;
  }
  /** Rejoins as this session's identity; valid for a day. Keep it to survive page reloads. */
  get resumeToken(): string | undefined {
    return this.#info?.resumeToken;
  }
  get broadcast(): BroadcastState {
    return this.#broadcast;
  }
  /** Listeners in the room, as last pushed by the server. */
  get audience(): number {
    return this.#listeners;
  }
  get consumer(): types.Consumer | undefined {
    return this.#consumer;
  }
  get producer(): types.Producer | undefined {
    return this.#producer;
  }
  /** Whether this listener receives over WebRTC or the HLS fallback. */
  get mode(): MediaMode {
    return this.#mode;
  }
  /**
   * When the running HLS-fallback window opened (performance.now()), or undefined when none runs
   * (no fallback configured, nothing due: waiting or paused, or the last window ended with WebRTC
   * media flowing).
   */
  get hlsFallbackSince(): number | undefined {
    return this.#fallbackSince;
  }
  /**
   * The room's HLS playlist, authorised by this session's token (the resume token once joined:
   * it outlives the join token). Any node serves it; players reload it every second or so.
   */
  get hlsUrl(): string {
    const token = this.#info?.resumeToken ?? this.#options.resumeToken ?? this.#options.token;
    return `${this.#options.url.replace(/\/$/, '')}/hls/${encodeURIComponent(this.#options.roomId)}/index.m3u8?token=${encodeURIComponent(token)}`;
  }

  /**
   * Listeners: receive over HLS instead of WebRTC. The WebRTC media path is released; the
   * session stays joined for room events (broadcast started/ended, counts).
   */
  useHls(reason: 'timeout' | 'failed' | 'asked' = 'asked'): void {
    if (this.#mode === 'hls' || this.#state === 'closed' || this.role === 'broadcaster') return;
    this.#mode = 'hls';
    this.#judgeFallback();
    this.emit('mode', 'hls', reason);
    if (this.#state === 'joined') this.#rejoin();
  }

  /** Listeners: go back to WebRTC (the fallback applies again if it still cannot connect). */
  useWebRtc(): void {
    if (this.#mode === 'webrtc' || this.#state === 'closed') return;
    this.#mode = 'webrtc';
    this.emit('mode', 'webrtc', 'asked');
    // A fresh window for the fresh attempt.
    this.#judgeFallback(true);
    if (this.#state === 'joined') this.#rejoin();
  }

  /**
   * Leaves and joins again on the same connection (as the same identity, with the resume
   * token), so the server drops the old media path and the new join sets up the one the mode
   * wants.
   */
  #rejoin(): void {
    this.#teardownMedia();
    this.#setState('reconnecting');
    const generation = this.#generation;
    void request(this.#socket, 'leave', {})
      .catch(() => undefined)
      .then(() => {
        if (generation === this.#generation && this.#socket.connected && this.#state !== 'closed') void this.#establish();
      });
  }

  /** WebRTC audio is arriving: a consumer on a connected transport. */
  #mediaFlowing(): boolean {
    return this.#consumer !== undefined && this.#transport?.connectionState === 'connected';
  }

  /**
   * Whether WebRTC audio is due now: this listener (on WebRTC, with a fallback to go to) has been
   * told of a live broadcast that is not paused. Before the first join answer nothing is known
   * to be live; across a reconnect the last news holds.
   */
  #mediaIsDue(): boolean {
    return (
      this.#options.hlsFallback !== undefined &&
      this.#mode === 'webrtc' &&
      this.#state !== 'closed' &&
      this.#info !== undefined &&
      this.role !== 'broadcaster' &&
      this.#broadcast.live &&
      !this.#broadcast.paused
    );
  }

  /**
   * Runs the fallback window while media is due and not flowing. It opens when media becomes
   * due (or, with `restart`, again: a new broadcast started), or when media stopped flowing
   * while due; it closes when media is no longer due. It is never carried over from before media
   * was due: a broadcast starting just before a window opened at join() would close must still
   * get the whole window for its media.
   */
  #judgeFallback(restart = false): void {
    const due = this.#mediaIsDue();
    const wasDue = this.#mediaDue;
    this.#mediaDue = due;
    if (!due || restart || !wasDue) this.#stopFallback();
    if (!due || this.#fallbackTimer || (wasDue && !restart && this.#mediaFlowing())) return;
    this.#fallbackSince = performance.now();
    this.#fallbackTimer = setTimeout(() => {
      this.#fallbackTimer = undefined;
      this.#fallbackSince = undefined;
      if (this.#mediaIsDue() && !this.#mediaFlowing()) this.useHls('timeout');
    }, this.#options.hlsFallback!.afterMs);
  }

  #stopFallback(): void {
    clearTimeout(this.#fallbackTimer);
    this.#fallbackTimer = undefined;
    this.#fallbackSince = undefined;
  }

  /** The transport carrying media, for stats (getStats) and diagnostics. */
  get transport(): types.Transport | undefined {
    return this.#transport;
  }

  /** Connects and joins; resolves once joined (and listening or ready to publish). */
  async join(): Promise<Responses['join']> {
    if (this.#state !== 'idle') throw new ChorusClientError('ALREADY_JOINED', 'join() was already called', false);
    this.#joinCalledAt = performance.now();
    this.#setState('connecting');
    const joined = new Promise<Responses['join']>((resolve, reject) => {
      this.#joinWaiter = { resolve, reject };
    });
    this.#socket.connect();
    return joined;
  }

  /** Broadcaster: send this microphone track, now and after every reconnect. */
  async publish(track: MediaStreamTrack): Promise<void> {
    this.#publishTrack = track;
    // Switching microphones while live swaps the track under the same producer: listeners
    // notice nothing.
    if (this.#producer && this.#producer.track !== track) {
      await this.#producer.replaceTrack({ track });
      return;
    }
    if (this.#state !== 'joined' || this.#transport?.direction !== 'send') return;
    try {
      await this.#produce(this.#generation);
    } catch (error) {
      // A passing refusal (rate limit, node busy): the track is kept and goes out when the
      // session is set up again. Anything else is the caller's to handle.
      if (!(error instanceof ChorusClientError) || !error.retryable) throw error;
      this.emit('error', error);
      this.#scheduleRetry(error.retryAfterMs);
    }
  }

  /** Broadcaster: stop sending; listeners are told the broadcast ended. */
  async unpublish(): Promise<void> {
    this.#publishTrack = undefined;
    this.#paused = false;
    const producer = this.#producer;
    this.#producer = undefined;
    if (!producer) return;
    producer.close();
    await request(this.#socket, 'closeProducer', { producerId: producer.id }).catch(() => undefined);
  }

  async setPaused(paused: boolean): Promise<void> {
    this.#paused = paused;
    const producer = this.#producer;
    if (!producer) return;
    if (paused) producer.pause();
    else producer.resume();
    await request(this.#socket, paused ? 'pauseProducer' : 'resumeProducer', { producerId: producer.id });
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#consumeTimer);
    this.#stopFallback();
    this.#joinWaiter?.reject(new ChorusClientError('DISCONNECTED', 'client closed before joining', false));
    this.#joinWaiter = undefined;
    if (this.#socket.connected && this.#info) await request(this.#socket, 'leave', {}, 2000).catch(() => undefined);
    this.#teardownMedia();
    this.#socket.disconnect();
    this.#setState('closed');
  }

  /** The server ended this session for good: report why and stop, without reconnecting. */
  #end(reason: ChorusClientError): void {
    this.#info = undefined;
    this.emit('error', reason);
    void this.close();
  }

  #setState(state: ClientState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#judgeFallback();
    this.emit('state', state);
  }

  #wireSocket(s: ClientSocket): void {
    s.on('connect', () => void this.#establish());
    s.on('connect_error', () => {
      // The node we were sent to does not take connections (gone, or draining): start over at
      // the entry URL instead of knocking on its door forever.
      if (this.#link.redirected && this.#state !== 'closed') this.#moveTo(this.#options.url, 200 + Math.random() * 800);
    });
    s.on('disconnect', (reason) => {
      if (this.#state === 'closed') return;
      this.#teardownMedia();
      this.#setState('reconnecting');
      // The node we were sent to went away: start over at the entry URL, which places us again.
      if (this.#link.redirected && reason !== 'io client disconnect') {
        this.#moveTo(this.#options.url, Math.random() * 500);
        return;
      }
      // A node closing (or shedding a flooding connection) disconnects us itself, and Socket.IO
      // does not reconnect after that on its own: come back, through the load balancer, later.
      if (reason === 'io server disconnect') this.#scheduleReconnect();
    });
    s.on('broadcast:started', ({ producerId }) => {
      this.#broadcastNews++;
      const previous = this.#broadcast.producerId;
      if (previous !== undefined && previous !== producerId) this.#supersede(previous);
      this.#setBroadcast({ live: true, paused: false, producerId });
      // A new broadcast replaces the one this client still plays, whose end may never have been
      // announced (its node died): keeping that consumer would mean silence from now on.
      if (this.#consumer && this.#consumer.producerId !== producerId) this.#dropConsumer();
      // Media is due from now, whatever window ran before.
      this.#judgeFallback(true);
      // News of a new broadcast: try at once, and back off afresh from here.
      this.#consumeRetries = 0;
      clearTimeout(this.#consumeTimer);
      void this.#consume(this.#generation);
    });
    s.on('broadcast:paused', ({ producerId }) => {
      this.#broadcastNews++;
      this.#setBroadcast({ live: true, paused: true, producerId });
    });
    s.on('broadcast:resumed', ({ producerId }) => {
      this.#broadcastNews++;
      this.#setBroadcast({ live: true, paused: false, producerId });
    });
    s.on('broadcast:ended', ({ producerId }) => {
      this.#broadcastNews++;
      this.#supersede(producerId);
      this.#setBroadcast({ live: false, paused: false });
      if (this.#consumer?.producerId === producerId) this.#dropConsumer();
      if (this.#producer?.id === producerId) this.#producer = undefined;
    });
    s.on('consumer:closed', ({ consumerId }) => {
      if (this.#consumer?.id !== consumerId) return;
      this.#dropConsumer();
      // Its stream went away but the broadcast did not (an edge dropped a stale pipe, a worker
      // pipe closed): consume again now, as no broadcast:started may ever follow. If it did end,
      // broadcast:ended follows and the retries stop.
      if (this.#broadcast.live) void this.#consume(this.#generation);
    });
    s.on('room:listeners', ({ count }) => {
      this.#listeners = count;
      this.emit('listeners', count);
    });
    s.on('session:reset', () => this.#restart());
    s.on('node:draining', ({ moveTo }) => {
      // Leave this node for another: straight to the node it names when it names one (if that
      // one fails too, the SDK starts over at the entry URL), else a new connection through the
      // load balancer; spread over a second so a whole node's clients do not arrive at once.
      const next = nodeUrl(moveTo);
      if (next) {
        this.#moveTo(next, Math.random() * 1000);
        return;
      }
      if (this.#link.redirected) {
        this.#moveTo(this.#options.url, Math.random() * 1000);
        return;
      }
      this.#teardownMedia();
      this.#setState('reconnecting');
      s.disconnect();
      this.#retryTimer = setTimeout(() => s.connect(), Math.random() * 1000);
    });
    s.on('session:muted', ({ muted }) => this.emit('muted', muted));
    s.on('session:kicked', ({ reason }) => this.#end(new ChorusClientError('KICKED', reason, false)));
    s.on('room:ended', ({ reason }) => this.#end(new ChorusClientError('ROOM_ENDED', reason, false)));
  }

  #supersede(producerId: string): void {
    if (this.#superseded.includes(producerId)) return;
    this.#superseded.push(producerId);
    if (this.#superseded.length > 8) this.#superseded.shift();
  }

  #setBroadcast(state: BroadcastState): void {
    this.#broadcast = state;
    this.#judgeFallback();
    this.emit('broadcast', state);
  }

  /** (Re)joins over the current connection and rebuilds the media path. */
  async #establish(): Promise<void> {
    clearTimeout(this.#retryTimer);
    const generation = ++this.#generation;
    const previousPeerId = this.#info?.peerId;
    const newsBefore = this.#broadcastNews;
    try {
      const info = await request(this.#socket, 'join', {
        roomId: this.#options.roomId,
        // The join token is single-use; every later join resumes with the token the node gave.
        token: this.#info?.resumeToken ?? this.#options.resumeToken ?? this.#options.token,
        ...(previousPeerId ? { previousPeerId } : {}),
        // The node makes the transport our role uses along with the join: one round trip less.
        // Over HLS a listener needs none (a broadcaster then still gets one with createTransport).
        ...(this.#mode === 'webrtc' && !this.#classic ? { transport: this.#options.forceTcp ? { forceTcp: true } : {} } : {}),
      });
      if (generation !== this.#generation) return;
      await requireProtocol(this.#socket, info);
      if (info.kind !== 'broadcast') {
        // A watch party carries no media (its SDK is WatchClient); a call has many publishers
        // (CallClient). This client knows one broadcast.
        await request(this.#socket, 'leave', {}).catch(() => undefined);
        const sdk = info.kind === 'watch' ? 'WatchClient' : 'CallClient';
        throw new ChorusClientError('WRONG_ROOM_KIND', `this is a ${info.kind === 'watch' ? 'watch party' : info.kind}: join it with ${sdk}`, false);
      }
      this.#info = info;
      this.#listeners = info.listeners;
      // The join's snapshot of the broadcast is taken in now: news that arrives while the media
      // path is set up below is newer and must win over it, not be overwritten by it. So must
      // news that came while the join was answered: the node subscribes this session to the
      // room's events before it reads the state, so whatever came since was sent after that read
      // began, and the answer (which waited on a transport, or on a cluster read) can be older
      // (taking it made a listener wait in silence for a broadcast that had started). Nor is a
      // snapshot taken that names a stream we have already heard is over (a node answering from
      // a stale view while a new origin took over).
      const snapshot = info.broadcast.producerId;
      const newer = this.#broadcastNews !== newsBefore;
      if (!newer && (snapshot === undefined || !this.#superseded.includes(snapshot))) this.#broadcast = info.broadcast;
      const device = this.#device ?? new Device(this.#options.handlerFactory ? { handlerFactory: this.#options.handlerFactory } : {});
      if (!device.loaded) await device.load({ routerRtpCapabilities: info.routerRtpCapabilities as types.RtpCapabilities });
      this.#device = device;
      // Over HLS there is no WebRTC media path to set up; the session carries room events only.
      if (info.role === 'broadcaster' || this.#mode === 'webrtc') {
        await this.#createTransport(generation, info.role === 'broadcaster' ? 'send' : 'recv', info.transport);
      } else if (info.transport) {
        // Switched to HLS while joining: an idle transport would get the session removed as stale.
        this.#rejoin();
        return;
      }
      this.#retries = 0;
      this.#redirects = 0;
      this.#setState('joined');
      this.#joinWaiter?.resolve(info);
      this.#joinWaiter = undefined;
      this.emit('joined', info);
      this.emit('listeners', info.listeners);
      this.#setBroadcast(this.#broadcast);
      if (info.role === 'broadcaster') await this.#produce(generation);
      else if (this.#broadcast.live) await this.#consume(generation);
    } catch (error) {
      if (generation !== this.#generation || this.#state === 'closed') return;
      const failure = error instanceof ChorusClientError ? error : new ChorusClientError('INTERNAL', String(error), true);
      if (failure.code === 'BAD_REQUEST' && !this.#classic && /\btransport\b/.test(failure.message)) {
        // An older node: nothing was created and the token is unspent. Again, the classic way.
        this.#classic = true;
        void this.#establish();
        return;
      }
      if (failure.code === 'WRONG_NODE' && failure.redirectUrl) {
        if (this.#redirects < 3) {
          this.#redirects++;
          this.#moveTo(failure.redirectUrl);
          return;
        }
        // Nodes disagreeing for a moment (a registry view not yet fresh): back off, then follow again.
        this.#redirects = 0;
        this.#scheduleRetry();
        return;
      }
      this.emit('error', failure);
      // Before the first successful join, a refusal (wrong token, seat taken...) goes back to
      // the caller; afterwards the session is worth keeping alive through anything retryable.
      const everJoined = this.#info !== undefined;
      if (failure.code === 'ALREADY_JOINED' && this.#socket.connected) {
        // A retry after a half-finished setup on the same connection: the server still holds
        // that session. Leave it, then join again straight away.
        await request(this.#socket, 'leave', {}).catch(() => undefined);
        if (generation === this.#generation) void this.#establish();
        return;
      }
      if (!everJoined && this.#options.resumeToken && failure.code.startsWith('TOKEN_')) {
        // A stale saved resume token: fall back to the join token we were given.
        this.#options = { ...this.#options, resumeToken: undefined };
        void this.#establish();
        return;
      }
      if (transientCodes.has(failure.code) || (everJoined && failure.retryable)) {
        this.#scheduleRetry(failure.retryAfterMs);
      } else {
        this.#joinWaiter?.reject(failure);
        this.#joinWaiter = undefined;
        void this.close();
      }
    }
  }

  #scheduleReconnect(): void {
    const { initialMs, maxMs } = this.#options.retry ?? { initialMs: 500, maxMs: 10_000 };
    const delay = Math.min(maxMs, initialMs * 2 ** this.#retries++) * (0.5 + Math.random() / 2);
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      if (this.#state !== 'closed' && !this.#socket.connected) this.#socket.connect();
    }, delay);
  }

  #scheduleRetry(atLeastMs = 0): void {
    const { initialMs, maxMs } = this.#options.retry ?? { initialMs: 500, maxMs: 10_000 };
    const delay = Math.max(atLeastMs, Math.min(maxMs, initialMs * 2 ** this.#retries++) * (0.5 + Math.random() / 2));
    this.#setState('reconnecting');
    this.#retryTimer = setTimeout(() => {
      this.#teardownMedia();
      if (this.#socket.connected) void this.#establish();
    }, delay);
  }

  /** Drops the media path and joins again on the same connection. */
  #restart(): void {
    if (this.#state === 'closed') return;
    this.#teardownMedia();
    this.#setState('reconnecting');
    if (this.#socket.connected) void this.#establish();
  }

  /** Sets up the media transport: the one the join brought (`given`), else asks for it. */
  async #createTransport(generation: number, direction: 'send' | 'recv', given?: CreatedTransport): Promise<void> {
    const device = this.#device!;
    const info =
      given?.direction === direction
        ? given
        : await request(this.#socket, 'createTransport', {
            direction,
            ...(this.#options.forceTcp ? { forceTcp: true } : {}),
          });
    if (generation !== this.#generation) return;
    const params = {
      iceServers: (this.#info?.iceServers ?? []) as RTCIceServer[],
      iceTransportPolicy: this.#options.iceTransportPolicy ?? 'all',
      id: info.id,
      iceParameters: info.iceParameters as types.IceParameters,
      iceCandidates: info.iceCandidates as types.IceCandidate[],
      dtlsParameters: info.dtlsParameters as types.DtlsParameters,
    };
    const transport = direction === 'send' ? device.createSendTransport(params) : device.createRecvTransport(params);
    this.#transport = transport;
    transport.on('connect', ({ dtlsParameters }, done, fail) => {
      request(this.#socket, 'connectTransport', { transportId: transport.id, dtlsParameters }).then(() => done(), fail);
    });
    transport.on('produce', ({ kind, rtpParameters }, done, fail) => {
      request(this.#socket, 'produce', {
        transportId: transport.id,
        kind,
        rtpParameters: rtpParameters as RequestOf<'produce'>['rtpParameters'],
      }).then(
        ({ producerId }) => done({ id: producerId }),
        fail,
      );
    });
    let iceRestarted = false;
    transport.on('connectionstatechange', (state) => {
      this.emit('transport', state);
      if (state === 'connected') iceRestarted = false;
      // Flowing media stopped (disconnected), or started (connected): judge the window again.
      if (direction === 'recv') this.#judgeFallback();
      if (state !== 'failed' || generation !== this.#generation) return;
      // A listener with somewhere else to go goes there rather than retrying what just failed.
      if (direction === 'recv' && this.#options.hlsFallback) return this.useHls('failed');
      // One ICE restart first (cheap, keeps the session); a second failure rebuilds everything.
      if (iceRestarted) return this.#restart();
      iceRestarted = true;
      request(this.#socket, 'restartIce', { transportId: transport.id })
        .then(async ({ iceParameters, iceServers }) => {
          if (iceServers.length > 0) await transport.updateIceServers({ iceServers: iceServers as RTCIceServer[] });
          await transport.restartIce({ iceParameters: iceParameters as types.IceParameters });
        })
        .catch(() => this.#restart());
    });
  }

  async #produce(generation: number): Promise<void> {
    const track = this.#publishTrack;
    const transport = this.#transport;
    if (!track || !transport || transport.direction !== 'send' || this.#producer || generation !== this.#generation) return;
    const asked = this.#info?.opus;
    const bitrate = this.#options.opusBitrate ?? asked?.bitrate ?? 24000;
    const frameMs = this.#options.opusFrameMs ?? asked?.frameMs;
    this.#producer = await transport.produce({
      track,
      encodings: [{ maxBitrate: Math.round(bitrate * 1.35) }],
      codecOptions: { opusStereo: false, opusDtx: true, opusFec: true, opusMaxAverageBitrate: bitrate, ...(frameMs ? { opusPtime: frameMs } : {}) },
      stopTracks: false,
    });
    if (this.#paused) {
      this.#producer.pause();
      await request(this.#socket, 'pauseProducer', { producerId: this.#producer.id });
    }
  }

  /** Listener: consume the live broadcast once per generation, whoever asks first. */
  async #consume(generation: number): Promise<void> {
    if (this.#info?.role === 'broadcaster' || this.#consumer || this.#mode === 'hls') return;
    if (this.#consuming) return this.#consuming;
    // Checked before an attempt exists: an attempt that ended synchronously would clear
    // `#consuming` before it was even assigned and leave a settled promise there for good, and
    // every later call would return it and never consume again (news of a broadcast arriving
    // before the join's transport exists did exactly that).
    const transport = this.#transport;
    if (!transport || transport.direction !== 'recv' || generation !== this.#generation) return;
    const attempt = this.#consumeOn(transport, generation).finally(() => {
      if (this.#consuming === attempt) this.#consuming = undefined;
    });
    this.#consuming = attempt;
    return attempt;
  }

  async #consumeOn(transport: types.Transport, generation: number): Promise<void> {
    try {
      // Flowing from the start (audio: nothing to lose, and a new transport carries nothing
      // before DTLS is up, by when our track is wired): no resumeConsumer round trip.
      const info = await request(this.#socket, 'consume', {
        transportId: transport.id,
        rtpCapabilities: this.#device!.rtpCapabilities as RequestOf<'consume'>['rtpCapabilities'],
        ...(this.#classic ? {} : { paused: false }),
      });
      if (generation !== this.#generation) return;
      // The stream we were given may have ended while we asked or while its consumer is set up
      // (its origin died and a new one took over): playing it would be silence. Ask again: the
      // node, which now knows where the new stream lives, drops its stale pipe and serves the
      // new one. Backed off after the first time in case that news is slow to reach it too.
      const over = (): boolean => {
        if (!this.#superseded.includes(info.producerId)) return false;
        this.#retryConsume(generation, this.#consumeRetries === 0 ? 0 : undefined);
        return true;
      };
      if (over()) return;
      const consumer = await transport.consume({
        id: info.consumerId,
        producerId: info.producerId,
        kind: info.kind,
        rtpParameters: info.rtpParameters as types.RtpParameters,
      });
      if (over()) {
        consumer.close();
        return;
      }
      this.#consumer = consumer;
      this.#consumeRetries = 0;
      // A video consumer always waits to be resumed.
      if (info.paused !== false) await request(this.#socket, 'resumeConsumer', { consumerId: consumer.id });
      this.emit('track', consumer.track);
      if (!this.#mediaStarted) void this.#awaitFirstPacket(consumer);
    } catch (error) {
      // Nothing live: it ended between the event and our request (fine), or, in a cluster, the
      // news travelled faster than the stream's location; try again shortly while it is live.
      // It keeps trying for as long as the broadcast is live (backing off to every few
      // seconds): a listener told "live" must never settle into silence because the stream
      // took longer than a fixed number of tries to reach its node (a loaded cluster re-piping
      // after an origin died).
      if (error instanceof ChorusClientError && error.code === 'NOTHING_TO_CONSUME') {
        this.#retryConsume(generation);
        return;
      }
      if (error instanceof ChorusClientError) this.emit('error', error);
      if (generation === this.#generation) this.#scheduleRetry();
    }
  }

  /**
   * Watches the first consumer's receive stats until a packet has arrived, then tells the app
   * and the node how long the listener waited since join(): the figure a listener feels, which
   * the server's own timings cannot see (network round trips, ICE, DTLS, the first packet).
   */
  async #awaitFirstPacket(consumer: types.Consumer): Promise<void> {
    const deadline = performance.now() + 30_000;
    const transport = this.#transport;
    while (transport && !consumer.closed && this.#consumer === consumer && !this.#mediaStarted && performance.now() < deadline) {
      // The receive transport's stats (it carries this one stream): Node's libwebrtc binding
      // has no receiver-level stats, browsers have both.
      const stats = await transport.getStats().catch(() => undefined);
      let received = 0;
      stats?.forEach((report: { type?: string; packetsReceived?: number }) => {
        if (report.type === 'inbound-rtp') received += report.packetsReceived ?? 0;
      });
      if (received > 0) {
        if (this.#mediaStarted) return;
        this.#mediaStarted = true;
        const afterMs = Math.min(600_000, Math.round(performance.now() - this.#joinCalledAt));
        this.emit('mediastarted', afterMs);
        // Best effort: a node that predates this report refuses it, and nothing depends on it.
        request(this.#socket, 'media.started', { afterMs }).catch(() => undefined);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Consume again later while the broadcast is live, backing off to every few seconds. */
  #retryConsume(generation: number, delayMs?: number): void {
    if (!this.#broadcast.live || generation !== this.#generation) return;
    const backoff = Math.min(300 * 2 ** this.#consumeRetries++, 5000) * (0.75 + Math.random() * 0.5);
    clearTimeout(this.#consumeTimer);
    // Always from a timer: the attempt asking for this is still the one in flight.
    this.#consumeTimer = setTimeout(() => void this.#consume(generation), delayMs ?? backoff);
  }

  #dropConsumer(): void {
    const consumer = this.#consumer;
    this.#consumer = undefined;
    if (!consumer) return;
    consumer.close();
    this.#judgeFallback();
    this.emit('trackended');
  }

  #teardownMedia(): void {
    this.#generation++;
    this.#dropConsumer();
    this.#producer?.close();
    this.#producer = undefined;
    this.#transport?.close();
    this.#transport = undefined;
    this.#consuming = undefined;
  }
}
