// A test page: a WHIP publisher and a WHEP player built on the whip-whep package from the
// registry, with what a test reads of them (pitch and level heard, colour seen, ICE state).
import { WHIPClient } from '/whip.js';
import { WHEPClient } from '/whep.js';

const audio = new AudioContext();

// The requests the page has sent and not yet had answered. whip-whep trickles from timers it
// does not await, and its stop() sends DELETE at once: a trickle still in flight then meets a
// resource already gone (404, correct per RFC 9725) and rejects where no one catches it.
let inFlight = 0;
const send = window.fetch.bind(window);
window.fetch = async (...args) => {
  inFlight += 1;
  try {
    return await send(...args);
  } finally {
    inFlight -= 1;
  }
};

/** A steady tone and a canvas of one colour: media the test can recognise on the far side. */
function source(frequency, colour) {
  const oscillator = audio.createOscillator();
  oscillator.frequency.value = frequency;
  const destination = audio.createMediaStreamDestination();
  oscillator.connect(destination);
  oscillator.start();
  const canvas = document.createElement('canvas');
  canvas.width = 320;
  canvas.height = 180;
  const paint = canvas.getContext('2d');
  // Repainted so the captured stream keeps producing frames.
  setInterval(() => {
    paint.fillStyle = colour;
    paint.fillRect(0, 0, canvas.width, canvas.height);
  }, 50);
  return [destination.stream.getAudioTracks()[0], canvas.captureStream(15).getVideoTracks()[0]];
}

/** The answer's sections: accepted, or declined (port 0). Chromium shows a candidate's port for the first. */
const sections = (pc) => pc.remoteDescription.sdp.match(/^m=\w+ \d+/gm).map((m) => `${m.split(' ')[0]} ${m.endsWith(' 0') ? 'declined' : 'accepted'}`);

window.publish = async (url, token, frequency, colour) => {
  await audio.resume();
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
  for (const track of source(frequency, colour)) pc.addTransceiver(track, { direction: 'sendonly' });
  const whip = new WHIPClient();
  await whip.publish(pc, url, token);
  window.whip = whip;
  window.publisherPc = pc;
  return { location: whip.resourceURL.href, sections: sections(pc) };
};

window.unpublish = () => window.whip.stop();

window.play = async (url, token, kinds) => {
  await audio.resume();
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
  for (const kind of kinds) pc.addTransceiver(kind, { direction: 'recvonly' });
  const stream = new MediaStream();
  pc.ontrack = (event) => {
    stream.addTrack(event.track);
    if (event.track.kind === 'audio') {
      const analyser = audio.createAnalyser();
      analyser.fftSize = 8192;
      audio.createMediaStreamSource(new MediaStream([event.track])).connect(analyser);
      // Chromium plays a remote track into Web Audio only while an element plays it too.
      const element = new Audio();
      element.muted = true;
      element.srcObject = new MediaStream([event.track]);
      void element.play();
      window.analyser = analyser;
    } else {
      const video = document.createElement('video');
      video.muted = true;
      video.srcObject = new MediaStream([event.track]);
      document.body.append(video);
      void video.play();
      window.video = video;
    }
  };
  const whep = new WHEPClient();
  await whep.view(pc, url, token);
  window.whep = whep;
  window.playerPc = pc;
  return { location: whep.resourceURL.href, sections: sections(pc), offer: pc.localDescription.sdp };
};

/** The loudest frequency the player hears and the signal's RMS. */
window.heard = () => {
  const analyser = window.analyser;
  if (!analyser) return { frequency: 0, rms: 0 };
  const bins = new Float32Array(analyser.frequencyBinCount);
  analyser.getFloatFrequencyData(bins);
  let peak = 0;
  for (let i = 1; i < bins.length; i++) if (bins[i] > bins[peak]) peak = i;
  const samples = new Float32Array(analyser.fftSize);
  analyser.getFloatTimeDomainData(samples);
  const rms = Math.sqrt(samples.reduce((sum, s) => sum + s * s, 0) / samples.length);
  return { frequency: (peak * audio.sampleRate) / analyser.fftSize, rms };
};

/** The colour at the middle of the picture the player shows, and whether it moves on. */
window.seen = () => {
  const video = window.video;
  if (!video || video.videoWidth === 0) return undefined;
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const paint = canvas.getContext('2d');
  paint.drawImage(video, 0, 0);
  const [r, g, b] = paint.getImageData(canvas.width / 2, canvas.height / 2, 1, 1).data;
  return { r, g, b, time: video.currentTime };
};

window.restart = async () => {
  const before = window.playerPc.remoteDescription.sdp.match(/a=ice-ufrag:(\S+)/)[1];
  await window.whep.restart();
  return before;
};

window.playerState = () => ({
  ice: window.playerPc.iceConnectionState,
  ufrag: window.playerPc.remoteDescription.sdp.match(/a=ice-ufrag:(\S+)/)[1],
  restarting: Boolean(window.whep.restartIce),
});

/** Whether the player has nothing more to say: its candidates all gathered and trickled, no request unanswered. */
window.playerQuiet = () => window.playerPc.iceGatheringState === 'complete' && !window.whep.iceTrickeTimeout && !window.whep.restartIce && inFlight === 0;

window.stopPlaying = () => window.whep.stop();
