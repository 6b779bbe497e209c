/**
 * A room's layered video on this node: one Downlink per subscriber's receive transport (its
 * bandwidth shared among its videos by the layer policy), the decisions made real on the
 * consumers, and dynacast (each publisher told the highest layer anyone here is given).
 */
import { trackIdOf } from '../media/roomMedia.js';
import type { types } from 'mediasoup';
import { Downlink, type TileView } from '../media/downlink.js';
import type { LayerRules, Target } from '../media/layerPolicy.js';
import { LayerRates } from '../media/layerRates.js';
import type { Logger } from '../observability/logger.js';
import { ChorusError } from '../protocol/errors.js';
import type { Peer } from './peer.js';

/** Kept out of a subscriber's video budget for each audio track it receives (Opus and its headers). */
const AUDIO_RESERVE_BPS = 50_000;
const DYNACAST_OFF_MS = 3000;

/** What the layers need from their room. */
export interface LayersHost {
  log: Logger;
  /** A subscriber's estimate before transport-cc has spoken (RTC_INITIAL_BITRATE). */
  initialBitrate: number;
  rules?: LayerRules | undefined;
  dynacastOffMs?: number | undefined;
  /** A publication on this node: its publisher and how many spatial layers it sends. */
  publication(producerId: string): { peerId: string; producer: types.Producer; layers: number } | undefined;
  /** Screen shares and the current speaker's camera are served first. */
  prioritised(producerId: string): boolean;
  /** Runs a change of a consumer's flow after the ones before it. */
  inTurn(consumer: types.Consumer, change: () => Promise<void>): Promise<void>;
  /** Whether the subscriber wants it flowing (it said it is ready, and its tile is shown). */
  wantsFlowing(consumer: types.Consumer): boolean;
  /** Dynacast: tells a publisher the highest spatial layer to encode. */
  tellPublisher(peerId: string, producerId: string, maxSpatialLayer: number): void;
}

export class RoomLayers {
  readonly #downlinks = new Map<string, Downlink>();
  readonly #downlinkOf = new WeakMap<types.Consumer, Downlink>();
  readonly #rates = new LayerRates();
  /** The producer on this node each consumer's layers are measured at: a publication, or the pipe that pulled it. */
  readonly #sourceOf = new WeakMap<types.Consumer, types.Producer>();
  /** Videos the policy paused: the subscriber's downlink cannot carry them with the rest. */
  readonly #starved = new WeakSet<types.Consumer>();
  /** Tracks piped to another node: their consumers there are not seen here, so dynacast leaves them whole. */
  readonly #fedElsewhere = new Set<string>();
  readonly #dynacast = new Map<string, { told: number; lower?: NodeJS.Timeout | undefined }>();

  constructor(private readonly host: LayersHost) {}

  /** A layered video `peer` now receives on `transport`, from `producer` on this node. */
  track(peer: Peer, transport: types.WebRtcTransport, consumer: types.Consumer, producer: types.Producer, view: TileView): void {
    this.#sourceOf.set(consumer, producer);
    const downlink = this.#downlinkFor(peer, transport);
    this.#downlinkOf.set(consumer, downlink);
    downlink.add(consumer, view);
  }

  governs(consumer: types.Consumer): boolean {
    return this.#downlinkOf.get(consumer)?.holds(consumer) ?? false;
  }

  /** Paused by the policy for want of bandwidth (resumed by it once it fits). */
  starved(consumer: types.Consumer): boolean {
    return this.#starved.has(consumer);
  }

  setView(consumer: types.Consumer, view: TileView): void {
    const downlink = this.#downlinkOf.get(consumer);
    if (downlink?.holds(consumer)) downlink.setView(consumer, view);
  }

  /** After the decisions up to now are applied: CONSUMER_NOT_FOUND if the track ended meanwhile. */
  async settled(consumer: types.Consumer): Promise<void> {
    const downlink = this.#downlinkOf.get(consumer);
    if (downlink?.holds(consumer)) await downlink.settle(consumer);
    if (consumer.closed) throw new ChorusError('CONSUMER_NOT_FOUND', `consumer ${consumer.id} is gone: its track ended`);
  }

