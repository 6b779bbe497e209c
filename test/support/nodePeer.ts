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

const SAMPLE_RATE = 48000;
const FRAME = SAMPLE_RATE / 100; // wrtc takes 10 ms frames

/** A mono sine tone as a live track. */
export function toneTrack(frequency = 440, amplitude = 0.5): ToneSource {
  const source = new wrtc.nonstandard.RTCAudioSource();
  const track = source.createTrack();
  let phase = 0;
  const samples = new Int16Array(FRAME);
  const step = (2 * Math.PI * frequency) / SAMPLE_RATE;
  const push = (): void => {
    for (let i = 0; i < FRAME; i++) {
      samples[i] = Math.round(Math.sin(phase) * amplitude * 32767);
      phase += step;
    }
    source.onData({ samples, sampleRate: SAMPLE_RATE, bitsPerSample: 16, channelCount: 1, numberOfFrames: FRAME });
  };
  const timer = setInterval(push, 10);
  return {
    track: track as unknown as MediaStreamTrack,
    stop() {
      clearInterval(timer);
      track.stop();
    },
  };
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
