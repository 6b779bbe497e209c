/**
 * The composition root: builds every part of a Chorus node from its config and wires them
 * together through their interfaces. `main.ts` runs it; tests and benchmarks start nodes here.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { ApiKeyring } from './auth/apiKeys.js';
import { TokenService } from './auth/tokens.js';
import type { Config } from './config/config.js';
import { createHttpServer } from './http/server.js';
import { WorkerPool } from './media/workerPool.js';
import { AuditLog } from './observability/audit.js';
import { RoomAdmin } from './admin/roomAdmin.js';
import { registerAdminRoutes } from './admin/routes.js';
import { Webhooks } from './webhooks/webhooks.js';
import { HealthChecks, packageVersion } from './observability/health.js';
import { MediaStatsSampler } from './observability/mediaStats.js';
import { StatsPoller, targetsOf } from './observability/statsPoller.js';
import { ChorusMetrics } from './observability/metrics.js';
import { createLogger, type Logger } from './observability/logger.js';
import { Limits } from './limits/limits.js';
import { ConnectionGuard } from './limits/connectionGuard.js';
import { addressCapWithin, openFileLimit } from './limits/fileDescriptors.js';
import { LogThrottle } from './observability/logThrottle.js';
import { RoomManager, ownerRefusal } from './rooms/roomManager.js';
import { recordNode } from './records/nodeRecorder.js';
import { QualitySampler } from './records/qualitySampler.js';
import { startRecords, type Records } from './records/records.js';
import { NodeBus } from './cluster/bus.js';
import { ClusterPipes } from './cluster/pipes.js';
import type { types } from 'mediasoup';
import { ClusterRoster } from './cluster/roster.js';
import { ChorusError } from './protocol/errors.js';
import { OriginPlacement, pickWeighted } from './cluster/placement.js';
import { policyFor } from './rooms/policy.js';
import type { Role, RoomKind } from './protocol/messages.js';
import { NodeRegistry } from './cluster/registry.js';
import { Recordings } from './recording/recordings.js';
import { HlsService } from './hls/hlsService.js';
import { HLS_VIEWERS_LEASE_SECONDS, hlsViewersKey, ViewerCountReader } from './hls/viewers.js';
import { Room } from './rooms/room.js';
import { SocketRoomChannel } from './signaling/channel.js';
import { createHandlers, type HandlerDeps } from './signaling/handlers.js';
import { GatewayChannel, GatewayParticipants } from './gateway/participants.js';
import { registerGatewayRoutes } from './gateway/routes.js';
import { registerWhipRoutes } from './whip/routes.js';
import { hasPatch } from './media/workerBuild.js';
import { attachProtocol, createSignalingServer } from './signaling/server.js';
import { createAdapter } from '@socket.io/redis-streams-adapter';
import { MemoryStateStore } from './store/memoryStore.js';
import { RedisStateStore } from './store/redisStore.js';
import type { StateStore } from './store/stateStore.js';
import { WatchService } from './watch/watchService.js';

export interface ChorusNode {
  readonly config: Config;
  readonly log: Logger;
  readonly tokens: TokenService;
  readonly keys: ApiKeyring;
  readonly rooms: RoomManager;
  readonly workers: WorkerPool;
  readonly store: StateStore;
  readonly audit: AuditLog;
  readonly limits: Limits;
  /** TCP connections per address, counted from their first byte. */
  readonly connections: ConnectionGuard;
  /** Prometheus metrics (/metrics); other parts report through it (records: observeDbLatency). */
  readonly metrics: ChorusMetrics;
  /** Readiness checks; a part with a dependency of its own registers it here (records: `database`). */
  readonly health: HealthChecks;
  /** Rooms, sessions, audit events and quality samples in PostgreSQL/PGlite; absent when off. */
  readonly records: Records | undefined;
  /** Participants driven over the media REST API on this node. */
  readonly gatewayParticipants: GatewayParticipants;
  /** The HLS fallback, unless CHORUS_HLS=false. */
  readonly hls: HlsService | undefined;
  /** Base URL the node listens on, e.g. http://127.0.0.1:3000. */
  readonly url: string;
  /**
   * Where others reach this node: CHORUS_PUBLIC_URL, else the announced (LAN) address on the
   * node's port when it listens on every interface, else `url`.
   */
  readonly publicUrl: string;
  /**
   * Graceful drain (SIGTERM): stop accepting connections, tell every client to move (they
   * reconnect through the load balancer to another node and resume), wait until the sessions
   * are gone or `deadlineMs` passes, then close. /readyz answers 503 from the first moment.
   */
  drain(deadlineMs: number): Promise<{ remaining: number }>;
  close(): Promise<void>;
}

