/**
 * SDP for clients that speak plain offer/answer (WHIP publishers, WHEP players) instead of
 * mediasoup-client: an offer parsed with sdp-transform into mediasoup's terms (ICE and DTLS
 * parameters, and per m-section the RTP parameters a producer takes), and the answer written back
 * with sdp-transform. One module, so every translation between the two lives here.
 *
 * What an offer must have (RFC 9725 and what mediasoup can serve): BUNDLE over every media
 * section, rtcp-mux, ICE credentials and a DTLS fingerprint; each media section a mid and at least
 * one codec the router has.
 */
import { getSupportedRtpCapabilities, type types } from 'mediasoup';
import * as sdpTransform from 'sdp-transform';
import { ChorusError } from '../protocol/errors.js';
import { sameCodec } from './codecs.js';

/** An offer that cannot be used, with what is wrong (the HTTP layer turns it into 400 / 422). */
export class SdpError extends ChorusError {}

type Media = sdpTransform.MediaDescription;

export interface OfferSection {
  mid: string;
  kind: 'audio' | 'video';
  direction: 'sendonly' | 'recvonly' | 'sendrecv' | 'inactive';
  /** The m-section as parsed: the answer keeps its order and payload types. */
  media: Media;
}

export interface ParsedOffer {
  session: sdpTransform.SessionDescription;
  iceParameters: { usernameFragment: string; password: string };
  dtlsParameters: types.DtlsParameters;
  sections: OfferSection[];
}

const directions = ['sendonly', 'recvonly', 'sendrecv', 'inactive'] as const;

/** Parses and checks an offer; throws SdpError saying what is missing or wrong. */
export function parseOffer(sdp: string): ParsedOffer {
  if (!/^v=0\r?\n/.test(sdp)) throw new SdpError('BAD_REQUEST', 'not an SDP offer (it must start with v=0)');
  let session: sdpTransform.SessionDescription;
  try {
    session = sdpTransform.parse(sdp);
  } catch (error) {
    throw new SdpError('BAD_REQUEST', `the offer is not valid SDP: ${String(error)}`);
  }
  if (session.media.length === 0) throw new SdpError('BAD_REQUEST', 'the offer has no media section');
  // sdp-transform reads a value that looks like a number as one (a lone mid `0`): strings again.
  const bundle = String(session.groups?.find((g) => g.type === 'BUNDLE')?.mids ?? '').split(' ').filter(Boolean);
  const sections: OfferSection[] = [];
  let ufrag: string | undefined;
  let pwd: string | undefined;
  let fingerprint: { type: string; hash: string } | undefined;
  let setup: string | undefined;
  for (const media of session.media) {
    if (media.type !== 'audio' && media.type !== 'video') throw new SdpError('MEDIA_REJECTED', `media of type ${media.type} is not supported (audio and video only)`);
    const mid = media.mid === undefined ? undefined : String(media.mid);
    if (!mid) throw new SdpError('BAD_REQUEST', `a ${media.type} section has no a=mid`);
    if (!bundle.includes(mid)) throw new SdpError('BAD_REQUEST', `media section ${mid} is not in a BUNDLE group: offer every section bundled (a=group:BUNDLE)`);
    if (!media.rtcpMux) throw new SdpError('BAD_REQUEST', `media section ${mid} does not offer rtcp-mux`);
    ufrag ??= media.iceUfrag ?? session.iceUfrag;
    pwd ??= media.icePwd ?? session.icePwd;
    fingerprint ??= media.fingerprint ?? session.fingerprint;
    setup ??= media.setup ?? session.setup;
    const direction = (media.direction ?? session.direction ?? 'sendrecv') as OfferSection['direction'];
    if (!directions.includes(direction)) throw new SdpError('BAD_REQUEST', `media section ${mid} has no valid direction`);
    sections.push({ mid, kind: media.type, direction, media });
  }
  if (!ufrag || !pwd) throw new SdpError('BAD_REQUEST', 'the offer has no ICE credentials (a=ice-ufrag, a=ice-pwd)');
  if (!fingerprint) throw new SdpError('BAD_REQUEST', 'the offer has no DTLS fingerprint (a=fingerprint)');
  const algorithm = fingerprint.type.toLowerCase();
  if (!['sha-1', 'sha-224', 'sha-256', 'sha-384', 'sha-512'].includes(algorithm)) throw new SdpError('BAD_REQUEST', `fingerprint algorithm ${fingerprint.type} is not supported`);
  // The offerer's DTLS role: actpass (an offerer's usual) or active makes it the client, and the
  // node the server (a=setup:passive in the answer); passive makes the node the client.
  const role: types.DtlsRole = setup === 'passive' ? 'server' : 'client';
  return {
    session,
    iceParameters: { usernameFragment: ufrag, password: pwd },
    dtlsParameters: { role, fingerprints: [{ algorithm: algorithm as types.FingerprintAlgorithm, value: fingerprint.hash }] },
    sections,
  };
}

