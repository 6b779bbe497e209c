/**
 * Pieces for fuzzing the signaling protocol against a live node: attack sockets that remember
 * what they learned, a checker for every reply, token forgery, and payload mutation.
 *
 * Nothing here decides what to send: the fuzz test generates that with fast-check. These
 * helpers send it, record a transcript (so a failure prints the messages that led to it) and
 * turn every broken promise of the protocol into a thrown `FuzzFailure`.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { SignJWT, UnsecuredJWT } from 'jose';
import type { ChorusNode } from '../../src/app.js';
import { ErrorCodes } from '../../src/protocol/errors.js';
import type { PublishGrant } from '../../src/auth/tokens.js';
import { requests, wireLimits, type Role, type RoomKind } from '../../src/protocol/messages.js';
import { RawSocket } from './rawSocket.js';

/** Every code a refusal may carry. INTERNAL is left out on purpose: it means the server threw. */
export const ACCEPTABLE_CODES: ReadonlySet<string> = new Set(Object.keys(ErrorCodes).filter((c) => c !== 'INTERNAL'));

export class FuzzFailure extends Error {
  override readonly name = 'FuzzFailure';
}

/** mulberry32: choices made at run time (which id, which token) from one generated number. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function pick<T>(r: () => number, items: readonly T[]): T {
  if (items.length === 0) throw new Error('pick from nothing');
  return items[Math.floor(r() * items.length)]!;
}

/** Short, single-line rendering of anything we send, for transcripts. */
export function brief(value: unknown, max = 300): string {
  let text: string;
  try {
    text =
      JSON.stringify(value, (_k, v: unknown) => {
        if (ArrayBuffer.isView(v)) return `<${v.byteLength} bytes>`;
        if (typeof v === 'string' && v.length > 80) return `${v.slice(0, 40)}…(${v.length} chars)`;
        if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
        if (v === undefined) return '<undefined>';
        return v;
      }) ?? String(value);
  } catch {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch (error) {
      text = `<unprintable: ${(error as Error).message}>`;
    }
  }
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** Bytes of the Socket.IO frame carrying `[event, ...args]` (binary attachments go in frames of their own). */
export function frameBytes(event: unknown, args: readonly unknown[]): number {
  // No replacer: V8 stringifies deep nesting without one, and runs out of stack with one.
  const json = JSON.stringify([event, ...args.map((a) => (ArrayBuffer.isView(a) ? { _placeholder: true, num: 0 } : a))]);
  return Buffer.byteLength(json ?? '') + 16;
}

/** What is wrong with a reply, or undefined when it keeps the protocol's promise. */
export function replyProblem(reply: unknown): string | undefined {
  if (typeof reply !== 'object' || reply === null) return `reply is not an object: ${brief(reply)}`;
  const r = reply as { ok?: unknown; data?: unknown; error?: unknown };
  if (r.ok === true) {
    return typeof r.data === 'object' && r.data !== null ? undefined : `ok reply without data: ${brief(reply)}`;
  }
  if (r.ok !== false) return `reply without ok: ${brief(reply)}`;
  return errorProblem(r.error);
}

export function errorProblem(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return `refusal without error: ${brief(error)}`;
  const e = error as { code?: unknown; message?: unknown; retryable?: unknown };
  if (e.code === 'INTERNAL') return `INTERNAL error (the server threw something unexpected): ${brief(error)}`;
  if (typeof e.code !== 'string' || !ACCEPTABLE_CODES.has(e.code)) return `unknown error code: ${brief(error)}`;
  if (typeof e.message !== 'string') return `error without message: ${brief(error)}`;
  if (e.retryable !== ErrorCodes[e.code as keyof typeof ErrorCodes].retryable) return `wrong retryable flag: ${brief(error)}`;
  return undefined;
}

export type Outcome =
  | { kind: 'reply'; reply: { ok: boolean; data?: Record<string, unknown>; error?: { code: string; message: string } } }
  | { kind: 'noAck' }
  | { kind: 'dropped'; reason: string }
  | { kind: 'timeout' }
  | { kind: 'notSent' };

export function codeOf(outcome: Outcome): string {
  if (outcome.kind !== 'reply') return outcome.kind;
  return outcome.reply.ok ? 'OK' : String(outcome.reply.error?.code);
}

/** Ids seen anywhere during the fuzz, for swapping into other sessions' messages. */
export class IdPool {
  readonly transports: string[] = [];
  readonly producers: string[] = [];
  readonly consumers: string[] = [];
  readonly peers: string[] = [];
  readonly resumeTokens: string[] = [];
  readonly usedTokens: string[] = [];

  add(list: string[], id: unknown): void {
    if (typeof id !== 'string' || list.includes(id)) return;
    list.push(id);
    if (list.length > 64) list.shift();
  }

  /** Some id: usually a real one of `list`, sometimes one nobody has, sometimes not an id at all. */
  any(r: () => number, list: readonly string[]): string {
    const x = r();
    if (list.length > 0 && x < 0.75) return pick(r, list);
    if (x < 0.9) return randomUUID();
    return pick(r, ['', ' ', 'x'.repeat(129), '../../etc/passwd', '\u0000', 'undefined', '__proto__', '🎤'.repeat(40)]);
  }
}

export interface SentRecord {
  at: number;
  who: string;
  event: string;
  args: string;
  ack: boolean;
  outcome?: string;
}

export interface FuzzStats {
  sent: number;
  replies: number;
  noAck: number;
  dropped: number;
  oversized: number;
  byCode: Record<string, number>;
  /** Replies to each protocol method by code (other event names left out). */
  byMethod: Record<string, Record<string, number>>;
}

/** State shared by all attack sockets of one node. */
export class FuzzContext {
  readonly stats: FuzzStats = { sent: 0, replies: 0, noAck: 0, dropped: 0, oversized: 0, byCode: {}, byMethod: {} };
  readonly pool = new IdPool();
  readonly transcript: SentRecord[] = [];
  readonly attackers = new Set<Attacker>();
  #seq = 0;

  constructor(
    readonly node: ChorusNode,
    readonly timeoutMs = 15_000,
  ) {}

  record(entry: Omit<SentRecord, 'at'>): SentRecord {
    const rec = { at: ++this.#seq, ...entry };
    this.transcript.push(rec);
    if (this.transcript.length > 400) this.transcript.shift();
    return rec;
  }

  /** The last `n` messages sent, one a line, for failure reports. */
  tail(n = 60): string {
    return this.transcript
      .slice(-n)
      .map((r) => `  #${r.at} ${r.who} ${r.event}(${r.args})${r.ack ? '' : ' [no ack]'} -> ${r.outcome ?? 'pending'}`)
      .join('\n');
  }

  fail(what: string): never {
    throw new FuzzFailure(`${what}\nlast messages sent:\n${this.tail()}`);
  }

  async connect(label: string): Promise<Attacker> {
    const a = new Attacker(label, await RawSocket.connect(this.node), this);
    this.attackers.add(a);
    return a;
  }

  /** Disconnects every attack socket still open, without checking them (a failure is already reported). */
  closeAll(): void {
    for (const a of [...this.attackers]) a.close(false);
  }
}

/** One attack connection and what it learned from its replies. */
export class Attacker {
  peerId: string | undefined;
  room: string | undefined;
  role: Role | undefined;
  kind: RoomKind | undefined;
  routerRtpCapabilities: unknown;
  readonly transports: Array<{ id: string; direction: 'send' | 'recv' }> = [];
  readonly producers: string[] = [];
  readonly consumers: string[] = [];
  /** Sent something at or over the size limit: Socket.IO may close this connection for it. */
  mayBeDropped = false;
  /** Sent something clearly over the size limit: Socket.IO must close this connection for it. */
  overLimitSent = false;
  closing = false;
  disconnectReason: string | undefined;
  #checkedEvents = 0;

  constructor(
    readonly label: string,
    readonly raw: RawSocket,
    private readonly ctx: FuzzContext,
  ) {
    raw.socket.on('disconnect', (reason) => {
      this.disconnectReason = reason;
    });
  }

  get connected(): boolean {
    return this.raw.socket.connected;
  }

  get joined(): boolean {
    return this.peerId !== undefined;
  }

  transport(direction: 'send' | 'recv'): string | undefined {
    return this.transports.find((t) => t.direction === direction)?.id;
  }

  /** Sends one message exactly as given; `ack` adds the acknowledgement callback as last argument. */
  async send(event: unknown, args: readonly unknown[], ack = true): Promise<Outcome> {
    const socket = this.raw.socket;
    if (!socket.connected) return { kind: 'notSent' };
    const bytes = frameBytes(event, args);
    if (bytes >= wireLimits.maxMessageBytes - 512) {
      this.mayBeDropped = true;
      this.ctx.stats.oversized++;
    }
    if (bytes > wireLimits.maxMessageBytes + 1024) this.overLimitSent = true;
    const { stats } = this.ctx;
    stats.sent++;
    const rec = this.ctx.record({ who: this.label, event: brief(event, 80), args: args.map((a) => brief(a, 200)).join(', '), ack });
    if (!ack) {
      (socket.emit as (ev: unknown, ...rest: unknown[]) => unknown)(event, ...args);
      stats.noAck++;
      rec.outcome = 'sent';
      return { kind: 'noAck' };
    }
    const outcome = await new Promise<Outcome>((resolve) => {
      socket.timeout(this.ctx.timeoutMs).emit(event as string, ...args, (error: Error | null, reply: unknown) => {
        if (!error) resolve({ kind: 'reply', reply: reply as Extract<Outcome, { kind: 'reply' }>['reply'] });
        else if (/disconnected/.test(error.message)) resolve({ kind: 'dropped', reason: error.message });
        else resolve({ kind: 'timeout' });
      });
    });
    const code = codeOf(outcome);
    rec.outcome = outcome.kind === 'reply' && !outcome.reply.ok ? `${code} ${brief(outcome.reply.error?.message, 120)}` : code;
    if (outcome.kind === 'reply') {
      stats.replies++;
      stats.byCode[code] = (stats.byCode[code] ?? 0) + 1;
      if (typeof event === 'string' && Object.hasOwn(requests, event)) {
        const method = (stats.byMethod[event] ??= {});
        method[code] = (method[code] ?? 0) + 1;
      }
    } else if (outcome.kind === 'dropped') {
      stats.dropped++;
    }
    return outcome;
  }

  /**
   * Sends and checks the protocol's promises: an acknowledged message gets a reply in time, and
   * a refusal carries a known code that is not INTERNAL. Learns ids from successful replies.
   */
  async call(event: unknown, args: readonly unknown[], ack = true): Promise<Outcome> {
    const outcome = await this.send(event, args, ack);
    this.check(event, args, outcome);
    if (outcome.kind === 'reply' && outcome.reply.ok && typeof event === 'string') this.learn(event, args[0], outcome.reply.data ?? {});
    return outcome;
  }

  check(event: unknown, args: readonly unknown[], outcome: Outcome): void {
    const what = `${this.label} ${brief(event, 80)}(${args.map((a) => brief(a, 200)).join(', ')})`;
    if (outcome.kind === 'reply') {
      const problem = replyProblem(outcome.reply);
      if (problem) this.ctx.fail(`${what}: ${problem}`);
    } else if (outcome.kind === 'timeout' || outcome.kind === 'dropped') {
      if (!this.mayBeDropped && !this.closing) {
        this.ctx.fail(`${what}: no reply (${outcome.kind}${outcome.kind === 'dropped' ? `: ${outcome.reason}` : ''}; disconnect reason ${this.disconnectReason})`);
      }
    }
  }

  /** A request the setup needs to succeed. */
  async must(method: string, payload: unknown): Promise<Record<string, unknown>> {
    const outcome = await this.call(method, [payload]);
    if (outcome.kind !== 'reply' || !outcome.reply.ok) this.ctx.fail(`${this.label} setup ${method} failed: ${codeOf(outcome)} ${brief(outcome)}`);
    return outcome.reply.data ?? {};
  }

  learn(method: string, payload: unknown, data: Record<string, unknown>): void {
    const { pool } = this.ctx;
    const p = (typeof payload === 'object' && payload !== null ? payload : {}) as Record<string, unknown>;
    switch (method) {
      case 'join': {
        this.forget();
        this.peerId = String(data['peerId']);
        this.room = String(data['roomId']);
        this.role = data['role'] as Role;
        this.kind = data['kind'] as RoomKind;
        this.routerRtpCapabilities = data['routerRtpCapabilities'];
        pool.add(pool.peers, data['peerId']);
        pool.add(pool.resumeTokens, data['resumeToken']);
        pool.add(pool.producers, (data['broadcast'] as { producerId?: string } | undefined)?.producerId);
        break;
      }
      case 'createTransport':
        this.transports.push({ id: String(data['id']), direction: p['direction'] === 'send' ? 'send' : 'recv' });
        pool.add(pool.transports, data['id']);
        break;
      case 'produce':
        this.producers.push(String(data['producerId']));
        pool.add(pool.producers, data['producerId']);
        break;
      case 'consume':
        this.consumers.push(String(data['consumerId']));
        pool.add(pool.consumers, data['consumerId']);
        pool.add(pool.producers, data['producerId']);
        break;
      case 'closeProducer': {
        const at = this.producers.indexOf(String(p['producerId']));
        if (at >= 0) this.producers.splice(at, 1);
        break;
      }
      case 'leave':
        this.forget();
        break;
      default:
    }
  }

  forget(): void {
    this.peerId = undefined;
    this.room = undefined;
    this.role = undefined;
    this.kind = undefined;
    this.transports.length = 0;
    this.producers.length = 0;
    this.consumers.length = 0;
  }

  /** Checks the events the server pushed: a `request:error` must carry a known, non-INTERNAL code. */
  checkEvents(): void {
    const events = this.raw.events;
    for (; this.#checkedEvents < events.length; this.#checkedEvents++) {
      const { event, payload } = events[this.#checkedEvents]!;
      if (event === 'request:error') {
        const p = payload as { method?: unknown; error?: unknown } | undefined;
        const problem = typeof p?.method === 'string' ? errorProblem(p.error) : `request:error without method: ${brief(payload)}`;
        if (problem) this.ctx.fail(`${this.label} was told request:error: ${problem}`);
      } else if (event === 'session:kicked' || event === 'room:ended' || event === 'session:reset') {
        this.forget();
      } else if (event === 'consumer:closed') {
        const id = (payload as { consumerId?: string } | undefined)?.consumerId;
        const at = id === undefined ? -1 : this.consumers.indexOf(id);
        if (at >= 0) this.consumers.splice(at, 1);
      }
    }
  }

  /** The server closed this connection though nothing it sent warranted that. */
  checkStillConnected(): void {
    if (!this.connected && !this.mayBeDropped && !this.closing) {
      this.ctx.fail(`${this.label} was disconnected by the server (${this.disconnectReason}) without having sent an oversized message`);
    }
  }

  /** Disconnects; with `check`, first checks what the server pushed and that it kept the connection. */
  close(check = true): void {
    const wasClosing = this.closing;
    this.closing = true;
    this.ctx.attackers.delete(this);
    try {
      if (check && !wasClosing) {
        this.closing = false;
        this.checkEvents();
        this.checkStillConnected();
        this.closing = true;
      }
    } finally {
      this.closing = true;
      this.raw.close();
    }
  }
}

const KEY = { id: 'test', secret: 't'.repeat(40) };
const encoder = new TextEncoder();

export const tokenKinds = [
  'fresh',
  'freshNoKid',
  'callParticipant',
  'callModerator',
  'resume',
  'reused',
  'otherRoom',
  'expired',
  'notYetValid',
  'forged',
  'unknownKid',
  'algNone',
  'hs512',
  'badClaims',
  'wrongIssuer',
  'truncated',
  'tampered',
  'garbage',
  'huge',
  'empty',
] as const;
export type TokenKind = (typeof tokenKinds)[number];

export interface TokenGrant {
  room: string;
  identity: string;
  role: Role;
  grants?: { publish?: PublishGrant[]; moderate?: boolean; replace?: boolean; reusable?: boolean };
  /** The kind of room the token is for (broadcast when absent). */
  kind?: RoomKind;
}

/**
 * Join tokens, real and otherwise. Tokens that verify are never minted with powers over the
 * `protectedRoom` (no moderator role, no moderate or replace grant): the fuzz must not be able to
 * end the victim room or take its broadcaster's seat by the rules, only by a bug.
 */
export class TokenForge {
  constructor(
    private readonly node: ChorusNode,
    private readonly pool: IdPool,
    private readonly protectedRoom: string,
  ) {}

  guard(grant: TokenGrant): TokenGrant {
    const reusable = grant.role === 'listener' && grant.grants?.reusable === true;
    if (grant.room !== this.protectedRoom) {
      return { ...grant, grants: { ...grant.grants, reusable } };
    }
    const role: Role = grant.role === 'broadcaster' ? 'broadcaster' : 'listener';
    // The kind is kept: a call token for the victim is refused as the wrong kind, and has no powers.
    return { room: grant.room, identity: grant.identity, role, grants: role === 'listener' && reusable ? { reusable: true } : {}, ...(grant.kind ? { kind: grant.kind } : {}) };
  }

  async mint(grant: TokenGrant, options: { resume?: boolean } = {}): Promise<string> {
    const g = this.guard(grant);
    const grants = Object.fromEntries(Object.entries(g.grants ?? {}).filter(([, v]) => v !== false && v !== undefined));
    return (await this.node.tokens.issue({ room: g.room, identity: g.identity, role: g.role, grants, ...(g.kind ? { kind: g.kind } : {}) }, { resume: options.resume ?? false })).token;
  }

  async #sign(claims: Record<string, unknown>, o: { secret?: string; kid?: string | null; alg?: string; iat?: number; exp?: number; nbf?: number; iss?: string } = {}): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const header: { alg: string; kid?: string } = { alg: o.alg ?? 'HS256' };
    if (o.kid !== null) header.kid = o.kid ?? KEY.id;
    const jwt = new SignJWT(claims)
      .setProtectedHeader(header)
      .setIssuer(o.iss ?? 'chorus')
      .setJti(randomUUID())
      .setIssuedAt(o.iat ?? now)
      .setExpirationTime(o.exp ?? now + 600);
    if (o.nbf !== undefined) jwt.setNotBefore(o.nbf);
    return jwt.sign(encoder.encode(o.secret ?? KEY.secret));
  }

  /** A token of `kind` for `grant` (`otherRoom` names the room an "other room" token is for). */
  async make(kind: TokenKind, grant: TokenGrant, otherRoom: string, r: () => number): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const g = this.guard(grant);
    const claims = { room: g.room, role: g.role, sub: g.identity, ...(g.kind && g.kind !== 'broadcast' ? { kind: g.kind } : {}) };
    switch (kind) {
      case 'fresh':
        return this.mint(g);
      case 'callParticipant':
      case 'callModerator':
        // No moderator for the protected room (a broadcast, so a call token is refused there anyway).
        return this.mint({ ...g, kind: 'call', role: kind === 'callModerator' && g.room !== this.protectedRoom ? 'moderator' : 'participant' });
      case 'freshNoKid':
        return this.#sign(claims, { kid: null });
      case 'resume':
        return this.pool.resumeTokens.length > 0 && r() < 0.7 ? pick(r, this.pool.resumeTokens) : this.mint(g, { resume: true });
      case 'reused':
        return this.pool.usedTokens.length > 0 ? pick(r, this.pool.usedTokens) : this.mint(g);
      case 'otherRoom':
        return this.mint({ ...g, room: otherRoom });
      case 'expired':
        return this.#sign(claims, { iat: now - 7200, exp: now - 60 });
      case 'notYetValid':
        return this.#sign(claims, { nbf: now + 3600 });
      case 'forged':
        return this.#sign({ ...claims, role: 'moderator' }, { secret: 'f'.repeat(40) });
      case 'unknownKid':
        return this.#sign(claims, { kid: 'nobody' });
      case 'algNone':
        return new UnsecuredJWT({ ...claims, role: 'moderator', jti: randomUUID() }).setIssuer('chorus').setIssuedAt().setExpirationTime('10m').encode();
      case 'hs512':
        return this.#sign(claims, { alg: 'HS512' });
      case 'badClaims':
        return this.#sign(
          pick(r, [
            { ...claims, role: 'god' },
            { ...claims, room: '../../etc' },
            { room: g.room, role: g.role },
            { ...claims, sub: 'x'.repeat(300) },
            { ...claims, grants: { admin: true } },
            { ...claims, grants: { publish: ['audio', 'video', 'hologram'] } },
            { ...claims, grants: { publish: ['microphone', 'camera', 'screen', 'screen-audio', 'audio', 'video', 'camera'] } },
            { ...claims, kind: 'conference' },
            { ...claims, kind: 'call', role: 'host' },
            { ...claims, name: 'n'.repeat(200) },
            { ...claims, typ: 'refresh' },
          ]),
        );
      case 'wrongIssuer':
        return this.#sign(claims, { iss: 'someone-else' });
      case 'truncated': {
        const t = await this.mint(g);
        return t.slice(0, Math.max(1, t.length - 1 - Math.floor(r() * 20)));
      }
      case 'tampered': {
        const [header, , signature] = (await this.mint(g)).split('.');
        const body = Buffer.from(JSON.stringify({ ...claims, role: 'moderator', grants: { moderate: true, replace: true }, room: this.protectedRoom, iss: 'chorus', jti: randomUUID(), iat: now, exp: now + 600 })).toString('base64url');
        return `${header}.${body}.${signature}`;
      }
      case 'garbage':
        return pick(r, ['x', 'a.b.c', 'eyJhbGciOiJIUzI1NiJ9.e30.AAAA', '....', 'null', '{"alg":"none"}', Buffer.from(randomUUID()).toString('base64'), '\u0000\u0001', '🎤.🎤.🎤']);
      case 'huge':
        return 'e'.repeat(4097);
      case 'empty':
        return '';
    }
  }
}

