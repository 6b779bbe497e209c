/**
 * Webhooks: tells the operator's application what happened (rooms started and finished,
 * participants joined and left, broadcasts started and stopped, tracks published and unpublished) by POSTing signed JSON to each
 * configured URL. Deliveries leave the request path at once (a bounded queue), are retried with
 * exponential backoff, and every outcome is itself an audit event, so it is recorded.
 *
 * Delivery is at least once: a receiver that timed out after processing gets the same event
 * again and must deduplicate by `id`.
 */
import { randomUUID } from 'node:crypto';
import { ExponentialBackoff, handleWhen, retry } from 'cockatiel';
import type { ApiKey } from '../auth/apiKeys.js';
import type { AuditEvent, AuditLog } from '../observability/audit.js';
import type { Logger } from '../observability/logger.js';
import { SIGNATURE_HEADER, signWebhook } from './signature.js';

export type WebhookEventName =
  | 'room_started'
  | 'room_finished'
  | 'participant_joined'
  | 'participant_left'
  | 'broadcast_started'
  | 'broadcast_stopped'
  | 'track_published'
  | 'track_unpublished'
  | 'call_path_changed';

export interface WebhookEvent {
  id: string;
  event: WebhookEventName;
  createdAt: string;
  node: string;
  room: string;
  participant?: { peer: string; identity: string; role?: string | undefined } | undefined;
  kind?: string | undefined;
  reason?: string | undefined;
  /** Track events: the producer id, its source (microphone, camera, screen, screen-audio) and kind. */
  track?: { id: string; source: string; kind?: string | undefined } | undefined;
  /** call_path_changed: from and to (`sfu`, `p2p`), and the sessions of the call then. */
  path?: { id: string; from: string; to: string; peers: string[] } | undefined;
}

export interface WebhookOptions {
  urls: string[];
  maxAttempts: number;
  timeoutMs: number;
  /** First retry delay; later ones double up to maxDelayMs. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Deliveries waiting or in flight beyond this are dropped (and recorded as failed). */
  maxQueued?: number;
}

class DeliveryError extends Error {
  constructor(
    message: string,
    /** 4xx answers other than 408/429 mean the receiver refuses this event: retrying won't help. */
    readonly permanent: boolean,
  ) {
    super(message);
  }
}

export class Webhooks {
  readonly #inFlight = new Set<Promise<void>>();
  readonly #policy;
  readonly #log: Logger;
  readonly #maxQueued: number;
  #closed = false;
  readonly #onEvent = (event: AuditEvent & { at: number }): void => {
    const hook = toWebhook(event, this.nodeId);
    if (hook) for (const url of this.options.urls) this.#enqueue(url, hook);
  };

  constructor(
    private readonly options: WebhookOptions,
    private readonly key: ApiKey,
    private readonly nodeId: string,
    private readonly audit: AuditLog,
    log: Logger,
  ) {
    this.#log = log.child({ component: 'webhooks' });
    this.#maxQueued = options.maxQueued ?? 10_000;
    this.#policy = retry(handleWhen((e) => !(e instanceof DeliveryError && e.permanent)), {
      maxAttempts: options.maxAttempts - 1,
      backoff: new ExponentialBackoff({ initialDelay: options.initialDelayMs ?? 500, maxDelay: options.maxDelayMs ?? 30_000 }),
    });
    if (options.urls.length > 0) audit.on('event', this.#onEvent);
  }

  /** Deliveries waiting or in flight. */
  get pending(): number {
    return this.#inFlight.size;
  }

  #enqueue(url: string, hook: WebhookEvent): void {
    if (this.#closed) return;
    if (this.#inFlight.size >= this.#maxQueued) {
      this.#log.warn({ url, event: hook.event, id: hook.id }, 'webhook queue full; dropping');
      this.audit.record({ type: 'webhook.failed', id: hook.id, event: hook.event, url, attempts: 0, error: 'queue full' });
      return;
    }
    const delivery = this.#deliver(url, hook).finally(() => this.#inFlight.delete(delivery));
    this.#inFlight.add(delivery);
  }

  async #deliver(url: string, hook: WebhookEvent): Promise<void> {
    const body = JSON.stringify(hook);
    let attempts = 0;
    try {
      const status = await this.#policy.execute(async () => {
        attempts++;
        return this.#post(url, body, hook.id);
      });
      this.audit.record({ type: 'webhook.delivered', id: hook.id, event: hook.event, url, attempts, status });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.#log.warn({ url, event: hook.event, id: hook.id, attempts, err: message }, 'webhook not delivered');
      this.audit.record({ type: 'webhook.failed', id: hook.id, event: hook.event, url, attempts, error: message });
    }
  }

  async #post(url: string, body: string, id: string): Promise<number> {
    let response: Response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'chorus-webhook-id': id,
          'chorus-key-id': this.key.id,
          [SIGNATURE_HEADER]: signWebhook(body, this.key.secret),
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (error) {
      throw new DeliveryError(`POST failed: ${error instanceof Error ? error.message : String(error)}`, false);
    }
    await response.body?.cancel();
    if (response.ok) return response.status;
    const permanent = response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429;
    throw new DeliveryError(`receiver answered ${response.status}`, permanent);
  }

  /** Stops taking events and waits (up to `deadlineMs`) for deliveries under way. */
  async close(deadlineMs = 5000): Promise<void> {
    this.#closed = true;
    this.audit.off('event', this.#onEvent);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.#inFlight]),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, deadlineMs);
      }),
    ]);
    clearTimeout(timer);
  }
}

/** The audit events operators' applications care about, as webhook payloads. */
export function toWebhook(event: AuditEvent & { at: number }, node: string): WebhookEvent | undefined {
  const base = { id: randomUUID(), createdAt: new Date(event.at).toISOString(), node };
  switch (event.type) {
    case 'room.started':
      return { ...base, event: 'room_started', room: event.room, kind: event.kind };
    case 'room.finished':
      return { ...base, event: 'room_finished', room: event.room, kind: event.kind, reason: event.reason };
    case 'join.accepted':
      return { ...base, event: 'participant_joined', room: event.room, participant: { peer: event.peer, identity: event.identity, role: event.role } };
    case 'participant.left':
      return { ...base, event: 'participant_left', room: event.room, participant: { peer: event.peer, identity: event.identity, role: event.role }, reason: event.reason };
    case 'broadcast.started':
      return { ...base, event: 'broadcast_started', room: event.room, participant: { peer: event.peer, identity: event.identity } };
    case 'broadcast.stopped':
      return { ...base, event: 'broadcast_stopped', room: event.room, participant: { peer: event.peer, identity: event.identity }, reason: event.reason };
    case 'track.published':
      return { ...base, event: 'track_published', room: event.room, participant: { peer: event.peer, identity: event.identity }, track: { id: event.producer, source: event.source, kind: event.kind } };
    case 'track.unpublished':
      return { ...base, event: 'track_unpublished', room: event.room, participant: { peer: event.peer, identity: event.identity }, track: { id: event.producer, source: event.source } };
    case 'call.path':
      return { ...base, event: 'call_path_changed', room: event.room, reason: event.reason, path: { id: event.id, from: event.from, to: event.to, peers: event.peers } };
    default:
      return undefined;
  }
}
