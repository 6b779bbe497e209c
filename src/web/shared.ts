/**
 * Helpers shared by the Chorus pages: element lookup, plain-words errors, the audio level meter,
 * copy-to-clipboard and the read-only `window.chorusDebug` object tests read.
 */
import { ChorusClientError } from '@chorus-rtc/client';

/** What tests (and curious people in the console) can read; never written to by the page's users. */
export type ChorusDebug = Readonly<Record<string, unknown>>;

declare global {
  interface Window {
    readonly chorusDebug?: ChorusDebug;
  }
}

/** Defines `window.chorusDebug` once: a frozen object whose getters read the page's live state. */
export function exposeDebug(debug: object): void {
  Object.defineProperty(window, 'chorusDebug', { value: Object.freeze(debug), writable: false, configurable: false, enumerable: false });
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`page is missing #${id}`);
  return element as T;
}

const loopback = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;

/**
 * The origin shareable links are built on: the page's own, unless it was opened on loopback and
 * the node knows an address others reach it at (its LAN or public URL, from /api/config).
 */
export function shareOrigin(publicUrl: string | undefined): string {
  if (!publicUrl || !loopback.test(location.hostname)) return location.origin;
  try {
    const url = new URL(publicUrl);
    return loopback.test(url.hostname) ? location.origin : url.origin;
  } catch {
    return location.origin;
  }
}

/** Room and token from the page address (?room=R&token=T), or what is missing. */
export function linkParams(): { roomId: string; token: string } | { missing: string[] } {
  const params = new URLSearchParams(location.search);
  const roomId = params.get('room') ?? '';
  const token = params.get('token') ?? '';
  const missing = [...(roomId ? [] : ['room']), ...(token ? [] : ['token'])];
  return missing.length ? { missing } : { roomId, token };
}

const errorWords: Record<string, string> = {
  TOKEN_INVALID: 'This link is not valid. Ask whoever sent it for a new one.',
  TOKEN_EXPIRED: 'This link has expired. Ask whoever sent it for a new one.',
  TOKEN_WRONG_ROOM: 'This link belongs to a different room. Check that you opened the whole link.',
  TOKEN_USED: 'This link has already been used. A broadcaster link works once: ask for a new one (a reload in the same tab keeps working).',
  UNAUTHORIZED: 'This link is not accepted by the server. Ask whoever sent it for a new one.',
  FORBIDDEN_ROLE: 'This link does not allow that. A listener link cannot be used to broadcast.',
  KICKED: 'A moderator removed you from this room.',
  ROOM_ENDED: 'The broadcast has ended. Thank you for listening.',
  MUTED: 'A moderator muted your microphone.',
  BROADCASTER_PRESENT:
    'Someone is already broadcasting in this room (perhaps this link is open in another tab or device). Close it, wait a few seconds and try again.',
  LIMIT_REACHED: 'Many people are joining at once. Trying again in a moment…',
  ROOM_FULL: 'This room is full right now. Try again in a little while.',
  UNAVAILABLE: 'The server is busy or restarting. Trying again…',
  INTERNAL: 'The server ran into a problem. Trying again…',
  TIMEOUT: 'The server is not answering. Trying again…',
  DISCONNECTED: 'The connection to the server was lost. Trying again…',
  MEDIA_REJECTED: 'The server could not accept audio from this browser. Try an up-to-date Chrome, Firefox or Safari.',
  CANNOT_CONSUME: 'This browser cannot play the broadcast audio. Try an up-to-date Chrome, Firefox or Safari.',
  NOTHING_TO_CONSUME: 'Nothing is being sent right now (no broadcast, or nobody on the stage yet).',
  ALREADY_JOINED: 'This page is already connected.',
  NOT_JOINED: 'The connection was reset. Reload the page.',
  BAD_REQUEST: 'The server did not understand the request. Reload the page and try again.',
  NOT_FOUND: 'Not found.',
};

/** A sentence a listener or broadcaster can act on, for any error the page may meet. */
export function describeError(error: unknown): string {
  if (error instanceof ChorusClientError) {
    const code = error.code as string;
    return errorWords[code] ?? `Something went wrong (${code}). Reload the page and try again.`;
  }
  if (error instanceof DOMException || (error instanceof Error && error.name !== 'Error')) {
    switch (error.name) {
      case 'NotAllowedError':
      case 'SecurityError':
        return 'The browser did not allow the microphone. Allow it for this site (in the address bar or site settings) and press Start again.';
      case 'NotFoundError':
        return 'No microphone was found. Plug one in or pick another and press Start again.';
      case 'NotReadableError':
      case 'AbortError':
        return 'The microphone is busy or not working. Close other apps using it and press Start again.';
      case 'OverconstrainedError':
        return 'That microphone is no longer available. Pick another and press Start again.';
    }
  }
  return 'Something went wrong. Reload the page and try again.';
}

/** True for errors the SDK is already retrying: worth showing, but they clear themselves. */
export function isTransient(error: unknown): boolean {
  return error instanceof ChorusClientError && error.retryable;
}

/**
 * The session's resume token, kept per tab so a reload rejoins as the same session (broadcaster
 * links work only once). Keyed by the link, so another link never picks up a stale one.
 */
export function resumeStore(roomId: string, token: string): { get(): string | undefined; set(value: string | undefined): void } {
  const key = `chorus:resume:${roomId}:${token.slice(-24)}`;
  return {
    get() {
      try {
        return sessionStorage.getItem(key) ?? undefined;
      } catch {
        return undefined; // storage blocked (private mode): just no resume
      }
    },
    set(value) {
      try {
        if (value) sessionStorage.setItem(key, value);
        else sessionStorage.removeItem(key);
      } catch {
        // storage blocked or full: nothing to keep
      }
    },
  };
}

