/**
 * Participants that an application's own signaling gateway drives over the media REST API. Each
 * is a signaling session like a socket's: the same handlers run for it, with the same rules. Its
 * room events are kept in a bounded log and streamed as Server-Sent Events, and a stream that
 * reconnects with Last-Event-ID gets what it missed. A participant whose gateway stops calling,
 * with no stream open, is dropped after the stale timeout as a socket that went away would be
 * (its media transports dying are noticed by the room itself, as for any session).
 */
import type { PayloadProfile } from '../media/payloadProfile.js';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../observability/logger.js';
import type { ServerEvents } from '../protocol/messages.js';
import type { RoomChannel } from '../rooms/channel.js';
import type { Peer } from '../rooms/peer.js';
import type { Room } from '../rooms/room.js';
import type { Session } from '../signaling/handlers.js';
import { repeatOnGrid, type GridTimer } from '../time/gridTimer.js';

export interface GatewayEvent {
  /** Increasing per participant from 1: the SSE id a reconnecting stream names. */
  id: number;
  event: keyof ServerEvents;
  data: unknown;
}

export interface StreamListener {
  event(event: GatewayEvent): void;
  /** The participant is gone: the stream ends. */
  end(): void;
}

/** Events kept per participant for streams that reconnect. */
const LOG_MAX = 512;

export class GatewayParticipant implements Session {
  /** The participant's id before it joins; its peer id after. */
  readonly id = randomUUID();
  room?: Room | undefined;
  peer?: Peer | undefined;
  joining = false;
  /** Last request or stream activity (ms). */
  lastSeen = Date.now();
  /**
   * A WHIP or WHEP session: its client makes no request between the first and the DELETE, so it
   * lives as long as its media does (the room removes a session whose transport dies).
   */
  heldByMedia = false;
  /**
   * A WHIP or WHEP session's ICE as its client last offered it (its ufrag: another in a PATCH is an
   * ICE restart, the same one a trickle) and the ETag of the session's current version.
   */
  ice?: { ufrag: string; etag: string } | undefined;
  /** A WHEP player's own payload types, set before it joins (see PayloadProfile). */
  payloadProfile?: PayloadProfile | undefined;
  #gone = false;
  #next = 1;
  readonly #log: GatewayEvent[] = [];
  readonly #listeners = new Set<StreamListener>();

  constructor(
    readonly ip: string,
    /** The API key that created it: only that key's tenant may act for it. */
    readonly keyId: string,
    readonly tenant: string,
    private readonly registry: GatewayParticipants,
  ) {}

  get peerId(): string | undefined {
    return this.peer?.id;
  }

  /** Streams open now: while one is, the participant is as alive as a connected socket. */
  get streams(): number {
    return this.#listeners.size;
  }

  isConnected(): boolean {
    return !this.#gone;
  }

  onJoined(room: Room, peer: Peer): void {
    this.registry.bind(this, room.id, peer.id);
  }

  onLeft(): void {
    this.registry.unbind(this);
  }

