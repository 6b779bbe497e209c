/**
 * Prometheus metrics for one node, on a registry of its own: several nodes in one process (the
 * tests, the benchmarks) must not share series, so nothing here touches prom-client's global
 * default registry. Parts of the node report through the narrow `observe*` methods; counts that
 * already live elsewhere (rooms, peers, workers, the Redis breaker) are read at scrape time from
 * the sources given to `attach`.
 */
import { readFile } from 'node:fs/promises';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ObjectCounts } from '../media/objectCounts.js';
import type { types } from 'mediasoup';
import { roles, roomKinds } from '../protocol/messages.js';
import { LoopDelay } from './loopDelay.js';

/** What the metrics read at scrape time; each returns the current state, nothing is cached. */
export interface MetricSources {
  rooms(): Iterable<{ kind: string; peers: Iterable<{ role: string }> }>;
  workers(): Iterable<{ index: number; worker: types.Worker; objects: ObjectCounts }>;
  /** Circuit-breaker state per dependency (`closed`, `open`, `half-open`, `isolated`). */
  breakers(): Record<string, string | undefined>;
  /** HLS players (without a session) counted on this node, over the rooms whose HLS runs here. */
  hlsViewers(): number;
  /** Cascade pipes held (a cluster; zero on one node). */
  cascadePipes(): { incoming: number; outgoing: number };
}

/** One room's media as sampled from mediasoup stats (see mediaStats.ts). */
export interface RoomMediaSample {
  room: string;
  listeners: number;
  egressBitrateBps: number;
  /** Fraction of packets lost, 0..1: egress as listeners report it, ingress as the SFU sees it. */
  egressLoss: number | undefined;
  ingressLoss: number | undefined;
  /** Interarrival jitter of the publisher's stream at the SFU, in seconds. */
  ingressJitterSeconds: number | undefined;
}

const BREAKER_STATES = ['closed', 'open', 'half-open', 'isolated'] as const;
const EVENT_LOOP_RESOLUTION_MS = 200;

export class ChorusMetrics {
  readonly registry = new Registry();
  /**
   * A timer every 200 ms, not 10: each wake-up of an idle node costs about 0.1 ms of a core on a
   * small VM (the default woke it a hundred times a second, twice over with prom-client's own
   * monitor; at 50 ms these wakes were half an idle node's cost: bench:idle, bench/README.md).
   * Every stall longer than the resolution is caught, shorter ones in proportion to their length;
   * how busy the loop is between scrapes is `chorus_event_loop_utilization`, which needs no timer.
   */
  readonly #eventLoop = new LoopDelay(EVENT_LOOP_RESOLUTION_MS);
  #sources: MetricSources | undefined;
  #utilizationAt: EventLoopUtilization = performance.eventLoopUtilization();

  readonly #joins: Counter<'role'>;
  readonly #joinFailures: Counter<'code'>;
  readonly #joinDuration: Histogram<'outcome'>;
  readonly #requestDuration: Histogram<'method'>;
  readonly #firstMedia: Histogram;
  readonly #pathTransitions: Counter<'from' | 'to' | 'reason'>;
  readonly #pathSwitch: Histogram<'to'>;
  readonly #pathGap: Histogram<'to'>;
  readonly #layerChanges: Counter<'kind' | 'direction'>;
  readonly #signaling: Counter<'method' | 'code'>;
  readonly #transportFailures: Counter<'stage'>;
  readonly #redisLatency: Histogram<'op' | 'outcome'>;
  readonly #dbLatency: Histogram<'op' | 'outcome'>;
  readonly #cascadePull: Histogram<'outcome'>;
  readonly #roomEgress: Gauge<'room'>;
  readonly #roomLoss: Gauge<'room' | 'direction'>;
  readonly #roomJitter: Gauge<'room'>;
  readonly #roomListeners: Gauge<'room'>;
  readonly #roomsUnlabelled: Gauge;
  readonly #egressTotal: Gauge;
  readonly #connectionsOpen: Gauge;
  readonly #connectionsRefused: Counter<'reason'>;