/** A path into a JSON-ish value. */
export type Path = Array<string | number>;

export function pathsOf(value: unknown, prefix: Path = [], out: Path[] = [], depth = 0): Path[] {
  if (depth > 12 || out.length > 500) return out;
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      out.push([...prefix, i]);
      pathsOf(v, [...prefix, i], out, depth + 1);
    });
  } else if (typeof value === 'object' && value !== null && !ArrayBuffer.isView(value)) {
    for (const [k, v] of Object.entries(value)) {
      out.push([...prefix, k]);
      pathsOf(v, [...prefix, k], out, depth + 1);
    }
  }
  return out;
}

export function getAt(root: unknown, path: Path): unknown {
  let v: unknown = root;
  for (const k of path) v = (v as Record<string | number, unknown> | undefined)?.[k];
  return v;
}

export type Mutation =
  | { op: 'drop'; at: number }
  | { op: 'addKey'; at: number; key: string; value: unknown }
  | { op: 'replace'; at: number; value: unknown }
  | { op: 'number'; at: number; value: number }
  | { op: 'string'; at: number; value: string }
  | { op: 'swapId'; at: number; seed: number }
  | { op: 'wrap'; at: number }
  | { op: 'whole'; value: unknown };

/** Applies `mutations` in order to a copy of `payload`; `ids` supplies ids for `swapId`. */
export function mutate(payload: unknown, mutations: readonly Mutation[], ids: (seed: number) => string): unknown {
  let root: unknown = structuredClone(payload);
  for (const m of mutations) {
    if (m.op === 'whole') {
      root = structuredClone(m.value);
      continue;
    }
    const all = pathsOf(root);
    const candidates =
      m.op === 'number'
        ? all.filter((p) => typeof getAt(root, p) === 'number')
        : m.op === 'swapId' || m.op === 'string'
          ? all.filter((p) => typeof getAt(root, p) === 'string')
          : m.op === 'addKey'
            ? [[], ...all.filter((p) => { const v = getAt(root, p); return typeof v === 'object' && v !== null && !Array.isArray(v); })]
            : all;
    const list = candidates.length > 0 ? candidates : all;
    if (list.length === 0 && m.op !== 'addKey') {
      if (typeof root === 'object' && root !== null && !Array.isArray(root) && m.op === 'replace') (root as Record<string, unknown>)['extra'] = structuredClone(m.value);
      continue;
    }
    const path = list.length === 0 ? [] : list[m.at % list.length]!;
    const parent = path.length === 0 ? undefined : (getAt(root, path.slice(0, -1)) as Record<string | number, unknown>);
    const key = path.at(-1);
    switch (m.op) {
      case 'drop':
        if (parent && key !== undefined) {
          if (Array.isArray(parent)) parent.splice(Number(key), 1);
          else delete parent[key];
        }
        break;
      case 'addKey': {
        const target = (path.length === 0 ? root : getAt(root, path)) as Record<string, unknown> | null;
        if (typeof target === 'object' && target !== null) Object.defineProperty(target, m.key, { value: structuredClone(m.value), enumerable: true, configurable: true, writable: true });
        break;
      }
      case 'wrap':
        if (parent && key !== undefined) parent[key] = [parent[key]];
        break;
      case 'swapId':
        if (parent && key !== undefined) parent[key] = ids(m.seed);
        break;
      default:
        // A copy: the generated value must stay as generated, and never end up inside itself.
        if (parent && key !== undefined) parent[key] = structuredClone(m.value);
    }
  }
  return root;
}

