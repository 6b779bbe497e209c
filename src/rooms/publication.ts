import type { types } from 'mediasoup';
import type { TrackInfo, TrackSource } from '../protocol/room.js';
import type { Peer } from './peer.js';

/**
 * One track a participant publishes: its producer and what it is. Muting is the producer's
 * paused state; a moderator's mute is remembered apart so the publisher cannot undo it.
 */
export class Publication {
  constructor(
    readonly peer: Peer,
    readonly source: TrackSource,
    readonly producer: types.Producer,
    /** Capture size the publisher declared (video), used to map rendered sizes to layers. */
    readonly video?: { width: number; height: number } | undefined,
  ) {}

  get id(): string {
    return this.producer.id;
  }

  get mutedByModerator(): boolean {
    return this.peer.moderatorMuted.has(this.source);
  }

  /** Spatial layers the producer sends: its simulcast encodings, or the SVC mode's S count. */
  get layers(): number {
    const encodings = this.producer.rtpParameters.encodings ?? [];
    if (this.producer.type === 'simulcast') return encodings.length;
    if (this.producer.type === 'svc') return Number(/^[LS](\d+)/.exec(encodings[0]?.scalabilityMode ?? '')?.[1] ?? 1);
    return 1;
  }

  /**
   * The height each spatial layer carries, lowest first: the capture height divided by each
   * encoding's `scaleResolutionDownBy` (by halves when the publisher did not say).
   */
  layerHeights(): number[] {
    const top = this.video?.height ?? 720;
    const encodings = this.producer.rtpParameters.encodings ?? [];
    const n = this.layers;
    return Array.from({ length: n }, (_, i) => {
      // mediasoup keeps the encodings as the client sent them, scaleResolutionDownBy included.
      const scale = this.producer.type === 'simulcast' ? (encodings[i] as { scaleResolutionDownBy?: number } | undefined)?.scaleResolutionDownBy : undefined;
      return Math.round(top / (scale ?? 2 ** (n - 1 - i)));
    });
  }

  info(): TrackInfo {
    return {
      trackId: this.id,
      source: this.source,
      kind: this.producer.kind,
      muted: this.producer.paused,
      mutedByModerator: this.mutedByModerator,
      layers: this.layers,
      ...(this.video ? { width: this.video.width, height: this.video.height } : {}),
    };
  }
}

/**
 * The spatial layer that fits a tile `height` device pixels tall: the smallest layer at least
 * that tall (a little upscaling is cheaper than the next layer's bitrate), else the top one.
 */
export function layerFor(heights: readonly number[], height: number): number {
  const fits = heights.findIndex((h) => h >= height * 0.9);
  return fits >= 0 ? fits : Math.max(0, heights.length - 1);
}
