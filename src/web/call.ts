/**
 * Call page: a tile per participant (camera, or their shared screen shown large), self view,
 * microphone / camera / screen toggles, device pickers, grid and speaker layouts. Each remote
 * video tile tells the node its rendered size and whether it is on screen, so the node sends the
 * simulcast layer that fits (or nothing for a tile scrolled away).
 *
 * A link without a token works in demo mode: the page asks the node for a participant token of
 * its own, so one link can be shared with everyone.
 */
import { CallClient, ChorusClientError, type RemoteParticipant, type RemoteTrack, type TrackSource } from '@chorus-rtc/client';
import { byId, copyButton, describeError, exposeDebug, playTrack, RemoteAudio, showAlert } from './shared.js';

type PageState = 'idle' | 'joining' | 'joined' | 'reconnecting' | 'left' | 'error';

const status = byId('status');
const lobby = byId('lobby');
const stage = byId('stage');
const controls = byId('controls');
const errorBox = byId('error');
const joinButton = byId<HTMLButtonElement>('join');
const nameInput = byId<HTMLInputElement>('display-name');
const selfVideo = byId<HTMLVideoElement>('self-video');
const selfIcons = byId('self-icons');
const micButton = byId<HTMLButtonElement>('toggle-mic');
const cameraButton = byId<HTMLButtonElement>('toggle-camera');
const screenButton = byId<HTMLButtonElement>('toggle-screen');
const layoutButton = byId<HTMLButtonElement>('toggle-layout');
const micSelect = byId<HTMLSelectElement>('mic-select');
const cameraSelect = byId<HTMLSelectElement>('camera-select');
const leaveButton = byId<HTMLButtonElement>('leave');
const moderated = byId('moderated');
const askUnmute = byId<HTMLButtonElement>('ask-unmute');
const people = byId('people');

const params = new URLSearchParams(location.search);
const roomId = params.get('room') ?? '';
byId('room-name').textContent = roomId || '…';

interface Tile {
  figure: HTMLElement;
  video: HTMLVideoElement;
  caption: HTMLElement;
  icons: HTMLElement;
  trackId?: string | undefined;
  observers: Array<{ disconnect(): void }>;
  view: { visible: boolean; width: number; height: number };
}

let client: CallClient | undefined;
let state: PageState = 'idle';
let local: MediaStream | undefined;
let screen: MediaStream | undefined;
let micOn = true;
let cameraOn = true;
let lastError: string | undefined;
const tiles = new Map<string, Tile>();
const audios = new RemoteAudio();

function setState(next: PageState, words?: string): void {
  state = next;
  status.dataset['state'] = next;
  status.textContent = words ?? { idle: 'Press Join to enter the call.', joining: 'Joining…', joined: 'In the call', reconnecting: 'Connection lost. Reconnecting…', left: 'You left the call.', error: 'Not connected.' }[next];
  lobby.hidden = next === 'joined' || next === 'reconnecting';
  stage.hidden = controls.hidden = !(next === 'joined' || next === 'reconnecting');
}

function fail(error: unknown): void {
  lastError = describeError(error);
  showAlert(errorBox, lastError);
}

/** The token in the link, or (demo mode) a participant token of our own for this room. */
async function tokenFor(room: string): Promise<{ room: string; token: string }> {
  const given = params.get('token');
  if (given && room) return { room, token: given };
  const response = await fetch('/api/demo/calls', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...(room ? { roomId: room } : {}), ...(nameInput.value.trim() ? { name: nameInput.value.trim().slice(0, 64) } : {}) }),
  });
  if (!response.ok) throw new Error(response.status === 404 ? 'This link has no token, and this server does not hand them out. Ask for a call link with a token.' : `The server refused (HTTP ${response.status}).`);
  const body = (await response.json()) as { roomId: string; token: string };
  return { room: body.roomId, token: body.token };
}

async function openDevices(): Promise<MediaStream> {
  const audio = micSelect.value ? { deviceId: { exact: micSelect.value } } : true;
  const video = cameraSelect.value ? { deviceId: { exact: cameraSelect.value }, width: 1280, height: 720 } : { width: 1280, height: 720 };
  try {
    return await navigator.mediaDevices.getUserMedia({ audio, video });
  } catch {
    // No camera (or it was refused): join with the microphone alone.
    cameraOn = false;
    return navigator.mediaDevices.getUserMedia({ audio });
  }
}