/** `a=fmtp` parameters of payload type `pt`, as mediasoup takes them (numbers where they are numbers). */
function fmtpOf(media: Media, pt: number): Record<string, string | number> {
  const config = media.fmtp?.find((f) => f.payload === pt)?.config;
  if (!config) return {};
  const parsed = sdpTransform.parseParams(config) as Record<string, string | number | undefined>;
  // A parameter without a value (RED's `111/111`) is no key=value pair: left out.
  return Object.fromEntries(Object.entries(parsed).filter((entry): entry is [string, string | number] => entry[1] !== undefined));
}

function feedbackOf(media: Media, pt: number): types.RtcpFeedback[] {
  return (media.rtcpFb ?? [])
    .filter((f) => String(f.payload) === String(pt) || f.payload === '*')
    .map((f) => ({ type: f.type, ...(f.subtype ? { parameter: f.subtype } : {}) }));
}

export interface Accepted {
  /** What `transport.produce()` takes for this section (publishers). */
  rtpParameters: types.RtpParameters;
  /** The payload types kept (the codec, then its RTX): the answer offers only these. */
  payloadTypes: number[];
  /** The header extensions both sides know, with the offer's ids. */
  extensions: Array<{ id: number; uri: string }>;
}

/**
 * The RTP parameters a producer takes for an offered sending section: its first codec the router
 * has (with the RTX stream paired to it), the header extensions the router knows, and its
 * encodings: simulcast rids (`a=rid` + `a=simulcast`), else its SSRC and the RTX SSRC of its FID
 * group. Throws SdpError MEDIA_REJECTED when no offered codec is one the router has.
 */