// --- Identities and display names -----------------------------------------------------------
// Kept apart from the protocol fuzzing above: text people choose, and what the node makes of it.

/**
 * Code units that break text somewhere (NUL and other controls, line separators, bidirectional
 * overrides, halves of a surrogate pair) next to some that must not be refused (joiners,
 * non-Latin letters, an emoji, a space).
 */
export const awkwardUnits = [
  '\u0000', '\u0001', '\u0007', '\t', '\n', '\r', '\u001b', '\u001f', '\u007f', '\u0085', '\u009f',
  '\u2028', '\u2029', '\u202a', '\u202e', '\u2066', '\u2069', '\ud800', '\udbff', '\udc00', '\udfff',
  '\u200d', '\u200c', '\ufeff', '\ufffd', 'أ', 'ज़', '🎤', ' ', '"', '\\', '~',
] as const;

/** Strings of 0..maxLength units mixing the awkward ones with any code point and plain letters. */
export function awkwardText(maxLength: number): fc.Arbitrary<string> {
  const unit = fc.oneof(
    { arbitrary: fc.constantFrom(...awkwardUnits), weight: 3 },
    { arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }), weight: 2 },
    { arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }), weight: 4 },
  );
  return fc.oneof(
    { arbitrary: fc.string({ unit, maxLength: 24 }), weight: 8 },
    // Around the length bound.
    { arbitrary: fc.string({ unit, minLength: maxLength - 10, maxLength }), weight: 1 },
  );
}

/**
 * The rule for identities and names, written out by code point and independently of the
 * server's expression: 1..max UTF-16 units, no C0/C1 control, no DEL, no line or paragraph
 * separator, no bidirectional embedding, override or isolate, no half of a surrogate pair.
 */
export function isPrintableText(text: string, max: number): boolean {
  if (text.length < 1 || text.length > max) return false;
  for (const char of text) {
    const cp = char.codePointAt(0)!;
    if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) return false;
    if (cp >= 0xd800 && cp <= 0xdfff) return false; // for..of yields a lone half as itself
    if (cp === 0x2028 || cp === 0x2029) return false;
    if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069)) return false;
  }
  return true;
}

/** A join token signed with the test key directly (no grant checks): claims as given. */
export async function handSignedToken(claims: Record<string, unknown>): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', kid: KEY.id })
    .setIssuer('chorus')
    .setJti(randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(encoder.encode(KEY.secret));
}

export const TEST_KEY_BASIC = `Basic ${Buffer.from(`${KEY.id}:${KEY.secret}`).toString('base64')}`;
