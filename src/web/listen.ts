/**
 * Listener page: one Play button (browsers only play sound after a gesture, so the click creates
 * the AudioContext, unlocks the <audio> element and joins). The SDK hands over a new track every
 * time the broadcast (re)starts; each one is played and metered without reloading.
 */
import { ChorusClient, type MediaMode } from '@chorus-rtc/client';
import { playHls, type HlsPlayback } from '@chorus-rtc/client/hls';
import {
  byId,
  describeError,
  endsSession,
  exposeDebug,
  isTransient,
  LevelMeter,
  linkParams,
  newAudioContext,
  resumeStore,
  showAlert,
} from './shared.js';

type ListenerState = 'idle' | 'connecting' | 'waiting' | 'live' | 'hls' | 'paused' | 'reconnecting' | 'stopped' | 'ended' | 'error';

/** How long WebRTC gets to bring audio before the page falls back to HLS. */
const FALLBACK_AFTER_MS = 5000;

const statusWords: Record<ListenerState, string> = {
  idle: 'Press Play to listen.',
  connecting: 'Connecting…',
  waiting: 'Waiting for the broadcast to start…',
  live: 'Live',
  hls: 'Live over HLS (a few seconds behind)',
  paused: 'The broadcaster paused. Stay here: it resumes by itself.',
  reconnecting: 'Connection lost. Reconnecting…',
  stopped: 'Stopped. Press Play to listen again.',
  ended: 'The broadcast has ended. Thank you for listening.',
  error: 'Not connected.',
};

const status = byId('status');
const playButton = byId<HTMLButtonElement>('play');
const levelEl = byId('level');
const audience = byId('audience');
const errorBox = byId('error');
const player = byId<HTMLAudioElement>('player');
const hlsNote = byId('hls-note');
const hlsText = byId('hls-text');
const webrtcButton = byId<HTMLButtonElement>('use-webrtc');

const link = linkParams();
let client: ChorusClient | undefined;
let fatal: string | undefined;
let transport = 'new';
let listeners = 0;
let track: MediaStreamTrack | undefined;
let tracks = 0;
/** Playback was refused (no gesture counted): the button asks for one more tap. */
let needsTap = false;
let audio: AudioContext | undefined;
let meter: LevelMeter | undefined;
let state: ListenerState = 'idle';
let stoppedByUser = false;
/** A moderator ended the room: nothing more to wait for. */
let ended = false;
let mode: MediaMode = 'webrtc';
let hls: HlsPlayback | undefined;
let hlsTrouble: string | undefined;

exposeDebug({
  get state() {
    return state;
  },
  get role() {
    return client?.role ?? 'listener';
  },
  /** RMS (0..1) of the received audio right now. */
  get level() {
    return meter?.level ?? 0;
  },
  /** Tracks received since Play: one more each time the broadcast (re)starts. */
  get tracks() {
    return tracks;
  },
  get listeners() {
    return listeners;
  },
  get playing() {
    return track !== undefined && !player.paused;
  },
  get transport() {
    return transport;
  },
  /** 'webrtc', or 'hls' after the fallback. */
  get mode() {
    return mode;
  },
  /** The audio element's playback position (advances while HLS plays). */
  get currentTime() {
    return player.currentTime;
  },
  get hlsTrouble() {
    return hlsTrouble;
  },
  get error() {
    return errorBox.hidden ? undefined : errorBox.textContent;
  },
});

function currentState(): ListenerState {
  if (ended) return 'ended';
  if (fatal !== undefined) return 'error';
  if (!client) return stoppedByUser ? 'stopped' : 'idle';
  if (mode === 'hls' && client.state !== 'closed' && client.state !== 'joined') return 'hls';
  switch (client.state) {
    case 'idle':
    case 'connecting':
      return 'connecting';
    case 'reconnecting':
      return 'reconnecting';
    case 'closed':
      return 'stopped';
    case 'joined':
      break;
  }
  const broadcast = client.broadcast;
  if (mode === 'hls') {
    // Signaling may not have got through at all: then HLS itself is all we know about.
    if (client.state === 'joined' && !broadcast.live) return 'waiting';
    if (client.state === 'joined' && broadcast.paused) return 'paused';
    return 'hls';
  }
  if (!broadcast.live) return 'waiting';
  if (track && (transport === 'disconnected' || transport === 'failed')) return 'reconnecting';
  if (broadcast.paused) return 'paused';
  return track ? 'live' : 'connecting';
}

function render(): void {
  state = currentState();
  if (status.dataset['state'] !== state) {
    status.dataset['state'] = state;
    status.textContent = statusWords[state];
  }
  const active = client !== undefined && client.state !== 'closed';
  playButton.textContent = needsTap ? 'Tap to hear the broadcast' : active ? 'Stop listening' : 'Play';
  playButton.classList.toggle('primary', needsTap || !active);
  playButton.setAttribute('aria-label', needsTap ? 'Tap to hear the broadcast' : active ? 'Stop listening' : 'Play the broadcast');
  audience.hidden = !active || client?.state !== 'joined';
  audience.textContent = listeners === 1 ? '1 person listening' : `${listeners} people listening`;
  hlsNote.hidden = !active || mode !== 'hls';
}