export function acceptSending(section: OfferSection, router: types.RtpCapabilities): Accepted {
  const { media, mid, kind } = section;
  const offered = (media.rtp ?? []).map((r) => ({
    payloadType: r.payload,
    mimeType: `${kind}/${r.codec}`,
    clockRate: r.rate ?? 0,
    ...(kind === 'audio' ? { channels: Number(r.encoding ?? 1) } : {}),
    parameters: fmtpOf(media, r.payload),
  }));
  const known = (router.codecs ?? []).filter((c) => c.kind === kind && !/\/rtx$/i.test(c.mimeType));
  const codec = offered.find((o) => !/\/(rtx|red|ulpfec|flexfec-03)$/i.test(o.mimeType) && known.some((k) => sameCodec(o, k)));
  if (!codec) {
    const names = [...new Set(offered.map((o) => o.mimeType.split('/')[1]))].join(', ') || 'none';
    throw new SdpError('MEDIA_REJECTED', `${kind} section ${mid}: none of its codecs (${names}) is supported; offer ${known.map((k) => k.mimeType.split('/')[1]).join(' or ')}`);
  }
  const rtx = offered.find((o) => /\/rtx$/i.test(o.mimeType) && Number(o.parameters['apt']) === codec.payloadType);
  const codecs: types.RtpCodecParameters[] = [
    { mimeType: codec.mimeType, payloadType: codec.payloadType, clockRate: codec.clockRate, ...(codec.channels !== undefined && kind === 'audio' ? { channels: codec.channels } : {}), parameters: codec.parameters, rtcpFeedback: feedbackOf(media, codec.payloadType) },
    ...(rtx ? [{ mimeType: rtx.mimeType, payloadType: rtx.payloadType, clockRate: rtx.clockRate, parameters: { apt: codec.payloadType }, rtcpFeedback: [] }] : []),
  ];
  const knownUris = new Set((router.headerExtensions ?? []).filter((e) => e.kind === kind).map((e) => e.uri));
  const extensions = (media.ext ?? []).filter((e) => knownUris.has(e.uri as types.RtpHeaderExtensionUri)).map((e) => ({ id: e.value, uri: e.uri }));
  const cname = media.ssrcs?.find((s) => s.attribute === 'cname')?.value;
  const rtpParameters: types.RtpParameters = {
    mid,
    codecs,
    headerExtensions: extensions.map((e) => ({ uri: e.uri as types.RtpHeaderExtensionUri, id: e.id, encrypt: false, parameters: {} })),
    encodings: encodingsOf(media, kind, rtx !== undefined),
    rtcp: { ...(cname ? { cname: String(cname) } : {}), reducedSize: media.rtcpRsize !== undefined },
  };
  return { rtpParameters, payloadTypes: codecs.map((c) => c.payloadType), extensions };
}

/**
 * What a receiving section (a WHEP player's) can take, as the RTP capabilities `consume` is given:
 * its codecs with its own payload types, its feedback, and its header extensions with its ids
 * (mediasoup keeps those whose id is the router's). Not its RTX: a router numbers RTX itself, and
 * an answer may not name a payload type the offer did not, so losses are resent on the stream.
 */
export function receivingCapabilities(section: OfferSection): types.RtpCapabilities {
  const { media, kind } = section;
  const codecs: types.RtpCodecCapability[] = (media.rtp ?? []).filter((r) => r.codec.toLowerCase() !== 'rtx').map((r) => ({
    kind,
    mimeType: `${kind}/${r.codec}`,
    preferredPayloadType: r.payload,
    clockRate: r.rate ?? 0,
    ...(kind === 'audio' ? { channels: Number(r.encoding ?? 1) } : {}),
    parameters: fmtpOf(media, r.payload),
    rtcpFeedback: feedbackOf(media, r.payload),
  }));
  const headerExtensions = (media.ext ?? []).map((e) => ({ kind, uri: e.uri as types.RtpHeaderExtensionUri, preferredId: e.value, direction: 'sendrecv' as const }));
  return { codecs, headerExtensions };
}

/**
 * What a receiver finds its stream by before its SSRC: a MID read out of another extension's
 * bytes names no stream, and libwebrtc drops the packet. (A RID read that way does no harm: the
 * stream is then found by the SSRC the answer signals. whip.test.ts sees both.)
 */
const MID_URI = 'urn:ietf:params:rtp-hdrext:sdes:mid';

/**
 * The extensions the node's packets carry, under mediasoup's ids: what it supports but the RIDs
 * (it only reads them), and for audio not the bandwidth ones (its Producer adds those to video only).
 */
const sentExtensions = getSupportedRtpCapabilities().headerExtensions!.filter(
  (e) => !e.uri.includes('rtp-stream-id') && !(e.kind === 'audio' && (e.uri.endsWith('abs-send-time') || e.uri.includes('transport-wide-cc'))),
);

/**
 * Why a player that made `offer` cannot be sent `kind` packets, if it cannot. mediasoup (3.x)
 * writes every packet's header extensions under the router's ids, whatever a consumer's remote
 * side offered (mediasoup issue 1126), and an answer may not renumber them. A player that gave
 * its MID extension an id the node's packets use for another extension reads garbage
 * there and drops every packet. libwebrtc players put MID on 4, where mediasoup's video carries
 * abs-send-time. Chorus's worker renumbers per consumer (patch 002 of scripts/mediasoup/patches),
 * and the WHEP route asks this only of a worker that lacks the patch.
 */