async function fillDevicePickers(): Promise<void> {
  const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
  for (const [select, kind] of [[micSelect, 'audioinput'], [cameraSelect, 'videoinput']] as const) {
    const current = select.value;
    select.replaceChildren(
      ...devices
        .filter((d) => d.kind === kind)
        .map((d, i) => Object.assign(document.createElement('option'), { value: d.deviceId, textContent: d.label || `${kind === 'audioinput' ? 'Microphone' : 'Camera'} ${i + 1}` })),
    );
    if (current) select.value = current;
  }
}

async function join(): Promise<void> {
  if (state === 'joining' || state === 'joined') return;
  setState('joining');
  showAlert(errorBox, '');
  try {
    const { room, token } = await tokenFor(roomId);
    if (room !== roomId) history.replaceState(null, '', `?room=${encodeURIComponent(room)}`);
    byId('room-name').textContent = room;
    local = await openDevices();
    selfVideo.srcObject = local;
    // A call of two goes peer-to-peer when the node says so; from three on, through the SFU.
    client = new CallClient({ url: location.origin, roomId: room, token, ...(typeof RTCPeerConnection === 'function' ? { p2p: { RTCPeerConnection } } : {}) });
    wire(client);
    await client.join();
    const [mic] = local.getAudioTracks();
    const [camera] = local.getVideoTracks();
    if (mic) await client.publish(mic, 'microphone');
    if (camera) await client.publish(camera, 'camera');
    await fillDevicePickers();
    showShare(room);
    renderSelf();
    setState('joined');
  } catch (error) {
    fail(error);
    setState('error', error instanceof ChorusClientError ? 'Could not join.' : 'Could not start your microphone or camera.');
    await client?.close();
    client = undefined;
  }
}

function showShare(room: string): void {
  const link = new URL('/call.html', location.origin);
  link.searchParams.set('room', room);
  // A token in the link is this visitor's own: share the room only (demo nodes hand each visitor one).
  byId<HTMLInputElement>('share-link').value = link.href;
  byId('share').hidden = false;
}

function wire(c: CallClient): void {
  c.on('state', (s) => {
    if (s === 'reconnecting') setState('reconnecting');
    else if (s === 'joined') setState('joined');
  });
  c.on('participantjoined', (p) => {
    tileFor(p);
    countPeople();
  });
  c.on('participantleft', (p) => {
    removeTile(p.peerId);
    removeTile(`${p.peerId}:screen`);
    countPeople();
  });
  c.on('tracksubscribed', (track, p) => attach(track, p));
  c.on('trackunsubscribed', (track, p) => detach(track, p));
  c.on('trackunpublished', (track, p) => {
    detach(track, p);
    renderIcons(p);
  });
  c.on('trackmuted', (_track, p) => renderIcons(p));
  c.on('trackpublished', (_track, p) => renderIcons(p));
  c.on('activespeaker', (peerId) => {
    for (const [key, tile] of tiles) tile.figure.classList.toggle('speaking', peerId !== null && key === peerId);
    if (stage.dataset['layout'] === 'speaker') arrangeSpeaker(peerId);
  });
  c.on('muted', (muted, source) => {
    moderated.hidden = !muted;
    byId('moderated-text').textContent = muted ? `A moderator muted your ${source ?? 'microphone and camera'}.` : '';
    if (muted && (source === undefined || source === 'microphone')) setMic(false, false);
    renderSelf();
  });
  c.on('quality', (quality, p) => {
    const figure = p ? tiles.get(p.peerId)?.figure : byId('self');
    if (!figure) return;
    figure.dataset['quality'] = quality;
    figure.title = quality === 'poor' ? 'Weak connection' : quality === 'lost' ? 'Connection lost' : '';
  });
  c.on('muterequested', (r) => showAlert(errorBox, `${c.participants.get(r.peerId)?.name ?? r.identity} asks to unmute.`));
  // The call goes on (directly), but the operator's server path is down: say so before a third joins.
  c.on('warning', (warning) => showAlert(errorBox, warning.message));
  c.on('error', (error) => {
    if (error.code === 'KICKED' || error.code === 'ROOM_ENDED') {
      fail(error);
      setState('left');
    }
  });
}