/** True for errors that end the session for good: the saved resume token is worthless after. */
export function endsSession(error: unknown): boolean {
  return error instanceof ChorusClientError && (error.code === 'KICKED' || error.code === 'ROOM_ENDED');
}

/** Shows a message in an alert element (or hides it when `text` is empty). */
export function showAlert(element: HTMLElement, text: string): void {
  element.textContent = text;
  element.hidden = text === '';
}

/**
 * RMS level of a MediaStream through a WebAudio AnalyserNode, sampled every 25 ms (faster than
 * the analyser window, so short sounds are never missed), drawn on a bar as dBFS.
 */
export class LevelMeter {
  readonly #context: AudioContext;
  readonly #analyser: AnalyserNode;
  readonly #samples: Float32Array<ArrayBuffer>;
  readonly #bar: HTMLElement | undefined;
  readonly #meter: HTMLElement | undefined;
  #source: MediaStreamAudioSourceNode | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #level = 0;
  #lastAria = -1;

  constructor(context: AudioContext, meter?: HTMLElement) {
    this.#context = context;
    this.#analyser = context.createAnalyser();
    this.#analyser.fftSize = 2048;
    this.#samples = new Float32Array(this.#analyser.fftSize);
    // Pulled through a silent gain to the destination: some engines only process connected graphs.
    const mute = context.createGain();
    mute.gain.value = 0;
    this.#analyser.connect(mute).connect(context.destination);
    this.#meter = meter;
    this.#bar = meter?.querySelector<HTMLElement>('span') ?? undefined;
  }

  /** Current RMS of the input, 0..1. */
  get level(): number {
    return this.#level;
  }

  attach(stream: MediaStream): void {
    this.detach();
    this.#source = this.#context.createMediaStreamSource(stream);
    this.#source.connect(this.#analyser);
    this.#timer = setInterval(() => this.#sample(), 25);
  }

  detach(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#source?.disconnect();
    this.#source = undefined;
    this.#show(0);
  }

  #sample(): void {
    this.#analyser.getFloatTimeDomainData(this.#samples);
    let sum = 0;
    for (const s of this.#samples) sum += s * s;
    this.#show(Math.min(1, Math.sqrt(sum / this.#samples.length)));
  }

  #show(level: number): void {
    this.#level = level;
    // -60 dBFS (and below) is an empty bar, 0 dBFS a full one.
    const db = level > 0 ? 20 * Math.log10(level) : -Infinity;
    const percent = Math.round(Math.max(0, Math.min(1, (db + 60) / 60)) * 100);
    if (this.#bar) this.#bar.style.width = `${percent}%`;
    if (this.#meter && Math.abs(percent - this.#lastAria) >= 5) {
      this.#lastAria = percent;
      this.#meter.setAttribute('aria-valuenow', String(percent));
    }
  }
}

/** Copies text, with a fallback for pages served over plain http (no Clipboard API there). */
export async function copyText(text: string, source?: HTMLInputElement | HTMLTextAreaElement): Promise<boolean> {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through to the selection fallback
  }
  const field = source ?? Object.assign(document.createElement('textarea'), { value: text });
  if (!source) document.body.append(field);
  field.select();
  field.setSelectionRange(0, text.length);
  let copied = false;
  try {
    copied = document.execCommand('copy');
  } catch {
    copied = false;
  }
  if (!source) field.remove();
  return copied;
}

/** Wires a copy button to a field; the button briefly says whether it worked. */
export function copyButton(button: HTMLButtonElement, field: HTMLInputElement | HTMLTextAreaElement): void {
  const label = button.textContent ?? 'Copy';
  let reset: ReturnType<typeof setTimeout> | undefined;
  button.addEventListener('click', () => {
    void copyText(field.value, field).then((ok) => {
      button.textContent = ok ? 'Copied' : 'Select and copy';
      clearTimeout(reset);
      reset = setTimeout(() => (button.textContent = label), 2000);
    });
  });
}

/** An AudioContext class for this browser (older Safari names it webkitAudioContext). */
export function newAudioContext(): AudioContext {
  const Ctor = window.AudioContext ?? (window as unknown as { webkitAudioContext: typeof AudioContext }).webkitAudioContext;
  return new Ctor();
}

/**
 * Plays `track` in `element`. A track that replaces another (a call switching between the SFU
 * and a direct link) goes into the same stream, so the element keeps playing without reloading.
 */
export function playTrack(element: HTMLMediaElement, track: MediaStreamTrack): void {
  const stream = element.srcObject instanceof MediaStream ? element.srcObject : undefined;
  if (stream) {
    if (stream.getTracks().includes(track)) return;
    stream.addTrack(track);
    for (const old of stream.getTracks()) if (old !== track) stream.removeTrack(old);
  } else element.srcObject = new MediaStream([track]);
  void element.play().catch(() => undefined);
}

/** Remote audio tracks, each in an autoplaying `<audio>` of its own (marked with its peer). */
export class RemoteAudio {
  readonly #elements = new Map<string, HTMLAudioElement>();

  play(trackId: string, peerId: string, track: MediaStreamTrack): void {
    let audio = this.#elements.get(trackId);
    if (!audio) {
      audio = Object.assign(document.createElement('audio'), { autoplay: true });
      audio.dataset['peer'] = peerId;
      document.body.append(audio);
      this.#elements.set(trackId, audio);
    }
    playTrack(audio, track);
  }

  remove(trackId: string): void {
    this.#elements.get(trackId)?.remove();
    this.#elements.delete(trackId);
  }

  clear(): void {
    for (const trackId of [...this.#elements.keys()]) this.remove(trackId);
  }
}
