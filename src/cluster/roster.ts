/**
 * Calls spread over nodes. Each node holds its own participants' sessions and producers; this
 * module lets the others see them and receive their media:
 *
 * - Members: a node tells every other node serving the room about its members' changes (a bus
 *   notice, in order per node pair), and answers `roster.get` with its members, which a node
 *   asks for when it starts serving the room and then periodically, so a notice lost to a Redis
 *   blip heals.
 * - Media: a node that needs a track held elsewhere pulls it over one pair of SRTP PipeTransports
 *   per (room, holding node, pulling node): the pair is set up once (`track.pipe`) and carries
 *   every track pulled after it (`track.pull`: one pipe consumer at the holder, one producer with
 *   the same id here). A pipe consumer forwards every simulcast layer, so subscribers here get
 *   the layer that fits them as they would at the holder. Pause and close travel back as notices.
 */
import type { types } from 'mediasoup';
import { z } from 'zod';
import type { RoomMedia } from '../media/roomMedia.js';
import type { Logger } from '../observability/logger.js';
import { ChorusError } from '../protocol/errors.js';
import type { ChatMessage } from '../protocol/messages.js';
import { trackSource, type ParticipantInfo, type RoomChange } from '../protocol/room.js';
import type { HandMove, RemoteMembers, UnmuteRequest } from '../rooms/remote.js';
import type { StateStore } from '../store/stateStore.js';
import type { NodeBus } from './bus.js';

/** What the roster needs of this node's rooms, as closures (no reference to the rooms themselves). */
export interface LocalRooms {
  /** This node's members of `roomId`, if it serves the room. */
  members(roomId: string): ParticipantInfo[] | undefined;
  /** Another node's members changed. */
  changed(roomId: string, nodeId: string, changes: RoomChange[]): void;
  /** A track this node holds and the router it lives on. */
  track(roomId: string, producerId: string): { producer: types.Producer; router: types.Router } | undefined;
  /** The router this node's publishers of `roomId` send to. */
  router(roomId: string): types.Router | undefined;
  /** A moderator on another node acts on a member here. */
  moderate(roomId: string, action: ModerateRequest): Promise<void>;
  /** A member on another node asks to unmute: tell the moderators here; how many were told. */
  askModerators(roomId: string, request: UnmuteRequest): number;
  /** A class's hand moved on another node. */
  handMoved(roomId: string, move: HandMove): void;
  /** A chat message sent on another node. */
  chat(roomId: string, message: ChatMessage): void;
}

const moderateRequest = z.strictObject({
  roomId: z.string().min(1).max(64),
  action: z.enum(['mute', 'unmute', 'kick']),
  peerId: z.string().min(1).max(128),
  source: trackSource.optional(),
  by: z.string().min(1).max(300),
});
type ModerateRequest = Omit<z.infer<typeof moderateRequest>, 'roomId'>;

export interface RosterSettings {
  listenIp: string;
  announcedAddress: string | undefined;
}

const roomIdSchema = z.string().min(1).max(64);
const srtp = z.object({ cryptoSuite: z.string(), keyBase64: z.string() });
const pipeRequest = z.object({ roomId: roomIdSchema, ip: z.string(), port: z.number().int(), srtpParameters: srtp });
const pullRequest = z.object({ roomId: roomIdSchema, producerId: z.string().min(1).max(128) });
const trackNotice = z.object({ roomId: roomIdSchema, producerId: z.string().min(1).max(128), paused: z.boolean().optional() });
// Changes come from another node of this cluster: checked for shape, trusted for content.
const unmuteRequest = z.strictObject({
  roomId: z.string().min(1).max(64),
  peerId: z.string().min(1).max(128),
  identity: z.string().min(1).max(300),
  source: trackSource.optional(),
});

const handNotice = z.object({
  roomId: roomIdSchema,
  peerId: z.string().min(1).max(128),
  queue: z.object({ version: z.number().int().min(0), hands: z.array(z.object({ peerId: z.string(), state: z.enum(['raised', 'invited', 'onstage', 'back']) }).passthrough()).max(100_000) }),
  before: z.enum(['raised', 'invited', 'onstage', 'back']).optional(),
  after: z.object({ peerId: z.string(), state: z.enum(['raised', 'invited', 'onstage', 'back']) }).passthrough().optional(),
});

