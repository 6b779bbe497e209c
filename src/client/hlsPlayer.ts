/**
 * Plays a room's HLS playlist (ChorusClient.hlsUrl) in an <audio> element: hls.js over Media
 * Source Extensions where available, the browser's own HLS (Safari, iOS) otherwise. Browser
 * only; kept out of chorusClient.ts so the SDK still runs in Node.
 *
 * A live playlist can be briefly unavailable (nothing broadcast yet: NOTHING_TO_CONSUME; HLS
 * starting: UNAVAILABLE), so fatal network errors are retried every few seconds rather than
 * given up on.
 */
import Hls from 'hls.js';

export interface HlsPlayback {
  /** 'hls.js' or 'native'. */
  readonly engine: 'hls.js' | 'native';
  stop(): void;
}

export interface HlsPlayOptions {
  /** Called with a short description whenever loading fails (and is retried). */
  onTrouble?(what: string): void;
  retryMs?: number;
}

export function playHls(audio: HTMLMediaElement, url: string, options: HlsPlayOptions = {}): HlsPlayback {
  const retryMs = options.retryMs ?? 3000;
  // A MediaStream left on the element would win over the HLS source.
  audio.srcObject = null;
  if (!Hls.isSupported()) {
    audio.src = url;
    void audio.play().catch(() => undefined);
    return {
      engine: 'native',
      stop() {
        audio.pause();
        audio.removeAttribute('src');
        audio.load();
      },
    };
  }
  let hls: Hls | undefined;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const start = (): void => {
    const instance = new Hls({
      // The pages' CSP allows no blob: workers; transmuxing a mono AAC stream on the main thread is cheap.
      enableWorker: false,
      // Three 1 s segments behind the live edge: a little latency for resilience on poor networks.
      liveSyncDurationCount: 3,
      liveMaxLatencyDurationCount: 8,
    });
    hls = instance;
    instance.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        instance.recoverMediaError();
        return;
      }
      options.onTrouble?.(`${data.type}: ${data.details}`);
      instance.destroy();
      if (hls === instance) hls = undefined;
      if (!stopped) retry = setTimeout(start, retryMs);
    });
    instance.on(Hls.Events.MANIFEST_PARSED, () => void audio.play().catch(() => undefined));
    instance.loadSource(url);
    instance.attachMedia(audio);
  };
  start();
  return {
    engine: 'hls.js',
    stop() {
      stopped = true;
      clearTimeout(retry);
      hls?.destroy();
      hls = undefined;
      audio.removeAttribute('src');
      audio.load();
    },
  };
}
