// Proves a mediasoup worker binary (MEDIASOUP_WORKER_BIN) works: it starts, creates a router
// and a WebRtcTransport, and, when the @roamhq/wrtc dev dependency is installed, completes
// ICE + DTLS with a real libwebrtc peer on loopback. The DTLS handshake is what crashed
// source builds against Debian's OpenSSL, so a worker that only starts proves too little.
import * as mediasoup from 'mediasoup';

const fail = (why) => { console.error(`verify-worker: ${why}`); process.exit(1); };
const timer = setTimeout(() => fail('timed out'), 20_000);

let worker;
try {
  worker = await mediasoup.createWorker({ logLevel: 'error' });
} catch (error) {
  fail(`worker did not start: ${error.message}`);
}
worker.on('died', (error) => fail(`worker died: ${error.message}`));
const router = await worker.createRouter({
  mediaCodecs: [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2 }],
});
const transport = await router.createWebRtcTransport({
  listenInfos: [{ protocol: 'udp', ip: '127.0.0.1' }],
});

let wrtc;
try {
  wrtc = (await import('@roamhq/wrtc')).default;
} catch {
  console.log(`verify-worker: ${mediasoup.version} starts (no @roamhq/wrtc: DTLS not exercised)`);
  worker.close(); clearTimeout(timer); process.exit(0);
}

const pc = new wrtc.RTCPeerConnection({ iceServers: [] });
pc.addTransceiver('audio', { direction: 'recvonly' });
const offer = await pc.createOffer();
await pc.setLocalDescription(offer);
const remoteFingerprint = /a=fingerprint:sha-256 (\S+)/.exec(offer.sdp)?.[1];
const mid = /a=mid:(\S+)/.exec(offer.sdp)?.[1] ?? '0';
const { iceParameters, iceCandidates, dtlsParameters } = transport;
const fingerprint = dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256');
const answer = [
  'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 't=0 0', 'a=ice-lite', `a=group:BUNDLE ${mid}`,
  `a=fingerprint:sha-256 ${fingerprint.value}`,
  `m=audio ${iceCandidates[0].port} UDP/TLS/RTP/SAVPF 111`, 'c=IN IP4 127.0.0.1',
  `a=mid:${mid}`, 'a=inactive', 'a=rtcp-mux', 'a=setup:passive',
  `a=ice-ufrag:${iceParameters.usernameFragment}`, `a=ice-pwd:${iceParameters.password}`,
  'a=rtpmap:111 opus/48000/2',
  ...iceCandidates.map((c) => `a=candidate:${c.foundation} 1 udp ${c.priority} ${c.address} ${c.port} typ host`),
  'a=end-of-candidates', '',
].join('\r\n');
await transport.connect({ dtlsParameters: { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: remoteFingerprint }] } });
const connected = new Promise((resolve) => {
  transport.on('dtlsstatechange', (state) => {
    if (state === 'connected') resolve();
    if (state === 'failed' || state === 'closed') fail(`DTLS ${state}`);
  });
});
await pc.setRemoteDescription({ type: 'answer', sdp: answer });
await connected;
console.log(`verify-worker: ${mediasoup.version} completed ICE + DTLS with libwebrtc`);
pc.close(); worker.close(); clearTimeout(timer);
process.exit(0);
