/**
 * A class's raised hands: one versioned queue per class in the state store, changed only by
 * compare-and-set (no read-modify-write race between two assistants, on one node or many).
 * `applyHand` is the state machine; `Hands` reads and swaps the queue.
 *
 *   (none) --raise--> raised --invite--> invited --accept--> onstage --remove--> back
 *   raised --lower--> (none)   invited --decline--> (none)   invited --remove--> back
 *   back --raise--> raised
 */
import { ChorusError } from '../protocol/errors.js';
import type { Hand, HandAction, HandQueue } from '../protocol/room.js';
import type { StateStore } from '../store/stateStore.js';

/** Who acts: the student on its own hand, or staff on a student's. */
export interface HandActor {
  peerId: string;
  staff: boolean;
}

export interface HandTarget {
  peerId: string;
  identity: string;
  name?: string | undefined;
}

const studentActions: ReadonlySet<HandAction> = new Set(['raise', 'lower', 'accept', 'decline']);
const staffActions: ReadonlySet<HandAction> = new Set(['invite', 'remove', 'lower']);

/**
 * Whether `actor` may `action` `target`'s hand at all, whatever the queue: checked before the
 * queue's version, so a student naming another's hand is FORBIDDEN_ROLE, stale version or not.
 */
export function assertMayMove(action: HandAction, target: Pick<HandTarget, 'peerId'>, actor: HandActor): void {
  const own = actor.peerId === target.peerId;
  if (own ? !studentActions.has(action) : !(actor.staff && staffActions.has(action))) {
    throw new ChorusError('FORBIDDEN_ROLE', own ? `a student cannot ${action} its own hand` : `only teachers and assistants ${action} a student's hand`);
  }
}

/** The queue after `action` on `target`'s hand, or the typed error saying why not. Pure. */
export function applyHand(queue: HandQueue, action: HandAction, target: HandTarget, actor: HandActor, maxStage: number, now: number): HandQueue {
  assertMayMove(action, target, actor);
  const current = queue.hands.find((h) => h.peerId === target.peerId);
  const from = current?.state;
  const others = queue.hands.filter((h) => h.peerId !== target.peerId);
  const set = (state: Hand['state'], at = current?.at ?? now): HandQueue => ({
    version: queue.version + 1,
    hands: [...others, { peerId: target.peerId, identity: target.identity, ...(target.name !== undefined ? { name: target.name } : {}), state, at }].sort((a, b) => a.at - b.at),
  });
  const drop = (): HandQueue => ({ version: queue.version + 1, hands: others });
  const refuse = (): never => {
    throw new ChorusError('BAD_TRANSITION', `cannot ${action} a hand that is ${from ?? 'not raised'}`);
  };
  switch (action) {
    case 'raise':
      // Raising again goes to the back of the queue.
      return from === undefined || from === 'back' ? set('raised', now) : refuse();
    case 'lower':
      return from === 'raised' ? drop() : refuse();
    case 'invite': {
      if (from !== 'raised') return refuse();
      const onStage = queue.hands.filter((h) => h.state === 'invited' || h.state === 'onstage').length;
      if (onStage >= maxStage) throw new ChorusError('STAGE_FULL', `the stage holds ${maxStage} students already`);
      return set('invited');
    }
    case 'accept':
      return from === 'invited' ? set('onstage') : refuse();
    case 'decline':
      return from === 'invited' ? drop() : refuse();
    case 'remove':
      return from === 'invited' || from === 'onstage' ? set('back') : refuse();
  }
}

/** How long a class's queue outlives its last change (a class longer than a day keeps it by acting). */
const QUEUE_TTL_SECONDS = 24 * 3600;
/** Compare-and-set attempts for a student's own action (staff name their version instead). */
const MAX_ATTEMPTS = 8;

export class Hands {
  readonly #key: string;

  constructor(
    private readonly store: StateStore,
    roomId: string,
    private readonly maxStage: number,
    /**
     * The newest queue version seen here. A queue lost with its store (a Redis that came back
     * empty) starts again above it, so no client takes the new queue's moves for old ones.
     */
    private readonly versionFloor: () => number = () => 0,
  ) {
    this.#key = `hands\0${roomId}`;
  }

