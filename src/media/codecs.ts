import type { types } from 'mediasoup';
import { isSameProfile } from 'h264-profile-level-id';

/**
 * Router codecs. Opus is declared mono-first with DTX and in-band FEC: a speaking voice needs
 * neither stereo nor a high bitrate, and silence between phrases should cost nothing on the
 * wire. Video codecs are listed now so `class` and `call` rooms can share the router setup.
 */
export function routerCodecs(): types.RouterRtpCodecCapability[] {
  return [
    {
      kind: 'audio',
      mimeType: 'audio/opus',
      clockRate: 48000,
      channels: 2,
      parameters: { useinbandfec: 1, usedtx: 1, 'sprop-stereo': 0 },
    },
    { kind: 'video', mimeType: 'video/VP8', clockRate: 90000, parameters: { 'x-google-start-bitrate': 1000 } },
    {
      kind: 'video',
      mimeType: 'video/H264',
      clockRate: 90000,
      parameters: { 'packetization-mode': 1, 'profile-level-id': '42e01f', 'level-asymmetry-allowed': 1 },
    },
  ];
}

/**
 * Speech settings the server imposes on a published Opus stream: whatever the client asked,
 * consumers are told mono, DTX and FEC, and the average bitrate is capped.
 */
export function tuneOpusForSpeech(rtpParameters: types.RtpParameters, bitrate: number): types.RtpParameters {
  return {
    ...rtpParameters,
    codecs: rtpParameters.codecs.map((codec) =>
      codec.mimeType.toLowerCase() === 'audio/opus'
        ? {
            ...codec,
            parameters: {
              ...codec.parameters,
              stereo: 0,
              'sprop-stereo': 0,
              usedtx: 1,
              useinbandfec: 1,
              maxaveragebitrate: bitrate,
            },
          }
        : codec,
    ),
  };
}

interface CodecLike {
  mimeType: string;
  clockRate: number;
  channels?: number | undefined;
  parameters?: Record<string, unknown> | undefined;
}

/**
 * The same codec by mediasoup's rules: name and clock rate (and channels for audio); H264 also its
 * packetization mode and profile (not its level).
 */
export function sameCodec(offered: CodecLike, known: CodecLike & { kind: 'audio' | 'video' }): boolean {
  if (offered.mimeType.toLowerCase() !== known.mimeType.toLowerCase() || offered.clockRate !== known.clockRate) return false;
  if (known.kind === 'audio' && (offered.channels ?? 1) !== (known.channels ?? 1)) return false;
  if (known.mimeType.toLowerCase() === 'video/h264') {
    const mode = (p: Record<string, unknown> | undefined): number => Number(p?.['packetization-mode'] ?? 0);
    return mode(offered.parameters) === mode(known.parameters) && isSameProfile(offered.parameters ?? {}, known.parameters ?? {});
  }
  return true;
}
