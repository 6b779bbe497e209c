/**
 * SDP offers of plain WebRTC clients (a browser's WHIP publisher, an encoder without simulcast)
 * translated into mediasoup's terms, checked by a real router: the RTP parameters the module
 * derives must be accepted by `transport.produce()`. And the answer it writes, parsed back.
 */
import * as mediasoup from 'mediasoup';
import type { types } from 'mediasoup';
import * as sdpTransform from 'sdp-transform';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { routerCodecs } from '../../src/media/codecs.js';
import { acceptSending, parseOffer, writeAnswer, type OfferSection } from '../../src/media/sdp.js';

let worker: types.Worker;
let router: types.Router;

beforeAll(async () => {
  worker = await mediasoup.createWorker({ logLevel: 'error' });
  router = await worker.createRouter({ mediaCodecs: routerCodecs() });
});
afterAll(() => worker?.close());

const session = (media: string, extra = ''): string =>
  [
    'v=0',
    'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
    's=-',
    't=0 0',
    'a=group:BUNDLE 0 1',
    'a=extmap-allow-mixed',
    'a=msid-semantic: WMS',
    extra,
    media,
  ]
    .filter(Boolean)
    .join('\r\n') + '\r\n';

const transportLines = (mid: string): string[] => [
  'c=IN IP4 0.0.0.0',
  'a=rtcp:9 IN IP4 0.0.0.0',
  'a=ice-ufrag:Gx4b',
  'a=ice-pwd:r8Y3vAbcdefghijklmnopqrs',
  'a=ice-options:trickle',
  'a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08',
  'a=setup:actpass',
  `a=mid:${mid}`,
];

/** A browser's sending audio section: Opus (with FEC), RED, G722, PCMU. */
const audio = [
  'm=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0',
  ...transportLines('0'),
  'a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level',
  'a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
  'a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
  'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
  'a=sendonly',
  'a=msid:- 8a3c2b1e',
  'a=rtcp-mux',
  'a=rtcp-rsize',
  'a=rtpmap:111 opus/48000/2',
  'a=rtcp-fb:111 transport-cc',
  'a=fmtp:111 minptime=10;useinbandfec=1',
  'a=rtpmap:63 red/48000/2',
  'a=fmtp:63 111/111',
  'a=rtpmap:9 G722/8000',
  'a=rtpmap:0 PCMU/8000',
  'a=ssrc:1001 cname:browser-cname',
].join('\r\n');

/** A browser's sending video section in simulcast (three rids), VP8 and H264 with their RTX. */
const simulcastVideo = [
  'm=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103',
  ...transportLines('1'),
  'a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
  'a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid',
  'a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id',
  'a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id',
  'a=extmap:13 urn:example:not-a-known-extension',
  'a=sendonly',
  'a=msid:- 5d6e7f80',
  'a=rtcp-mux',
  'a=rtcp-rsize',
  'a=rtpmap:96 VP8/90000',
  'a=rtcp-fb:96 goog-remb',
  'a=rtcp-fb:96 transport-cc',
  'a=rtcp-fb:96 ccm fir',
  'a=rtcp-fb:96 nack',
  'a=rtcp-fb:96 nack pli',
  'a=rtpmap:97 rtx/90000',
  'a=fmtp:97 apt=96',
  'a=rtpmap:102 H264/90000',
  'a=rtcp-fb:102 nack',
  'a=rtcp-fb:102 nack pli',
  'a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f',
  'a=rtpmap:103 rtx/90000',
  'a=fmtp:103 apt=102',
  'a=rid:q send',
  'a=rid:h send',
  'a=rid:f send',
  'a=simulcast:send q;h;f',
].join('\r\n');

/** An encoder's video without simulcast: H264 only, its SSRC and the RTX one in a FID group. */
const h264Video = [
  'm=video 9 UDP/TLS/RTP/SAVPF 102 103',
  ...transportLines('1'),
  'a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01',
  'a=sendonly',
  'a=rtcp-mux',
  'a=rtpmap:102 H264/90000',
  'a=rtcp-fb:102 nack',
  'a=rtcp-fb:102 nack pli',
  'a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f',
  'a=rtpmap:103 rtx/90000',
  'a=fmtp:103 apt=102',
  'a=ssrc-group:FID 2001 2002',
  'a=ssrc:2001 cname:encoder',
  'a=ssrc:2002 cname:encoder',
].join('\r\n');