const chatNotice = z.object({
  roomId: roomIdSchema,
  message: z.object({
    id: z.string().max(64),
    from: z.object({ peerId: z.string().max(128), identity: z.string().max(300), name: z.string().max(200).optional(), role: z.string().max(32) }),
    text: z.string().max(2000),
    to: z.enum(['class', 'staff']),
    at: z.number(),
  }),
});

const changesNotice = z.object({ roomId: roomIdSchema, changes: z.array(z.object({ type: z.enum(['joined', 'left', 'published', 'unpublished', 'muted']) }).passthrough()).max(1000) });

interface PipeAnswer {
  ip: string;
  port: number;
  srtpParameters: types.SrtpParameters;
}

interface PullAnswer {
  kind: types.MediaKind;
  rtpParameters: types.RtpParameters;
  paused: boolean;
}

const key = (roomId: string, nodeId: string): string => `${roomId}\0${nodeId}`;

/** How long one read of a room's serving nodes serves its chat messages. */
const OTHER_NODES_TTL_MS = 1000;

export class ClusterRoster implements RemoteMembers {
  /** Holder side: the pipe transport feeding each (room, puller). */
  readonly #feeding = new Map<string, types.PipeTransport>();
  /** Puller side: the pipe transport from each (room, holder), and the tracks pulled over it. */
  readonly #from = new Map<string, Promise<types.PipeTransport>>();
  readonly #pulled = new Map<string, Promise<types.Producer>>();
  readonly #nodesOf = new Map<string, { at: number; nodes: Promise<string[]> }>();