/** The node could not start for a reason its operator fixes (the message names what to change). */
export class StartError extends Error {
  override readonly name = 'StartError';
}

/** Why listening failed, in the operator's terms: which address, and which variable to change. */
function listenFailure(error: unknown, config: Config): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const where = `${config.http.host}:${config.http.port}`;
  if (code === 'EADDRINUSE') {
    return new StartError(`port ${config.http.port} is already in use (${where}): stop whatever holds it, or set CHORUS_PORT to a free port`);
  }
  if (code === 'EACCES') {
    return new StartError(`not allowed to listen on port ${config.http.port} (${where}; ports below 1024 need privileges): set CHORUS_PORT to a port above 1023`);
  }
  if (code === 'EADDRNOTAVAIL') {
    return new StartError(`${config.http.host} is not an address of this machine: set CHORUS_HOST to one of its addresses (or 0.0.0.0)`);
  }
  return error;
}

/**
 * What an operator must know about a node on embedded defaults, said once at start-up: where the
 * development key's secret is (curl and the admin API need it), and, at warn level, that demo
 * mode lets anyone who reaches the node mint tokens (on every interface when bound to 0.0.0.0).
 */
export function startupNotices(config: Config): Array<{ level: 'info' | 'warn'; fields: Record<string, unknown>; msg: string }> {
  const notices: Array<{ level: 'info' | 'warn'; fields: Record<string, unknown>; msg: string }> = [];
  if (!config.tokens.keys) {
    const file = ApiKeyring.devKeyFile(config.dataDir);
    notices.push({
      level: 'info',
      fields: { keyFile: file },
      msg: `no CHORUS_API_KEYS set: the development API key "dev" and its secret are in ${file} (use them for curl -u dev:<secret> /api/tokens and the admin API)`,
    });
  }
  if (config.tokens.demo) {
    const everywhere = config.http.host === '0.0.0.0' || config.http.host === '::';
    const where = everywhere ? `every network interface (${config.http.host}:${config.http.port})` : `${config.http.host}:${config.http.port}`;
    notices.push({
      level: 'warn',
      fields: { host: config.http.host, port: config.http.port },
      msg: `demo mode: listening on ${where}, and anyone who reaches it can mint broadcast and watch tokens (/api/demo/*); set CHORUS_API_KEYS (or CHORUS_DEMO=false)${everywhere ? ' or CHORUS_HOST=127.0.0.1' : ''} to close that`,
    });
  }
  return notices;
}

/** dist/web beside the compiled server (dist/server/app.js) or above the sources (src/app.ts). */
const defaultWebDir = ['../web', '../dist/web']
  .map((relative) => fileURLToPath(new URL(relative, import.meta.url)))
  .find((dir) => existsSync(`${dir}/index.html`)) ?? fileURLToPath(new URL('../dist/web', import.meta.url));

