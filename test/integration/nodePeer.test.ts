/**
 * The Node WebRTC peer every SDK test and benchmark runs on. @roamhq/wrtc's `localDescription`
 * getter serializes libwebrtc's live description while libwebrtc's signaling thread adds gathered
 * ICE candidates to it; the race segfaults the process now and then (reproduced with a loop that
 * reads it during gathering: SIGSEGV in webrtc::SdpSerialize after ~2,600 offers). The peer
 * connection the tests install must therefore answer with the description it was given, never
 * with the native one that gathering keeps changing.
 */
import wrtc from '@roamhq/wrtc';
import { expect, test } from 'vitest';
import { pinnedLocalDescription } from '../support/nodePeer.js';
import { until } from '../support/testNode.js';

async function gatheredOffer(pc: InstanceType<typeof wrtc.RTCPeerConnection>): Promise<string> {
  pc.addTransceiver('audio', { direction: 'sendonly' });
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await until(() => pc.iceGatheringState === 'complete', 10_000, 'ICE gathering to complete');
  return offer.sdp!;
}

test('the native description changes under the reader while ICE gathers (what the pinned one avoids)', async () => {
  const raw = new wrtc.RTCPeerConnection();
  try {
    const set = await gatheredOffer(raw);
    // libwebrtc added the host candidates it gathered to the description after it was set.
    expect(set).not.toMatch(/a=candidate:/);
    expect(raw.localDescription!.sdp).toMatch(/a=candidate:/);
  } finally {
    raw.close();
  }
});

test("the tests' peer connection answers localDescription with the description it set, without reading the native one", async () => {
  const PeerConnection = pinnedLocalDescription(wrtc.RTCPeerConnection);
  const pc = new PeerConnection();
  try {
    expect(pc.localDescription).toBeNull();
    const set = await gatheredOffer(pc);
    expect(pc.localDescription).toMatchObject({ type: 'offer', sdp: set });
    // Everything else is the real peer connection's.
    expect(pc.signalingState).toBe('have-local-offer');
    expect(pc.getTransceivers()).toHaveLength(1);
    expect(pc).toBeInstanceOf(wrtc.RTCPeerConnection);
    // libwebrtc inventing the description is the one case it cannot pin: refused, not raced.
    await expect((pc.setLocalDescription as () => Promise<void>)()).rejects.toThrow(/needs the description/);
  } finally {
    pc.close();
  }
});