/** The SDK switched how this listener receives: start or stop the HLS player to match. */
function onMode(next: MediaMode, reason: string): void {
  mode = next;
  hls?.stop();
  hls = undefined;
  hlsTrouble = undefined;
  if (next === 'hls' && client) {
    onTrackEnded();
    hlsText.textContent =
      reason === 'asked'
        ? 'Listening over HLS: it works almost everywhere but runs a few seconds behind.'
        : 'WebRTC could not connect from this network, so you are listening over HLS: it works almost everywhere but runs a few seconds behind.';
    hls = playHls(player, client.hlsUrl, { onTrouble: (what) => (hlsTrouble = what) });
    if (audio) {
      meter ??= new LevelMeter(audio, levelEl);
      // Meter what the element plays (Chromium, Firefox); without captureStream, no meter.
      const capture = (player as HTMLAudioElement & { captureStream?: () => MediaStream }).captureStream;
      player.addEventListener('playing', () => {
        if (mode === 'hls' && capture) meter?.attach(capture.call(player));
      }, { once: true });
    }
  }
  render();
}

function play(): void {
  void player.play().then(
    () => {
      needsTap = false;
      render();
    },
    (error: unknown) => {
      if (error instanceof DOMException && error.name === 'NotAllowedError') needsTap = true;
      render();
    },
  );
}

function onTrack(next: MediaStreamTrack): void {
  tracks++;
  track = next;
  player.srcObject = new MediaStream([next]);
  play();
  if (audio) {
    if (audio.state !== 'running') void audio.resume();
    meter ??= new LevelMeter(audio, levelEl);
    meter.attach(new MediaStream([next]));
  }
  render();
}

function onTrackEnded(): void {
  track = undefined;
  meter?.detach();
  // Setting srcObject reloads the element, which would cut off HLS playing through it.
  if (player.srcObject) player.srcObject = null;
  render();
}

function connect(roomId: string, token: string): void {
  fatal = undefined;
  ended = false;
  stoppedByUser = false;
  transport = 'new';
  showAlert(errorBox, '');
  // Rejoining as the same listener after a reload, rather than as one more from a shared link.
  const resume = resumeStore(roomId, token);
  const resumeToken = resume.get();
  mode = 'webrtc';
  const c = new ChorusClient({ url: location.origin, roomId, token, hlsFallback: { afterMs: FALLBACK_AFTER_MS }, ...(resumeToken ? { resumeToken } : {}) });
  client = c;
  const mine = <A extends unknown[]>(fn: (...args: A) => void) => (...args: A) => {
    if (c === client) fn(...args);
  };
  c.on('state', mine((s) => {
    if (s === 'joined') showAlert(errorBox, '');
    if (s === 'closed' && !stoppedByUser && fatal === undefined) {
      fatal = errorBox.hidden ? 'The connection was closed. Press Play to try again.' : (errorBox.textContent ?? '');
    }
    render();
  }));
  c.on('transport', mine((s: string) => {
    transport = s;
    render();
  }));
  c.on('listeners', mine((n: number) => {
    listeners = n;
    render();
  }));
  c.on('broadcast', mine(render));
  c.on('joined', mine((info) => {
    if (info.role === 'listener') return resume.set(info.resumeToken);
    // A broadcaster link opened here: leave at once rather than hold the broadcaster's seat.
    fatal = 'This is a broadcaster link. Open it on the broadcaster page, or ask for the listener link.';
    showAlert(errorBox, fatal);
    void c.close();
  }));
  c.on('mode', mine(onMode));
  c.on('track', mine(onTrack));
  c.on('trackended', mine(onTrackEnded));
  c.on('error', mine((error) => {
    if (fatal !== undefined) return;
    if (endsSession(error)) resume.set(undefined);
    if (error.code === 'ROOM_ENDED') ended = true;
    showAlert(errorBox, describeError(error));
    if (!isTransient(error) && c.state !== 'joined') fatal = describeError(error);
    render();
  }));
  c.join().then(render, mine((error: unknown) => {
    fatal ??= describeError(error);
    showAlert(errorBox, fatal);
    render();
  }));
  render();
}

function stopListening(): void {
  const c = client;
  stoppedByUser = true;
  client = undefined;
  onTrackEnded();
  hls?.stop();
  hls = undefined;
  mode = 'webrtc';
  player.pause();
  void c?.close();
}

if ('missing' in link) {
  byId('room-name').textContent = '(none)';
  fatal = 'This listener link is incomplete (no room or token). Open the whole link you were given.';
  showAlert(errorBox, fatal);
  playButton.disabled = true;
  render();
} else {
  byId('room-name').textContent = link.roomId;
  const { roomId, token } = link;
  playButton.addEventListener('click', () => {
    // Everything that needs the gesture happens before anything is awaited.
    audio ??= newAudioContext();
    void audio.resume();
    if (needsTap) {
      needsTap = false;
      play();
      return;
    }
    if (client && client.state !== 'closed') {
      stopListening();
      return;
    }
    // Unlocks the element now (iOS), so the broadcast can start playing whenever it arrives.
    if (!player.srcObject) player.srcObject = new MediaStream();
    void player.play().catch(() => undefined);
    connect(roomId, token);
  });
  webrtcButton.addEventListener('click', () => client?.useWebRtc());
  window.addEventListener('pagehide', () => void client?.close());
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) location.reload();
  });
  render();
}