async function produce(section: OfferSection): Promise<types.Producer> {
  const transport = await router.createWebRtcTransport({ listenInfos: [{ protocol: 'udp', ip: '127.0.0.1' }] });
  const { rtpParameters } = acceptSending(section, router.rtpCapabilities);
  return transport.produce({ kind: section.kind, rtpParameters });
}

describe('offers translated for mediasoup', () => {
  test('a browser\'s offer: ICE, DTLS (it is the client), Opus with its feedback, VP8 simulcast by rid, and a real router produces both', async () => {
    const offer = parseOffer(session(`${audio}\r\n${simulcastVideo}`));
    expect(offer.iceParameters).toEqual({ usernameFragment: 'Gx4b', password: 'r8Y3vAbcdefghijklmnopqrs' });
    expect(offer.dtlsParameters.role).toBe('client');
    expect(offer.dtlsParameters.fingerprints[0]).toMatchObject({ algorithm: 'sha-256', value: expect.stringMatching(/^7B:8B/) });
    expect(offer.sections.map((s) => [s.mid, s.kind, s.direction])).toEqual([['0', 'audio', 'sendonly'], ['1', 'video', 'sendonly']]);

    const sound = acceptSending(offer.sections[0]!, router.rtpCapabilities);
    expect(sound.rtpParameters.codecs).toEqual([
      { mimeType: 'audio/opus', payloadType: 111, clockRate: 48000, channels: 2, parameters: { minptime: 10, useinbandfec: 1 }, rtcpFeedback: [{ type: 'transport-cc' }] },
    ]);
    expect(sound.rtpParameters.encodings).toEqual([{ ssrc: 1001 }]);
    expect(sound.rtpParameters.rtcp).toEqual({ cname: 'browser-cname', reducedSize: true });
    expect(sound.extensions.map((e) => e.id).sort()).toEqual([1, 2, 3, 4]);

    const picture = acceptSending(offer.sections[1]!, router.rtpCapabilities);
    expect(picture.payloadTypes).toEqual([96, 97]);
    expect(picture.rtpParameters.codecs[1]).toMatchObject({ mimeType: 'video/rtx', payloadType: 97, parameters: { apt: 96 } });
    expect(picture.rtpParameters.encodings).toEqual([{ rid: 'q' }, { rid: 'h' }, { rid: 'f' }]);
    // An extension the router does not know is left out.
    expect(picture.extensions.map((e) => e.uri)).not.toContain('urn:example:not-a-known-extension');
    expect(picture.extensions).toHaveLength(4);

    const [mic, camera] = await Promise.all(offer.sections.map(produce));
    expect(mic!.kind).toBe('audio');
    expect(camera!.type).toBe('simulcast');
  });

  test('an encoder\'s offer without simulcast: H264 packetization mode 1 with its SSRC and the RTX SSRC of its FID group', async () => {
    const offer = parseOffer(session(`${audio}\r\n${h264Video}`));
    const picture = acceptSending(offer.sections[1]!, router.rtpCapabilities);
    expect(picture.rtpParameters.codecs.map((c) => [c.mimeType, c.payloadType])).toEqual([['video/H264', 102], ['video/rtx', 103]]);
    expect(picture.rtpParameters.encodings).toEqual([{ ssrc: 2001, rtx: { ssrc: 2002 } }]);
    expect((await produce(offer.sections[1]!)).type).toBe('simple');
  });

  test('what cannot be served is refused with what is wrong', () => {
    const refusal = (sdp: string): [string, string] => {
      try {
        const offer = parseOffer(sdp);
        for (const s of offer.sections) acceptSending(s, router.rtpCapabilities);
      } catch (error) {
        return [(error as { code: string }).code, (error as Error).message];
      }
      return ['accepted', ''];
    };
    expect(refusal('hello')).toEqual(['BAD_REQUEST', 'not an SDP offer (it must start with v=0)']);
    expect(refusal(session(audio).replace('a=group:BUNDLE 0 1\r\n', ''))[1]).toMatch(/not in a BUNDLE group/);
    expect(refusal(session(audio).replace('a=rtcp-mux\r\n', ''))[1]).toMatch(/does not offer rtcp-mux/);
    expect(refusal(session(audio).replace(/a=fingerprint:.*\r\n/, ''))[1]).toMatch(/no DTLS fingerprint/);
    expect(refusal(session(audio).replace(/a=ice-pwd:.*\r\n/, ''))[1]).toMatch(/no ICE credentials/);
    expect(refusal(session(audio).replace('a=mid:0\r\n', ''))[1]).toMatch(/has no a=mid/);
    // One section alone (sdp-transform reads its lone mid 0 as a number).
    expect(refusal(session(audio).replace('a=group:BUNDLE 0 1', 'a=group:BUNDLE 0'))).toEqual(['accepted', '']);
    // Only codecs the router lacks.
    const g722Only = audio.replace('m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0', 'm=audio 9 UDP/TLS/RTP/SAVPF 9 0').replace(/a=rtpmap:111.*\r\na=rtcp-fb:111.*\r\na=fmtp:111.*\r\n/, '').replace(/a=rtpmap:63.*\r\na=fmtp:63.*\r\n/, '');
    expect(refusal(session(g722Only))).toEqual(['MEDIA_REJECTED', 'audio section 0: none of its codecs (G722, PCMU) is supported; offer opus']);
    const vp9Only = h264Video.replace('m=video 9 UDP/TLS/RTP/SAVPF 102 103', 'm=video 9 UDP/TLS/RTP/SAVPF 98').replace(/a=rtpmap:102 H264\/90000/, 'a=rtpmap:98 VP9/90000');
    expect(refusal(session(vp9Only))[0]).toBe('MEDIA_REJECTED');
    // H264 in packetization mode 0 is another codec for the router.
    expect(refusal(session(h264Video.replace('packetization-mode=1', 'packetization-mode=0')))[0]).toBe('MEDIA_REJECTED');
  });
});

