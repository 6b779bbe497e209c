/**
 * Shapes of the mediasoup/ORTC blobs that travel inside signaling messages. These schemas bound
 * size and structure so nothing oversized or malformed reaches the worker; mediasoup's own ORTC
 * validation then decides whether the parameters make sense, and its failures become
 * MEDIA_REJECTED errors.
 *
 * Objects are strict like every other message: each lists exactly the fields mediasoup-client
 * (3.18, `RtpParameters.d.ts`, `Transport.d.ts`) and mediasoup's router capabilities carry, so a
 * real client passes and anything else is BAD_REQUEST before it reaches the worker.
 */
import { z } from 'zod';

const id = z.string().min(1).max(128);
const shortText = z.string().max(256);
/** RTP SSRCs are 32-bit unsigned (RFC 3550). */
const ssrc = z.number().int().min(0).max(2 ** 32 - 1);
const priority = z.enum(['very-low', 'low', 'medium', 'high']);
const codecParameters = z.record(z.string().max(64), z.union([z.string().max(256), z.number()]));

const rtcpFeedback = z.strictObject({ type: z.string().max(32), parameter: z.string().max(32).optional() });

const codecCapability = z.strictObject({
  kind: z.enum(['audio', 'video']),
  mimeType: z.string().max(64),
  preferredPayloadType: z.number().int().min(0).max(127).optional(),
  clockRate: z.number().int().positive(),
  channels: z.number().int().positive().max(8).optional(),
  parameters: codecParameters.optional(),
  rtcpFeedback: z.array(rtcpFeedback).max(32).optional(),
});

const headerExtensionCapability = z.strictObject({
  kind: z.enum(['audio', 'video']),
  uri: z.string().max(256),
  preferredId: z.number().int().min(1).max(255),
  preferredEncrypt: z.boolean().optional(),
  direction: z.enum(['sendrecv', 'sendonly', 'recvonly', 'inactive']).optional(),
});

export const rtpCapabilities = z.strictObject({
  codecs: z.array(codecCapability).max(64).optional(),
  headerExtensions: z.array(headerExtensionCapability).max(64).optional(),
});

const codecParametersEntry = z.strictObject({
  mimeType: z.string().max(64),
  payloadType: z.number().int().min(0).max(127),
  clockRate: z.number().int().positive(),
  channels: z.number().int().positive().max(8).optional(),
  parameters: codecParameters.optional(),
  rtcpFeedback: z.array(rtcpFeedback).max(32).optional(),
});

const encoding = z.strictObject({
  active: z.boolean().optional(),
  ssrc: ssrc.optional(),
  rid: z.string().max(32).optional(),
  codecPayloadType: z.number().int().min(0).max(127).optional(),
  rtx: z.strictObject({ ssrc }).optional(),
  dtx: z.boolean().optional(),
  scalabilityMode: z.string().max(16).optional(),
  scaleResolutionDownBy: z.number().finite().positive().optional(),
  maxBitrate: z.number().positive().optional(),
  maxFramerate: z.number().positive().optional(),
  adaptivePtime: z.boolean().optional(),
  priority: priority.optional(),
  networkPriority: priority.optional(),
});

export const rtpParameters = z.strictObject({
  mid: z.string().max(32).optional(),
  codecs: z.array(codecParametersEntry).min(1).max(16),
  headerExtensions: z
    .array(
      z.strictObject({
        uri: z.string().max(256),
        id: z.number().int().min(1).max(255),
        encrypt: z.boolean().optional(),
        parameters: codecParameters.optional(),
      }),
    )
    .max(32)
    .optional(),
  encodings: z.array(encoding).max(8).optional(),
  rtcp: z
    .strictObject({ cname: z.string().max(256).optional(), reducedSize: z.boolean().optional(), mux: z.boolean().optional() })
    .optional(),
  /** `<stream id> <track id>` (mediasoup-client sets it on every producer). */
  msid: z.string().max(256).optional(),
});

export const dtlsParameters = z.strictObject({
  role: z.enum(['auto', 'client', 'server']).optional(),
  fingerprints: z
    .array(z.strictObject({ algorithm: z.enum(['sha-1', 'sha-224', 'sha-256', 'sha-384', 'sha-512']), value: shortText }))
    .min(1)
    .max(8),
});

export const mediaKind = z.enum(['audio', 'video']);
export const entityId = id;
