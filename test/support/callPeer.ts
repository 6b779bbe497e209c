/**
 * Call participants for tests: the real CallClient SDK over Node WebRTC, each sending a tone of
 * its own frequency (and, when asked, a video of its own colour), so a receiver can tell by what
 * it decodes whose media it got.
 */
import type { ChorusNode } from '../../src/app.js';
import { CallClient, type CallClientOptions, type RemoteTrack } from '../../src/client/callClient.js';
import type { Role } from '../../src/protocol/messages.js';
import { probeAudio, toneTrack, webrtcHandlerFactory, type AudioProbe, type ToneSource } from './nodePeer.js';
import { colourTrack, probeVideo, type Rgb, type VideoProbe, type VideoSource } from './nodeVideo.js';

export interface CallPeer {
  client: CallClient;
  identity: string;
  frequency: number;
  tone: ToneSource;
  /** Audio probes of the remote microphones this peer decodes, by the sender's peer id. */
  heard: Map<string, AudioProbe>;
  /** Video probes of the remote videos this peer decodes, by track id. */
  seen: Map<string, { peerId: string; source: string; probe: VideoProbe }>;
  /** Its camera, when it sends one. */
  camera?: VideoSource | undefined;
  close(): Promise<void>;
}

export async function callToken(node: ChorusNode, room: string, identity: string, role: Role = 'participant'): Promise<string> {
  return node.tokens.mint({ room, identity, role, kind: 'call', name: identity });
}

/** A participant joined to `room` and publishing a `frequency` Hz tone as its microphone. */
export async function joinCallPeer(
  node: ChorusNode | string,
  room: string,
  identity: string,
  frequency: number,
  options: { role?: Role; token?: string; extra?: Partial<CallClientOptions>; camera?: { colour: Rgb; width: number; height: number; grain?: number }; receiveOnly?: boolean } = {},
): Promise<CallPeer> {
  const url = typeof node === 'string' ? node : node.url;
  const token = options.token ?? (typeof node === 'string' ? undefined : await callToken(node, room, identity, options.role));
  if (!token) throw new Error('a token is needed to join through a URL');
  const client = new CallClient({
    url,
    roomId: room,
    token,
    handlerFactory: webrtcHandlerFactory(),
    socket: { transports: ['websocket'] },
    retry: { initialMs: 100, maxMs: 1000 },
    ...options.extra,
  });
  const tone = toneTrack(frequency);
  const heard = new Map<string, AudioProbe>();
  const seen = new Map<string, { peerId: string; source: string; probe: VideoProbe }>();
  const camera = options.camera && colourTrack(options.camera.colour, options.camera.width, options.camera.height, 15, options.camera.grain ?? 0);
  const listen = (track: RemoteTrack): void => {
    if (track.kind === 'video' && track.mediaTrack) {
      seen.get(track.trackId)?.probe.stop();
      seen.set(track.trackId, { peerId: track.peerId, source: track.source, probe: probeVideo(track.mediaTrack) });
      return;
    }
    if (track.source !== 'microphone' || !track.mediaTrack) return;
    heard.get(track.peerId)?.stop();
    heard.set(track.peerId, probeAudio(track.mediaTrack));
  };
  client.on('tracksubscribed', listen);
  client.on('trackunsubscribed', (track) => {
    if (track.kind === 'video') {
      seen.get(track.trackId)?.probe.stop();
      seen.delete(track.trackId);
      return;
    }
    if (track.source !== 'microphone') return;
    heard.get(track.peerId)?.stop();
    heard.delete(track.peerId);
  });
  const close = async (): Promise<void> => {
    await client.close();
    tone.stop();
    camera?.stop();
    for (const probe of heard.values()) probe.stop();
    for (const { probe } of seen.values()) probe.stop();
    heard.clear();
    seen.clear();
  };
  try {
    await client.join();
    if (!options.receiveOnly) await client.publish(tone.track, 'microphone');
    // wrtc's tracks report a default 640×480 in getSettings(): say the real capture size.
    if (camera && options.camera) await client.publish(camera.track, 'camera', { video: { width: options.camera.width, height: options.camera.height } });
  } catch (error) {
    await close();
    throw error;
  }
  return { client, identity, frequency, tone, heard, seen, camera, close };
}

/**
 * Whether `peer` decodes `from`'s tone now (within 12% of its frequency, not silence, frames
 * still coming): give peers tones at least 100 Hz apart.
 */
export function hears(peer: CallPeer, from: CallPeer): boolean {
  const fromId = from.client.peerId;
  const probe = fromId ? peer.heard.get(fromId) : undefined;
  // Fresh frames only: figures from before a path went dead must not pass for hearing now.
  return probe !== undefined && performance.now() - probe.at < 500 && probe.rms > 0.05 && Math.abs(probe.frequency - from.frequency) < from.frequency * 0.12;
}

/** The probe of `from`'s video of `source` as `peer` decodes it, if subscribed. */
export function videoOf(peer: CallPeer, from: CallPeer, source = 'camera'): VideoProbe | undefined {
  for (const entry of peer.seen.values()) if (entry.peerId === from.client.peerId && entry.source === source) return entry.probe;
  return undefined;
}
