/** What bench/call.ts and its load-generator processes (SDK or light participants) say over IPC. */

export interface ParticipantsConfig {
  url: string;
  secret: string;
  /** Each with its token when the parent minted it (a cluster's keys); else minted with `secret`. */
  participants: Array<{ room: string; identity: string; token?: string | undefined }>;
  video: boolean;
  width: number;
  height: number;
  fps: number;
  /** Grid policy: the rendered size of a tile, and of the active speaker's. */
  tile: { width: number; height: number };
  speaker: { width: number; height: number };
  /**
   * Light participants: their role. A class's teacher publishes like a call's participant; a
   * student joins receive-only and sends transport-cc feedback, so the node's layer policy has an
   * estimate to decide by. Default: a call's participant.
   */
  role?: 'participant' | 'teacher' | 'student' | undefined;
  /** Light participants: the pre-encoded files they send (bench/lib/lightMedia.ts). */
  media?: { videoFiles: string[]; audioFile: string } | undefined;
}

export type ToParent =
  | { type: 'joined'; identity: string; joinMs: number; allMediaMs: number | null; error?: string }
  | {
      type: 'measured';
      latencies: number[];
      /** Light participants: every packet's age in µs, audio and video apart (HdrHistogram, compressed base64). */
      latencyHistograms?: { audio: string; video: string };
      /** Light participants: packets received without their abs-capture-time (not in the histograms). */
      missingCaptureTime?: number;
      /** Light participants: tracks published after they joined that they failed to subscribe to. */
      subscribeFailures?: number;
      frames: number;
      freezes: number;
      /** Light publishers: per video layer, the payload bitrate sent and the keyframe requests received in the window. */
      sentLayers?: Array<{ kbps: number; keyframeRequests: number }> | undefined;
      /** Light participants: how many of them had at least one freeze in the window. */
      frozenParticipants?: number;
      /**
       * Light participants, per video they receive at the end of the window: the spatial layer the
       * node last said it forwards (`consumer:layers`; "none" = paused or not told), and the width
       * of the last keyframe that arrived (what was really received).
       */
      spatialLayers?: Record<string, number>;
      keyframeWidths?: Record<string, number>;
      packetsReceived: number;
      packetsLost: number;
      streams: number;
      bytesReceived: number;
      windowMs: number;
    }
  | { type: 'closed' };

export type FromParent = { type: 'join' } | { type: 'measure-start' } | { type: 'measure-stop' } | { type: 'close' };
