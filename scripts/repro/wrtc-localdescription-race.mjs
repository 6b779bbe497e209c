// Reproduces the @roamhq/wrtc crash behind a test fork that "exited unexpectedly": reading
// pc.localDescription while libwebrtc's signaling thread adds gathered ICE candidates to it
// segfaults in webrtc::SdpSerialize now and then. Not a test (it crashes the process); run it by
// hand when the Node peer or wrtc changes:
//   node --import tsx scripts/repro/wrtc-localdescription-race.mjs 8000        # raw wrtc: SIGSEGV
//   node --import tsx scripts/repro/wrtc-localdescription-race.mjs 8000 pinned # the tests' peer: completes
// Bounded: ITER offers, each read for 20 ms, all on loopback (no ICE servers).
import wrtc from '@roamhq/wrtc';

const iterations = Number(process.argv[2] ?? 8000);
const pinned = process.argv[3] === 'pinned';
const { pinnedLocalDescription } = await import('../../test/support/nodePeer.ts');
const PeerConnection = pinned ? pinnedLocalDescription(wrtc.RTCPeerConnection) : wrtc.RTCPeerConnection;
let reads = 0;
for (let i = 0; i < iterations; i++) {
  const pc = new PeerConnection();
  pc.addTransceiver('audio', { direction: 'sendonly' });
  pc.addTransceiver('video', { direction: 'recvonly' });
  await pc.setLocalDescription(await pc.createOffer());
  const until = Date.now() + 20;
  while (Date.now() < until) {
    if (pc.localDescription.sdp.length > 0) reads++;
    await new Promise((resolve) => setImmediate(resolve));
  }
  pc.close();
  if (i % 500 === 0) console.log(`${pinned ? 'pinned' : 'raw'}: offer ${i}, ${reads} reads`);
}
console.log(`${pinned ? 'pinned' : 'raw'}: ${iterations} offers, ${reads} reads, no crash`);
process.exit(0);