function countPeople(): void {
  const n = (client?.participants.size ?? 0) + 1;
  people.textContent = `· ${n} ${n === 1 ? 'person' : 'people'}`;
}

function tileFor(p: RemoteParticipant, screenShare = false): Tile {
  const key = screenShare ? `${p.peerId}:screen` : p.peerId;
  const existing = tiles.get(key);
  if (existing) return existing;
  const figure = document.createElement('figure');
  figure.className = screenShare ? 'tile screen' : 'tile';
  figure.dataset['peer'] = p.peerId;
  const video = Object.assign(document.createElement('video'), { autoplay: true, playsInline: true, muted: true });
  const caption = document.createElement('figcaption');
  caption.textContent = screenShare ? `${p.name ?? p.identity} (screen)` : (p.name ?? p.identity);
  const icons = document.createElement('span');
  icons.className = 'icons';
  caption.append(' ', icons);
  figure.append(video, caption);
  if (client?.role === 'moderator') {
    const mute = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Mute', className: 'tile-action' });
    mute.addEventListener('click', () => void client?.moderate({ action: 'mute', peerId: p.peerId, source: 'microphone' }).catch(fail));
    figure.append(mute);
  }
  stage.append(figure);
  const tile: Tile = { figure, video, caption, icons, observers: [], view: { visible: true, width: 0, height: 0 } };
  tiles.set(key, tile);
  observe(tile);
  renderIcons(p);
  return tile;
}

/** Reports the tile's size (device pixels) and visibility, so the node sends the layer that fits. */
function observe(tile: Tile): void {
  const report = (): void => {
    if (!tile.trackId || !client) return;
    void client.setView(tile.trackId, { ...tile.view }).catch(() => undefined);
  };
  const resize = new ResizeObserver(([entry]) => {
    const box = entry?.contentRect;
    if (!box) return;
    const dpr = window.devicePixelRatio || 1;
    tile.view.width = Math.round(box.width * dpr);
    tile.view.height = Math.round(box.height * dpr);
    report();
  });
  const seen = new IntersectionObserver(([entry]) => {
    tile.view.visible = entry?.isIntersecting ?? true;
    report();
  });
  resize.observe(tile.video);
  seen.observe(tile.figure);
  tile.observers.push(resize, seen);
}

function attach(track: RemoteTrack, p: RemoteParticipant): void {
  if (!track.mediaTrack) return;
  if (track.kind === 'audio') {
    audios.play(track.trackId, p.peerId, track.mediaTrack);
    return;
  }
  const tile = tileFor(p, track.source === 'screen');
  tile.trackId = track.trackId;
  playTrack(tile.video, track.mediaTrack);
  if (tile.view.width > 0) void client?.setView(track.trackId, { ...tile.view }).catch(() => undefined);
}

function detach(track: RemoteTrack, p: RemoteParticipant): void {
  if (track.kind === 'audio') {
    audios.remove(track.trackId);
    return;
  }
  if (track.source === 'screen') return removeTile(`${p.peerId}:screen`);
  const tile = tiles.get(p.peerId);
  if (tile?.trackId === track.trackId) {
    tile.video.srcObject = null;
    tile.trackId = undefined;
  }
}

function removeTile(key: string): void {
  const tile = tiles.get(key);
  if (!tile) return;
  for (const o of tile.observers) o.disconnect();
  tile.figure.remove();
  tiles.delete(key);
}

function renderIcons(p: RemoteParticipant): void {
  const tile = tiles.get(p.peerId);
  if (!tile) return;
  const tracks = [...p.tracks.values()];
  const mic = tracks.find((t) => t.source === 'microphone');
  const cam = tracks.find((t) => t.source === 'camera');
  // Words, not emoji: not every phone or kiosk has an emoji font.
  tile.icons.textContent = [!mic || mic.muted ? '· mic off' : '', !cam || cam.muted ? '· camera off' : ''].join(' ').trim();
  tile.figure.dataset['micMuted'] = String(!mic || mic.muted);
}

function renderSelf(): void {
  selfIcons.textContent = [micOn ? '' : '· mic off', cameraOn ? '' : '· camera off'].join(' ').trim();
  micButton.textContent = micOn ? 'Mute' : 'Unmute';
  micButton.setAttribute('aria-pressed', String(micOn));
  cameraButton.textContent = cameraOn ? 'Stop camera' : 'Start camera';
  cameraButton.setAttribute('aria-pressed', String(cameraOn));
}

