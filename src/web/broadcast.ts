/**
 * Broadcaster page: joins the room from the link (?room=R&token=T) as soon as it opens, so the
 * speaker sees the connection and the audience before going live; Start takes the microphone
 * (tuned for speech) and publishes it, Stop unpublishes and releases it.
 */
import { ChorusClient } from '@chorus-rtc/client';
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

type BroadcasterState = 'connecting' | 'ready' | 'starting' | 'live' | 'paused' | 'muted' | 'reconnecting' | 'ended' | 'error';

const statusWords: Record<BroadcasterState, string> = {
  connecting: 'Connecting to the server…',
  ready: 'Connected. Press Start to go live.',
  starting: 'Starting…',
  live: 'On air: listeners can hear you.',
  paused: 'Paused: listeners hear nothing.',
  muted: 'A moderator muted you: listeners hear nothing.',
  reconnecting: 'Connection lost. Reconnecting…',
  ended: 'The broadcast has ended.',
  error: 'Not connected.',
};

/** Speech: one channel, and the browser's echo, noise and level processing on. */
const speech: MediaTrackConstraints = { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 };

const status = byId('status');
const countEl = byId('listener-count');
const countLabel = byId('listener-label');
const startButton = byId<HTMLButtonElement>('start');
const stopButton = byId<HTMLButtonElement>('stop');
const pauseBox = byId<HTMLInputElement>('pause');
const micSelect = byId<HTMLSelectElement>('mic');
const errorBox = byId('error');
const retryButton = byId<HTMLButtonElement>('retry');
const levelEl = byId('level');

const link = linkParams();
let client: ChorusClient | undefined;
/** A refusal or failure the SDK will not retry: shown until the user tries again. */
let fatal: string | undefined;
let transport = 'new';
let listeners = 0;
/** The speaker pressed Start and has not pressed Stop. */
let onAir = false;
let starting = false;
let paused = false;
/** Muted by a moderator (not by the speaker). */
let moderatorMuted = false;
/** A moderator ended the room. */
let ended = false;
let mic: MediaStream | undefined;
let audio: AudioContext | undefined;
let meter: LevelMeter | undefined;
let wakeLock: WakeLockSentinel | undefined;
let state: BroadcasterState = 'connecting';

exposeDebug({
  get state() {
    return state;
  },
  get role() {
    return client?.role ?? 'broadcaster';
  },
  get level() {
    return meter?.level ?? 0;
  },
  get listeners() {
    return listeners;
  },
  /** True while a producer is sending the microphone to the server. */
  get publishing() {
    return onAir && client?.producer !== undefined && !client.producer.closed;
  },
  get paused() {
    return paused;
  },
  get muted() {
    return moderatorMuted;
  },
  get transport() {
    return transport;
  },
  get error() {
    return errorBox.hidden ? undefined : errorBox.textContent;
  },
});

function currentState(): BroadcasterState {
  if (ended) return 'ended';
  if (fatal !== undefined) return 'error';
  if (!client) return 'connecting';
  switch (client.state) {
    case 'idle':
    case 'connecting':
      return 'connecting';
    case 'reconnecting':
      return 'reconnecting';
    case 'closed':
      return 'error';
    case 'joined':
      break;
  }
  if (onAir && (transport === 'disconnected' || transport === 'failed')) return 'reconnecting';
  if (starting) return 'starting';
  if (!onAir) return 'ready';
  if (!client.producer || client.producer.closed) return 'starting';
  if (moderatorMuted) return 'muted';
  return paused ? 'paused' : 'live';
}

function render(): void {
  state = currentState();
  if (status.dataset['state'] !== state) {
    status.dataset['state'] = state;
    status.textContent = statusWords[state];
  }
  countEl.textContent = String(listeners);
  countLabel.textContent = listeners === 1 ? 'listener' : 'listeners';
  startButton.hidden = onAir;
  stopButton.hidden = !onAir;
  startButton.disabled = starting || client?.state !== 'joined' || !navigator.mediaDevices;
  pauseBox.disabled = !onAir || starting;
  pauseBox.checked = paused;
  retryButton.hidden = !(fatal !== undefined && client !== undefined) || ended;
}

function connect(roomId: string, token: string): void {
  fatal = undefined;
  transport = 'new';
  moderatorMuted = false;
  showAlert(errorBox, '');
  // The link's token works once; a reload (or Try again) resumes with the token the node gave.
  const resume = resumeStore(roomId, token);
  const resumeToken = resume.get();
  const c = new ChorusClient({ url: location.origin, roomId, token, ...(resumeToken ? { resumeToken } : {}) });
  client = c;
  c.on('state', (s) => {
    if (c !== client) return;
    if (s === 'joined' && fatal === undefined) showAlert(errorBox, '');
    if (s === 'closed' && fatal === undefined) fatal = errorBox.hidden ? 'The connection was closed. Press Try again.' : (errorBox.textContent ?? '');
    if (fatal !== undefined) showAlert(errorBox, fatal);
    render();
  });
  c.on('transport', (s) => {
    transport = s;
    render();
  });
  c.on('listeners', (n) => {
    listeners = n;
    render();
  });
  c.on('broadcast', render);
  c.on('muted', (muted) => {
    if (c !== client) return;
    moderatorMuted = muted;
    render();
  });
  c.on('joined', (info) => {
    if (c !== client) return;
    if (info.role === 'broadcaster') return resume.set(info.resumeToken);
    fatal = 'This is a listener link: it cannot broadcast. Open it on the listener page, or use the broadcaster link.';
    showAlert(errorBox, fatal);
    void c.close();
  });
  c.on('error', (error) => {
    if (c !== client || fatal !== undefined) return;
    if (endsSession(error)) {
      resume.set(undefined);
      ended = error.code === 'ROOM_ENDED';
      void stop();
    }
    showAlert(errorBox, describeError(error));
    if (!isTransient(error) && c.state !== 'joined') fatal = describeError(error);
    render();
  });
  // After a fatal failure while on air, the new session carries on with the same microphone.
  const track = onAir ? mic?.getAudioTracks()[0] : undefined;
  if (track) void c.publish(track);
  c.join().then(render, (error: unknown) => {
    if (c !== client) return;
    fatal ??= describeError(error);
    showAlert(errorBox, fatal);
    render();
  });
  render();
}