export async function startNode(config: Config, log: Logger = createLogger(config.logLevel, config.nodeId)): Promise<ChorusNode> {
  const keys = config.tokens.keys ?? ApiKeyring.loadOrCreateDev(config.dataDir);
  const tokens = new TokenService(keys, config.tokens.ttlSeconds, config.tokens.maxTtlSeconds);
  const audit = new AuditLog(log);
  const metrics = new ChorusMetrics(config.nodeId);
  // Records spill to disk while the database is away, so its outage degrades a node, never unreadies it.
  const health = new HealthChecks([...config.observability.optionalDependencies, 'database']);
  audit.on('event', (event) => {
    if (event.type === 'join.accepted') metrics.joinAccepted(event.role);
    else if (event.type === 'call.path') metrics.callPathChanged(event.from, event.to, event.reason);
    else if (event.type === 'call.path.settled') metrics.observeCallPathSwitch(event.to, event.durationMs / 1000, Object.values(event.gaps).map((ms) => ms / 1000));
  });
  const records = config.records
    ? await startRecords(config.records, config.dataDir, log, (seconds, ok) => metrics.observeDbLatency('write', seconds, ok))
    : undefined;
  if (records) {
    health.register('database', () => {
      const { breaker, queued, spilledBytes } = records.health();
      return { up: breaker === 'closed' || breaker === 'half-open', detail: `breaker ${breaker}, ${queued} queued, ${spilledBytes} bytes spilled` };
    });
  }
  const redisStore = config.redis
    ? new RedisStateStore({
        url: config.redis.url,
        prefix: config.redis.prefix,
        connectionName: config.nodeId,
        tlsCa: config.redis.tlsCaPath ? readFileSync(config.redis.tlsCaPath, 'utf8') : undefined,
        onError: (error, context) => log.warn({ err: error, context }, 'redis'),
        onCommand: (op, seconds, ok) => metrics.observeRedis(op, seconds, ok),
      })
    : undefined;
  if (redisStore) await redisStore.ready();
  const store: StateStore = redisStore ?? new MemoryStateStore();
  const limits = new Limits(config.limits, audit, redisStore && { client: redisStore.client, prefix: config.redis!.prefix });

  const workers = await WorkerPool.start(
    {
      size: config.media.workers,
      logLevel: config.media.logLevel,
      rtcMinPort: config.media.minPort,
      rtcMaxPort: config.media.maxPort,
      webRtcServer: config.media.serverPort === undefined ? undefined : {
        port: config.media.serverPort,
        ip: config.media.listenIp,
        announcedAddress: config.media.announcedAddress,
        udp: config.media.enableUdp,
        tcp: config.media.enableTcp,
      },
    },
    log,
  );
  if (redisStore) health.register('redis', () => ({ up: redisStore.healthy, detail: redisStore.breakerState }));
  const startedAt = Date.now();
  const version = packageVersion();

  let closing = false;
  let draining = false;
  let publicUrl = '';
  // HLS runs where a room's broadcast is; other nodes proxy to that node's registered URL.
  const hls = config.hls
    ? new HlsService({
        settings: config.hls,
        nodeId: config.nodeId,
        log,
        localBroadcast: (roomId) => {
          const room = rooms.get(roomId);
          const producer = room?.localBroadcast;
          // The origin router is gone for a moment when its worker died (the room is closing).
          const router = room?.media && !room.media.closed ? room.media.slots.find((slot) => slot.origin)?.router : undefined;
          return producer && router ? { producer, router } : undefined;
        },
        liveRooms: () => [...rooms.rooms.values()].filter((r) => r.localBroadcast).map((r) => r.id),
        originUrl: async (roomId) => {
          const where = await pipes?.location(roomId);
          return where && registry?.nodes.find((n) => n.id === where.nodeId)?.url;
        },
        // Counted where the room's HLS runs; every node reads the count from the store for the
        // audience it pushes (a lease, so a dead origin's count goes with it).
        onViewers: (roomId, count) => {
          store
            .setValue(hlsViewersKey(roomId), String(count), HLS_VIEWERS_LEASE_SECONDS)
            .catch((error: unknown) => log.debug({ err: error, room: roomId }, 'HLS viewer count not stored'))
            .finally(() => {
              hlsViewerCounts?.forget(roomId);
              rooms.get(roomId)?.audienceChanged();
            });
        },
      })
    : undefined;
  const recordings = new Recordings(config.recordings, store, config.nodeId, audit, log.child({ component: 'recordings' }), records);
  const http = createHttpServer({
    log,
    tokens,
    keys,
    audit,
    demo: config.tokens.demo,
    webDir: config.http.webDir ?? defaultWebDir,
    limits,
    trustProxy: config.http.trustProxy,
    corsOrigins: config.http.corsOrigins,
    tls: config.http.tls,
    publicUrl: () => publicUrl,
    recordings: { recordings, tokens, keys, nodeId: config.nodeId, chargeRefused: (ip) => limits.take('http', ip) },
    hls: hls && {
      hls,
      tokens,
      refusal: async (roomId, identity, issuedAtMs, tenant) => (await ownerRefusal(store, roomId, tenant)) ?? Room.refusal(store, roomId, identity, issuedAtMs),
      chargeRefused: (ip) => limits.take('http', ip),
      sessionPlaysHls: (roomId, identity) => {
        // Any node serves HLS, and the player may ask before its session has (re)joined: the
        // session's node reads the mark when it judges the session.
        if (rooms.get(roomId)?.playsHls(identity)) return;
        Room.markPlaysHls(store, roomId, identity, config.rooms.stalePeerMs).catch((error: unknown) =>
          log.warn({ err: error, room: roomId }, 'could not record an HLS session in the state store'),
        );
      },
    },
    ready: () => {
      const readiness = health.evaluate(!closing && !draining && workers.healthy);
      return {
        ready: readiness.ready,
        detail: {
          status: readiness.status,
          draining,
          dependencies: readiness.dependencies,
          redis: redisStore ? redisStore.breakerState : 'unused',
          records: records?.health() ?? 'off',
          cluster: registry ? registry.nodes.map((n) => ({ id: n.id, load: n.load, peers: n.peers, draining: n.draining })) : undefined, node: config.nodeId, workers: workers.slots.map((s) => ({ pid: s.worker.pid, load: s.load, alive: !s.worker.died })) },
      };
    },
    metrics: { contentType: metrics.contentType, render: () => metrics.render(), token: config.observability.metricsToken },
    info: () => ({
      node: config.nodeId,
      version,
      // The runtime's own version: an operator can see a node still on a Node.js past its end of life.
      nodeVersion: process.versions.node,
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      draining,
      rooms: rooms.rooms.size,
      peers: [...rooms.rooms.values()].reduce((n, r) => n + r.peers.size, 0),
      workers: workers.slots.map((s) => ({ index: s.index, pid: s.worker.pid, load: s.load, alive: !s.worker.closed && !s.worker.died, build: s.build })),
    }),
  });

  const signaling = {
    pingIntervalMs: config.http.pingIntervalMs,
    pingTimeoutMs: config.http.pingTimeoutMs,
    pingAlignMs: config.http.pingAlignMs,
    corsOrigins: config.http.corsOrigins ?? (true as const),
    trustProxy: config.http.trustProxy,
    handshakeTimeoutMs: config.limits.handshakeTimeoutMs,
  };
  const io = createSignalingServer(http.server, signaling, log.child({ component: 'signaling' }));
  // Refusal warnings, one line per offender and interval, shared by every layer that refuses.
  const refusalLog = new LogThrottle(config.limits.logIntervalMs);
  // After Socket.IO attached (see ConnectionGuard.attach).
  // Behind a trusted proxy every client shares the proxy's address: the cap is not what protects
  // the node there, and lowering it would refuse the proxy itself.
  const fileLimit = openFileLimit();
  const perAddress = config.http.trustProxy ? config.limits.tcpConnectionsPerAddress : addressCapWithin(config.limits.tcpConnectionsPerAddress, fileLimit);
  if (perAddress < config.limits.tcpConnectionsPerAddress) {
    log.warn(
      { configured: config.limits.tcpConnectionsPerAddress, perAddress, openFileLimit: fileLimit },
      `connections per address capped at ${perAddress}, a quarter of this process' open-file limit (ulimit -n ${fileLimit}), so one address cannot take every descriptor; raise the limit (ulimit -n, LimitNOFILE=) to allow more`,
    );
  }
  const connections = new ConnectionGuard({
    perAddress,
    firstRequestTimeoutMs: config.limits.handshakeTimeoutMs,
    log: log.child({ component: 'connections' }),
    throttle: refusalLog,
    onOpen: (open) => metrics.connectionsOpen(open),
    onRefused: (reason) => metrics.connectionRefused(reason),
  });
  connections.attach(http.server);
  // REST participants of the media API get room events as socket sessions do (see gateway/).
  const gatewayParticipants = new GatewayParticipants(config.rooms.stalePeerMs, log.child({ component: 'gateway' }));
  const channel = new GatewayChannel(new SocketRoomChannel(io), gatewayParticipants);
  // With Redis, room events reach clients on every node. The streams adapter resumes from its
  // stream position after a Redis blip instead of losing what was published meanwhile.
  // The adapter reads with a blocking XREAD, which needs its own timeouts: not the store's
  // 500 ms command timeout (it would abandon every idle read while Redis still answers it), and
  // a blocking timeout, without which ioredis leaves a read that was in flight when Redis went
  // away waiting forever — that node then never heard another room event from the cluster.
  const adapterClient = redisStore?.connect({
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
    commandTimeout: undefined,
    blockingTimeout: 3000,
  });
  adapterClient?.on('error', (error: Error) => log.debug({ err: error }, 'redis (signaling adapter)'));
  if (adapterClient) {
    io.adapter(
      createAdapter(adapterClient, {
        streamName: `${config.redis!.prefix}socket.io`,
        channelPrefix: `${config.redis!.prefix}socket.io`,
        // Short reads, so a read stranded by a Redis restart is given up (blockingTimeout) in seconds.
        blockTimeInMs: 2000,
      }),
    );
  }
  // In a cluster, broadcasts cascade: an edge pulls a room's broadcast from its origin node.
  const bus = redisStore ? await NodeBus.start(redisStore, config.nodeId, config.redis!.prefix, log) : undefined;
  const registry = redisStore
    ? new NodeRegistry(
        store,
        () => ({
          id: config.nodeId,
          url: publicUrl,
          load: workers.slots.reduce((n, s) => n + s.load, 0),
          rooms: rooms.rooms.size,
          peers: [...rooms.rooms.values()].reduce((n, r) => n + r.peers.size, 0),
          draining,
        }),
        log.child({ component: 'registry' }),
      )
    : undefined;
  // A track this node holds and the router it lives on: what either cascade pipes to other nodes.
  const localTrack = (roomId: string, producerId: string): { producer: types.Producer; router: types.Router } | undefined => {
    const room = rooms.get(roomId);
    const producer = room?.publications.get(producerId)?.producer;
    if (!producer || !room?.media || room.media.closed) return undefined;
    room.feedsElsewhere(producerId);
    return { producer, router: room.media.origin.router };
  };
  const pipes = bus
    ? new ClusterPipes(
        bus,
        store,
        localTrack,
        {
          listenIp: config.media.listenIp,
          announcedAddress: config.media.announcedAddress,
          observePull: (seconds, ok) => metrics.observeCascadePull(seconds, ok),
        },
        log,
        (nodeId) => registry?.isAlive(nodeId) ?? true,
      )
    : undefined;
  // Calls whose participants are on several nodes: members shared, tracks pulled one by one.
  const roster = bus
    ? new ClusterRoster(
        bus,
        store,
        {
          members: (roomId) => rooms.get(roomId)?.localMembers(),
          changed: (roomId, nodeId, changes) => rooms.get(roomId)?.remoteChanged(nodeId, changes),
          track: localTrack,
          router: (roomId) => {
            const media = rooms.get(roomId)?.media;
            return media && !media.closed ? media.origin.router : undefined;
          },
          moderate: async (roomId, { action, peerId, source, by }) => {
            const room = rooms.get(roomId);
            if (!room) throw new ChorusError('NOT_FOUND', `no room ${roomId} here`);
            if (action === 'kick') await room.kick(peerId, by);
            else await room.setMuted(peerId, action === 'mute', by, source);
          },
          askModerators: (roomId, request) => rooms.get(roomId)?.tellModerators(request) ?? 0,
          handMoved: (roomId, move) => rooms.get(roomId)?.applyHandMove(move),
          chat: (roomId, message) => rooms.get(roomId)?.deliverChat(message),
        },
        { listenIp: config.media.listenIp, announcedAddress: config.media.announcedAddress },
        log.child({ component: 'roster' }),
        (nodeId) => registry?.isAlive(nodeId) ?? true,
      )
    : undefined;
  // Half the push interval: pushes stay as fresh as before, joins in a burst share one read.
  const hlsViewerCounts = hls && new ViewerCountReader((key) => store.getValue(key), config.rooms.countIntervalMs / 2);
  const rooms: RoomManager = new RoomManager({
    remote: pipes,
    members: roster,
    pool: workers,
    store,
    channel,
    transport: config.media,
    maxConsumersPerWorker: config.media.maxConsumersPerWorker,
    room: {
      nodeId: config.nodeId,
      maxPeers: config.rooms.maxPeersPerRoom,
      maxCallParticipants: config.rooms.maxCallParticipants,
      maxClassStudents: config.rooms.maxClassStudents,
      maxClassStage: config.rooms.maxClassStage,
      observeLayerChange: (kind: string, direction: 'up' | 'down') => metrics.layerChanged(kind, direction),
      initialBitrate: config.media.initialAvailableOutgoingBitrate,
      recordings,
      callP2p: config.rooms.callP2p,
      countIntervalMs: config.rooms.countIntervalMs,
      opusBitrate: config.media.opusBitrate,
      markTtlSeconds: config.tokens.maxTtlSeconds,
      stalePeerMs: config.rooms.stalePeerMs,
      idleRoomMs: config.rooms.idleRoomMs,
      otherListeners: hlsViewerCounts && ((roomId) => hlsViewerCounts.count(roomId)),
    },
    maxRoomsPerKey: config.limits.roomsPerApiKey,
    audit,
    log,
  });
  metrics.attach({
    rooms: () => [...rooms.rooms.values()].map((room) => ({ kind: room.kind, peers: room.peers.values() })),
    workers: () => workers.slots,
    breakers: () => ({ redis: redisStore?.breakerState, database: records?.health().breaker }),
    hlsViewers: () => hls?.totalViewers() ?? 0,
    cascadePipes: () => pipes?.pipeCounts ?? { incoming: 0, outgoing: 0 },
  });
  const watch = new WatchService({ store, channel, audit, log, nodeId: config.nodeId, settings: config.watch });
  watch.attach(rooms);
  const stopRecording = records && recordNode(rooms, audit, records, config.nodeId);
  // One stats read per producer or consumer per turn feeds both the quality records and the
  // per-room gauges; the budget bounds the node's stats requests however many rooms it holds.
  const { stats } = config.observability;
  const statsPoller =
    stats.intervalMs > 0 && (records || config.observability.metricsRooms > 0)
      ? new StatsPoller(() => targetsOf(rooms.rooms.values()), stats, log.child({ component: 'stats' }))
      : undefined;
  const sampler = records && statsPoller ? new QualitySampler(statsPoller, records, config.nodeId) : undefined;
  const mediaStats = new MediaStatsSampler(
    workers,
    metrics,
    { maxRooms: config.observability.metricsRooms, intervalMs: config.observability.sampleIntervalMs },
    log.child({ component: 'metrics' }),
    statsPoller,
  );
  // Redis is back (maybe empty): say where this node's broadcasts are at once, not at the next renewal.
  redisStore?.on('health', (healthy) => {
    if (healthy) pipes?.reannounce();
  });
  // A seat this node held was taken over elsewhere (its broadcaster came back on another node):
  // the session here is stale; tell it and let it go.
  redisStore?.on('seatLost', ({ roomId, peerId }) => {
    const room = rooms.get(roomId);
    const peer = room?.peers.get(peerId);
    if (!room || !peer) return;
    channel.toPeer(peerId, 'session:kicked', { reason: 'replaced by a newer session' });
    room.leave(peer, 'replaced').catch((error: unknown) => log.warn({ err: error, room: roomId }, 'leaving a replaced session failed'));
  });
  // A room's publisher goes to the node rendezvous hashing picks for the room (see placement.ts).
  const placement =
    registry && bus && config.cluster.placement === 'rendezvous'
      ? new OriginPlacement(store, () => store.listNodes(), config.nodeId, log, undefined, (id) => bus.isListening(id))
      : undefined;
  const publisherPlacement = placement && {
    places: (kind: RoomKind, role: Role) => policyFor(kind).onOrigin(role),
    redirectFor: async (roomId: string) => {
      const origin = await placement.originFor(roomId);
      return origin && origin.id !== config.nodeId ? origin.url : undefined;
    },
    hold: (room: Room) => placement.hold(room.id, room),
  };
  // Operators' backends administer rooms over HTTP; in a cluster the question goes to every node.
  const admin = new RoomAdmin(
    rooms,
    config.nodeId,
    log,
    bus && registry ? { bus, nodeIds: () => registry.nodes.map((n) => n.id) } : undefined,
    (roomId) => hls?.viewers(roomId) ?? 0,
  );
  registerAdminRoutes(http, admin, keys);
  const webhooks = new Webhooks(config.webhooks, keys.primary, config.nodeId, audit, log);
  const handlerDeps: HandlerDeps = {
    rooms,
    tokens,
    limits,
    audit,
    turn: config.turn,
    store,
    resumeTtlSeconds: config.tokens.resumeTtlSeconds,
    placement: publisherPlacement,
    watch,
    observeFirstMedia: (seconds) => metrics.observeFirstMedia(seconds),
    opus: { bitrate: config.media.opusBitrate, frameMs: config.media.broadcastFrameMs },
  };
  const handlers = createHandlers(handlerDeps);
  registerWhipRoutes(http, {
    handlers,
    participants: gatewayParticipants,
    tokens,
    rooms,
    store,
    renumbersExtensions: () => workers.slots.every((s) => hasPatch(s.build, 'consumer-header-extension-ids')),
  });
  await registerGatewayRoutes(http, {
    handlers,
    participants: gatewayParticipants,
    rooms,
    admin,
    keys,
    tokens,
    store,
    limits,
    audit,
    nodeId: config.nodeId,
    observe: (method, seconds, code) => metrics.observeRequest(method, seconds, code),
    // A room's REST participants all live on the node holding it (their events are local there):
    // its rendezvous origin, or with local placement the node that opened it, while that one lives.
    roomNode:
      publisherPlacement?.redirectFor ??
      (registry &&
        (async (roomId: string) => {
          const record = await store.getRoom(roomId);
          if (!record || record.nodeId === config.nodeId) return undefined;
          return registry.nodes.find((n) => n.id === record.nodeId && !n.draining)?.url;
        })),
  });
  attachProtocol(
    io,
    handlerDeps,
    signaling,
    log,
    (method, seconds, code) => metrics.observeRequest(method, seconds, code),
    (reason) => metrics.connectionRefused(reason),
    refusalLog,
  );

  // Everything below is torn down by close(); a node that cannot listen closes what it started
  // (workers, records, Redis) and says why in one sentence.
  const close = async (): Promise<void> => {
    if (closing) return;
    closing = true;
    // Only this node's clients (the adapter would disconnect the whole cluster's).
    io.local.disconnectSockets(true);
    gatewayParticipants.close();
    await watch.close();
    statsPoller?.stop();
    sampler?.stop();
    await hls?.close();
    await rooms.closeAll();
    await recordings.close();
    // Sessions ended by the close above are recorded too; what cannot be written in time spills.
    stopRecording?.();
    // After the rooms: their last events (room finished, participants left) still go out.
    await webhooks.close();
    await records?.close();
    await new Promise<void>((resolve) => io.close(() => resolve()));
    await http.close().catch(() => undefined);
    placement?.close();
    pipes?.close();
    roster?.close();
    await registry?.close();
    bus?.close();
    mediaStats.close();
    workers.close();
    metrics.close();
    adapterClient?.disconnect();
    await store.close();
  };

  try {
    await http.listen({ host: config.http.host, port: config.http.port });
  } catch (error) {
    await close().catch((closeError: unknown) => log.debug({ err: closeError }, 'closing after a failed listen'));
    throw listenFailure(error, config);
  }
  const address = http.server.address() as AddressInfo;
  const host = config.http.host === '0.0.0.0' || config.http.host === '::' ? '127.0.0.1' : config.http.host;
  const url = `${config.http.tls ? 'https' : 'http'}://${host}:${address.port}`;
  // Where clients reach this node when a redirect sends them here: the configured public URL,
  // else the announced RTC address (the one clients already reach for media) on our port.
  const announced = config.media.announcedAddress;
  publicUrl =
    config.cluster.publicUrl ??
    (announced && (config.http.host === '0.0.0.0' || config.http.host === '::')
      ? `${config.http.tls ? 'https' : 'http'}://${announced.includes(':') ? `[${announced}]` : announced}:${address.port}`
      : url);
  await registry?.start();
  log.info({ url, workers: workers.size, demo: config.tokens.demo }, 'chorus node listening');

  const node: ChorusNode = {
    config,
    log,
    tokens,
    keys,
    rooms,
    workers,
    store,
    audit,
    limits,
    connections,
    metrics,
    health,
    records,
    gatewayParticipants,
    hls,
    url,
    publicUrl,
    async drain(deadlineMs) {
      draining = true;
      // Tell the cluster at once (not at the next heartbeat) and give up this node's rooms, so
      // publishers moving away are placed on a node that stays.
      await registry?.beat().catch(() => undefined);
      placement?.close();
      const peers = (): number => [...rooms.rooms.values()].reduce((n, room) => n + room.peers.size, 0);
      log.info({ peers: peers(), deadlineMs }, 'draining: telling clients to move');
      // New connections are refused from now on (the balancer sends them elsewhere); open ones
      // stay until their clients have moved.
      http.server.close();
      // Each local client (a plain emit would, with the Redis adapter, move the whole cluster's)
      // is sent straight to a node that stays, spread by load, where clients reach nodes directly
      // (rendezvous placement): a balancer may still count a node restarted a moment ago as
      // failed, and with every other node so marked it would turn the client away for seconds.
      const stays = placement ? (await store.listNodes().catch(() => [])).filter((n) => n.id !== config.nodeId && !n.draining) : [];
      for (const socket of io.of('/').sockets.values()) {
        const to = pickWeighted(stays);
        socket.emit('node:draining', { reason: 'node is shutting down', ...(to ? { moveTo: to.url } : {}) });
      }
      const deadline = Date.now() + deadlineMs;
      while (peers() > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const remaining = peers();
      log.info({ remaining }, remaining === 0 ? 'drained' : 'drain deadline reached; closing remaining sessions');
      await close();
      return { remaining };
    },
    close,
  };
  return node;
}