  /** Who is prioritised changed (a new speaker): every subscriber decides again. */
  reassessAll(): void {
    for (const downlink of this.#downlinks.values()) void downlink.reassess();
  }

  /** A track of this node is piped to another: its subscribers there are not seen here. */
  feedsElsewhere(producerId: string): void {
    this.#fedElsewhere.add(producerId);
    this.#dynacastFor(producerId);
  }

  #downlinkFor(peer: Peer, transport: types.WebRtcTransport): Downlink {
    let downlink = this.#downlinks.get(transport.id);
    if (downlink) return downlink;
    downlink = new Downlink(transport, {
      initialBitrate: this.host.initialBitrate,
      audioReserveBps: AUDIO_RESERVE_BPS,
      rules: this.host.rules,
      ladder: async (consumer) => {
        const producer = this.#sourceOf.get(consumer);
        return producer ? this.#rates.ladder(producer) : [];
      },
      prioritised: (consumer) => this.host.prioritised(trackIdOf(consumer)),
      audioTracks: () => [...peer.consumers.values()].filter((c) => c.kind === 'audio' && !c.paused && !c.producerPaused).length,
      apply: (consumer, target, previous) => this.#apply(peer, consumer, target, previous),
      applied: (producerIds) => {
        for (const producerId of producerIds) this.#dynacastFor(producerId);
      },
      onError: (error) => {
        // Its track ended while the decision was on its way: nothing to decide any more.
        if (error instanceof ChorusError && error.code === 'CONSUMER_NOT_FOUND') return;
        this.host.log.warn({ peer: peer.id, err: error }, 'layer decision failed');
      },
    });
    this.#downlinks.set(transport.id, downlink);
    transport.observer.once('close', () => this.#downlinks.delete(transport.id));
    return downlink;
  }

  /** Makes a decision real: preferred layers, or a pause until the downlink can carry the video again. */
  async #apply(peer: Peer, consumer: types.Consumer, target: Target, previous: Target | undefined): Promise<void> {
    this.host.log.debug({ peer: peer.id, consumer: consumer.id, producer: trackIdOf(consumer), target, previous }, 'layer ceiling');
    await this.host.inTurn(consumer, async () => {
      if (target === 'off') {
        this.#starved.add(consumer);
        if (!consumer.paused) await consumer.pause();
        return;
      }
      const starved = this.#starved.delete(consumer);
      const preferred = consumer.preferredLayers;
      if (preferred?.spatialLayer !== target.spatial || preferred.temporalLayer !== target.temporal) {
        // mediasoup asks the publisher for a keyframe itself when the spatial layer it sends changes.
        await consumer.setPreferredLayers({ spatialLayer: target.spatial, temporalLayer: target.temporal });
      }
      if (starved && consumer.paused && this.host.wantsFlowing(consumer)) {
        await consumer.resume();
        await consumer.requestKeyFrame().catch(() => undefined);
      }
    });
  }

  /**
   * Dynacast: a layered publication's encoder sends only the spatial layers some subscriber here
   * is given. A layer wanted again is asked for at once; one no longer wanted is dropped after
   * `dynacastOffMs`, so a subscriber stepping down and back up does not cost its publisher a
   * restart each time. The lowest layer always stays (a new subscriber starts on it).
   */
  #dynacastFor(producerId: string): void {
    const publication = this.host.publication(producerId);
    if (!publication || publication.producer.closed || publication.producer.kind !== 'video') return;
    const top = publication.layers - 1;
    if (top < 1) return;
    let state = this.#dynacast.get(producerId);
    if (!state) {
      // Its SDK starts with every layer on.
      const made = { told: top, lower: undefined as NodeJS.Timeout | undefined };
      this.#dynacast.set(producerId, (state = made));
      publication.producer.observer.once('close', () => {
        clearTimeout(made.lower);
        this.#dynacast.delete(producerId);
      });
    }
    const current = state;
    const tell = (layer: number): void => {
      current.told = layer;
      this.host.tellPublisher(publication.peerId, producerId, layer);
      this.host.log.debug({ producer: producerId, maxSpatialLayer: layer }, 'dynacast');
    };
    const wanted = this.#wanted(producerId, top);
    if (wanted >= current.told) {
      clearTimeout(current.lower);
      current.lower = undefined;
      if (wanted > current.told) tell(wanted);
      return;
    }
    // A step down is already waiting: it reads what is wanted when it comes.
    if (current.lower) return;
    current.lower = setTimeout(() => {
      current.lower = undefined;
      if (publication.producer.closed) return;
      const now = this.#wanted(producerId, top);
      if (now !== current.told) tell(now);
    }, this.host.dynacastOffMs ?? DYNACAST_OFF_MS);
    current.lower.unref();
  }

  /** The highest spatial layer any subscriber here is given of a track (all of them when piped elsewhere). */
  #wanted(producerId: string, top: number): number {
    if (this.#fedElsewhere.has(producerId)) return top;
    let wanted = 0;
    for (const downlink of this.#downlinks.values()) {
      for (const { producerId: id, target, visible } of downlink.ceilings()) {
        // Not decided yet: it may want anything.
        if (id === producerId && visible) wanted = Math.max(wanted, target === undefined ? top : target === 'off' ? 0 : target.spatial);
      }
    }
    return Math.min(wanted, top);
  }
}
