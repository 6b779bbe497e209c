/**
 * What a node writes to its records database. Each record carries a unique id made when it is
 * queued, so a record delivered twice (a retry whose commit did land, a spill file drained
 * after a crash) is applied once.
 */
import { z } from 'zod';

const base = { id: z.uuid(), at: z.number() };

export const chorusRecord = z.discriminatedUnion('kind', [
  z.object({ ...base, kind: z.literal('room.opened'), room: z.string(), roomKind: z.string(), node: z.string() }),
  z.object({ ...base, kind: z.literal('room.closed'), room: z.string(), node: z.string() }),
  z.object({
    ...base,
    kind: z.literal('session.joined'),
    /** The peer id of this connection. */
    peer: z.string(),
    /** The connection this one resumes (the SDK's previousPeerId), if any. */
    previousPeer: z.string().optional(),
    room: z.string(),
    identity: z.string(),
    role: z.string(),
    node: z.string(),
  }),
  z.object({
    ...base,
    kind: z.literal('session.left'),
    peer: z.string(),
    room: z.string(),
    reason: z.string(),
    /** Spatial layer changes of the videos this connection received. */
    layerChanges: z.number().int().min(0).optional(),
  }),
  z.object({
    ...base,
    kind: z.literal('track.published'),
    /** The producer id. */
    track: z.string(),
    peer: z.string(),
    room: z.string(),
    identity: z.string(),
    source: z.string(),
    trackKind: z.string(),
    node: z.string(),
  }),
  z.object({ ...base, kind: z.literal('track.unpublished'), track: z.string(), room: z.string() }),
  z.object({
    ...base,
    kind: z.literal('recording.started'),
    recording: z.string(),
    /** The API key's tenant the room belongs to: whose admin API lists it. */
    tenant: z.string(),
    room: z.string(),
    /** The node holding its files. */
    node: z.string(),
    by: z.string(),
  }),
  z.object({ ...base, kind: z.literal('recording.stopped'), recording: z.string(), by: z.string() }),
  z.object({
    ...base,
    kind: z.literal('event'),
    type: z.string(),
    room: z.string().optional(),
    identity: z.string().optional(),
    node: z.string(),
    data: z.record(z.string(), z.unknown()),
  }),
  z.object({
    ...base,
    kind: z.literal('quality'),
    peer: z.string(),
    room: z.string(),
    node: z.string(),
    /** `send`: the peer's producer as received here; `recv`: a consumer sending to the peer. */
    direction: z.enum(['send', 'recv']),
    track: z.string(),
    /** Fraction of packets lost in the last report interval, 0..1. */
    packetLoss: z.number().nullable(),
    packetsLost: z.number().nullable(),
    jitterMs: z.number().nullable(),
    rttMs: z.number().nullable(),
    bitrate: z.number().nullable(),
    /** Consumer samples (`recv`): the track (producer) carried, its spatial layer, a freeze. */
    producer: z.string().optional(),
    spatialLayer: z.number().nullable().optional(),
    frozen: z.boolean().optional(),
    /** The sampling interval this sample stands for. */
    intervalMs: z.number().optional(),
  }),
]);

export type ChorusRecord = z.infer<typeof chorusRecord>;
export type RecordKind = ChorusRecord['kind'];

/** Room, session, track and recording changes: applied in order, once each (tracked in `applied_records`). */
export function isLifecycle(record: ChorusRecord): record is Extract<ChorusRecord, { kind: `${'room' | 'session' | 'track' | 'recording'}.${string}` }> {
  return record.kind !== 'event' && record.kind !== 'quality';
}

/** NUL, and UTF-16 surrogates without their pair (in `u` mode a paired one is one code point). */
const unstorable = /[\u0000\p{Cs}]/gu;

/**
 * The record as PostgreSQL can hold it: text and jsonb refuse NUL (22P05, 22021) and jsonb refuses
 * an unpaired surrogate escape, so in every string inside the record, keys of its data included,
 * those become U+FFFD. Identities are checked at the edge, but a record carries other text too
 * (reasons, audit data from any part of the node) and must never be refused for it.
 */
export function storable<T extends ChorusRecord>(record: T): T {
  return clean(record) as T;
}

function clean(value: unknown): unknown {
  if (typeof value === 'string') return value.replace(unstorable, '\uFFFD');
  if (Array.isArray(value)) return value.map(clean);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key.replace(unstorable, '\uFFFD'), clean(inner)]));
  }
  return value;
}
