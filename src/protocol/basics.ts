/**
 * The protocol's constants and small rules without zod: what the client SDK needs at run time,
 * so an application's bundle carries no validation library (the schemas, which import zod, stay
 * in the other protocol modules, for the node). Those modules re-export these.
 */
import type { RecordingInfo } from './room.js';
import type { WatchState } from './watch.js';

/** The wire protocol's version: a node answers its join with it, and an SDK refuses another. */
export const PROTOCOL_VERSION = 1;

/** Where a track comes from. A participant publishes at most one track per source. */
export const trackSources = ['microphone', 'camera', 'screen', 'screen-audio'] as const;
export type TrackSource = (typeof trackSources)[number];

/** The media kind a source carries. */
export function kindOfSource(source: TrackSource): 'audio' | 'video' {
  return source === 'microphone' || source === 'screen-audio' ? 'audio' : 'video';
}

/** Where a recording's playlist is served (by the node that holds it; a room token or the API key plays it). */
export function recordingPlaylist(info: Pick<RecordingInfo, 'roomId' | 'id'>): string {
  return `/recordings/${info.roomId}/${info.id}/index.m3u8`;
}

/** Media position (seconds) at server time `at` (ms): it moves at `rate` while playing. */
export function positionAt(state: Pick<WatchState, 'position' | 'updatedAt' | 'playing' | 'rate'>, at: number): number {
  if (!state.playing) return state.position;
  return state.position + (Math.max(0, at - state.updatedAt) / 1000) * state.rate;
}

export const MAX_URL_LENGTH = 2048;

/**
 * A video address the room may point everyone at: an absolute http(s) URL, or a path on the page's
 * own origin (`/sample.webm`). Anything else (javascript:, data:, protocol-relative `//host`,
 * backslashes or control characters browsers may normalise into another origin) is refused.
 */
export function isAllowedVideoUrl(value: string): boolean {
  if (value.length === 0 || value.length > MAX_URL_LENGTH) return false;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\\s]/.test(value)) return false;
  if (value.startsWith('/')) return !value.startsWith('//');
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname.length > 0 && url.username === '' && url.password === '';
  } catch {
    return false;
  }
}
