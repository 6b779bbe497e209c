/**
 * Cascading a broadcast between nodes. The origin is the node holding the broadcaster's
 * producer; a node serving listeners of that room elsewhere (an edge) pulls the stream once,
 * over a pair of SRTP mediasoup PipeTransports, and fans it out locally — one pipe per room per
 * edge, however many listeners it has.
 *
 * Where a room's broadcast lives is a leased value in the state store (`broadcast\0<room>`:
 * node and producer), written and kept alive by the origin. Pipe set-up is a request over the
 * node bus; pipe tear-down is a notice either way.
 */
import type { types } from 'mediasoup';
import type { Logger } from '../observability/logger.js';
import { ChorusError } from '../protocol/errors.js';
import type { RemoteBroadcasts } from '../rooms/remote.js';
import type { RoomMedia } from '../media/roomMedia.js';
import type { StateStore } from '../store/stateStore.js';
import type { NodeBus } from './bus.js';

export interface PipeSettings {
  /** IP the node-to-node RTP sockets bind. */
  listenIp: string;
  /** Address other nodes reach those sockets at. */
  announcedAddress: string | undefined;
  /** Each pull from an origin: how long until the stream was here, and whether it came (metrics). */
  observePull?: ((seconds: number, ok: boolean) => void) | undefined;
}

interface Location {
  nodeId: string;
  producerId: string;
}

interface OpenRequest {
  roomId: string;
  producerId: string;
  ip: string;
  port: number;
  srtpParameters: types.SrtpParameters;
}

interface OpenAnswer {
  ip: string;
  port: number;
  srtpParameters: types.SrtpParameters;
  kind: types.MediaKind;
  rtpParameters: types.RtpParameters;
  paused: boolean;
}

const LEASE_SECONDS = 15;
const key = (roomId: string): string => `broadcast\0${roomId}`;