  constructor(nodeId: string) {
    const registers = [this.registry];
    // prom-client calls `collect` with the metric as `this`; the node's sources are reached through `self`.
    const self = this;
    this.registry.setDefaultLabels({ node: nodeId });
    // prom-client keeps its own event-loop histogram besides ours: one timer a second for it (its
    // nodejs_eventloop_lag_* stay, coarse); chorus_event_loop_delay_seconds is the one to read.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 1000 });

    new Gauge({
      name: 'chorus_rooms',
      help: 'Rooms open on this node, by kind',
      labelNames: ['kind'],
      registers,
      collect: function (this: Gauge<'kind'>) {
        this.reset();
        for (const [kind, n] of count(self.#sources?.rooms() ?? [], (room) => [room.kind], roomKinds)) this.set({ kind }, n);
      },
    });
    new Gauge({
      name: 'chorus_peers',
      help: 'Sessions joined on this node, by role',
      labelNames: ['role'],
      registers,
      collect: function (this: Gauge<'role'>) {
        this.reset();
        for (const [role, n] of count(self.#sources?.rooms() ?? [], (room) => [...room.peers].map((p) => p.role), roles)) this.set({ role }, n);
      },
    });
    new Gauge({
      name: 'chorus_hls_viewers',
      help: 'HLS players without a session, over the rooms whose HLS this node runs (they are in the rooms\' listener counts)',
      registers,
      collect: function (this: Gauge) {
        this.set(self.#sources?.hlsViewers() ?? 0);
      },
    });
    new Gauge({
      name: 'chorus_cascade_pipes',
      help: 'Cascade pipes: streams this node pulls from origins (in) and feeds to edges (out)',
      labelNames: ['direction'],
      registers,
      collect: function (this: Gauge<'direction'>) {
        const counts = self.#sources?.cascadePipes() ?? { incoming: 0, outgoing: 0 };
        this.set({ direction: 'in' }, counts.incoming);
        this.set({ direction: 'out' }, counts.outgoing);
      },
    });
    this.#cascadePull = new Histogram({
      name: 'chorus_cascade_pull_duration_seconds',
      help: 'An edge pulling a broadcast from its origin: from the request until the stream is here (or the failure)',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.#connectionsOpen = new Gauge({ name: 'chorus_connections_open', help: 'TCP connections open on this node (HTTP, polling, WebSocket)', registers });
    this.#connectionsRefused = new Counter({
      name: 'chorus_connections_refused_total',
      help: 'Connections refused or cut: address_cap (TCP per address), idle (no request in time), signaling_cap (Socket.IO per client address), flood (kept flooding past its limits)',
      labelNames: ['reason'],
      registers,
    });
    // Series exist from the start, so an alert on their rate has something to read before the first refusal.
    for (const reason of ['address_cap', 'idle', 'signaling_cap', 'flood']) this.#connectionsRefused.inc({ reason }, 0);
    this.#joins = new Counter({ name: 'chorus_joins_total', help: 'Joins accepted, by role', labelNames: ['role'], registers });
    this.#joinFailures = new Counter({
      name: 'chorus_join_failures_total',
      help: 'Joins refused or failed, by error code',
      labelNames: ['code'],
      registers,
    });
    this.#joinDuration = new Histogram({
      name: 'chorus_join_duration_seconds',
      help: 'From a join request arriving to its response leaving, on the server',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.#pathTransitions = new Counter({
      name: 'chorus_call_mode_transitions_total',
      help: 'Calls switching media path (sfu, p2p), by reason',
      labelNames: ['from', 'to', 'reason'],
      registers,
    });
    this.#pathSwitch = new Histogram({
      name: 'chorus_call_mode_transition_duration_seconds',
      help: 'From a call path switch decided to every participant in it reporting media on the new path',
      labelNames: ['to'],
      buckets: [0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20],
      registers,
    });
    this.#pathGap = new Histogram({
      name: 'chorus_call_mode_transition_gap_seconds',
      help: 'Per participant of a call path switch: how long it had no audio from the others when it took the new path',
      labelNames: ['to'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.#layerChanges = new Counter({
      name: 'chorus_consumer_layer_changes_total',
      help: "Simulcast layer changes of subscribers' video (up or down; to none counts as down), by room kind",
      labelNames: ['kind', 'direction'],
      registers,
    });
    this.#firstMedia = new Histogram({
      name: 'chorus_join_to_first_media_seconds',
      help: 'From join request to the first media frame, as reported by clients',
      buckets: [0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20],
      registers,
    });
    this.#signaling = new Counter({
      name: 'chorus_signaling_requests_total',
      help: 'Signaling requests answered, by method and result code (ok or the error code)',
      labelNames: ['method', 'code'],
      registers,
    });
    this.#requestDuration = new Histogram({
      name: 'chorus_signaling_request_duration_seconds',
      help: 'From a signaling request arriving to its answer leaving, on the server, by method',
      labelNames: ['method'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.#transportFailures = new Counter({
      name: 'chorus_transport_failures_total',
      help: 'WebRTC transport failures: ICE consent lost (ice_disconnected) or DTLS handshake failed (dtls_failed)',
      labelNames: ['stage'],
      registers,
    });
    this.#roomEgress = new Gauge({ name: 'chorus_room_egress_bitrate_bps', help: 'Media sent to a room\'s listeners (bits/s; sampled)', labelNames: ['room'], registers });
    this.#roomLoss = new Gauge({
      name: 'chorus_room_packet_loss_ratio',
      help: 'Packet loss fraction: egress as listeners report it (RTCP), ingress as the SFU sees the publisher',
      labelNames: ['room', 'direction'],
      registers,
    });
    this.#roomJitter = new Gauge({ name: 'chorus_room_jitter_seconds', help: 'Interarrival jitter of the publisher\'s stream at the SFU', labelNames: ['room'], registers });
    this.#roomListeners = new Gauge({ name: 'chorus_room_listeners', help: 'Listeners (consumers) of a labelled room on this node', labelNames: ['room'], registers });
    this.#roomsUnlabelled = new Gauge({
      name: 'chorus_rooms_unlabelled',
      help: 'Rooms left out of the per-room series by the CHORUS_METRICS_ROOMS cap',
      registers,
    });
    this.#egressTotal = new Gauge({ name: 'chorus_egress_bitrate_bps', help: 'Media sent to listeners by this node over the sampled rooms (bits/s)', registers });

    // Read from each live worker at scrape time (a dead one is left out, not reported as 0).
    const perLiveWorker = (name: string, help: string, read: (worker: types.Worker) => Promise<number | undefined>): void => {
      new Gauge({
        name,
        help,
        labelNames: ['worker'],
        registers,
        collect: async function (this: Gauge<'worker'>) {
          this.reset();
          await Promise.all(
            [...(self.#sources?.workers() ?? [])].map(async ({ index, worker }) => {
              if (worker.closed || worker.died) return;
              const value = await read(worker);
              if (value !== undefined) this.set({ worker: String(index) }, value);
            }),
          );
        },
      });
    };
    perLiveWorker('chorus_worker_cpu_seconds', 'CPU time (user + system) used by each mediasoup worker since it started; use rate()', async (worker) => {
      const usage = await worker.getResourceUsage().catch(() => undefined);
      return usage && (usage.ru_utime + usage.ru_stime) / 1000;
    });
    perLiveWorker('chorus_worker_memory_bytes', 'Resident memory of each mediasoup worker process', residentBytes);
    // Counted from mediasoup's observer events (src/media/objectCounts.ts): no dump per scrape.
    for (const kind of ['routers', 'transports', 'producers', 'consumers'] as const) {
      new Gauge({
        name: `chorus_mediasoup_${kind}`,
        help: `Live mediasoup ${kind} on each worker`,
        labelNames: ['worker'],
        registers,
        collect: function (this: Gauge<'worker'>) {
          this.reset();
          for (const { index, worker, objects } of self.#sources?.workers() ?? []) {
            if (!worker.closed && !worker.died) this.set({ worker: String(index) }, objects[kind]);
          }
        },
      });
    }
    new Gauge({
      name: 'chorus_worker_up',
      help: '1 when the worker in a slot is alive',
      labelNames: ['worker'],
      registers,
      collect: function (this: Gauge<'worker'>) {
        this.reset();
        for (const { index, worker } of self.#sources?.workers() ?? []) this.set({ worker: String(index) }, worker.closed || worker.died ? 0 : 1);
      },
    });

    this.#redisLatency = new Histogram({
      name: 'chorus_redis_command_duration_seconds',
      help: 'Redis calls through the store\'s resilience policy (retries included), by operation',
      labelNames: ['op', 'outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.#dbLatency = new Histogram({
      name: 'chorus_db_query_duration_seconds',
      help: 'Database calls made by the records module, by operation',
      labelNames: ['op', 'outcome'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    new Gauge({
      name: 'chorus_circuit_breaker_state',
      help: '1 for the state each dependency\'s circuit breaker is in (closed is healthy)',
      labelNames: ['dependency', 'state'],
      registers,
      collect: function (this: Gauge<'dependency' | 'state'>) {
        this.reset();
        for (const [dependency, current] of Object.entries(self.#sources?.breakers() ?? {})) {
          if (current === undefined) continue;
          for (const state of BREAKER_STATES) this.set({ dependency, state }, state === current ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'chorus_event_loop_utilization',
      help: 'Share of the time since the previous scrape the event loop spent running, not waiting (perf_hooks eventLoopUtilization)',
      registers,
      collect: function (this: Gauge) {
        const now = performance.eventLoopUtilization();
        this.set(performance.eventLoopUtilization(now, self.#utilizationAt).utilization);
        self.#utilizationAt = now;
      },
    });
    new Gauge({
      name: 'chorus_event_loop_delay_seconds',
      help: `How late the event loop ran a timer due every ${EVENT_LOOP_RESOLUTION_MS} ms, since the previous scrape`,
      labelNames: ['quantile'],
      registers,
      collect: function (this: Gauge<'quantile'>) {
        const delay = self.#eventLoop.snapshot();
        this.set({ quantile: '0.5' }, delay.p50);
        this.set({ quantile: '0.99' }, delay.p99);
        this.set({ quantile: 'max' }, delay.max);
      },
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Connects the scrape-time sources (rooms, workers, breakers). */
  attach(sources: MetricSources): void {
    this.#sources = sources;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** A signaling request answered: `code` is undefined on success, else the error code sent. */
  observeRequest(method: string, seconds: number, code: string | undefined): void {
    this.#signaling.inc({ method, code: code ?? 'ok' });
    this.#requestDuration.observe({ method }, seconds);
    if (method !== 'join') return;
    this.#joinDuration.observe({ outcome: code === undefined ? 'ok' : 'error' }, seconds);
    if (code !== undefined) this.#joinFailures.inc({ code });
  }

  connectionsOpen(open: number): void {
    this.#connectionsOpen.set(open);
  }

  connectionRefused(reason: 'address_cap' | 'idle' | 'signaling_cap' | 'flood'): void {
    this.#connectionsRefused.inc({ reason });
  }

  joinAccepted(role: string): void {
    this.#joins.inc({ role });
  }

  /** Client-reported time from its join request to the first media frame it played. */
  callPathChanged(from: string, to: string, reason: string): void {
    this.#pathTransitions.inc({ from, to, reason });
  }

  observeCallPathSwitch(to: string, seconds: number, gapsSeconds: readonly number[]): void {
    this.#pathSwitch.observe({ to }, seconds);
    for (const gap of gapsSeconds) this.#pathGap.observe({ to }, gap);
  }

  layerChanged(kind: string, direction: 'up' | 'down'): void {
    this.#layerChanges.inc({ kind, direction });
  }

  observeFirstMedia(seconds: number): void {
    this.#firstMedia.observe(seconds);
  }

  transportFailure(stage: 'ice_disconnected' | 'dtls_failed'): void {
    this.#transportFailures.inc({ stage });
  }

  observeRedis(op: string, seconds: number, ok: boolean): void {
    this.#redisLatency.observe({ op, outcome: ok ? 'ok' : 'error' }, seconds);
  }

  /** One pull of a broadcast from its origin by this node (an edge), and whether it succeeded. */
  observeCascadePull(seconds: number, ok: boolean): void {
    this.#cascadePull.observe({ outcome: ok ? 'ok' : 'error' }, seconds);
  }

  /** For the records module: one database call and whether it succeeded. */
  observeDbLatency(op: string, seconds: number, ok = true): void {
    this.#dbLatency.observe({ op, outcome: ok ? 'ok' : 'error' }, seconds);
  }

  /** Replaces every per-room series with the latest sample (rooms gone since drop out). */
  setRoomSamples(samples: readonly RoomMediaSample[], unlabelled: number): void {
    for (const gauge of [this.#roomEgress, this.#roomLoss, this.#roomJitter, this.#roomListeners]) gauge.reset();
    let total = 0;
    for (const s of samples) {
      total += s.egressBitrateBps;
      this.#roomEgress.set({ room: s.room }, s.egressBitrateBps);
      this.#roomListeners.set({ room: s.room }, s.listeners);
      if (s.egressLoss !== undefined) this.#roomLoss.set({ room: s.room, direction: 'egress' }, s.egressLoss);
      if (s.ingressLoss !== undefined) this.#roomLoss.set({ room: s.room, direction: 'ingress' }, s.ingressLoss);
      if (s.ingressJitterSeconds !== undefined) this.#roomJitter.set({ room: s.room }, s.ingressJitterSeconds);
    }
    this.#egressTotal.set(total);
    this.#roomsUnlabelled.set(unlabelled);
  }

  /** Names of every metric this registry exposes (the dashboard test checks against them). */
  metricNames(): string[] {
    return this.registry.getMetricsAsArray().map((m) => m.name);
  }

  close(): void {
    this.#eventLoop.close();
    this.registry.clear();
  }
}

/** How many times each key occurs over what `keys` yields for each item. */
function count<T>(items: Iterable<T>, keys: (item: T) => string[], known: readonly string[]): Map<string, number> {
  // Known keys are always reported (as 0 when absent), so a series does not vanish when it empties.
  const counts = new Map<string, number>(known.map((key) => [key, 0]));
  for (const item of items) for (const key of keys(item)) counts.set(key, (counts.get(key) ?? 0) + 1);
  return counts;
}

/** Current RSS of a worker process from /proc (Linux); ru_maxrss would only give the peak. */
async function residentBytes(worker: types.Worker): Promise<number | undefined> {
  const status = await readFile(`/proc/${worker.pid}/status`, 'utf8').catch(() => undefined);
  const kb = status && /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
  if (kb) return Number(kb) * 1024;
  const usage = await worker.getResourceUsage().catch(() => undefined);
  return usage ? usage.ru_maxrss * 1024 : undefined;
}
