/**
 * A WHEP player that is not Chorus code: a receive-only plain peer connection (libwebrtc in
 * Node, @roamhq/wrtc) whose offer is POSTed as is, with probes on what it receives.
 */
import wrtc from '@roamhq/wrtc';
import { pinnedLocalDescription } from '../../src/client/node.js';
import { probeVideo, type VideoProbe } from './nodeVideo.js';
import { probeAudio, type AudioProbe } from './nodePeer.js';

const PeerConnection = pinnedLocalDescription(wrtc.RTCPeerConnection, wrtc.RTCSessionDescription);

export interface WhepPlayer {
  pc: InstanceType<typeof wrtc.RTCPeerConnection>;
  offer: string;
  heard: { probe?: AudioProbe };
  seen: { probe?: VideoProbe };
  close(): void;
}

/** `kinds` in the order of its transceivers; `munge` changes its offer before it is set (another numbering). */
export async function whepPlayer(munge: (sdp: string) => string = (sdp) => sdp, kinds: Array<'audio' | 'video'> = ['audio', 'video']): Promise<WhepPlayer> {
  const pc = new PeerConnection({ bundlePolicy: 'max-bundle' });
  const made: WhepPlayer = {
    pc,
    offer: '',
    heard: {},
    seen: {},
    close: () => {
      pc.close();
      made.heard.probe?.stop();
      made.seen.probe?.stop();
    },
  };
  for (const kind of kinds) pc.addTransceiver(kind, { direction: 'recvonly' });
  pc.ontrack = (event: { track: MediaStreamTrack }) => {
    if (event.track.kind === 'audio') made.heard.probe = probeAudio(event.track);
    else made.seen.probe = probeVideo(event.track);
  };
  const offer = await pc.createOffer();
  offer.sdp = munge(offer.sdp!);
  await pc.setLocalDescription(offer);
  made.offer = offer.sdp!;
  return made;
}

/** POSTs `body` (an offer) to `/whep/<room>` of the node at `url`. */
export function postWhep(url: string, room: string, token: string | undefined, body: string, type = 'application/sdp'): Promise<Response> {
  return fetch(`${url}/whep/${room}`, { method: 'POST', headers: { 'content-type': type, ...(token ? { authorization: `Bearer ${token}` } : {}) }, body });
}