/** The microphone list, with names once the page may use the microphone. */
async function listMicrophones(): Promise<void> {
  if (!navigator.mediaDevices?.enumerateDevices) return;
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'audioinput' && d.deviceId && d.deviceId !== 'default');
  const selected = micSelect.value;
  const options = [new Option('Default microphone', '')];
  devices.forEach((d, i) => options.push(new Option(d.label || `Microphone ${i + 1}`, d.deviceId)));
  micSelect.replaceChildren(...options);
  micSelect.value = devices.some((d) => d.deviceId === selected) ? selected : '';
}

async function openMicrophone(): Promise<MediaStream> {
  const deviceId = micSelect.value;
  return navigator.mediaDevices.getUserMedia({ audio: { ...speech, ...(deviceId ? { deviceId: { exact: deviceId } } : {}) }, video: false });
}

/** Uses `stream` as the microphone: meter on it, the previous one released. */
function useMicrophone(stream: MediaStream): MediaStreamTrack {
  const previous = mic;
  mic = stream;
  const track = stream.getAudioTracks()[0]!;
  track.enabled = !paused;
  track.addEventListener('ended', () => {
    if (mic === stream && onAir) showAlert(errorBox, 'The microphone stopped (unplugged or taken by another app). Pick one and press Stop, then Start.');
  });
  if (audio) {
    meter ??= new LevelMeter(audio, levelEl);
    meter.attach(stream);
  }
  previous?.getTracks().forEach((t) => t.stop());
  return track;
}

function releaseMicrophone(): void {
  meter?.detach();
  mic?.getTracks().forEach((t) => t.stop());
  mic = undefined;
}

async function keepScreenOn(on: boolean): Promise<void> {
  try {
    if (on && !wakeLock && 'wakeLock' in navigator && document.visibilityState === 'visible') {
      wakeLock = await navigator.wakeLock.request('screen');
      wakeLock.addEventListener('release', () => (wakeLock = undefined));
    } else if (!on && wakeLock) {
      await wakeLock.release();
      wakeLock = undefined;
    }
  } catch {
    // Not supported or refused (battery saver): broadcasting works regardless.
  }
}

async function start(): Promise<void> {
  if (!client || starting || onAir) return;
  // Created inside the click so browsers let it run.
  audio ??= newAudioContext();
  void audio.resume();
  starting = true;
  showAlert(errorBox, '');
  render();
  try {
    const track = useMicrophone(await openMicrophone());
    await listMicrophones();
    onAir = true;
    await client.publish(track);
    void keepScreenOn(true);
  } catch (error) {
    onAir = false;
    releaseMicrophone();
    showAlert(errorBox, describeError(error));
  } finally {
    starting = false;
    render();
  }
}

async function stop(): Promise<void> {
  if (!client || !onAir) return;
  onAir = false;
  paused = false;
  render();
  try {
    await client.unpublish();
  } finally {
    releaseMicrophone();
    void keepScreenOn(false);
    render();
  }
}

async function setPaused(next: boolean): Promise<void> {
  paused = next;
  // Muting the track too keeps the pause through a reconnect, which publishes afresh.
  mic?.getAudioTracks().forEach((t) => (t.enabled = !next));
  render();
  try {
    await client?.setPaused(next);
  } catch (error) {
    showAlert(errorBox, describeError(error));
  }
}

async function switchMicrophone(): Promise<void> {
  if (!client || !onAir || starting) return;
  try {
    const track = useMicrophone(await openMicrophone());
    await client.publish(track); // remembered for reconnects
    await client.producer?.replaceTrack({ track });
  } catch (error) {
    showAlert(errorBox, describeError(error));
  }
}

startButton.addEventListener('click', () => void start());
stopButton.addEventListener('click', () => void stop());
pauseBox.addEventListener('change', () => void setPaused(pauseBox.checked));
micSelect.addEventListener('change', () => void switchMicrophone());
navigator.mediaDevices?.addEventListener('devicechange', () => void listMicrophones());
document.addEventListener('visibilitychange', () => void keepScreenOn(onAir));
window.addEventListener('pagehide', () => void client?.close());
window.addEventListener('pageshow', (event) => {
  if (event.persisted) location.reload();
});
// The SDK publishes again by itself after a reconnect; this catches the moment it is back on air.
setInterval(render, 500);

if ('missing' in link) {
  byId('room-name').textContent = '(none)';
  fatal = 'This broadcaster link is incomplete (no room or token). Open the whole link you were given.';
  showAlert(errorBox, fatal);
  render();
} else {
  byId('room-name').textContent = link.roomId;
  const { roomId, token } = link;
  retryButton.addEventListener('click', () => {
    void client?.close();
    connect(roomId, token);
  });
  if (!navigator.mediaDevices?.getUserMedia) {
    showAlert(byId('mic-error'), 'This browser cannot use the microphone on this page: it needs a secure (https) address, or localhost.');
  } else {
    void listMicrophones();
  }
  connect(roomId, token);
}
