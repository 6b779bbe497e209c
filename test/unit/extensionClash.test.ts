import { describe, expect, test } from 'vitest';
import { extensionClash, parseOffer } from '../../src/media/sdp.js';

/** A libwebrtc-shaped WHEP offer, audio before video, with MID on `midId` in both sections. */
function offer(midId: number): string {
  const common = ['a=ice-ufrag:abcd', 'a=ice-pwd:abcdefghijklmnopqrstuvwx', 'a=fingerprint:sha-256 ' + 'AB:'.repeat(31) + 'AB', 'a=setup:actpass', 'a=rtcp-mux', 'a=recvonly'];
  return [
    'v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=group:BUNDLE 0 1',
    'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0', 'a=mid:0', ...common,
    'a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level', 'a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time',
    `a=extmap:${midId} urn:ietf:params:rtp-hdrext:sdes:mid`, 'a=rtpmap:111 opus/48000/2',
    'm=video 9 UDP/TLS/RTP/SAVPF 96', 'c=IN IP4 0.0.0.0', 'a=mid:1', ...common,
    'a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time', `a=extmap:${midId} urn:ietf:params:rtp-hdrext:sdes:mid`,
    'a=rtpmap:96 VP8/90000', '',
  ].join('\r\n');
}

// What the WHEP route falls back to on a worker without patch 002 (scripts/mediasoup/patches):
// packets carry the router's extension ids, so a MID id the router uses for something else is
// unreadable and that section is declined.
describe('extensionClash, for workers that cannot renumber extensions', () => {
  test('MID on 4 clashes with the video\'s abs-send-time, not with the audio', () => {
    expect(extensionClash(parseOffer(offer(4)), 'video')).toMatch(/sdes:mid is extension 4.*abs-send-time/);
    expect(extensionClash(parseOffer(offer(4)), 'audio')).toBeUndefined();
  });

  test('MID on the router\'s own id, or on an id its packets do not use, clashes with nothing', () => {
    for (const id of [1, 9]) {
      expect(extensionClash(parseOffer(offer(id)), 'video')).toBeUndefined();
      expect(extensionClash(parseOffer(offer(id)), 'audio')).toBeUndefined();
    }
  });

  test('MID on 10 clashes with the audio\'s level', () => {
    expect(extensionClash(parseOffer(offer(10)), 'audio')).toMatch(/audio-level/);
  });
});
