/**
 * Plays a room's HLS playlist (ChorusClient.hlsUrl) in an <audio> element: hls.js over Media
 * Source Extensions where available, the browser's own HLS (Safari, iOS) otherwise. Browser
 * only; kept out of chorusClient.ts so the SDK still runs in Node.
 *
 * A live playlist can be briefly unavailable (nothing broadcast yet: NOTHING_TO_CONSUME; HLS
 * starting: UNAVAILABLE), so fatal network errors are retried every few seconds rather than
 * given up on.
 *
 * @module @chorus-rtc/client/hls
 */
import type Hls from 'hls.js';

export interface HlsPlayback {
  /** 'hls.js' (Media Source Extensions; the library is loaded on first use) or 'native' (Safari, iOS). */
  readonly engine: 'hls.js' | 'native';
  stop(): void;
}

export interface HlsPlayOptions {
  /** Called with a short description whenever loading fails (and is retried). */
  onTrouble?(what: string): void;
  retryMs?: number;
}

/** Whether hls.js can play here: it needs Media Source Extensions. */
function mediaSourceAvailable(): boolean {
  const g = globalThis as { MediaSource?: unknown; ManagedMediaSource?: unknown };
  return g.MediaSource !== undefined || g.ManagedMediaSource !== undefined;
}

/**
 * Plays `url` in `media`. hls.js (its own chunk, the largest part of a page's script) is fetched only here, when a
 * page first falls back to HLS: an application whose listeners all connect over WebRTC never
 * loads it.
 */
export function playHls(media: HTMLMediaElement, url: string, options: HlsPlayOptions = {}): HlsPlayback {
  const retryMs = options.retryMs ?? 3000;
  // A MediaStream left on the element would win over the HLS source.
  media.srcObject = null;
  /** The browser's own HLS player (Safari, iOS). */
  const native = (): void => {
    media.src = url;
    void media.play().catch(() => undefined);
  };
  if (!mediaSourceAvailable()) {
    native();
    return {
      engine: 'native',
      stop() {
        media.pause();
        media.removeAttribute('src');
        media.load();
      },
    };
  }
  let hls: Hls | undefined;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const start = (Library: typeof Hls): void => {
    const instance = new Library({
      // The pages' CSP allows no blob: workers; transmuxing a mono AAC stream on the main thread is cheap.
      enableWorker: false,
      // Three 1 s segments behind the live edge: a little latency for resilience on poor networks.
      liveSyncDurationCount: 3,
      liveMaxLatencyDurationCount: 8,
    });
    hls = instance;
    instance.on(Library.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      if (data.type === Library.ErrorTypes.MEDIA_ERROR) {
        instance.recoverMediaError();
        return;
      }
      options.onTrouble?.(`${data.type}: ${data.details}`);
      instance.destroy();
      if (hls === instance) hls = undefined;
      if (!stopped) retry = setTimeout(() => start(Library), retryMs);
    });
    instance.on(Library.Events.MANIFEST_PARSED, () => void media.play().catch(() => undefined));
    instance.loadSource(url);
    instance.attachMedia(media);
  };
  const load = (): void => {
    import('hls.js').then(
      ({ default: Library }) => {
        if (stopped) return;
        if (Library.isSupported()) return start(Library);
        // Media Source Extensions without the codecs hls.js needs: the browser's own player.
        native();
      },
      (error: unknown) => {
        options.onTrouble?.(`hls.js could not be loaded: ${String(error)}`);
        if (!stopped) retry = setTimeout(load, retryMs);
      },
    );
  };
  load();
  return {
    engine: 'hls.js',
    stop() {
      stopped = true;
      clearTimeout(retry);
      hls?.destroy();
      hls = undefined;
      media.removeAttribute('src');
      media.load();
    },
  };
}
