/**
 * A direct connection between the two participants of a call, negotiated through the node's
 * relay (`p2p.signal` / `p2p:signal`).
 *
 * One transceiver per source, in a fixed order (microphone, camera, screen, screen-audio: mids 0
 * to 3), made by the offering side in its first offer: each side then puts its tracks on them
 * with replaceTrack, so publishing, unpublishing or muting a source never renegotiates, and a
 * remote track's source is its transceiver's place. Offers follow the "perfect negotiation"
 * pattern: the polite side yields (rolls back) when offers cross, the impolite side ignores the
 * other's, so glare is harmless.
 */
import { Emitter } from '@socket.io/component-emitter';
import type { P2pCandidate } from '../protocol/messages.js';
import { kindOfSource, trackSources, type TrackSource } from '../protocol/basics.js';
import { keepResolution } from './screenShare.js';

export interface P2pSignal {
  description?: { type: 'offer' | 'answer' | 'rollback'; sdp: string } | undefined;
  candidate?: P2pCandidate | null | undefined;
}

/** What a P2P connection is made with: the browser's RTCPeerConnection, or a Node WebRTC one. */
export interface P2pFactory {
  RTCPeerConnection: new (configuration?: RTCConfiguration) => RTCPeerConnection;
}

interface P2pLinkEvents {
  /** Send this to the other participant (through the node). */
  signal: (signal: P2pSignal) => void;
  /** The other participant's `source` arrived on the direct connection. */
  track: (source: TrackSource, track: MediaStreamTrack) => void;
  state: (state: RTCPeerConnectionState) => void;
}

export class P2pLink extends Emitter<P2pLinkEvents, P2pLinkEvents> {
  readonly #pc: RTCPeerConnection;
  readonly #local = new Map<TrackSource, MediaStreamTrack | null>();
  readonly #remote = new Map<TrackSource, MediaStreamTrack>();
  #makingOffer = false;
  #ignoreOffer = false;
  /** Remote descriptions applied so far: an offer made across one is stale. */
  #remoteApplied = 0;
  #closed = false;

  constructor(
    factory: P2pFactory,
    configuration: RTCConfiguration,
    /** The polite side yields when offers cross; the impolite side makes the first offer. */
    readonly polite: boolean,
  ) {
    super();
    this.#pc = new factory.RTCPeerConnection(configuration);
    this.#pc.onicecandidate = ({ candidate }) => {
      if (this.#closed) return;
      const c = candidate ? candidate.toJSON() : null;
      this.emit('signal', { candidate: c && { candidate: c.candidate ?? '', sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null, usernameFragment: c.usernameFragment ?? null } });
    };
    this.#pc.ontrack = ({ transceiver, track }) => {
      const source = trackSources[Number(transceiver.mid)];
      if (source === undefined) return;
      this.#remote.set(source, track);
      this.emit('track', source, track);
    };
    this.#pc.onconnectionstatechange = () => {
      if (!this.#closed) this.emit('state', this.#pc.connectionState);
    };
    this.#pc.onnegotiationneeded = () => void this.#offer();
  }

  get connectionState(): RTCPeerConnectionState {
    return this.#pc.connectionState;
  }

  /** The other participant's track for `source`, once it arrived. */
  remote(source: TrackSource): MediaStreamTrack | undefined {
    return this.#remote.get(source);
  }

  /** The connection's stats (what arrives on each remote track: see arrival.ts). */
  async getStats(): Promise<RTCStatsReport | undefined> {
    return this.#closed ? undefined : this.#pc.getStats();
  }

  /** Starts: the impolite side lays out the transceivers (which asks for the first offer). */
  start(): void {
    if (this.polite) return;
    for (const source of trackSources) this.#pc.addTransceiver(kindOfSource(source), { direction: 'sendrecv' });
    void this.#attachAll();
  }

  /** What this side sends for `source` (null: nothing, e.g. muted or not published). */
  async setTrack(source: TrackSource, track: MediaStreamTrack | null): Promise<void> {
    this.#local.set(source, track);
    const transceiver = this.#transceiver(source);
    if (!transceiver || this.#closed) return;
    await transceiver.sender.replaceTrack(track);
    if (source === 'screen' && track) await keepResolution(transceiver.sender, track);
  }

  async onSignal({ description, candidate }: P2pSignal): Promise<void> {
    if (this.#closed) return;
    const pc = this.#pc;
    if (description) {
      const collision = description.type === 'offer' && (this.#makingOffer || pc.signalingState !== 'stable');
      this.#ignoreOffer = !this.polite && collision;
      if (this.#ignoreOffer) return;
      // An answer to an offer of ours that is no longer pending (rolled back) has nothing to answer.
      if (description.type === 'answer' && pc.signalingState !== 'have-local-offer') return;
      // Our own offer may still be in the making (not applied yet): nothing to roll back then; it
      // is dropped below in #offer, as it was made before this one.
      if (collision && pc.signalingState === 'have-local-offer') await pc.setLocalDescription({ type: 'rollback' });
      this.#remoteApplied++;
      await pc.setRemoteDescription(description);
      if (description.type === 'offer') {
        // The offer laid out the transceivers: this side sends on them too.
        for (const transceiver of pc.getTransceivers()) if (transceiver.direction !== 'sendrecv') transceiver.direction = 'sendrecv';
        await this.#attachAll();
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        this.emit('signal', { description: { type: 'answer', sdp: answer.sdp ?? '' } });
      }
      return;
    }
    if (candidate === undefined) return;
    try {
      await pc.addIceCandidate(candidate ?? undefined);
    } catch (error) {
      // A candidate of an offer we ignored fails to apply: expected. Anything else is not.
      if (!this.#ignoreOffer) throw error;
    }
  }

  /** ICE anew on the same connection (a network change while direct). */
  restartIce(): void {
    if (!this.#closed) this.#pc.restartIce();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pc.onicecandidate = null;
    this.#pc.ontrack = null;
    this.#pc.onconnectionstatechange = null;
    this.#pc.onnegotiationneeded = null;
    this.#pc.close();
  }

  async #offer(): Promise<void> {
    if (this.#closed) return;
    try {
      this.#makingOffer = true;
      const before = this.#remoteApplied;
      const offer = await this.#pc.createOffer();
      // The other's offer came meanwhile: this one is stale (negotiation-needed fires again if
      // something is still to negotiate once that exchange is done).
      if (this.#pc.signalingState !== 'stable' || this.#remoteApplied !== before || this.#closed) return;
      await this.#pc.setLocalDescription(offer);
      this.emit('signal', { description: { type: 'offer', sdp: offer.sdp ?? '' } });
    } finally {
      this.#makingOffer = false;
    }
  }

  async #attachAll(): Promise<void> {
    for (const [source, track] of this.#local) {
      const transceiver = this.#transceiver(source);
      if (!transceiver) continue;
      await transceiver.sender.replaceTrack(track);
      if (source === 'screen' && track) await keepResolution(transceiver.sender, track);
    }
  }

  /** The transceiver carrying `source`: by mid once negotiated, by creation order before. */
  #transceiver(source: TrackSource): RTCRtpTransceiver | undefined {
    const index = trackSources.indexOf(source);
    const transceivers = this.#pc.getTransceivers();
    return transceivers.find((t) => t.mid === String(index)) ?? (transceivers.every((t) => t.mid === null) ? transceivers[index] : undefined);
  }
}
