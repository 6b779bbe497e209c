/**
 * The media side of one room: an origin router (where publishers send) and fan-out routers on
 * other workers fed with `pipeToRouter`. A broadcast's receive transports go to the least-loaded
 * worker from the first listener, so one room uses every core; other rooms fill a worker up to
 * the per-worker budget before they spread.
 *
 * A receiver that numbers the codecs its own way (a WHEP player) is served from a router whose
 * codecs carry its numbers (`PayloadProfile`), fed the same way but only with what is consumed.
 *
 * Closing a RoomMedia closes its routers, and with them every transport, producer and consumer.
 */
import { EventEmitter } from 'node:events';
import type { types } from 'mediasoup';
import { ChorusError } from '../protocol/errors.js';
import type { Logger } from '../observability/logger.js';
import { routerCodecs } from './codecs.js';
import type { PayloadProfile } from './payloadProfile.js';
import type { WorkerPool, WorkerSlot } from './workerPool.js';

export interface TransportSettings {
  listenIp: string;
  announcedAddress: string | undefined;
  minPort: number;
  maxPort: number;
  enableUdp: boolean;
  enableTcp: boolean;
  initialAvailableOutgoingBitrate: number;
  /**
   * A floor under each transport's bandwidth estimate (bit/s; 0: none). For a network that is
   * never the bottleneck (a LAN, a loopback test), where a busy receiver's delays would
   * otherwise read as congestion and step its video down or pause it.
   */
  minOutgoingBitrate?: number | undefined;
}

export interface RouterSlot {
  readonly router: types.Router;
  readonly worker: types.Worker;
  readonly origin: boolean;
  /** The payload profile its codecs follow ('' for the room's own numbering). */
  readonly profile: string;
  /** Receive transports placed here: one listener each, the unit of fan-out capacity. */
  recvTransports: number;
  /**
   * Producers piped here from the origin (by origin id), or being piped: each with its id here.
   * That is the same id, but not on a profile's router, which may share the origin's worker.
   */
  readonly piped: Map<string, Promise<string>>;
}

interface RoomMediaEvents {
  /** A router of this room died with its worker; `origin` means the whole room's media is gone. */
  routerlost: [slot: RouterSlot];
}

export class RoomMedia extends EventEmitter<RoomMediaEvents> {
  readonly #slots: RouterSlot[] = [];
  readonly #producers = new Map<string, types.Producer>();
  /** Routers being made, by worker and profile: receivers arriving meanwhile wait for the same one. */
  readonly #adding = new Map<string, Promise<RouterSlot>>();
  #closed = false;

  private constructor(
    readonly roomId: string,
    private readonly pool: WorkerPool,
    private readonly settings: TransportSettings,
    private readonly maxConsumersPerWorker: number,
    private readonly log: Logger,
    /** Receivers go to every worker from the first (a broadcast: one track to many), not only past the budget. */
    private readonly spread: boolean,
  ) {
    super();
  }

  static async create(
    roomId: string,
    pool: WorkerPool,
    settings: TransportSettings,
    maxConsumersPerWorker: number,
    log: Logger,
    spread = false,
  ): Promise<RoomMedia> {
    const media = new RoomMedia(roomId, pool, settings, maxConsumersPerWorker, log, spread);
    await media.#addRouter(pool.leastLoaded(), true, undefined);
    return media;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get origin(): RouterSlot {
    const origin = this.#slots[0];
    if (!origin?.origin) throw new ChorusError('UNAVAILABLE', 'room media is not available');
    return origin;
  }

  get rtpCapabilities(): types.RtpCapabilities {
    return this.origin.router.rtpCapabilities;
  }

  get slots(): readonly RouterSlot[] {
    return this.#slots;
  }

  async #addRouter(workerSlot: { worker: types.Worker }, origin: boolean, profile: PayloadProfile | undefined): Promise<RouterSlot> {
    const { worker } = workerSlot;
    const router = await worker.createRouter({ mediaCodecs: profile?.codecs ?? routerCodecs(), appData: { roomId: this.roomId } });
    const slot: RouterSlot = { router, worker, origin, profile: profile?.key ?? '', recvTransports: 0, piped: new Map() };
    this.#slots.push(slot);
    router.observer.once('close', () => {
      const at = this.#slots.indexOf(slot);
      if (at >= 0) this.#slots.splice(at, 1);
      // A router closes under us only when its worker died; our own close() sets #closed first.
      if (!this.#closed) {
        this.log.warn({ room: this.roomId, origin, router: router.id }, 'router lost with its worker');
        this.emit('routerlost', slot);
      }
    });
    this.log.debug({ room: this.roomId, router: router.id, origin, profile: slot.profile, workerPid: worker.pid }, 'router created');
    return slot;
  }

