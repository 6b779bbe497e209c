/**
 * A receiver that makes the offer (a WHEP player) numbers the codecs itself, and an answer may
 * only name payload types its offer named. A mediasoup consumer sends with its router's payload
 * types, so such a receiver is served from a router of the room whose codecs carry the
 * receiver's own numbers: its payload profile. Players built on libwebrtc all number alike, so a
 * room needs one such router per kind of player, not one per player.
 */
import type { types } from 'mediasoup';
import { routerCodecs, sameCodec } from './codecs.js';

export interface PayloadProfile {
  /** Equal for receivers that number the node's codecs alike: they share a router. */
  readonly key: string;
  /** The node's codecs the receiver takes, each with the receiver's payload type. */
  readonly codecs: types.RouterRtpCodecCapability[];
}

/**
 * The profile of a receiver that offered `offered` (its codecs with its payload types), or
 * undefined when the room's own router already numbers every codec they share the same way (or
 * they share none). RTX is left out: a router picks its RTX payload types itself, so such a
 * receiver gets its losses resent on the stream itself (plain NACK).
 */
export function payloadProfile(offered: readonly types.RtpCodecCapability[], router: types.RtpCapabilities): PayloadProfile | undefined {
  const codecs: types.RouterRtpCodecCapability[] = [];
  let differs = false;
  for (const ours of routerCodecs()) {
    const theirs = offered.find((o) => o.kind === ours.kind && o.preferredPayloadType !== undefined && sameCodec(o, ours));
    if (!theirs) continue;
    const current = router.codecs?.find((c) => c.kind === ours.kind && sameCodec(c, ours));
    if (current?.preferredPayloadType !== theirs.preferredPayloadType) differs = true;
    codecs.push({ ...ours, preferredPayloadType: theirs.preferredPayloadType });
  }
  if (!differs || codecs.length === 0) return undefined;
  const key = codecs.map((c) => `${c.mimeType.toLowerCase()}=${c.preferredPayloadType}`).join(',');
  return { key, codecs };
}
