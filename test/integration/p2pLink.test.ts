/**
 * The SDK's direct link between two call participants (src/client/p2pLink.ts) over real Node
 * WebRTC, its signals passed straight across: sources map to their own transceivers, tracks
 * publish and unpublish without renegotiating, and renegotiations that cross (both sides
 * restarting ICE at once: glare) resolve by perfect negotiation with the media still flowing.
 */
import wrtc from '@roamhq/wrtc';
import { afterEach, expect, test } from 'vitest';
import { P2pLink, type P2pFactory, type P2pSignal } from '../../src/client/p2pLink.js';
import { probeAudio, toneTrack, type AudioProbe, type ToneSource } from '../support/nodePeer.js';
import { until } from '../support/testNode.js';

const factory: P2pFactory = { RTCPeerConnection: wrtc.RTCPeerConnection as unknown as P2pFactory['RTCPeerConnection'] };
const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const fn of cleanup.splice(0)) fn();
});

function pair(): { impolite: P2pLink; polite: P2pLink; offers: { impolite: number; polite: number } } {
  const impolite = new P2pLink(factory, { iceServers: [] }, false);
  const polite = new P2pLink(factory, { iceServers: [] }, true);
  const offers = { impolite: 0, polite: 0 };
  // Delivered asynchronously, as the node's relay does: signals sent at once cross on the wire.
  const deliver = (to: P2pLink, from: 'impolite' | 'polite') => (signal: P2pSignal) => {
    if (signal.description?.type === 'offer') offers[from]++;
    setImmediate(() => void to.onSignal(signal).catch((error: unknown) => cleanupFail(error)));
  };
  impolite.on('signal', deliver(polite, 'impolite'));
  polite.on('signal', deliver(impolite, 'polite'));
  cleanup.push(() => impolite.close(), () => polite.close());
  return { impolite, polite, offers };
}

const failures: unknown[] = [];
function cleanupFail(error: unknown): void {
  failures.push(error);
}

function tone(frequency: number): ToneSource {
  const t = toneTrack(frequency);
  cleanup.push(() => t.stop());
  return t;
}

function probe(link: P2pLink, source: 'microphone' | 'screen-audio'): AudioProbe | undefined {
  const track = link.remote(source);
  if (!track) return undefined;
  const p = probeAudio(track);
  cleanup.push(() => p.stop());
  return p;
}

const hearing = (p: AudioProbe | undefined, frequency: number): boolean => p !== undefined && p.rms > 0.05 && Math.abs(p.frequency - frequency) < frequency * 0.12;

/** A connected pair, each side sending a tone on its microphone and hearing the other's. */
async function connectedPair(): Promise<ReturnType<typeof pair> & { atPolite: AudioProbe; atImpolite: AudioProbe }> {
  const linked = pair();
  const { impolite, polite } = linked;
  await impolite.setTrack('microphone', tone(300).track as never);
  await polite.setTrack('microphone', tone(500).track as never);
  impolite.start();
  await until(() => impolite.connectionState === 'connected' && polite.connectionState === 'connected', 10_000, 'the link to connect');
  await until(() => polite.remote('microphone') !== undefined && impolite.remote('microphone') !== undefined, 10_000, 'the remote tracks to arrive');
  const atPolite = probe(polite, 'microphone')!;
  const atImpolite = probe(impolite, 'microphone')!;
  await until(() => hearing(atPolite, 300) && hearing(atImpolite, 500), 10_000, 'each side to hear the other\'s microphone');
  return { ...linked, atPolite, atImpolite };
}

test('each source rides its own transceiver both ways; publishing and unpublishing need no new offer', async () => {
  const { impolite, polite, offers, atPolite, atImpolite } = await connectedPair();
  expect(offers).toEqual({ impolite: 1, polite: 0 });

  // A second audio source later: its own transceiver, no renegotiation.
  await polite.setTrack('screen-audio', tone(800).track as never);
  await until(() => impolite.remote('screen-audio') !== undefined, 10_000, 'the screen-audio transceiver\'s track');
  const screenAudio = probe(impolite, 'screen-audio');
  await until(() => hearing(screenAudio, 800), 10_000, 'the screen audio to arrive on its own transceiver');
  expect(hearing(atImpolite, 500)).toBe(true);
  await polite.setTrack('screen-audio', null);
  await until(() => (screenAudio?.rms ?? 1) < 0.01 || screenAudio!.frames === 0, 10_000, 'the unpublished source to fall silent');
  expect(offers).toEqual({ impolite: 1, polite: 0 });
  expect(failures).toEqual([]);
});

test('both sides restarting ICE at once (offers crossing) settle by perfect negotiation, media flowing', async () => {
  const { impolite, polite, offers, atPolite, atImpolite } = await connectedPair();
  impolite.restartIce();
  polite.restartIce();
  await until(() => offers.impolite >= 2, 10_000, 'the impolite side to offer again');
  // The polite side's offer either crossed it (then the polite side rolled back and answered) or
  // was still being made when the other's arrived (then it was dropped as stale: the answer
  // restarted its ICE too). Either way the impolite side's offer wins and both settle.
  await until(() => impolite.connectionState === 'connected' && polite.connectionState === 'connected', 10_000, 'the link to be connected after the glare');
  const framesBefore = [atPolite!.frames, atImpolite!.frames];
  await until(() => atPolite!.frames > framesBefore[0]! + 50 && atImpolite!.frames > framesBefore[1]! + 50, 10_000, 'media to keep flowing both ways');
  expect(hearing(atPolite, 300) && hearing(atImpolite, 500)).toBe(true);
  expect(failures).toEqual([]);
});