  /**
   * Where a new receive transport should go: the first router under the per-worker consumer
   * budget, else a new router on the least-loaded worker this room does not use yet (with
   * every current producer piped to it), else the emptiest router we have. A broadcast's (spread)
   * goes to the least-loaded worker whatever the budget. Each payload profile has its own routers.
   */
  async #slotForReceiver(profile: PayloadProfile | undefined, spreadTo: WorkerSlot | undefined): Promise<RouterSlot> {
    const key = profile?.key ?? '';
    const slots = this.#slots.filter((s) => s.profile === key);
    if (spreadTo) return slots.find((s) => s.worker === spreadTo.worker) ?? (await this.#routerOn(spreadTo, undefined));
    const withRoom = slots.find((s) => s.recvTransports < this.maxConsumersPerWorker);
    if (withRoom) return withRoom;
    const used = new Set(slots.map((s) => s.worker));
    const candidate = this.pool.leastLoaded(used);
    if (!used.has(candidate.worker)) return this.#routerOn(candidate, profile);
    return slots.reduce((a, b) => (b.recvTransports < a.recvTransports ? b : a));
  }

  /**
   * A router of this room on `target`'s worker for `profile`, made once however many receivers
   * ask at the same moment: with the room's producers piped to it (a profile's router is fed on
   * demand instead: it may not take every codec the room's producers use).
   */
  #routerOn(target: { worker: types.Worker }, profile: PayloadProfile | undefined): Promise<RouterSlot> {
    const key = `${target.worker.pid}/${profile?.key ?? ''}`;
    let adding = this.#adding.get(key);
    if (!adding) {
      adding = (async () => {
        const slot = await this.#addRouter(target, false, profile);
        if (profile) {
          this.log.info({ room: this.roomId, profile: profile.key }, 'router for a payload profile');
          return slot;
        }
        this.log.info({ room: this.roomId, routers: this.#slots.length }, 'receivers fanned out to another worker');
        await Promise.all([...this.#producers.keys()].map((id) => this.#pipe(id, slot)));
        return slot;
      })().finally(() => this.#adding.delete(key));
      this.#adding.set(key, adding);
    }
    return adding;
  }

  #pipe(producerId: string, slot: RouterSlot): Promise<string> {
    if (slot.origin) return Promise.resolve(producerId);
    let piping = slot.piped.get(producerId);
    if (!piping) {
      piping = this.origin.router
        .pipeToRouter({ producerId, router: slot.router, keepId: slot.profile === '' })
        .then(({ pipeProducer }) => pipeProducer?.id ?? producerId);
      slot.piped.set(producerId, piping);
      piping.catch(() => slot.piped.delete(producerId));
    }
    return piping;
  }

  /** `profile`: the receiver's own payload types, for a receive transport (see PayloadProfile). */
  async createTransport(direction: 'send' | 'recv', forceTcp: boolean, profile?: PayloadProfile): Promise<types.WebRtcTransport> {
    // Every core from the first receiver (a broadcast): the least-loaded live worker (transports
    // and consumers of every room) takes the next one, on this room's router there. Its load is
    // counted at once, so receivers arriving together do not all pick the same worker.
    const spreadTo = direction === 'recv' && this.spread && !profile ? this.pool.leastLoaded() : undefined;
    if (spreadTo) this.pool.adjustLoad(spreadTo.worker, 1);
    let slot: RouterSlot;
    let transport: types.WebRtcTransport;
    try {
      slot = direction === 'send' ? this.origin : await this.#slotForReceiver(profile, spreadTo);
      transport = await this.#transportOn(slot, direction, forceTcp);
    } catch (error) {
      if (spreadTo) this.pool.adjustLoad(spreadTo.worker, -1);
      throw error;
    }
    if (direction === 'recv') slot.recvTransports++;
    if (!spreadTo) this.pool.adjustLoad(slot.worker, 1);
    transport.observer.once('close', () => {
      if (direction === 'recv') slot.recvTransports--;
      this.pool.adjustLoad(slot.worker, -1);
    });
    transport.observer.on('newconsumer', (consumer) => {
      this.pool.adjustLoad(slot.worker, 1);
      consumer.observer.once('close', () => this.pool.adjustLoad(slot.worker, -1));
    });
    return transport;
  }

  async #transportOn(slot: RouterSlot, direction: 'send' | 'recv', forceTcp: boolean): Promise<types.WebRtcTransport> {
    const s = this.settings;
    // On the worker's shared port when it has one (RTC_SERVER_PORT) and that port speaks what
    // this peer needs; else a port of its own from the range.
    const server = this.pool.serverOf(slot.worker);
    const serverTcp = server !== undefined && s.enableTcp;
    const common = {
      preferUdp: true,
      initialAvailableOutgoingBitrate: s.initialAvailableOutgoingBitrate,
      appData: { direction, routerId: slot.router.id },
    };
    const transport = await (server && (!forceTcp || serverTcp)
      ? slot.router.createWebRtcTransport({ ...common, webRtcServer: server, enableUdp: s.enableUdp && !forceTcp, enableTcp: serverTcp })
      : slot.router.createWebRtcTransport({ ...common, listenInfos: this.#listenInfos(forceTcp) }));
    if (s.minOutgoingBitrate) {
      try {
        await transport.setMinOutgoingBitrate(s.minOutgoingBitrate);
      } catch (error) {
        transport.close();
        throw error;
      }
    }
    return transport;
  }

  #listenInfos(forceTcp: boolean): types.TransportListenInfo[] {
    const s = this.settings;
    const base = { ip: s.listenIp, announcedAddress: s.announcedAddress, portRange: { min: s.minPort, max: s.maxPort } };
    const listenInfos: types.TransportListenInfo[] = [];
    if (s.enableUdp && !forceTcp) listenInfos.push({ ...base, protocol: 'udp' });
    if (s.enableTcp || forceTcp) listenInfos.push({ ...base, protocol: 'tcp' });
    return listenInfos;
  }

  /** Registers a producer made on the origin so fan-out routers get it too. */
  addProducer(producer: types.Producer): void {
    this.#producers.set(producer.id, producer);
    producer.observer.once('close', () => {
      this.#producers.delete(producer.id);
      for (const slot of this.#slots) slot.piped.delete(producer.id);
    });
    for (const slot of this.#slots) {
      if (!slot.origin && slot.profile === '') {
        this.#pipe(producer.id, slot).catch((error: unknown) =>
          this.log.error({ room: this.roomId, err: error }, 'piping producer to fan-out router failed'),
        );
      }
    }
  }

  /** Makes sure `producerId` exists on the router that hosts `transport`: that router, and its id there. */
  async ensureProducerOn(transport: types.WebRtcTransport, producerId: string): Promise<{ router: types.Router; producerId: string }> {
    const slot = this.#slots.find((s) => s.router.id === routerIdOf(transport));
    if (!slot) throw new ChorusError('TRANSPORT_NOT_FOUND', 'transport is not in this room');
    if (!this.#producers.has(producerId)) throw new ChorusError('PRODUCER_NOT_FOUND', 'no such producer in this room');
    try {
      return { router: slot.router, producerId: await this.#pipe(producerId, slot) };
    } catch (error) {
      if (slot.profile === '') throw error;
      // A profile's router lacks the codecs its receiver did not offer: this track is not for it.
      this.log.debug({ room: this.roomId, producer: producerId, profile: slot.profile, err: error }, 'track not piped to a payload profile');
      throw new ChorusError('CANNOT_CONSUME', 'your device cannot decode this stream');
    }
  }

  /** Counts of live mediasoup objects, from each router's own dump, for tests and diagnostics. */
  async dump(): Promise<{ routers: number; transports: number; producers: number; consumers: number }> {
    let transports = 0;
    let producers = 0;
    let consumers = 0;
    for (const slot of this.#slots) {
      const d = await slot.router.dump();
      transports += d.transportIds.length;
      producers += d.mapProducerIdConsumerIds.length;
      consumers += d.mapConsumerIdProducerId.length;
    }
    return { routers: this.#slots.length, transports, producers, consumers };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const slot of [...this.#slots]) slot.router.close();
    this.#slots.length = 0;
  }
}

/** The id of the router a transport lives on (kept in appData when the transport is made). */
function routerIdOf(transport: types.WebRtcTransport): unknown {
  return transport.appData['routerId'];
}

/**
 * The room's id of the track a consumer plays. A consumer on a profile's router consumes a copy
 * of the track under another id; the room knows the track by its own (kept in appData).
 */
export function trackIdOf(consumer: types.Consumer): string {
  const id = consumer.appData['trackId'];
  return typeof id === 'string' ? id : consumer.producerId;
}
