/** What the benchmark parent and its load-generator children say to each other over IPC. */

/** Handed to a listener process as its single argument (JSON). */
export interface ListenerProcConfig {
  proc: number;
  url: string;
  roomId: string;
  /** HS256 secret the node was started with: each listener mints its own token. */
  secret: string;
  /** Global listener indices this process runs. */
  indices: number[];
  /** Listener i starts at startAt + i * staggerMs (startAt arrives with the 'start' message). */
  staggerMs: number;
  /** RMS (0..1) a decoded frame must exceed to count as "hearing the broadcast". */
  rmsThreshold: number;
  joinTimeoutMs: number;
  /** Keep decoding audio through the steady state (costs load-generator CPU) or stop at first sound. */
  keepSinks: boolean;
  /**
   * Which listener runs: the real SDK on libwebrtc (decodes audio) or a minimal signaling client
   * on werift (ICE/DTLS/SRTP only, counts RTP without decoding).
   */
  peer: PeerImpl;
  /**
   * `short`: join brings the transport and consumers start flowing (join → consume →
   * connectTransport); `classic`: join → createTransport → consume → connectTransport →
   * resumeConsumer, as before the short path existed.
   */
  signaling: SignalingPath;
  /**
   * werift listeners: run werift as shipped, with its fixed 100 ms pause before the DTLS
   * ClientHello and its slow RTP header parser (both replaced by default, see weriftDtlsStart.ts
   * and weriftFastRtp.ts).
   */
  weriftStock: boolean;
}

export const signalingPaths = ['short', 'classic'] as const;
export type SignalingPath = (typeof signalingPaths)[number];

export const peerImpls = ['wrtc', 'werift'] as const;
export type PeerImpl = (typeof peerImpls)[number];

export interface BroadcasterProcConfig {
  url: string;
  roomId: string;
  secret: string;
  frequency: number;
  /** What the speaker says: a steady tone, or the shipped speech sample (pauses included) on a loop. */
  source: 'tone' | 'speech';
}

/** `connected` (ICE + DTLS up) is reported by werift listeners only. */
export type JoinPhase = 'joined' | 'ice' | 'connected' | 'track' | 'audible';

export interface ListenerResult {
  index: number;
  ok: boolean;
  /** Why it failed, if it did. */
  error?: string;
  /** Token minting to first audible frame (werift: first RTP packet carrying coded audio). */
  joinMs?: number;
  /**
   * Token minting to each step. wrtc: SDK joined (transport made), track arrived, first audible
   * frame. werift: signaling done up to resumeConsumer, peer connection connected (ICE + DTLS),
   * first RTP packet, first RTP packet whose Opus payload is more than a DTX/silence frame.
   */
  phases: Partial<Record<JoinPhase, number>>;
  /** Over the steady-state window, from inbound-rtp (werift: from RTP sequence numbers). */
  packetsReceived?: number;
  packetsLost?: number;
  /** inbound-rtp jitter at the end of the window, ms (werift: RFC 3550 interarrival jitter). */
  jitterMs?: number;
  /** Lost its track or transport during the steady-state window. */
  dropped?: boolean;
}

export type ParentToChild = { type: 'start'; startAt: number } | { type: 'baseline' } | { type: 'finish' } | { type: 'close' };

export type ChildToParent =
  | { type: 'progress'; index: number; ok: boolean; joinMs?: number; error?: string }
  | { type: 'ready' }
  | { type: 'ramped' }
  | { type: 'baselined' }
  | { type: 'report'; results: ListenerResult[] }
  | { type: 'publishing' }
  /** Broadcaster: outbound-rtp packetsSent so far and 10 ms frames fed to the track so far. */
  | { type: 'sent'; packetsSent: number; framesPushed: number; framesSkipped: number }
  | { type: 'log'; message: string };
