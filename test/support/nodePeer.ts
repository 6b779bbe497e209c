/**
 * Real WebRTC in Node for tests and benchmarks: libwebrtc from @roamhq/wrtc behind
 * mediasoup-client's Chrome111 handler, so the very SDK the pages use runs here too. A
 * broadcaster sends a generated tone through RTCAudioSource; a listener decodes what arrives
 * through RTCAudioSink, so tests can check the audio is the tone and not silence.
 */
import wrtc from '@roamhq/wrtc';
import { nodeHandlerFactory, pinnedLocalDescription as pinned } from '../../src/client/node.js';
import type { types } from 'mediasoup-client';

/** The SDK's own Node entry (src/client/node.ts) on @roamhq/wrtc: what an application in Node does. */
export function webrtcHandlerFactory(): types.HandlerFactory {
  return nodeHandlerFactory(wrtc);
}

/** The SDK's peer connection that never reads wrtc's racy `localDescription` getter (see src/client/node.ts). */
export function pinnedLocalDescription(Base: typeof wrtc.RTCPeerConnection): typeof wrtc.RTCPeerConnection {
  return pinned(Base, wrtc.RTCSessionDescription);
}

export interface GatedHandler {
  factory: types.HandlerFactory;
  /** Resolves when the SDK first sets up a received stream (and is held there). */
  entered: Promise<void>;
  /** Lets that set-up, and every later one, go on. */
  open(): void;
}

/**
 * The same handler, except that the first received stream's set-up (the SDP round inside
 * `transport.consume()`) waits until the test opens the gate: news that lands during it can be
 * ordered on purpose.
 */
export function gatedHandlerFactory(): GatedHandler {
  const base = webrtcHandlerFactory();
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let entered!: () => void;
  const reached = new Promise<void>((resolve) => (entered = resolve));
  return {
    factory: {
      ...base,
      factory: (options) => {
        const handler = base.factory(options);
        const receive = handler.receive.bind(handler);
        handler.receive = async (list) => {
          entered();
          await gate;
          return receive(list);
        };
        return handler;
      },
    },
    entered: reached,
    open,
  };
}

export interface ToneSource {
  track: MediaStreamTrack;
  stop(): void;
}

/** A live audio track fed at real-time pace, and what it has been fed. */
export interface ClockedAudio extends ToneSource {
  /** 10 ms frames pushed, and frames skipped because this process ran too late to push them. */
  stats: { pushed: number; skipped: number };
}

export const SAMPLE_RATE = 48000;
/** wrtc takes 10 ms frames. */
export const FRAME = SAMPLE_RATE / 100;
/** At most this many late frames are pushed at once (200 ms of audio); older ones are skipped. */
const MAX_BURST = 20;

/**
 * A live track fed one 10 ms frame at a time by `fill`, paced by the clock rather than one frame
 * per timer tick: Node's 10 ms timers fire late, and a source pushing one frame a tick runs
 * slower than real time (97.5–97.9 frames a second here on a quiet machine, fewer on a busy one:
 * a stream of 49 packets a second where a microphone's has 50). Late frames go out in a catch-up
 * burst.
 */
export function clockedAudio(fill: (samples: Int16Array) => void): ClockedAudio {
  const source = new wrtc.nonstandard.RTCAudioSource();
  const track = source.createTrack();
  const samples = new Int16Array(FRAME);
  const stats = { pushed: 0, skipped: 0 };
  const start = performance.now();
  const push = (): void => {
    fill(samples);
    source.onData({ samples, sampleRate: SAMPLE_RATE, bitsPerSample: 16, channelCount: 1, numberOfFrames: FRAME });
    stats.pushed++;
  };
  const timer = setInterval(() => {
    let behind = Math.floor((performance.now() - start) / 10) - stats.pushed - stats.skipped;
    if (behind > MAX_BURST) {
      stats.skipped += behind - MAX_BURST;
      behind = MAX_BURST;
    }
    for (let i = 0; i < behind; i++) push();
  }, 10);
  return {
    track: track as unknown as MediaStreamTrack,
    stats,
    stop() {
      clearInterval(timer);
      track.stop();
    },
  };
}

/** A sine wave, one 10 ms frame a call (a `fill` for clockedAudio). */
export function sine(frequency: number, amplitude: number): (samples: Int16Array) => void {
  const step = (2 * Math.PI * frequency) / SAMPLE_RATE;
  let phase = 0;
  return (samples) => {
    for (let i = 0; i < FRAME; i++) {
      samples[i] = Math.round(Math.sin(phase) * amplitude * 32767);
      phase += step;
    }
  };
}

/** A mono sine tone as a live track. */
export function toneTrack(frequency = 440, amplitude = 0.5): ToneSource {
  const { track, stop } = clockedAudio(sine(frequency, amplitude));
  return { track, stop };
}

export interface AudioProbe {
  /** Frames received so far. */
  frames: number;
  /** When the last frame came (performance.now()): a receiver whose media stopped keeps its last figures. */
  at: number;
  /** RMS level (0..1) of the most recent frames. */
  rms: number;
  /** Dominant frequency estimate (Hz) from zero crossings of recent frames. */
  frequency: number;
  stop(): void;
}

/** Measures what a received audio track decodes to. */
export function probeAudio(track: MediaStreamTrack): AudioProbe {
  const sink = new wrtc.nonstandard.RTCAudioSink(track as never);
  const probe: AudioProbe = { frames: 0, at: 0, rms: 0, frequency: 0, stop: () => sink.stop() };
  sink.ondata = (data: { samples: Int16Array; sampleRate: number; channelCount: number }) => {
    const { samples, sampleRate, channelCount } = data;
    let sum = 0;
    let crossings = 0;
    let first = -1;
    let last = -1;
    let previous = 0;
    const n = samples.length / channelCount;
    for (let i = 0; i < n; i++) {
      const v = (samples[i * channelCount] ?? 0) / 32768;
      sum += v * v;
      if (i > 0 && previous < 0 && v >= 0) {
        // Where between the two samples it crossed zero: whole cycles between the first and
        // the last rising crossing over the time between them, whatever the phase the frame
        // starts at (counting crossings per frame is off by one cycle depending on it).
        const at = i - 1 + -previous / (v - previous);
        if (first < 0) first = at;
        last = at;
        crossings++;
      }
      previous = v;
    }
    probe.frames++;
    probe.at = performance.now();
    probe.rms = Math.sqrt(sum / n);
    if (probe.rms > 0.01 && crossings >= 2) probe.frequency = ((crossings - 1) * sampleRate) / (last - first);
  };
  return probe;
}
