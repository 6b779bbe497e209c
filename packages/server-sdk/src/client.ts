/**
 * A node's HTTP APIs for the application's server, with an API key (HTTP Basic): the admin API,
 * token minting through the node, and the media REST API for applications that keep their own
 * signaling gateway. Every refusal is a `ChorusApiError` with the node's code.
 */
import type { PeerView, RoomView } from '../../../src/admin/roomAdmin.js';
import type { RoomGrant } from '../../../src/auth/roomToken.js';
import type { connectBody, consumeBody, produceBody, transportBody } from '../../../src/gateway/api.js';
import type { Responses, RoomKind } from '../../../src/protocol/messages.js';
import type { RecordingInfo, TrackSource } from '../../../src/protocol/room.js';
import type { z } from 'zod';
import { ChorusApiError } from './errors.js';
import type { ApiKey } from './tokens.js';

export type { PeerView, RoomView, RecordingInfo, RoomKind, TrackSource };
export type JoinAnswer = Responses['join'] & { participantId: string };
export type TransportInfo = Responses['createTransport'];
export type ConsumeAnswer = Responses['consume'];
export type TransportRequest = Omit<z.input<typeof transportBody>, 'participantId'>;
export type ProduceRequest = Omit<z.input<typeof produceBody>, 'participantId'>;
export type ConsumeRequest = Omit<z.input<typeof consumeBody>, 'participantId'>;
export type DtlsParameters = z.input<typeof connectBody>['dtlsParameters'];

export interface ChorusServerOptions {
  /** The node's (or the balancer's) base URL, e.g. `https://chorus.example`. */
  url: string;
  key: ApiKey;
  /** Another fetch (a proxy agent, a test double of the network); the global one by default. */
  fetch?: typeof fetch;
}

/** Hops followed when a node answers that another one holds the room (307). */
const MAX_REDIRECTS = 2;

export class ChorusServer {
  readonly #url: string;
  readonly #auth: string;
  readonly #fetch: typeof fetch;

  constructor(options: ChorusServerOptions) {
    this.#url = options.url.replace(/\/+$/, '');
    this.#auth = `Basic ${btoa(`${options.key.id}:${options.key.secret}`)}`;
    this.#fetch = options.fetch ?? fetch;
  }

  /** The `Authorization` header for requests of one's own (the event stream, with an EventSource that takes headers). */
  get authorization(): string {
    return this.#auth;
  }

  // Admin API.

  listRooms(): Promise<{ rooms: RoomView[]; unreachable: string[] }> {
    return this.#call('GET', '/api/admin/rooms');
  }

  getRoom(roomId: string): Promise<RoomView & { participants: PeerView[]; unreachable: string[] }> {
    return this.#call('GET', `/api/admin/rooms/${enc(roomId)}`);
  }

  closeRoom(roomId: string): Promise<{ closed: true; nodes: string[] }> {
    return this.#call('DELETE', `/api/admin/rooms/${enc(roomId)}`);
  }

  removeParticipant(roomId: string, peerId: string): Promise<{ removed: true }> {
    return this.#call('DELETE', `/api/admin/rooms/${enc(roomId)}/participants/${enc(peerId)}`);
  }

  muteParticipant(roomId: string, peerId: string, muted = true, source?: TrackSource): Promise<{ muted: boolean; source?: TrackSource }> {
    return this.#call('POST', `/api/admin/rooms/${enc(roomId)}/participants/${enc(peerId)}/mute`, { muted, ...(source ? { source } : {}) });
  }

  listRecordings(): Promise<{ recordings: RecordingInfo[] }> {
    return this.#call('GET', '/api/admin/recordings');
  }

  /** A token minted by the node (audited there); `mintToken` makes the same without a request. */
  createToken(grant: RoomGrant, ttlSeconds?: number): Promise<{ token: string; tokenId: string; expiresAt: string }> {
    return this.#call('POST', '/api/tokens', { ...grant, ...(ttlSeconds !== undefined ? { ttlSeconds } : {}) });
  }

  // Media REST API.

  createRoom(roomId: string, kind: RoomKind): Promise<{ roomId: string; kind: RoomKind; node: string; rtpCapabilities: unknown }> {
    return this.#call('POST', `/api/rooms/${enc(roomId)}/create`, { kind });
  }

  /** Joins a participant with its join token, or one the node mints for `identity` and `role`. */
  join(roomId: string, who: { token: string; previousPeerId?: string } | { identity: string; role: RoomGrant['role']; name?: string; previousPeerId?: string }): Promise<JoinAnswer> {
    return this.#call('POST', `/api/rooms/${enc(roomId)}/participants`, who);
  }

  createTransport(roomId: string, participantId: string, request: TransportRequest): Promise<TransportInfo> {
    return this.#call('POST', `/api/rooms/${enc(roomId)}/transports`, { participantId, ...request });
  }

  connectTransport(roomId: string, participantId: string, transportId: string, dtlsParameters: DtlsParameters): Promise<Record<string, never>> {
    return this.#call('POST', `/api/rooms/${enc(roomId)}/transports/${enc(transportId)}/connect`, { participantId, dtlsParameters });
  }

  produce(roomId: string, participantId: string, transportId: string, request: ProduceRequest): Promise<{ producerId: string }> {
    return this.#call('POST', `/api/rooms/${enc(roomId)}/transports/${enc(transportId)}/produce`, { participantId, ...request });
  }

  consume(roomId: string, participantId: string, request: ConsumeRequest): Promise<ConsumeAnswer> {
    return this.#call('POST', `/api/rooms/${enc(roomId)}/consume`, { participantId, ...request });
  }

  resumeConsumer(roomId: string, participantId: string, consumerId: string): Promise<Record<string, never>> {
    return this.#call('POST', `/api/rooms/${enc(roomId)}/consumers/${enc(consumerId)}/resume`, { participantId });
  }

  closeProducer(roomId: string, participantId: string, producerId: string): Promise<Record<string, never>> {
    return this.#call('DELETE', `/api/rooms/${enc(roomId)}/producers/${enc(producerId)}?participantId=${enc(participantId)}`);
  }

  leave(roomId: string, participantId: string): Promise<Record<string, never>> {
    return this.#call('POST', `/api/rooms/${enc(roomId)}/participants/${enc(participantId)}/leave`);
  }

  /** Where the participant's events stream (Server-Sent Events; send `authorization` with it). */
  eventsUrl(roomId: string, participantId: string): string {
    return `${this.#url}/api/rooms/${enc(roomId)}/participants/${enc(participantId)}/events`;
  }

  async #call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let url = `${this.#url}${path}`;
    for (let hop = 0; ; hop++) {
      const response = await this.#fetch(url, {
        method,
        headers: { authorization: this.#auth, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        // Another node holds the room: asked again there, with the credentials a fetch would drop.
        redirect: 'manual',
      });
      const location = response.headers.get('location');
      if (response.status === 307 && location && hop < MAX_REDIRECTS) {
        url = new URL(location, url).toString();
        continue;
      }
      const text = await response.text();
      let parsed: unknown;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        throw new ChorusApiError(response.status, 'INTERNAL', `the node answered ${response.status} with no JSON`, response.status >= 500);
      }
      if (response.ok) return parsed as T;
      const error = (parsed as { error?: { code?: string; message?: string; retryable?: boolean; retryAfterMs?: number } } | undefined)?.error;
      throw new ChorusApiError(response.status, error?.code ?? 'INTERNAL', error?.message ?? `HTTP ${response.status}`, error?.retryable ?? response.status >= 500, error?.retryAfterMs);
    }
  }
}

function enc(part: string): string {
  return encodeURIComponent(part);
}