export function extensionClash(offer: ParsedOffer, kind: 'audio' | 'video'): string | undefined {
  // One BUNDLE transport: the player reads every packet with the ids of all its sections.
  for (const ext of offer.sections.flatMap((s) => s.media.ext ?? [])) {
    if (ext.uri !== MID_URI) continue;
    const ours = sentExtensions.find((s) => s.kind === kind && s.preferredId === ext.value && s.uri !== ext.uri);
    if (ours) return `the offer's ${ext.uri} is extension ${ext.value}, which the node's ${kind} packets carry ${ours.uri} in`;
  }
  return undefined;
}

/** The answer's view of a consumer: its payload types, extensions and SSRCs (WHEP). */
export function consumerAnswer(rtpParameters: types.RtpParameters): { accepted: Accepted; sending: NonNullable<AnsweredSection['sending']> } {
  const encoding = rtpParameters.encodings?.[0];
  return {
    accepted: {
      rtpParameters,
      payloadTypes: rtpParameters.codecs.map((c) => c.payloadType),
      extensions: (rtpParameters.headerExtensions ?? []).map((e) => ({ id: e.id, uri: e.uri })),
    },
    sending: { ssrc: encoding?.ssrc ?? 0, rtxSsrc: encoding?.rtx?.ssrc, cname: rtpParameters.rtcp?.cname ?? 'chorus' },
  };
}

function encodingsOf(media: Media, kind: 'audio' | 'video', withRtx: boolean): types.RtpEncodingParameters[] {
  const sendRids = (media.rids ?? []).filter((r) => r.direction === 'send').map((r) => String(r.id));
  if (kind === 'video' && sendRids.length > 0) {
    // The simulcast line orders the layers; without one, the rids' own order.
    const list = media.simulcast?.list1;
    const listed = list === undefined ? sendRids : String(list).split(';').map((alt) => alt.split(',')[0]!.replace(/^~/, ''));
    return listed.filter((rid) => sendRids.includes(rid)).map((rid) => ({ rid }));
  }
  const ssrcs = [...new Set((media.ssrcs ?? []).map((s) => Number(s.id)))];
  const group = media.ssrcGroups?.find((g) => g.semantics === 'FID');
  const fid = group ? String(group.ssrcs).split(' ').map(Number) : undefined;
  const primary = fid?.[0] ?? ssrcs[0];
  if (primary === undefined) return [{}];
  return [{ ssrc: primary, ...(withRtx && fid?.[1] !== undefined ? { rtx: { ssrc: fid[1] } } : {}) }];
}

export interface AnswerTransport {
  iceParameters: types.IceParameters;
  iceCandidates: types.IceCandidate[];
  dtlsParameters: types.DtlsParameters;
}

export interface AnsweredSection {
  section: OfferSection;
  /** Accepted: what the node receives (WHIP) or sends (WHEP); undefined: refused (port 0). */
  accepted?: Accepted | undefined;
  /** For a section the node sends on (WHEP): the SSRCs and CNAME of the consumer. */
  sending?: { ssrc: number; rtxSsrc?: number | undefined; cname: string } | undefined;
  /** Audio the node receives: the packet length it asks the sender for (`a=ptime`), in ms. */
  ptimeMs?: number | undefined;
}

/**
 * The answer to `offer`: every offered section in its order and with its mid (a refused one with
 * port 0), the accepted codecs with the offer's payload types, the node's ICE (lite) and DTLS
 * parameters and candidates, BUNDLE over the accepted sections, rtcp-mux, and a simulcast
 * section's rids answered as received.
 */
