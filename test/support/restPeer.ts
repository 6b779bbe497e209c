/**
 * A participant driven only through the media REST API, as an application's own gateway would
 * drive one: plain HTTP calls with the API key, the room's events over Server-Sent Events, and a
 * Node WebRTC peer (mediasoup-client on @roamhq/wrtc) for the media. No Chorus SDK code.
 */
import { EventSource } from 'eventsource';
import { Device, type types } from 'mediasoup-client';
import { webrtcHandlerFactory } from './nodePeer.js';

export interface RestEvent {
  id: string;
  event: string;
  data: unknown;
}

export class RestApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: { error?: { code: string; message: string } } | undefined,
  ) {
    super(`HTTP ${status}: ${body?.error?.code ?? ''} ${body?.error?.message ?? ''}`);
  }
}

/**
 * One HTTP call to the REST API with `auth` (an `Authorization` header value). A 307 to the node
 * holding the room is followed with the same credentials, as the README tells gateways to (fetch
 * itself drops them on a redirect to another origin).
 */
export async function restCall<T = Record<string, unknown>>(base: string, auth: string, method: string, path: string, body?: unknown, hops = 1): Promise<T> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    redirect: 'manual',
  });
  const location = response.headers.get('location');
  if (response.status === 307 && location && hops > 0) {
    const target = new URL(location);
    return restCall<T>(target.origin, auth, method, `${target.pathname}${target.search}`, body, hops - 1);
  }
  const text = await response.text();
  const parsed = text ? (JSON.parse(text) as unknown) : undefined;
  if (response.status >= 300) throw new RestApiError(response.status, parsed as RestApiError['body']);
  return parsed as T;
}

export class RestPeer {
  readonly events: RestEvent[] = [];
  readonly device = new Device({ handlerFactory: webrtcHandlerFactory() });
  participantId = '';
  #source: EventSource | undefined;
  #send: types.Transport | undefined;
  #recv: types.Transport | undefined;

  private constructor(
    readonly base: string,
    readonly auth: string,
    readonly roomId: string,
  ) {}

  /** Joins `roomId` (created by the key as `kind` if need be) as `identity` with `role`, and opens its event stream. */
  static async join(base: string, auth: string, roomId: string, kind: string, identity: string, role: string): Promise<RestPeer> {
    const peer = new RestPeer(base, auth, roomId);
    const created = await restCall<{ rtpCapabilities: types.RtpCapabilities }>(base, auth, 'POST', `/api/rooms/${roomId}/create`, { kind });
    await peer.device.load({ routerRtpCapabilities: created.rtpCapabilities });
    const joined = await restCall<{ participantId: string }>(base, auth, 'POST', `/api/rooms/${roomId}/participants`, { identity, role });
    peer.participantId = joined.participantId;
    peer.openEvents();
    return peer;
  }

  call<T = Record<string, unknown>>(method: string, path: string, body?: Record<string, unknown>): Promise<T> {
    return restCall<T>(this.base, this.auth, method, `/api/rooms/${this.roomId}${path}`, body === undefined ? undefined : { participantId: this.participantId, ...body });
  }

  openEvents(): void {
    this.#source?.close();
    const auth = this.auth;
    const source = new EventSource(`${this.base}/api/rooms/${this.roomId}/participants/${this.participantId}/events`, {
      // A 307 to the room's node is followed with the credentials (fetch alone would drop them).
      fetch: async (input, init) => {
        const ask = (url: string | URL | Request): Promise<Response> => fetch(url, { ...init, headers: { ...init.headers, authorization: auth }, redirect: 'manual' });
        const first = await ask(input);
        const location = first.status === 307 ? first.headers.get('location') : null;
        return location ? ask(location) : first;
      },
    });
    const names = ['room:delta', 'speaker:changed', 'session:muted', 'consumer:paused', 'consumer:resumed', 'consumer:closed', 'session:kicked', 'room:ended', 'stream:gap', 'audio:levels', 'call:path', 'hand:queue', 'hand:state', 'chat:message', 'record:state'];
    for (const name of names) {
      source.addEventListener(name, (message) => this.events.push({ id: message.lastEventId, event: name, data: JSON.parse(message.data) as unknown }));
    }
    this.#source = source;
  }

  closeEvents(): void {
    this.#source?.close();
    this.#source = undefined;
  }

  async #transport(direction: 'send' | 'recv'): Promise<types.Transport> {
    const info = await this.call<types.TransportOptions>('POST', '/transports', { direction });
    const options = { id: info.id, iceParameters: info.iceParameters, iceCandidates: info.iceCandidates, dtlsParameters: info.dtlsParameters };
    const transport = direction === 'send' ? this.device.createSendTransport(options) : this.device.createRecvTransport(options);
    transport.on('connect', ({ dtlsParameters }, done, fail) => {
      this.call('POST', `/transports/${transport.id}/connect`, { dtlsParameters }).then(() => done(), fail);
    });
    transport.on('produce', ({ kind, rtpParameters, appData }, done, fail) => {
      const source = (appData as { source?: string }).source;
      this.call<{ producerId: string }>('POST', `/transports/${transport.id}/produce`, { kind, rtpParameters, ...(source ? { source } : {}) }).then(({ producerId }) => done({ id: producerId }), fail);
    });
    return transport;
  }

  async publish(track: MediaStreamTrack, source: 'microphone' | 'camera'): Promise<types.Producer> {
    this.#send ??= await this.#transport('send');
    return this.#send.produce({ track, appData: { source } });
  }

  async consume(producerId: string): Promise<types.Consumer> {
    this.#recv ??= await this.#transport('recv');
    const answer = await this.call<{ consumerId: string; producerId: string; kind: 'audio' | 'video'; rtpParameters: types.RtpParameters; paused: boolean }>('POST', '/consume', {
      transportId: this.#recv.id,
      producerId,
      rtpCapabilities: this.device.recvRtpCapabilities,
    });
    const consumer = await this.#recv.consume({ id: answer.consumerId, producerId: answer.producerId, kind: answer.kind, rtpParameters: answer.rtpParameters });
    if (answer.paused) await this.call('POST', `/consumers/${answer.consumerId}/resume`, {});
    return consumer;
  }

  async leave(): Promise<void> {
    await restCall(this.base, this.auth, 'POST', `/api/rooms/${this.roomId}/participants/${this.participantId}/leave`);
  }

  close(): void {
    this.closeEvents();
    this.#send?.close();
    this.#recv?.close();
  }
}