function setMic(on: boolean, tell = true): void {
  micOn = on;
  renderSelf();
  if (tell) void client?.setMuted('microphone', !on).catch((error: unknown) => {
    micOn = !on;
    renderSelf();
    fail(error);
  });
}

function arrangeSpeaker(peerId: string | null): void {
  for (const [key, tile] of tiles) tile.figure.classList.toggle('featured', key === peerId || key.endsWith(':screen'));
}

micButton.addEventListener('click', () => setMic(!micOn));
cameraButton.addEventListener('click', () => {
  cameraOn = !cameraOn;
  renderSelf();
  if (client?.publications.has('camera')) void client.setMuted('camera', !cameraOn).catch(fail);
});
screenButton.addEventListener('click', () => void toggleScreen());
layoutButton.addEventListener('click', () => {
  const speaker = stage.dataset['layout'] !== 'speaker';
  stage.dataset['layout'] = speaker ? 'speaker' : 'grid';
  layoutButton.textContent = speaker ? 'Grid view' : 'Speaker view';
  arrangeSpeaker(client?.activeSpeaker ?? null);
});
for (const [select, source] of [[micSelect, 'microphone'], [cameraSelect, 'camera']] as const) {
  select.addEventListener('change', () => void switchDevice(source));
}
askUnmute.addEventListener('click', () => void client?.requestUnmute().then(() => showAlert(errorBox, 'Asked the moderators to let you unmute.'), fail));
leaveButton.addEventListener('click', () => void leave());
joinButton.addEventListener('click', () => void join());
copyButton(byId<HTMLButtonElement>('copy-share'), byId<HTMLInputElement>('share-link'));

async function toggleScreen(): Promise<void> {
  if (!client) return;
  if (screen) {
    for (const t of screen.getTracks()) t.stop();
    screen = undefined;
    await client.unpublish('screen');
    screenButton.textContent = 'Share screen';
    screenButton.setAttribute('aria-pressed', 'false');
    return;
  }
  try {
    screen = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    const [track] = screen.getVideoTracks();
    if (!track) return;
    track.addEventListener('ended', () => void toggleScreen());
    await client.publish(track, 'screen');
    screenButton.textContent = 'Stop sharing';
    screenButton.setAttribute('aria-pressed', 'true');
  } catch (error) {
    screen = undefined;
    fail(error);
  }
}

/** Another microphone or camera: the new track replaces the old one under the same producer. */
async function switchDevice(source: Extract<TrackSource, 'microphone' | 'camera'>): Promise<void> {
  if (!client) return;
  const select = source === 'microphone' ? micSelect : cameraSelect;
  const constraints = source === 'microphone' ? { audio: { deviceId: { exact: select.value } } } : { video: { deviceId: { exact: select.value }, width: 1280, height: 720 } };
  try {
    const stream = await navigator.mediaDevices.getUserMedia(constraints);
    const [track] = source === 'microphone' ? stream.getAudioTracks() : stream.getVideoTracks();
    if (!track) return;
    await client.publish(track, source);
    const old = source === 'microphone' ? local?.getAudioTracks() : local?.getVideoTracks();
    for (const t of old ?? []) {
      local?.removeTrack(t);
      t.stop();
    }
    local?.addTrack(track);
    selfVideo.srcObject = local ?? null;
  } catch (error) {
    fail(error);
  }
}

async function leave(): Promise<void> {
  await client?.close();
  client = undefined;
  for (const t of [...(local?.getTracks() ?? []), ...(screen?.getTracks() ?? [])]) t.stop();
  for (const key of [...tiles.keys()]) removeTile(key);
  audios.clear();
  setState('left');
}

exposeDebug({
  get state() {
    return state;
  },
  get error() {
    return lastError;
  },
  get peerId() {
    return client?.peerId;
  },
  get participants() {
    return client?.participants.size ?? 0;
  },
  get activeSpeaker() {
    return client?.activeSpeaker ?? null;
  },
  get mediaPath() {
    return client?.mediaPath ?? 'sfu';
  },
});

setState('idle');