export class ClusterPipes implements RemoteBroadcasts {
  /** Origin side: pipes this node feeds, by `${room}\0${edge}`. */
  readonly #outgoing = new Map<string, types.PipeTransport>();
  /** Edge side: the pulled producer of each room, or the pull under way. */
  readonly #incoming = new Map<string, Promise<types.Producer | undefined>>();
  readonly #announced = new Map<string, { value: string; timer: NodeJS.Timeout }>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(
    private readonly bus: NodeBus,
    private readonly store: StateStore,
    /** A track this node holds, and the router it lives on, for an edge that asks for it. */
    private readonly localTrack: (roomId: string, producerId: string) => { producer: types.Producer; router: types.Router } | undefined,
    private readonly settings: PipeSettings,
    private readonly log: Logger,
    /** Whether a node is still in the registry: dead origins are not pulled from, dead edges not fed. */
    private readonly isAlive: (nodeId: string) => boolean = () => true,
  ) {
    bus.handle('pipe.open', (params, from) => this.#open(params as OpenRequest, from));
    // An edge that died never says goodbye: its pipes would feed nobody forever. The registry
    // only calls a node dead once it has been missing longer than a record lives, so an edge
    // newer than its snapshot is not cut off; and because that snapshot is a heartbeat old, an
    // edge that restarted a moment ago (same node id, a fresh pipe just opened) would look dead:
    // the bus, which it listens on as soon as it is up, has the last word.
    this.#sweeper = setInterval(() => {
      for (const [pipeKey, transport] of this.#outgoing) {
        const edge = pipeKey.split('\0')[1]!;
        if (this.isAlive(edge)) continue;
        void this.bus.isListening(edge).then(
          (listening) => {
            if (listening || this.#outgoing.get(pipeKey) !== transport) return;
            this.log.info({ edge }, 'closing a pipe to a node that left the cluster');
            transport.close();
          },
          () => undefined,
        );
      }
    }, 2000);
    this.#sweeper.unref();
    bus.handle('pipe.release', async (params, from) => this.#release((params as { roomId: string }).roomId, from));
    bus.handle('pipe.closed', async (params) => this.#originClosed(params as { roomId: string; producerId: string }));
  }

  /** Pipes this node holds: streams pulled from origins (edge) and fed to edges (origin). */
  get pipeCounts(): { incoming: number; outgoing: number } {
    return { incoming: this.#incoming.size, outgoing: this.#outgoing.size };
  }

  get #address(): string {
    return this.settings.announcedAddress ?? this.settings.listenIp;
  }

  // --- origin ---------------------------------------------------------------------------

  async announce(roomId: string, producerId: string): Promise<void> {
    this.withdraw(roomId);
    // This node was an edge of the room until now (the broadcaster moved here, e.g. after its
    // node died): the producer pulled from the old origin carries nothing any more; closing it
    // closes its consumers, whose listeners are told and follow the new broadcast.
    const pulled = this.#incoming.get(roomId);
    if (pulled) {
      this.#incoming.delete(roomId);
      void pulled.then((producer) => producer?.close(), () => undefined);
    }
    const value = JSON.stringify({ nodeId: this.bus.nodeId, producerId } satisfies Location);
    const write = (): Promise<void> => this.store.setValue(key(roomId), value, LEASE_SECONDS);
    const timer = setInterval(() => {
      write().catch((error: unknown) => this.log.warn({ err: error, room: roomId }, 'broadcast lease not renewed'));
    }, (LEASE_SECONDS * 1000) / 3);
    timer.unref();
    this.#announced.set(roomId, { value, timer });
    await write();
  }

  /**
   * Writes every broadcast location this node holds again, now: the store is back after an
   * outage and may have come back empty (Redis without persistence). Waiting for the next lease
   * renewal would leave a window in which listeners joining other nodes find the room silent and
   * wait for a `broadcast:started` that never comes.
   */
  reannounce(): void {
    for (const [roomId, { value }] of this.#announced) {
      this.store.setValue(key(roomId), value, LEASE_SECONDS).catch((error: unknown) => this.log.warn({ err: error, room: roomId }, 'broadcast location not re-announced'));
    }
  }

  withdraw(roomId: string): void {
    const announced = this.#announced.get(roomId);
    if (!announced) return;
    clearInterval(announced.timer);
    this.#announced.delete(roomId);
    this.store.deleteValue(key(roomId), announced.value).catch(() => undefined);
  }

  async #open(request: OpenRequest, edge: string): Promise<OpenAnswer> {
    const local = this.localTrack(request.roomId, request.producerId);
    if (!local) throw new ChorusError('PRODUCER_NOT_FOUND', `no broadcast ${request.producerId} here`);
    const { producer, router } = local;
    // A retried request (its answer was lost) replaces the earlier pipe instead of leaking it.
    const pipeKey = `${request.roomId}\0${edge}`;
    this.#outgoing.get(pipeKey)?.close();
    const transport = await router.createPipeTransport({
      listenInfo: { protocol: 'udp', ip: this.settings.listenIp, announcedAddress: this.settings.announcedAddress },
      enableSrtp: true,
    });
    this.#outgoing.set(pipeKey, transport);
    transport.observer.once('close', () => {
      if (this.#outgoing.get(pipeKey) === transport) this.#outgoing.delete(pipeKey);
    });
    await transport.connect({ ip: request.ip, port: request.port, srtpParameters: request.srtpParameters });
    const consumer = await transport.consume({ producerId: producer.id });
    consumer.on('producerclose', () => {
      this.bus.notify(edge, 'pipe.closed', { roomId: request.roomId, producerId: producer.id });
      transport.close();
    });
    this.log.info({ room: request.roomId, edge, producer: producer.id }, 'piping broadcast to an edge');
    return {
      ip: this.#address,
      port: transport.tuple.localPort,
      srtpParameters: transport.srtpParameters!,
      kind: consumer.kind,
      rtpParameters: consumer.rtpParameters,
      paused: consumer.producerPaused,
    };
  }

  #release(roomId: string, edge: string): void {
    this.#outgoing.get(`${roomId}\0${edge}`)?.close();
  }

  // --- edge ------------------------------------------------------------------------------

  async location(roomId: string): Promise<Location | undefined> {
    const raw = await this.store.getValue(key(roomId));
    if (raw === undefined) return undefined;
    const parsed = JSON.parse(raw) as Location;
    // Held here, or by a node that is gone (its broadcaster will reappear elsewhere): nothing to pull.
    if (parsed.nodeId === this.bus.nodeId) return undefined;
    // The registry view is a snapshot a heartbeat old: a node restarted a moment ago (and just
    // given the broadcast) can still be missing from it. Ask the bus before calling it dead, or
    // a listener joining now is told nothing is live and waits for a start that already happened.
    if (!this.isAlive(parsed.nodeId) && !(await this.bus.isListening(parsed.nodeId).catch(() => false))) return undefined;
    return parsed;
  }

  pull(roomId: string, media: RoomMedia): Promise<types.Producer | undefined> {
    // Pulls for one room run one after another (each waits for the previous), so listeners
    // arriving together share one pipe instead of racing to open several.
    const previous = this.#incoming.get(roomId);
    const next = (async (): Promise<types.Producer | undefined> => {
      const existing = await previous?.catch(() => undefined);
      const where = await this.location(roomId);
      if (existing && !existing.closed && existing.id === where?.producerId) return existing;
      if (existing && !existing.closed) existing.close();
      return where ? this.#pullFrom(roomId, media, where) : undefined;
    })();
    this.#incoming.set(roomId, next);
    const forget = (): void => {
      if (this.#incoming.get(roomId) === next) this.#incoming.delete(roomId);
    };
    next.then((producer) => (producer ? producer.observer.once('close', forget) : forget()), forget);
    return next;
  }

  async #pullFrom(roomId: string, media: RoomMedia, where: Location): Promise<types.Producer> {
    const started = performance.now();
    const observe = (ok: boolean): void => this.settings.observePull?.((performance.now() - started) / 1000, ok);
    const transport = await media.origin.router.createPipeTransport({
      listenInfo: { protocol: 'udp', ip: this.settings.listenIp, announcedAddress: this.settings.announcedAddress },
      enableSrtp: true,
    });
    try {
      const answer = await this.bus.request<OpenAnswer>(where.nodeId, 'pipe.open', {
        roomId,
        producerId: where.producerId,
        ip: this.#address,
        port: transport.tuple.localPort,
        srtpParameters: transport.srtpParameters!,
      } satisfies OpenRequest);
      await transport.connect({ ip: answer.ip, port: answer.port, srtpParameters: answer.srtpParameters });
      const producer = await transport.produce({
        id: where.producerId,
        kind: answer.kind,
        rtpParameters: answer.rtpParameters,
        paused: answer.paused,
      });
      producer.observer.once('close', () => {
        transport.close();
        this.bus.notify(where.nodeId, 'pipe.release', { roomId });
      });
      transport.observer.once('close', () => producer.close());
      media.addProducer(producer);
      this.log.info({ room: roomId, origin: where.nodeId, producer: producer.id }, 'pulled broadcast from its origin');
      observe(true);
      return producer;
    } catch (error) {
      transport.close();
      observe(false);
      throw error;
    }
  }

  async #originClosed({ roomId, producerId }: { roomId: string; producerId: string }): Promise<void> {
    const producer = await this.#incoming.get(roomId)?.catch(() => undefined);
    if (producer?.id === producerId) producer.close();
  }

  close(): void {
    clearInterval(this.#sweeper);
    for (const roomId of [...this.#announced.keys()]) this.withdraw(roomId);
    for (const transport of this.#outgoing.values()) transport.close();
  }
}
