/**
 * The SDP offer a receive-only peer needs to take one mediasoup consumer over one
 * WebRtcTransport, built from the parameters our signaling returns (createTransport + consume).
 * A small version of what mediasoup-client's RemoteSdp/OfferMediaSection produce for a recv
 * transport: mediasoup is ICE-lite and offers `actpass`, so the answering peer becomes the DTLS
 * client and ICE-controlling side.
 */

export interface IceParameters {
  usernameFragment: string;
  password: string;
  iceLite?: boolean;
}

export interface IceCandidate {
  foundation: string;
  priority: number;
  ip?: string;
  address?: string;
  protocol: 'udp' | 'tcp';
  port: number;
  type: string;
  tcpType?: string;
}

export interface DtlsParameters {
  role?: string;
  fingerprints: Array<{ algorithm: string; value: string }>;
}

export interface ConsumerRtpParameters {
  mid?: string;
  codecs: Array<{
    mimeType: string;
    payloadType: number;
    clockRate: number;
    channels?: number;
    parameters?: Record<string, string | number>;
    rtcpFeedback?: Array<{ type: string; parameter?: string }>;
  }>;
  headerExtensions?: Array<{ uri: string; id: number }>;
  encodings?: Array<{ ssrc?: number }>;
  rtcp?: { cname?: string };
}

export interface ConsumerOffer {
  iceParameters: IceParameters;
  iceCandidates: IceCandidate[];
  dtlsParameters: DtlsParameters;
  rtpParameters: ConsumerRtpParameters;
}

export function consumerOfferSdp({ iceParameters, iceCandidates, dtlsParameters, rtpParameters }: ConsumerOffer): string {
  const mid = rtpParameters.mid ?? '0';
  const pts = rtpParameters.codecs.map((c) => c.payloadType);
  const lines = [
    'v=0',
    `o=chorus-bench ${Date.now()} 1 IN IP4 0.0.0.0`,
    's=-',
    't=0 0',
    'a=ice-lite',
    ...dtlsParameters.fingerprints.map((f) => `a=fingerprint:${f.algorithm} ${f.value}`),
    'a=msid-semantic: WMS *',
    `a=group:BUNDLE ${mid}`,
    `m=audio 7 UDP/TLS/RTP/SAVPF ${pts.join(' ')}`,
    'c=IN IP4 127.0.0.1',
    `a=mid:${mid}`,
    'a=sendonly',
    `a=ice-ufrag:${iceParameters.usernameFragment}`,
    `a=ice-pwd:${iceParameters.password}`,
    // werift gathers UDP only here; TCP candidates would only be noise.
    ...iceCandidates
      .filter((c) => c.protocol === 'udp')
      .map((c) => `a=candidate:${c.foundation} 1 udp ${c.priority} ${c.address ?? c.ip} ${c.port} typ ${c.type}`),
    'a=end-of-candidates',
    'a=setup:actpass',
    'a=rtcp-mux',
    'a=rtcp-rsize',
  ];
  for (const codec of rtpParameters.codecs) {
    const name = codec.mimeType.split('/')[1] ?? codec.mimeType;
    lines.push(`a=rtpmap:${codec.payloadType} ${name}/${codec.clockRate}${(codec.channels ?? 1) > 1 ? `/${codec.channels}` : ''}`);
    const fmtp = Object.entries(codec.parameters ?? {}).map(([k, v]) => `${k}=${v}`).join(';');
    if (fmtp) lines.push(`a=fmtp:${codec.payloadType} ${fmtp}`);
    for (const fb of codec.rtcpFeedback ?? []) lines.push(`a=rtcp-fb:${codec.payloadType} ${fb.type}${fb.parameter ? ` ${fb.parameter}` : ''}`);
  }
  for (const ext of rtpParameters.headerExtensions ?? []) lines.push(`a=extmap:${ext.id} ${ext.uri}`);
  const ssrc = rtpParameters.encodings?.[0]?.ssrc;
  const cname = rtpParameters.rtcp?.cname;
  if (ssrc !== undefined && cname) {
    lines.push(`a=ssrc:${ssrc} cname:${cname}`, `a=ssrc:${ssrc} msid:chorus-bench chorus-bench-audio`);
  }
  return `${lines.join('\r\n')}\r\n`;
}

/** Our DTLS fingerprint and role, read back from the answer werift generated. */
export function answerDtlsParameters(sdp: string): { role: 'client' | 'server'; fingerprints: Array<{ algorithm: 'sha-256'; value: string }> } {
  const fingerprints = [...sdp.matchAll(/^a=fingerprint:(\S+) (\S+)\r?$/gm)].map((m) => ({
    algorithm: m[1]!.toLowerCase() as 'sha-256',
    value: m[2]!,
  }));
  const setup = /^a=setup:(\w+)/m.exec(sdp)?.[1];
  // The offer said actpass: 'active' makes us the DTLS client, 'passive' the server.
  return { role: setup === 'passive' ? 'server' : 'client', fingerprints };
}
