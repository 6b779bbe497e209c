/**
 * Video for Node WebRTC peers in tests: a live track of one solid colour per sender, and a probe
 * that reads what a receiver decodes (frame size, mean colour), so a test can tell whose video it
 * got and which simulcast layer (by its width) the SFU sends.
 */
import wrtc from '@roamhq/wrtc';

export interface Rgb {
  r: number;
  g: number;
  b: number;
}

/** Colours far apart in U/V, so VP8 at any layer keeps them distinguishable. */
export const palette = {
  red: { r: 220, g: 30, b: 30 },
  green: { r: 30, g: 200, b: 40 },
  blue: { r: 30, g: 40, b: 220 },
  yellow: { r: 230, g: 220, b: 30 },
  magenta: { r: 210, g: 30, b: 210 },
  cyan: { r: 30, g: 210, b: 220 },
} as const satisfies Record<string, Rgb>;

/** BT.601 studio range, as libwebrtc's I420 carries it. */
export function toYuv({ r, g, b }: Rgb): { y: number; u: number; v: number } {
  return {
    y: Math.round(16 + 0.257 * r + 0.504 * g + 0.098 * b),
    u: Math.round(128 - 0.148 * r - 0.291 * g + 0.439 * b),
    v: Math.round(128 + 0.439 * r - 0.368 * g - 0.071 * b),
  };
}

export interface VideoSource {
  track: MediaStreamTrack;
  stop(): void;
}

/**
 * A live `width`×`height` track of one colour, at `fps` frames a second. With `grain`, each
 * frame's luma gets fresh random noise of that amplitude: the encoder then spends its whole
 * bitrate, as on a real camera (a flat colour costs a few kbit/s at any size), while the average
 * colour stays the same.
 */
export function colourTrack(colour: Rgb, width: number, height: number, fps = 15, grain = 0): VideoSource {
  const source = new wrtc.nonstandard.RTCVideoSource();
  const track = source.createTrack();
  const { y, u, v } = toYuv(colour);
  const luma = width * height;
  const chroma = (width / 2) * (height / 2);
  const data = new Uint8Array(luma + 2 * chroma);
  data.fill(y, 0, luma);
  data.fill(u, luma, luma + chroma);
  data.fill(v, luma + chroma);
  const noise = grain > 0 ? new Uint8Array(luma) : undefined;
  const timer = setInterval(() => {
    if (noise) {
      crypto.getRandomValues(noise.subarray(0, Math.min(luma, 65_536)));
      // Fresh noise per frame, cheaply: one 64 KiB random block at a rotating offset.
      const shift = Math.floor(Math.random() * 65_536);
      for (let i = 0; i < luma; i++) data[i] = Math.max(0, Math.min(255, y + (((noise[(i + shift) & 0xffff] ?? 0) * grain) >> 8) - (grain >> 1)));
    }
    source.onFrame({ width, height, data });
  }, Math.round(1000 / fps));
  return {
    track: track as unknown as MediaStreamTrack,
    stop() {
      clearInterval(timer);
      track.stop();
    },
  };
}

export interface VideoProbe {
  frames: number;
  width: number;
  height: number;
  /** Mean Y, U, V of the last frame, sampled on a grid. */
  yuv: { y: number; u: number; v: number };
  stop(): void;
}

/** Reads what a received video track decodes to. */
export function probeVideo(track: MediaStreamTrack): VideoProbe {
  const sink = new wrtc.nonstandard.RTCVideoSink(track as never);
  const probe: VideoProbe = { frames: 0, width: 0, height: 0, yuv: { y: 0, u: 0, v: 0 }, stop: () => sink.stop() };
  sink.onframe = ({ frame }: { frame: { width: number; height: number; data: Uint8Array } }) => {
    const { width, height, data } = frame;
    const luma = width * height;
    const cw = width / 2;
    const chroma = cw * (height / 2);
    let y = 0;
    let u = 0;
    let v = 0;
    let n = 0;
    // An 8×8 grid over the frame is plenty for a solid colour and costs nothing per frame.
    for (let gy = 1; gy <= 8; gy++) {
      for (let gx = 1; gx <= 8; gx++) {
        const px = Math.floor((gx * width) / 9);
        const py = Math.floor((gy * height) / 9);
        const c = Math.floor(py / 2) * cw + Math.floor(px / 2);
        y += data[py * width + px] ?? 0;
        u += data[luma + c] ?? 0;
        v += data[luma + chroma + c] ?? 0;
        n++;
      }
    }
    probe.frames++;
    probe.width = width;
    probe.height = height;
    probe.yuv = { y: y / n, u: u / n, v: v / n };
  };
  return probe;
}

/** Whether the probe's last frame is `colour` (chroma within `tolerance`; luma within twice that). */
export function colourMatches(probe: VideoProbe, colour: Rgb, tolerance = 20): boolean {
  if (probe.frames === 0) return false;
  const want = toYuv(colour);
  return Math.abs(probe.yuv.u - want.u) <= tolerance && Math.abs(probe.yuv.v - want.v) <= tolerance && Math.abs(probe.yuv.y - want.y) <= 2 * tolerance;
}
