/**
 * The rolling live playlist a room serves. ffmpeg restarts (a crash, a hang, the broadcaster
 * pausing, stopping or coming back) each start a new run with its own segment files; this class
 * stitches the runs into one continuous playlist: media sequence numbers never go back, the
 * first segment of every later run carries EXT-X-DISCONTINUITY, and EXT-X-DISCONTINUITY-SEQUENCE
 * counts the discontinuities that have rolled off the top, so players keep their timelines
 * aligned across reloads. Written here rather than by ffmpeg's hls muxer because that muxer
 * (append_list) cannot know about discontinuities that already rolled off.
 */

export interface Segment {
  /** File name in the room directory (also the URI, relative to the playlist). */
  uri: string;
  /** Seconds. */
  duration: number;
  sequence: number;
  /** First segment of a run that follows another. */
  discontinuity: boolean;
  /** Wall-clock time of the segment's first sample (ms since epoch), approximate. */
  programDateTime: number;
}

export class RollingPlaylist {
  readonly #segments: Segment[] = [];
  #nextSequence = 0;
  #discontinuitySequence = 0;
  #runPending = false;
  #runClock: number | undefined;
  #targetDuration: number;

  constructor(
    readonly listSize: number,
    segmentSeconds: number,
  ) {
    this.#targetDuration = Math.max(1, Math.ceil(segmentSeconds));
  }

  get length(): number {
    return this.#segments.length;
  }

  get segments(): readonly Segment[] {
    return this.#segments;
  }

  get targetDuration(): number {
    return this.#targetDuration;
  }

  /** A new run begins: its first segment follows a discontinuity (unless it is the very first). */
  startRun(): void {
    this.#runPending = true;
    this.#runClock = undefined;
  }

  /**
   * Appends a finished segment seen at `nowMs`; returns the segments that rolled off the top
   * (their files can go once players no longer ask for them).
   */
  add(uri: string, duration: number, nowMs: number): Segment[] {
    const discontinuity = this.#runPending && this.#nextSequence > 0;
    // A run's clock starts at the moment its first segment was finished, minus its length; later
    // segments of the run follow on from it, so the dates are as regular as the audio.
    const programDateTime = this.#runClock ?? nowMs - duration * 1000;
    this.#runClock = programDateTime + duration * 1000;
    this.#runPending = false;
    this.#segments.push({ uri, duration, sequence: this.#nextSequence++, discontinuity, programDateTime });
    // The target duration must not change during the playlist's life, so it only ever grows
    // (a late packet can make a segment slightly longer than asked).
    this.#targetDuration = Math.max(this.#targetDuration, Math.round(duration));
    const removed = this.#segments.splice(0, Math.max(0, this.#segments.length - this.listSize));
    for (const segment of removed) if (segment.discontinuity) this.#discontinuitySequence++;
    return removed;
  }

  has(uri: string): boolean {
    return this.#segments.some((s) => s.uri === uri);
  }

  /** The playlist text; `query` (e.g. `token=…`) is appended to every segment URI. */
  render(query?: string): string {
    const first = this.#segments[0];
    const lines = [
      '#EXTM3U',
      '#EXT-X-VERSION:3',
      `#EXT-X-TARGETDURATION:${this.#targetDuration}`,
      `#EXT-X-MEDIA-SEQUENCE:${first?.sequence ?? this.#nextSequence}`,
      `#EXT-X-DISCONTINUITY-SEQUENCE:${this.#discontinuitySequence}`,
      '#EXT-X-INDEPENDENT-SEGMENTS',
    ];
    for (const segment of this.#segments) {
      if (segment.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
      lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(segment.programDateTime).toISOString()}`);
      lines.push(`#EXTINF:${segment.duration.toFixed(6)},`);
      lines.push(query ? `${segment.uri}?${query}` : segment.uri);
    }
    return `${lines.join('\n')}\n`;
  }
}