  constructor(
    private readonly bus: NodeBus,
    private readonly store: StateStore,
    private readonly rooms: LocalRooms,
    private readonly settings: RosterSettings,
    private readonly log: Logger,
    private readonly isAlive: (nodeId: string) => boolean = () => true,
  ) {
    bus.handle('roster.get', async (params) => ({ participants: this.rooms.members(pullRequest.pick({ roomId: true }).parse(params).roomId) ?? [] }));
    bus.handle('roster.changed', async (params, from) => {
      const { roomId, changes } = changesNotice.parse(params);
      this.rooms.changed(roomId, from, changes as unknown as RoomChange[]);
    });
    bus.handle('roster.moderate', async (params) => {
      const { roomId, ...action } = moderateRequest.parse(params);
      await this.rooms.moderate(roomId, action);
      return true;
    });
    bus.handle('roster.muteRequest', async (params) => {
      const { roomId, ...request } = unmuteRequest.parse(params);
      return { told: this.rooms.askModerators(roomId, request) };
    });
    bus.handle('roster.chat', async (params) => {
      const { roomId, message } = chatNotice.parse(params);
      this.rooms.chat(roomId, message as ChatMessage);
    });
    bus.handle('roster.hand', async (params) => {
      const { roomId, ...move } = handNotice.parse(params);
      this.rooms.handMoved(roomId, move as unknown as HandMove);
    });
    bus.handle('track.pipe', async (params, from) => this.#openPipe(pipeRequest.parse(params), from));
    bus.handle('track.pull', async (params, from) => this.#feedTrack(pullRequest.parse(params), from));
    bus.handle('track.closed', async (params, from) => this.#trackClosed(trackNotice.parse(params), from));
    bus.handle('track.paused', async (params, from) => this.#trackPaused(trackNotice.parse(params), from));
    bus.handle('track.release', async (params, from) => this.#feeding.get(key(pullRequest.pick({ roomId: true }).parse(params).roomId, from))?.close());
  }

  get #address(): string {
    return this.settings.announcedAddress ?? this.settings.listenIp;
  }

  async #otherNodes(roomId: string): Promise<string[]> {
    const peers = await this.store.listPeers(roomId);
    return [...new Set(peers.map((p) => p.nodeId))].filter((id) => id !== this.bus.nodeId);
  }

  /**
   * The other nodes serving a room, for chat: read from the room's peer records (a class's are a
   * thousand students), so one read serves every message for OTHER_NODES_TTL_MS — a class's
   * chat costs one listing a second, not one per message — and messages keep their order (they
   * wait on the same read). A node serving the room for less than that may miss a message.
   * Member changes and hand moves read afresh: a node missing those would show a stale room.
   */
  #chatNodes(roomId: string): Promise<string[]> {
    const now = Date.now();
    const cached = this.#nodesOf.get(roomId);
    if (cached && now - cached.at < OTHER_NODES_TTL_MS) return cached.nodes;
    const nodes = this.#otherNodes(roomId);
    this.#nodesOf.set(roomId, { at: now, nodes });
    // A failed read is not kept: the next message reads again.
    nodes.catch(() => {
      if (this.#nodesOf.get(roomId)?.nodes === nodes) this.#nodesOf.delete(roomId);
    });
    if (this.#nodesOf.size > 10_000) for (const [id, entry] of this.#nodesOf) if (now - entry.at >= OTHER_NODES_TTL_MS) this.#nodesOf.delete(id);
    return nodes;
  }

  share(roomId: string, changes: RoomChange[]): void {
    if (changes.length === 0) return;
    void this.#otherNodes(roomId).then(
      (nodes) => {
        for (const nodeId of nodes) this.bus.notify(nodeId, 'roster.changed', { roomId, changes });
      },
      (error: unknown) => this.log.warn({ err: error, room: roomId }, 'members not shared with the other nodes (they catch up at their next gather)'),
    );
  }

  async gather(roomId: string): Promise<Array<{ nodeId: string; participants: ParticipantInfo[] }>> {
    const nodes = await this.#otherNodes(roomId);
    const answers = await Promise.all(
      nodes.map(async (nodeId) => {
        try {
          const { participants } = await this.bus.request<{ participants: ParticipantInfo[] }>(nodeId, 'roster.get', { roomId });
          return { nodeId, participants };
        } catch (error) {
          this.log.debug({ err: error, room: roomId, node: nodeId }, 'a node serving the room did not answer for its members');
          return undefined;
        }
      }),
    );
    return answers.filter((a): a is { nodeId: string; participants: ParticipantInfo[] } => a !== undefined);
  }

  async moderate(nodeId: string, roomId: string, action: ModerateRequest): Promise<void> {
    await this.bus.request(nodeId, 'roster.moderate', { roomId, ...action });
  }

  chat(roomId: string, message: ChatMessage): void {
    void this.#chatNodes(roomId).then(
      (nodes) => {
        for (const nodeId of nodes) this.bus.notify(nodeId, 'roster.chat', { roomId, message });
      },
      (error: unknown) => this.log.warn({ err: error, room: roomId }, 'a chat message not passed to the other nodes'),
    );
  }

  handMoved(roomId: string, move: HandMove): void {
    void this.#otherNodes(roomId).then(
      (nodes) => {
        for (const nodeId of nodes) this.bus.notify(nodeId, 'roster.hand', { roomId, ...move });
      },
      (error: unknown) => this.log.warn({ err: error, room: roomId }, 'a hand move not told to the other nodes'),
    );
  }

  async askModerators(roomId: string, request: UnmuteRequest): Promise<number> {
    const nodes = await this.#otherNodes(roomId);
    const answers = await Promise.all(
      nodes.map((nodeId) =>
        this.bus.request<{ told: number }>(nodeId, 'roster.muteRequest', { roomId, ...request }).then(
          (a) => a.told,
          (error: unknown) => {
            this.log.debug({ err: error, room: roomId, node: nodeId }, 'a node serving the room did not take an unmute request');
            return 0;
          },
        ),
      ),
    );
    return answers.reduce((n, told) => n + told, 0);
  }

  async alive(nodeId: string): Promise<boolean> {
    return this.isAlive(nodeId) || (await this.bus.isListening(nodeId).catch(() => false));
  }

  // --- pulling side ---------------------------------------------------------------------------

  pullTrack(roomId: string, producerId: string, nodeId: string, media: RoomMedia): Promise<types.Producer> {
    const trackKey = key(roomId, producerId);
    const existing = this.#pulled.get(trackKey);
    if (existing) return existing;
    const pulling = this.#pull(roomId, producerId, nodeId, media);
    this.#pulled.set(trackKey, pulling);
    const forget = (): void => {
      if (this.#pulled.get(trackKey) === pulling) this.#pulled.delete(trackKey);
    };
    pulling.then((producer) => producer.observer.once('close', forget), forget);
    return pulling;
  }

  async #pull(roomId: string, producerId: string, nodeId: string, media: RoomMedia): Promise<types.Producer> {
    const transport = await this.#pipeFrom(roomId, nodeId, media);
    const answer = await this.bus.request<PullAnswer>(nodeId, 'track.pull', { roomId, producerId });
    if (transport.closed) throw new ChorusError('UNAVAILABLE', 'the pipe to the node holding that track closed');
    const producer = await transport.produce({ id: producerId, kind: answer.kind, rtpParameters: answer.rtpParameters, paused: answer.paused });
    media.addProducer(producer);
    this.log.info({ room: roomId, holder: nodeId, producer: producerId }, 'pulled a track from the node holding it');
    return producer;
  }

  /** The pipe transport from `nodeId` for `roomId`, set up on first use. */
  #pipeFrom(roomId: string, nodeId: string, media: RoomMedia): Promise<types.PipeTransport> {
    const pipeKey = key(roomId, nodeId);
    let pipe = this.#from.get(pipeKey);
    if (!pipe) {
      pipe = (async () => {
        const transport = await media.origin.router.createPipeTransport({
          listenInfo: { protocol: 'udp', ip: this.settings.listenIp, announcedAddress: this.settings.announcedAddress },
          enableSrtp: true,
        });
        try {
          const answer = await this.bus.request<PipeAnswer>(nodeId, 'track.pipe', {
            roomId,
            ip: this.#address,
            port: transport.tuple.localPort,
            srtpParameters: transport.srtpParameters!,
          });
          await transport.connect({ ip: answer.ip, port: answer.port, srtpParameters: answer.srtpParameters });
          return transport;
        } catch (error) {
          transport.close();
          throw error;
        }
      })();
      this.#from.set(pipeKey, pipe);
      const forget = (): void => {
        if (this.#from.get(pipeKey) === pipe) this.#from.delete(pipeKey);
      };
      pipe.then((transport) => transport.observer.once('close', forget), forget);
      // The room's routers closing (the room ended here) closes the transport; tell the holder.
      void pipe.then((transport) => transport.observer.once('close', () => this.bus.notify(nodeId, 'track.release', { roomId })), () => undefined);
    }
    return pipe;
  }

  async #trackClosed({ roomId, producerId }: z.infer<typeof trackNotice>, from: string): Promise<void> {
    const producer = await this.#pulled.get(key(roomId, producerId))?.catch(() => undefined);
    if (producer && this.#from.has(key(roomId, from))) producer.close();
  }

  async #trackPaused({ roomId, producerId, paused }: z.infer<typeof trackNotice>, from: string): Promise<void> {
    const producer = await this.#pulled.get(key(roomId, producerId))?.catch(() => undefined);
    if (!producer || producer.closed || !this.#from.has(key(roomId, from))) return;
    if (paused) await producer.pause();
    else await producer.resume();
  }

  // --- holding side ---------------------------------------------------------------------------

  async #openPipe(request: z.infer<typeof pipeRequest>, puller: string): Promise<PipeAnswer> {
    const router = this.rooms.router(request.roomId);
    if (!router) throw new ChorusError('NOT_FOUND', `room ${request.roomId} has no media here`);
    // A retried request (its answer was lost) replaces the earlier pipe instead of leaking it.
    const pipeKey = key(request.roomId, puller);
    this.#feeding.get(pipeKey)?.close();
    const transport = await router.createPipeTransport({
      listenInfo: { protocol: 'udp', ip: this.settings.listenIp, announcedAddress: this.settings.announcedAddress },
      enableSrtp: true,
    });
    this.#feeding.set(pipeKey, transport);
    transport.observer.once('close', () => {
      if (this.#feeding.get(pipeKey) === transport) this.#feeding.delete(pipeKey);
    });
    await transport.connect({ ip: request.ip, port: request.port, srtpParameters: request.srtpParameters as types.SrtpParameters });
    return { ip: this.#address, port: transport.tuple.localPort, srtpParameters: transport.srtpParameters! };
  }

  async #feedTrack({ roomId, producerId }: z.infer<typeof pullRequest>, puller: string): Promise<PullAnswer> {
    const transport = this.#feeding.get(key(roomId, puller));
    const local = this.rooms.track(roomId, producerId);
    if (!transport || !local) throw new ChorusError('PRODUCER_NOT_FOUND', `no track ${producerId} of room ${roomId} here`);
    const consumer = await transport.consume({ producerId });
    consumer.on('producerclose', () => this.bus.notify(puller, 'track.closed', { roomId, producerId }));
    consumer.on('producerpause', () => this.bus.notify(puller, 'track.paused', { roomId, producerId, paused: true }));
    consumer.on('producerresume', () => this.bus.notify(puller, 'track.paused', { roomId, producerId, paused: false }));
    return { kind: consumer.kind, rtpParameters: consumer.rtpParameters, paused: consumer.producerPaused };
  }

  close(): void {
    for (const transport of this.#feeding.values()) transport.close();
    for (const pipe of this.#from.values()) void pipe.then((t) => t.close(), () => undefined);
  }
}
