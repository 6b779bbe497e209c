import type { types } from 'mediasoup';
import { ChorusError } from '../protocol/errors.js';
import type { Role } from '../protocol/messages.js';
import type { Grants } from '../auth/tokens.js';
import type { TrackSource } from '../protocol/room.js';
import type { Publication } from './publication.js';

/**
 * One joined session and the media objects it owns. Lookups go through the peer, so a peer can
 * only ever name its own transports, producers and consumers: another peer's id is simply
 * "not found".
 */
export class Peer {
  readonly transports = new Map<string, types.WebRtcTransport>();
  readonly producers = new Map<string, types.Producer>();
  readonly consumers = new Map<string, types.Consumer>();
  /** What it publishes, by source (at most one track each). */
  readonly publications = new Map<TrackSource, Publication>();
  /** Routers this session has transports on, to know who is hit when a worker dies. */
  readonly routers = new Set<string>();
  readonly joinedAt = Date.now();
  /** Sources a moderator muted: the session may not resume or publish them until unmuted. */
  readonly moderatorMuted = new Set<TrackSource>();
  /** Calls: the client can carry the call peer-to-peer (it said so when it joined). */
  p2p = false;
  /** Classes: a student brought on stage, who may publish its stage sources until removed. */
  onStage = false;
  /** It fetched the room's HLS with its resume token (its fallback): listening without WebRTC. */
  playsHls = false;
  /** The client said when its first media arrived (accepted once, so one client is one sample). */
  mediaStartReported = false;
  /** Spatial layer changes of the videos it received (the node's choice, or mediasoup's within it), for its record. */
  layerChanges = 0;
  /**
   * Requests in flight, counted with what exists against the per-session rules, so requests sent
   * at once cannot all pass a check made before the media worker answers: transports being created,
   * sources being published, producer ids being consumed.
   */
  pendingTransports = 0;
  /** A media transport was made for it at least once (with the join, or after it). */
  madeTransport = false;
  readonly pendingProduce = new Set<TrackSource>();
  readonly pendingConsume = new Set<string>();
  #closed = false;

  constructor(
    readonly id: string,
    readonly roomId: string,
    readonly identity: string,
    readonly role: Role,
    readonly name: string | undefined,
    readonly grants: Grants = {},
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  transport(id: string): types.WebRtcTransport {
    const transport = this.transports.get(id);
    if (!transport) throw new ChorusError('TRANSPORT_NOT_FOUND', `no transport ${id} in this session`);
    return transport;
  }

  producer(id: string): types.Producer {
    const producer = this.producers.get(id);
    if (!producer) throw new ChorusError('PRODUCER_NOT_FOUND', `no producer ${id} in this session`);
    return producer;
  }

  consumer(id: string): types.Consumer {
    const consumer = this.consumers.get(id);
    if (!consumer) throw new ChorusError('CONSUMER_NOT_FOUND', `no consumer ${id} in this session`);
    return consumer;
  }

  track<T extends { id: string; observer: { once(e: 'close', f: () => void): unknown } }>(
    map: Map<string, T>,
    item: T,
  ): T {
    map.set(item.id, item);
    item.observer.once('close', () => map.delete(item.id));
    return item;
  }

  /** Closing transports closes the producers and consumers on them. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const transport of this.transports.values()) transport.close();
    this.transports.clear();
    this.producers.clear();
    this.consumers.clear();
    this.publications.clear();
  }
}
