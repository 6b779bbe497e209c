import type { types } from 'mediasoup';

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
