/**
 * Call participants for tests: the real CallClient SDK over Node WebRTC, each sending a tone of
 * its own frequency (and, when asked, a video of its own colour), so a receiver can tell by what
 * it decodes whose media it got.
 */
import type { ChorusNode } from '../../src/app.js';
import { CallClient, type CallClientOptions, type RemoteTrack } from '../../src/client/callClient.js';
import type { Role } from '../../src/protocol/messages.js';
import { probeAudio, toneTrack, webrtcHandlerFactory, type AudioProbe, type ToneSource } from './nodePeer.js';

export interface CallPeer {
  client: CallClient;
  identity: string;
  frequency: number;
  tone: ToneSource;
  /** Audio probes of the remote microphones this peer decodes, by the sender's peer id. */
  heard: Map<string, AudioProbe>;
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
  options: { role?: Role; token?: string; extra?: Partial<CallClientOptions> } = {},
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
  const listen = (track: RemoteTrack): void => {
    if (track.source !== 'microphone' || !track.mediaTrack) return;
    heard.get(track.peerId)?.stop();
    heard.set(track.peerId, probeAudio(track.mediaTrack));
  };
  client.on('tracksubscribed', listen);
  client.on('trackunsubscribed', (track) => {
    if (track.source !== 'microphone') return;
    heard.get(track.peerId)?.stop();
    heard.delete(track.peerId);
  });
  const close = async (): Promise<void> => {
    await client.close();
    tone.stop();
    for (const probe of heard.values()) probe.stop();
    heard.clear();
  };
  try {
    await client.join();
    await client.publish(tone.track, 'microphone');
  } catch (error) {
    await close();
    throw error;
  }
  return { client, identity, frequency, tone, heard, close };
}

/**
 * Whether `peer` decodes `from`'s tone (within 12% of its frequency, and not silence). The probe
 * counts zero crossings per 10 ms frame, so it resolves 100 Hz steps: give peers tones that are
 * multiples of 100 Hz.
 */
export function hears(peer: CallPeer, from: CallPeer): boolean {
  const fromId = from.client.peerId;
  const probe = fromId ? peer.heard.get(fromId) : undefined;
  return probe !== undefined && probe.rms > 0.05 && Math.abs(probe.frequency - from.frequency) < from.frequency * 0.12;
}