  async read(): Promise<HandQueue> {
    return this.#parse(await this.store.getValue(this.#key));
  }

  /**
   * Applies `action` and stores the result if nobody changed the queue meanwhile. With
   * `version` (staff), the queue must still be at it (STALE_VERSION otherwise); without (a
   * student's own hand), a lost race is retried on the fresh queue.
   */
  async apply(action: HandAction, target: HandTarget, actor: HandActor, version?: number): Promise<{ before: Hand | undefined; queue: HandQueue }> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const raw = await this.store.getValue(this.#key);
      const queue = this.#parse(raw);
      if (version !== undefined && version !== queue.version) {
        throw new ChorusError('STALE_VERSION', `the hand queue is at version ${queue.version}, not ${version}: read it again`);
      }
      const next = applyHand(queue, action, target, actor, this.maxStage, Date.now());
      if (await this.store.swapValue(this.#key, raw, JSON.stringify(next), QUEUE_TTL_SECONDS)) {
        return { before: queue.hands.find((h) => h.peerId === target.peerId), queue: next };
      }
      if (version !== undefined) throw new ChorusError('STALE_VERSION', 'the hand queue changed meanwhile: read it again');
    }
    throw new ChorusError('UNAVAILABLE', 'the hand queue is changing too fast; try again');
  }

  /** The class is over everywhere: no hand outlives it (not even one a crashed node left behind). */
  async clear(): Promise<void> {
    const raw = await this.store.getValue(this.#key);
    if (raw !== undefined) await this.store.swapValue(this.#key, raw, undefined, QUEUE_TTL_SECONDS);
  }

  /**
   * A student back on a new connection (it named the old one) takes its hand over, stage and
   * all. Only the same identity can: a peer id alone proves nothing.
   */
  async rekey(fromPeerId: string, toPeerId: string, identity: string): Promise<{ hand: Hand; queue: HandQueue } | undefined> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const raw = await this.store.getValue(this.#key);
      const queue = this.#parse(raw);
      const hand = queue.hands.find((h) => h.peerId === fromPeerId && h.identity === identity);
      if (!hand) return undefined;
      const moved = { ...hand, peerId: toPeerId };
      const next = { version: queue.version + 1, hands: queue.hands.map((h) => (h === hand ? moved : h)) };
      if (await this.store.swapValue(this.#key, raw, JSON.stringify(next), QUEUE_TTL_SECONDS)) return { hand: moved, queue: next };
    }
    return undefined;
  }

  /** Puts these students back on stage where the queue lost them; the new queue if it changed. */
  async restoreOnStage(students: HandTarget[]): Promise<HandQueue | undefined> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const raw = await this.store.getValue(this.#key);
      const queue = this.#parse(raw);
      const missing = students.filter((s) => !queue.hands.some((h) => h.peerId === s.peerId));
      if (missing.length === 0) return undefined;
      const now = Date.now();
      const restored: Hand[] = missing.map((s) => ({ peerId: s.peerId, identity: s.identity, ...(s.name !== undefined ? { name: s.name } : {}), state: 'onstage', at: now }));
      const next = { version: queue.version + 1, hands: [...queue.hands, ...restored] };
      if (await this.store.swapValue(this.#key, raw, JSON.stringify(next), QUEUE_TTL_SECONDS)) return next;
    }
    return undefined;
  }

  #parse(raw: string | undefined): HandQueue {
    return raw === undefined ? { version: Math.max(0, this.versionFloor()), hands: [] } : (JSON.parse(raw) as HandQueue);
  }

  /** A student who left takes its hand along (whatever its state). */
  async forget(peerId: string): Promise<HandQueue | undefined> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const raw = await this.store.getValue(this.#key);
      const queue = this.#parse(raw);
      if (!queue.hands.some((h) => h.peerId === peerId)) return undefined;
      const next = { version: queue.version + 1, hands: queue.hands.filter((h) => h.peerId !== peerId) };
      if (await this.store.swapValue(this.#key, raw, JSON.stringify(next), QUEUE_TTL_SECONDS)) return next;
    }
    return undefined;
  }
}


