/**
 * One mediasoup worker per core (configurable). Each worker's load is the number of consumers
 * and transports placed on it, so new routers go to the least-loaded worker. A worker that dies
 * is replaced in its slot; the rooms that had routers on it are told through `workerdied` and
 * recover their own peers.
 */
import { EventEmitter } from 'node:events';
import * as mediasoup from 'mediasoup';
import type { types } from 'mediasoup';
import type { Logger } from '../observability/logger.js';
import { countObjects, type ObjectCounts } from './objectCounts.js';
import { workerBuild, type WorkerBuild } from './workerBuild.js';

export interface WorkerPoolOptions {
  size: number;
  logLevel: types.WorkerLogLevel;
  rtcMinPort: number;
  rtcMaxPort: number;
  /** One WebRtcServer per worker, worker i on `port + i` (RTC_SERVER_PORT); else none. */
  webRtcServer?: { port: number; ip: string; announcedAddress?: string; udp: boolean; tcp: boolean };
}

export interface WorkerSlot {
  readonly index: number;
  worker: types.Worker;
  /** Live routers, transports, producers and consumers on the current worker. */
  objects: ObjectCounts;
  /** Consumers + transports currently placed on this worker. */
  load: number;
  /** The binary it runs: mediasoup version, Chorus patches, SRTP crypto (see workerBuild). */
  build: WorkerBuild;
  /** The worker's shared RTC port, when the pool runs one (RTC_SERVER_PORT). */
  webRtcServer?: types.WebRtcServer;
}

interface PoolEvents {
  workerdied: [worker: types.Worker, slot: WorkerSlot];
  workerspawned: [slot: WorkerSlot];
}

const RESPAWN_DELAY_MS = 500;

export class WorkerPool extends EventEmitter<PoolEvents> {
  readonly #slots: WorkerSlot[] = [];
  readonly #log: Logger;
  #closed = false;

  private constructor(
    private readonly options: WorkerPoolOptions,
    log: Logger,
  ) {
    super();
    this.#log = log.child({ component: 'workers' });
  }

  static async start(options: WorkerPoolOptions, log: Logger): Promise<WorkerPool> {
    const pool = new WorkerPool(options, log);
    try {
      for (let index = 0; index < options.size; index++) {
        const { worker, build, webRtcServer } = await pool.#spawn(index);
        pool.#slots.push({ index, worker, load: 0, objects: countObjects(worker), build, webRtcServer });
      }
    } catch (error) {
      pool.close();
      throw error;
    }
    return pool;
  }

  get size(): number {
    return this.#slots.length;
  }

  get slots(): readonly WorkerSlot[] {
    return this.#slots;
  }

  /** True when every slot has a live worker. */
  get healthy(): boolean {
    return !this.#closed && this.#slots.every((s) => !s.worker.closed && !s.worker.died);
  }

  /** The live worker with the lowest load, skipping `exclude`. */
  leastLoaded(exclude: ReadonlySet<types.Worker> = new Set()): WorkerSlot {
    const live = this.#slots.filter((s) => !s.worker.closed && !s.worker.died);
    if (live.length === 0) throw new Error('no live mediasoup worker');
    const candidates = live.filter((s) => !exclude.has(s.worker));
    const from = candidates.length > 0 ? candidates : live;
    return from.reduce((best, s) => (s.load < best.load ? s : best));
  }

  /** The shared RTC port of `worker`, when the pool runs one. */
  serverOf(worker: types.Worker): types.WebRtcServer | undefined {
    const server = this.#slots.find((s) => s.worker === worker)?.webRtcServer;
    return server && !server.closed ? server : undefined;
  }

  adjustLoad(worker: types.Worker, delta: number): void {
    const slot = this.#slots.find((s) => s.worker === worker);
    if (slot) slot.load = Math.max(0, slot.load + delta);
  }

  async #spawn(index: number): Promise<{ worker: types.Worker; build: WorkerBuild; webRtcServer?: types.WebRtcServer }> {
    const worker = await mediasoup.createWorker({
      logLevel: this.options.logLevel,
      rtcMinPort: this.options.rtcMinPort,
      rtcMaxPort: this.options.rtcMaxPort,
      appData: { index },
    });
    worker.on('died', (error) => this.#onDied(index, worker, error));
    let webRtcServer: types.WebRtcServer | undefined;
    const server = this.options.webRtcServer;
    if (server) {
      const base = { ip: server.ip, announcedAddress: server.announcedAddress, port: server.port + index };
      const listenInfos: types.TransportListenInfo[] = [];
      if (server.udp) listenInfos.push({ ...base, protocol: 'udp' });
      if (server.tcp) listenInfos.push({ ...base, protocol: 'tcp' });
      try {
        webRtcServer = await worker.createWebRtcServer({ listenInfos });
      } catch (error) {
        worker.close();
        throw new Error(`worker ${index}: cannot listen on RTC port ${base.port} (RTC_SERVER_PORT + ${index}): ${(error as Error).message}`);
      }
    }
    const build = workerBuild(worker.pid);
    this.#log.info({ worker: index, pid: worker.pid, build, rtcPort: webRtcServer ? server!.port + index : undefined }, 'mediasoup worker started');
    return { worker, build, webRtcServer };
  }

  #onDied(index: number, worker: types.Worker, error: Error): void {
    const slot = this.#slots[index];
    if (!slot) return;
    this.#log.error({ worker: index, pid: worker.pid, err: error }, 'mediasoup worker died');
    slot.load = 0;
    this.emit('workerdied', worker, slot);
    const respawn = async (): Promise<void> => {
      if (this.#closed) return;
      try {
        const { worker, build, webRtcServer } = await this.#spawn(index);
        slot.worker = worker;
        slot.webRtcServer = webRtcServer;
        slot.objects = countObjects(worker);
        slot.build = build;
        this.emit('workerspawned', slot);
      } catch (spawnError) {
        this.#log.error({ worker: index, err: spawnError }, 'respawning mediasoup worker failed; retrying');
        setTimeout(() => void respawn(), RESPAWN_DELAY_MS * 4).unref();
      }
    };
    setTimeout(() => void respawn(), RESPAWN_DELAY_MS).unref();
  }

  close(): void {
    this.#closed = true;
    for (const slot of this.#slots) slot.worker.close();
  }
}