describe('the answer', () => {
  test('keeps every section in order and its payload types, answers as receiver with the node\'s ICE-lite and DTLS, and a simulcast section\'s rids as received', async () => {
    const offer = parseOffer(session(`${audio}\r\n${simulcastVideo}`));
    const transport = await router.createWebRtcTransport({ listenInfos: [{ protocol: 'udp', ip: '127.0.0.1' }] });
    const answer = writeAnswer(offer, transport, [
      { section: offer.sections[0]!, accepted: acceptSending(offer.sections[0]!, router.rtpCapabilities) },
      { section: offer.sections[1]!, accepted: acceptSending(offer.sections[1]!, router.rtpCapabilities) },
    ]);
    const parsed = sdpTransform.parse(answer);
    expect(parsed.icelite).toBe('ice-lite');
    expect(parsed.groups).toEqual([{ type: 'BUNDLE', mids: '0 1' }]);
    expect(parsed.media.map((m) => [m.type, String(m.mid), m.direction, String(m.payloads), m.setup, m.rtcpMux])).toEqual([
      ['audio', '0', 'recvonly', '111', 'passive', 'rtcp-mux'],
      ['video', '1', 'recvonly', '96 97', 'passive', 'rtcp-mux'],
    ]);
    const video = parsed.media[1]!;
    expect(video.rids).toEqual([{ id: 'q', direction: 'recv' }, { id: 'h', direction: 'recv' }, { id: 'f', direction: 'recv' }]);
    expect(video.simulcast).toMatchObject({ dir1: 'recv', list1: 'q;h;f' });
    expect(video.iceUfrag).toBe(transport.iceParameters.usernameFragment);
    expect(video.candidates?.[0]).toMatchObject({ ip: '127.0.0.1', port: transport.iceCandidates[0]!.port, transport: 'udp', type: 'host' });
    expect(video.fingerprint?.hash).toBe(transport.dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256')!.value);
    // A section refused is kept in place with port 0, out of the bundle.
    const partly = sdpTransform.parse(writeAnswer(offer, transport, [{ section: offer.sections[0]!, accepted: acceptSending(offer.sections[0]!, router.rtpCapabilities) }, { section: offer.sections[1]! }]));
    expect(partly.media.map((m) => m.port)).toEqual([9, 0]);
    expect(String(partly.groups?.[0]?.mids)).toBe('0');
    transport.close();
  });
});
