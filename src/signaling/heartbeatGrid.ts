/**
 * Socket.IO's heartbeat, with the pings that fall due in the same step of a grid sent together.
 *
 * engine.io gives every connection a timer of its own, re-armed from that client's last answer,
 * so pings spread evenly over the interval: with 200 quiet listeners and a ping every 15 s the
 * node woke 13 times a second to send one and 13 more to read one answer, and those wake-ups,
 * not the bytes, were most of what a quiet node cost (`npm run bench:heartbeat`). Here a ping
 * falls due at the first grid step at least one interval after the client's last answer (never
 * sooner than engine.io would send it, but for the few ms a timer may fire early; at most one step
 * later), and all pings due at a step go out in one wake-up, with the node's other periodic work
 * (see gridTimer); their answers come back close together and are read in a few.
 *
 * It takes over engine.io's own per-connection ping timer, which is not a public interface: on
 * each connection it checks the members it needs (engine.io 6) and leaves any connection without
 * them on engine.io's timer, saying so once in the log.
 */
import type { Logger } from '../observability/logger.js';
import { repeatOnGrid, type GridTimer } from '../time/gridTimer.js';

/** The engine.io socket members this needs; all of them are engine.io's own, not public. */
interface EngineConnection {
  sendPacket(type: 'ping'): void;
  resetPingTimeout(): void;
  hasRefreshedPingTimeout: boolean;
  pingIntervalTimer: unknown;
  readyState: string;
  once(event: 'close', listener: () => void): unknown;
}

function isEngineConnection(conn: unknown): conn is EngineConnection {
  const c = conn as Partial<EngineConnection> | null;
  return (
    typeof c === 'object' &&
    c !== null &&
    typeof c.sendPacket === 'function' &&
    typeof c.resetPingTimeout === 'function' &&
    typeof c.once === 'function' &&
    typeof (c.pingIntervalTimer as { refresh?: unknown } | null | undefined)?.refresh === 'function'
  );
}

export interface EngineLike {
  on(event: 'connection', listener: (conn: unknown) => void): unknown;
  off(event: 'connection', listener: (conn: unknown) => void): unknown;
}

export class HeartbeatGrid {
  /** Connections by the grid step (a count of `stepMs` on the monotonic clock) their ping is due at. */
  readonly #due = new Map<number, Set<EngineConnection>>();
  /** Runs while a ping is due at some step; on the node's grid (see gridTimer). */
  #timer: GridTimer | undefined;
  #warned = false;
  #pingsSent = 0;
  readonly #onConnection = (conn: unknown): void => this.#adopt(conn);

  constructor(
    private readonly engine: EngineLike,
    private readonly intervalMs: number,
    private readonly stepMs: number,
    private readonly log: Logger,
  ) {
    engine.on('connection', this.#onConnection);
  }

  /** Connections waiting for their next ping. */
  get waiting(): number {
    let n = 0;
    for (const set of this.#due.values()) n += set.size;
    return n;
  }

  /** Pings this grid has sent. */
  get pingsSent(): number {
    return this.#pingsSent;
  }

  close(): void {
    this.engine.off('connection', this.#onConnection);
    this.#timer?.stop();
    this.#timer = undefined;
    this.#due.clear();
  }

  #adopt(conn: unknown): void {
    if (!isEngineConnection(conn)) {
      if (!this.#warned) {
        this.#warned = true;
        this.log.warn('engine.io connections lack the ping members this version expects; the heartbeat stays on its per-connection timers');
      }
      return;
    }
    clearTimeout(conn.pingIntervalTimer as NodeJS.Timeout);
    let step = this.#schedule(conn);
    // engine.io re-arms this on every answer (`refresh()`) and clears it on close: both now land
    // here, and clearTimeout ignores an object that is not a timer.
    conn.pingIntervalTimer = {
      refresh: () => {
        this.#forget(conn, step);
        step = this.#schedule(conn);
      },
    };
    conn.once('close', () => this.#forget(conn, step));
  }

  #forget(conn: EngineConnection, step: number): void {
    const set = this.#due.get(step);
    if (!set?.delete(conn) || set.size > 0) return;
    this.#due.delete(step);
    // The timer may have been running for that step alone.
    this.#arm();
  }

  /** Files `conn` under the first step at least one interval from now; returns that step. */
  #schedule(conn: EngineConnection): number {
    const step = Math.ceil((performance.now() + this.intervalMs) / this.stepMs);
    let set = this.#due.get(step);
    if (!set) this.#due.set(step, (set = new Set()));
    set.add(conn);
    this.#arm();
    return step;
  }

  #arm(): void {
    if (this.#due.size === 0) {
      this.#timer?.stop();
      this.#timer = undefined;
      return;
    }
    // Unref'd, as grid timers are: the listening server keeps the node alive, a ping due must
    // not keep a closing one.
    this.#timer ??= repeatOnGrid(this.stepMs, (due) => this.#fire(due));
  }

  /** Sends the pings due at the step `due` (a time on the monotonic clock) and before it. */
  #fire(due: number): void {
    const reached = Math.round(due / this.stepMs);
    for (const [step, conns] of this.#due) {
      if (step > reached) continue;
      this.#due.delete(step);
      for (const conn of conns) {
        if (conn.readyState !== 'open') continue;
        // What engine.io's own timer does: ping, and expect the answer within the timeout. The
        // connection waits for no step until that answer re-files it.
        conn.hasRefreshedPingTimeout = false;
        conn.sendPacket('ping');
        conn.resetPingTimeout();
        this.#pingsSent++;
      }
    }
    this.#arm();
  }
}