  /** Gone: a join still under way is undone, and nothing more is delivered. */
  end(): void {
    this.#gone = true;
    this.registry.unbind(this);
    for (const listener of this.#listeners) listener.end();
    this.#listeners.clear();
  }

  push(event: keyof ServerEvents, data: unknown): void {
    if (this.#gone) return;
    const entry = { id: this.#next++, event, data };
    this.#log.push(entry);
    if (this.#log.length > LOG_MAX) this.#log.shift();
    for (const listener of this.#listeners) listener.event(entry);
  }

  /**
   * The events after `lastId` (all kept when null), or undefined when some of them are no longer
   * kept: the gateway must read the room again (`GET /api/rooms/:roomId`).
   */
  since(lastId: number | null): GatewayEvent[] | undefined {
    if (lastId === null) return [...this.#log];
    // An id never given (another participant's, or from before a node restart) proves nothing.
    if (lastId >= this.#next) return undefined;
    const first = this.#log[0]?.id ?? this.#next;
    if (lastId < first - 1) return undefined;
    return this.#log.filter((e) => e.id > lastId);
  }

  subscribe(listener: StreamListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
      this.lastSeen = Date.now();
    };
  }
}

/** This node's gateway participants, and the delivery of room events to them. */
export class GatewayParticipants {
  readonly #all = new Map<string, GatewayParticipant>();
  readonly #byPeer = new Map<string, GatewayParticipant>();
  readonly #byRoom = new Map<string, Set<GatewayParticipant>>();
  readonly #sweep: GridTimer;

  constructor(
    private readonly staleMs: number,
    private readonly log: Logger,
  ) {
    this.#sweep = repeatOnGrid(Math.max(250, Math.min(5000, staleMs / 4)), () => this.#reap());
  }

  get size(): number {
    return this.#all.size;
  }

  create(ip: string, keyId: string, tenant: string): GatewayParticipant {
    const participant = new GatewayParticipant(ip, keyId, tenant, this);
    this.#all.set(participant.id, participant);
    return participant;
  }

  /** The participant `id` names (its peer id once joined). */
  get(id: string): GatewayParticipant | undefined {
    return this.#byPeer.get(id) ?? this.#all.get(id);
  }

  /** Forgets a participant (it left, or its join failed): its stream ends, its id is unknown from now on. */
  discard(participant: GatewayParticipant): void {
    this.#forget(participant);
  }

  bind(participant: GatewayParticipant, roomId: string, peerId: string): void {
    this.#byPeer.set(peerId, participant);
    let members = this.#byRoom.get(roomId);
    if (!members) this.#byRoom.set(roomId, (members = new Set()));
    members.add(participant);
  }

  unbind(participant: GatewayParticipant): void {
    for (const [roomId, members] of this.#byRoom) {
      if (members.delete(participant) && members.size === 0) this.#byRoom.delete(roomId);
    }
  }

  toRoom(roomId: string, event: keyof ServerEvents, data: unknown): void {
    for (const participant of this.#byRoom.get(roomId) ?? []) participant.push(event, data);
  }

  toPeer(peerId: string, event: keyof ServerEvents, data: unknown): void {
    this.#byPeer.get(peerId)?.push(event, data);
  }

  detach(peerId: string, roomId: string): void {
    const participant = this.#byPeer.get(peerId);
    const members = this.#byRoom.get(roomId);
    if (participant && members?.delete(participant) && members.size === 0) this.#byRoom.delete(roomId);
  }

  /**
   * Drops the participants whose gateway went quiet: no stream open and no request for the stale
   * timeout. One the server already removed (kicked, its room ended) is forgotten after the same
   * time, so its gateway can still read why.
   */
  #reap(): void {
    const now = Date.now();
    for (const participant of this.#all.values()) {
      if (participant.streams > 0 || now - participant.lastSeen < this.staleMs) continue;
      const { room, peer } = participant;
      if (participant.heldByMedia && peer && !peer.closed) continue;
      this.#forget(participant);
      if (room && peer && !peer.closed) {
        this.log.info({ room: room.id, peer: peer.id, idleMs: now - participant.lastSeen }, 'gateway participant went quiet; dropping it');
        room.leave(peer, 'dropped').catch((error: unknown) => this.log.error({ err: error, room: room.id, peer: peer.id }, 'dropping a quiet gateway participant failed'));
      }
    }
  }

  #forget(participant: GatewayParticipant): void {
    participant.end();
    this.#all.delete(participant.id);
    const peerId = participant.peerId;
    if (peerId && this.#byPeer.get(peerId) === participant) this.#byPeer.delete(peerId);
  }

  /** The node is closing: streams end (rooms close their sessions themselves). */
  close(): void {
    this.#sweep.stop();
    for (const participant of [...this.#all.values()]) this.#forget(participant);
  }
}

/** Room events for sockets (the inner channel) and for this node's gateway participants. */
export class GatewayChannel implements RoomChannel {
  constructor(
    private readonly inner: RoomChannel,
    private readonly participants: GatewayParticipants,
  ) {}

  toRoom<E extends keyof ServerEvents>(roomId: string, event: E, ...args: Parameters<ServerEvents[E]>): void {
    this.inner.toRoom(roomId, event, ...args);
    this.participants.toRoom(roomId, event, args[0]);
  }

  toRoomLocal<E extends keyof ServerEvents>(roomId: string, event: E, ...args: Parameters<ServerEvents[E]>): void {
    this.inner.toRoomLocal(roomId, event, ...args);
    this.participants.toRoom(roomId, event, args[0]);
  }

  toPeer<E extends keyof ServerEvents>(peerId: string, event: E, ...args: Parameters<ServerEvents[E]>): void {
    this.inner.toPeer(peerId, event, ...args);
    this.participants.toPeer(peerId, event, args[0]);
  }

  detach(peerId: string, roomId: string): void {
    this.inner.detach(peerId, roomId);
    this.participants.detach(peerId, roomId);
  }
}