export function writeAnswer(offer: ParsedOffer, transport: AnswerTransport, answered: AnsweredSection[]): string {
  const fingerprint = transport.dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256') ?? transport.dtlsParameters.fingerprints[0]!;
  // The node's DTLS role is the opposite of the offerer's.
  const setup = offer.dtlsParameters.role === 'client' ? 'passive' : 'active';
  const accepted = answered.filter((a) => a.accepted).map((a) => a.section.mid);
  const media = answered.map(({ section, accepted: ok, sending, ptimeMs }): Media => {
    const offered = section.media;
    if (!ok) {
      return { type: section.kind, port: 0, protocol: offered.protocol, payloads: String(offered.rtp?.[0]?.payload ?? 0), rtp: [], fmtp: [], mid: section.mid, direction: 'inactive' };
    }
    const keep = new Set(ok.payloadTypes);
    const answerDirection = section.direction === 'sendonly' ? 'recvonly' : section.direction === 'recvonly' ? 'sendonly' : section.direction;
    const m: Media = {
      type: section.kind,
      port: 9,
      protocol: 'UDP/TLS/RTP/SAVPF',
      payloads: ok.payloadTypes.join(' '),
      connection: { version: 4, ip: '0.0.0.0' },
      rtcp: { port: 9, netType: 'IN', ipVer: 4, address: '0.0.0.0' },
      rtp: (offered.rtp ?? []).filter((r) => keep.has(r.payload)),
      fmtp: (offered.fmtp ?? []).filter((f) => keep.has(f.payload)),
      rtcpFb: (offered.rtcpFb ?? []).filter((f) => keep.has(Number(f.payload))),
      ext: ok.extensions.map((e) => ({ value: e.id, uri: e.uri })),
      mid: section.mid,
      direction: answerDirection,
      rtcpMux: 'rtcp-mux',
      iceUfrag: transport.iceParameters.usernameFragment,
      icePwd: transport.iceParameters.password,
      fingerprint: { type: fingerprint.algorithm, hash: fingerprint.value },
      setup,
      candidates: transport.iceCandidates.map((c, i) => ({
        foundation: c.foundation,
        component: 1,
        transport: c.protocol,
        priority: c.priority,
        ip: c.address,
        port: c.port,
        type: c.type,
        ...(c.tcpType ? { tcptype: c.tcpType } : {}),
        generation: 0,
        'network-id': i,
      })),
      endOfCandidates: 'end-of-candidates',
    };
    if (offered.rtcpRsize) m.rtcpRsize = 'rtcp-rsize';
    if (ptimeMs !== undefined) m.ptime = ptimeMs;
    const sendRids = (offered.rids ?? []).filter((r) => r.direction === 'send');
    if (section.kind === 'video' && sendRids.length > 0) {
      m.rids = sendRids.map((r) => ({ id: r.id, direction: 'recv' }));
      m.simulcast = { dir1: 'recv', list1: sendRids.map((r) => r.id).join(';') };
    }
    if (sending) {
      m.ssrcs = [
        { id: sending.ssrc, attribute: 'cname', value: sending.cname },
        ...(sending.rtxSsrc !== undefined ? [{ id: sending.rtxSsrc, attribute: 'cname', value: sending.cname }] : []),
      ];
      if (sending.rtxSsrc !== undefined) m.ssrcGroups = [{ semantics: 'FID', ssrcs: `${sending.ssrc} ${sending.rtxSsrc}` }];
    }
    return m;
  });
  return sdpTransform.write({
    version: 0,
    origin: { username: 'chorus', sessionId: Date.now(), sessionVersion: 1, netType: 'IN', ipVer: 4, address: '0.0.0.0' },
    name: '-',
    timing: { start: 0, stop: 0 },
    icelite: 'ice-lite',
    groups: accepted.length > 0 ? [{ type: 'BUNDLE', mids: accepted.join(' ') }] : [],
    msidSemantic: { semantic: 'WMS', token: '*' },
    media,
  } as sdpTransform.SessionDescription);
}
