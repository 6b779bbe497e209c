/**
 * HLS for the broadcasts of this node. A room's HLS runs only on the node holding its broadcast
 * (the origin): it starts there on the first request (or, with `always`, as soon as the
 * broadcast is live) and stops after `idleMs` without fetches. In a cluster, a request reaching
 * another node is proxied by the HTTP route to the origin's URL from the node registry, so one
 * ffmpeg serves the room whichever node players land on, and idleness is judged where it runs.
 * For the same reason the room's HLS viewers are counted there.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../observability/logger.js';
import { ChorusError } from '../protocol/errors.js';
import { RoomHls, type LiveBroadcast } from './roomHls.js';
import type { HlsSettings } from './settings.js';
import { ViewerWindow } from './viewers.js';
import { repeatOnGrid, type GridTimer } from '../time/gridTimer.js';

/** How often viewer counts are recomputed; a count that stays above zero is reported again every RENEW_TICKS. */
const VIEWER_TICK_MS = 1000;
const RENEW_TICKS = 5;

export interface HlsServiceDeps {
  settings: HlsSettings;
  nodeId: string;
  log: Logger;
  /** The room's broadcast if this node holds it. */
  localBroadcast(roomId: string): LiveBroadcast | undefined;
  /** Rooms with a live broadcast on this node (for `always`). */
  liveRooms(): Iterable<string>;
  /** Base URL of the node holding the room's broadcast, when another node does (cluster). */
  originUrl?(roomId: string): Promise<string | undefined>;
  /**
   * A room's HLS viewer count, when it changes and again every few seconds while it is not
   * zero (so a count kept elsewhere with a lease stays alive while it holds).
   */
  onViewers?(roomId: string, count: number): void;
}

/** Where a room's HLS is served from, as far as this node can tell. */
export type HlsPlace = { kind: 'here'; session: RoomHls } | { kind: 'elsewhere'; url: string };

export class HlsService {
  readonly #sessions = new Map<string, RoomHls>();
  readonly #root: string;
  readonly #alwaysTimer: GridTimer | undefined;
  readonly #viewers = new Map<string, { window: ViewerWindow; reported: number }>();
  readonly #viewerTimer: GridTimer;
  #viewerTicks = 0;
  #closed = false;

  constructor(private readonly deps: HlsServiceDeps) {
    // Per node: several nodes may share a data directory (or a host).
    this.#root = join(deps.settings.dir, deps.nodeId);
    if (deps.settings.always) {
      this.#alwaysTimer = repeatOnGrid(1000, () => {
        for (const roomId of deps.liveRooms()) if (!this.#sessions.has(roomId)) this.#open(roomId);
      });
    }
    this.#viewerTimer = repeatOnGrid(VIEWER_TICK_MS, () => this.#countViewers());
  }

  get settings(): HlsSettings {
    return this.deps.settings;
  }

  /** The session of a room, if HLS runs for it here (tests, diagnostics). */
  session(roomId: string): RoomHls | undefined {
    return this.#sessions.get(roomId);
  }

  /** A player without a signaling session fetched the room's playlist here. */
  viewer(roomId: string, key: string): void {
    let entry = this.#viewers.get(roomId);
    if (!entry) this.#viewers.set(roomId, (entry = { window: new ViewerWindow(this.deps.settings.viewerWindowMs), reported: 0 }));
    if (entry.window.seen(key)) this.#report(roomId, entry, entry.window.count());
  }

  /** Players of the room's HLS counted on this node (its origin) right now. */
  viewers(roomId: string): number {
    return this.#viewers.get(roomId)?.window.count() ?? 0;
  }

  /** Players of every room's HLS counted on this node. */
  totalViewers(): number {
    let n = 0;
    for (const { window } of this.#viewers.values()) n += window.count();
    return n;
  }

  #countViewers(): void {
    const renew = ++this.#viewerTicks % RENEW_TICKS === 0;
    for (const [roomId, entry] of this.#viewers) {
      const count = entry.window.count();
      if (count !== entry.reported || (renew && count > 0)) this.#report(roomId, entry, count);
      if (count === 0) this.#viewers.delete(roomId);
    }
  }

  #report(roomId: string, entry: { reported: number }, count: number): void {
    entry.reported = count;
    this.deps.onViewers?.(roomId, count);
  }

  /**
   * Where requests for `roomId` are answered. Here when this node holds the broadcast (starting
   * HLS if needed) or still has HLS for it (between a broadcaster's stop and return the
   * playlist stays available); elsewhere when another node holds it; NOTHING_TO_CONSUME when
   * nothing is live anywhere.
   */
  async place(roomId: string, mayProxy: boolean): Promise<HlsPlace> {
    if (this.#closed) throw new ChorusError('UNAVAILABLE', 'node is shutting down');
    const existing = this.#sessions.get(roomId);
    const local = this.deps.localBroadcast(roomId);
    if (local || (existing && !mayProxy)) return { kind: 'here', session: existing ?? this.#open(roomId) };
    const url = mayProxy ? await this.deps.originUrl?.(roomId) : undefined;
    if (url) return { kind: 'elsewhere', url };
    if (existing) return { kind: 'here', session: existing };
    throw new ChorusError('NOTHING_TO_CONSUME', 'nothing is being broadcast in this room right now');
  }

  #open(roomId: string): RoomHls {
    const session = new RoomHls(roomId, join(this.#root, roomId), this.deps.settings, () => this.deps.localBroadcast(roomId), this.deps.log);
    this.#sessions.set(roomId, session);
    session.once('closed', () => {
      if (this.#sessions.get(roomId) === session) this.#sessions.delete(roomId);
    });
    this.deps.log.info({ room: roomId }, 'HLS started');
    return session;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#alwaysTimer?.stop();
    this.#viewerTimer.stop();
    await Promise.all([...this.#sessions.values()].map((s) => s.close('node closing')));
    await rm(this.#root, { recursive: true, force: true });
  }
}
