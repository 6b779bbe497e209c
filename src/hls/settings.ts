/** HLS fallback settings (from CHORUS_HLS_* in src/config/config.ts). */
export interface HlsSettings {
  /** Root of the HLS files: `<dir>/<nodeId>/<room>/`. */
  dir: string;
  /** The ffmpeg binary (Debian's package). */
  ffmpeg: string;
  /** Target segment length (≤ 2 s keeps HLS latency low). */
  segmentSeconds: number;
  /** Segments the rolling playlist lists; what is older is deleted. */
  listSize: number;
  /** Run HLS for every live broadcast on this node, not only once someone asks. */
  always: boolean;
  /** Stop a room's HLS (and delete its files) after no fetch for this long. */
  idleMs: number;
  /** How long a first request waits for the first segment. */
  startTimeoutMs: number;
  /** A live run without a new segment for this long is hung and restarted. */
  stallMs: number;
  /** Consecutive failed runs before the room's HLS gives up (until requested again). */
  maxRestarts: number;
  /** A player counts as a viewer for this long after its last playlist fetch. */
  viewerWindowMs: number;
}
