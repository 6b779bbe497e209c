/**
 * Class page, for teachers and students alike (the token's role decides). Teachers and
 * assistants publish camera and microphone, see the raised hands in order and invite or remove
 * a student; students watch the stage, raise a hand, join the stage when invited (then they are
 * seen and heard), and chat with the class or ask the teacher alone.
 *
 * A link without a token works in demo mode: `?room=R&role=teacher|student` asks the node for a
 * token of that role for this visitor.
 */
import { CallClient, ChorusClientError, recordingPlaylist, type ChatMessage, type Hand, type HandQueue, type RecordingInfo, type RemoteParticipant, type RemoteTrack } from '@chorus-rtc/client';
import { playHls, type HlsPlayback } from '@chorus-rtc/client/hls';
import { byId, describeError, exposeDebug, playTrack, RemoteAudio, showAlert } from './shared.js';

type PageState = 'idle' | 'joining' | 'joined' | 'reconnecting' | 'left' | 'error';

const status = byId('status');
const lobby = byId('lobby');
const stage = byId('stage');
const controls = byId('controls');
const errorBox = byId('error');
const handStatus = byId('hand-status');
const recordButton = byId<HTMLButtonElement>('record');
const qualityBadge = byId('quality');
const hlsPanel = byId('hls-panel');
const hlsVideo = byId<HTMLVideoElement>('hls-video');
const recordingStatus = byId('recording-status');
const nameInput = byId<HTMLInputElement>('display-name');
const selfTile = byId('self');
const selfVideo = byId<HTMLVideoElement>('self-video');
const micButton = byId<HTMLButtonElement>('toggle-mic');
const raiseButton = byId<HTMLButtonElement>('raise-hand');
const lowerButton = byId<HTMLButtonElement>('lower-hand');
const acceptButton = byId<HTMLButtonElement>('accept');
const declineButton = byId<HTMLButtonElement>('decline');
const handsPanel = byId('hands-panel');
const handsList = byId('hands');
const chatPanel = byId('chat-panel');
const chatLog = byId('chat-log');
const chatInput = byId<HTMLInputElement>('chat-input');
const chatStaff = byId<HTMLInputElement>('chat-staff');

const params = new URLSearchParams(location.search);
const roomId = params.get('room') ?? '';
byId('room-name').textContent = roomId || '…';

let client: CallClient | undefined;
let state: PageState = 'idle';
let staff = false;
/** This visitor's token (the recording's files ask for one of this room). */
let pageToken: string | undefined;
let lastPlaylist: string | undefined;
/** A student's receive transport, and whether it has failed to connect in time. */
let recvState = 'new';
let recvLate = false;
let recvTimer: ReturnType<typeof setTimeout> | undefined;
let hls: HlsPlayback | undefined;
let hlsTrouble: string | undefined;
/** How long a student's WebRTC may take to connect before the page falls back to the recording. */
const FALLBACK_MS = 8000;
let local: MediaStream | undefined;
let micOn = true;
let queue: HandQueue = { version: 0, hands: [] };
const videos = new Map<string, { figure: HTMLElement; video: HTMLVideoElement }>();
const audios = new RemoteAudio();

function setState(next: PageState, words?: string): void {
  state = next;
  status.dataset['state'] = next;
  status.textContent = words ?? { idle: 'Press Join to enter the class.', joining: 'Joining…', joined: 'In the class', reconnecting: 'Connection lost. Reconnecting…', left: 'You left the class.', error: 'Not connected.' }[next];
  lobby.hidden = next === 'joined' || next === 'reconnecting';
  const inside = next === 'joined' || next === 'reconnecting';
  stage.hidden = controls.hidden = chatPanel.hidden = !inside;
  handsPanel.hidden = !inside || !staff;
}

function fail(error: unknown): void {
  showAlert(errorBox, describeError(error));
}

async function tokenFor(room: string): Promise<{ room: string; token: string }> {
  const given = params.get('token');
  if (given && room) return { room, token: given };
  const role = params.get('role') === 'teacher' ? 'teacher' : 'student';
  const response = await fetch('/api/demo/classes', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ role, ...(room ? { roomId: room } : {}), ...(nameInput.value.trim() ? { name: nameInput.value.trim().slice(0, 64) } : {}) }),
  });
  if (!response.ok) throw new Error(response.status === 404 ? 'This link has no token, and this server does not hand them out. Ask for a class link with a token.' : `The server refused (HTTP ${response.status}).`);
  const body = (await response.json()) as { roomId: string; token: string };
  return { room: body.roomId, token: body.token };
}

/** Camera and microphone on: the staff from the start, a student once on stage. */
async function goLive(c: CallClient): Promise<void> {
  local ??= await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360 } }).catch(() => navigator.mediaDevices.getUserMedia({ audio: true }));
  selfVideo.srcObject = local;
  selfTile.hidden = local.getVideoTracks().length === 0;
  micButton.hidden = false;
  const [mic] = local.getAudioTracks();
  const [camera] = local.getVideoTracks();
  if (mic) await c.publish(mic, 'microphone');
  if (camera) await c.publish(camera, 'camera');
}

/** Off the stage: the node closed the student's tracks already; the devices go off too. */
function goQuiet(): void {
  for (const track of local?.getTracks() ?? []) track.stop();
  local = undefined;
  selfVideo.srcObject = null;
  selfTile.hidden = true;
  micButton.hidden = true;
}

async function join(): Promise<void> {
  if (state === 'joining' || state === 'joined') return;
  setState('joining');
  showAlert(errorBox, '');
  try {
    const { room, token } = await tokenFor(roomId);
    pageToken = token;
    if (room !== roomId) history.replaceState(null, '', `?room=${encodeURIComponent(room)}`);
    byId('room-name').textContent = room;
    client = new CallClient({ url: location.origin, roomId: room, token });
    wire(client);
    const info = await client.join();
    staff = info.role !== 'student';
    byId('who').textContent = `· ${info.role}`;
    chatStaff.parentElement!.hidden = staff;
    recordButton.hidden = !staff;
    if (staff) {
      await goLive(client);
      renderQueue(await client.handQueue());
    }
    renderHand(undefined);
    setState('joined');
    if (!staff) {
      recvTimer = setTimeout(() => {
        recvLate = recvState !== 'connected';
        judgeFallback();
      }, FALLBACK_MS);
    }
  } catch (error) {
    fail(error);
    setState('error', error instanceof ChorusClientError ? 'Could not join.' : 'Could not start your microphone or camera.');
    await client?.close();
    client = undefined;
  }
}

function wire(c: CallClient): void {
  c.on('state', (s) => {
    if (s === 'reconnecting') setState('reconnecting');
    else if (s === 'joined') setState('joined');
  });
  c.on('participantleft', (p) => {
    for (const [key, tile] of videos) if (key.startsWith(p.peerId)) (tile.figure.remove(), videos.delete(key));
  });
  c.on('tracksubscribed', (track, p) => attach(track, p));
  c.on('trackunsubscribed', (track) => detach(track));
  c.on('trackunpublished', (track) => detach(track));
  c.on('hand', (hand) => void onHand(c, hand));
  c.on('handqueue', (q) => renderQueue(q));
  c.on('chat', (message) => addChat(message));
  c.on('recording', (recording, playlist) => {
    showRecording(recording, playlist);
    judgeFallback();
  });
  // This visitor's own connection, as the node scores it (its streams' loss and jitter).
  c.on('quality', (quality, p) => {
    if (p) {
      for (const tile of videos.values()) if (tile.figure.dataset['peer'] === p.peerId) tile.figure.dataset['quality'] = quality;
      return;
    }
    qualityBadge.hidden = false;
    qualityBadge.dataset['quality'] = quality;
    qualityBadge.textContent = `· connection ${quality}`;
  });
  c.on('transport', (direction, s) => {
    if (direction !== 'recv') return;
    recvState = s;
    if (s === 'connected') {
      clearTimeout(recvTimer);
      recvLate = false;
    }
    judgeFallback();
  });
  c.on('error', (error) => {
    if (error.code === 'KICKED' || error.code === 'ROOM_ENDED') {
      fail(error);
      setState('left');
    }
  });
}

/**
 * A student whose WebRTC cannot connect (it failed, or is not up after FALLBACK_MS) watches the
 * class's live recording over HLS, when one runs; back to WebRTC as soon as it connects.
 */
function judgeFallback(): void {
  const recording = client?.recording;
  const fallback = !staff && recvState !== 'connected' && (recvState === 'failed' || recvLate) && recording !== undefined;
  if (fallback && !hls) {
    hlsPanel.hidden = false;
    hls = playHls(hlsVideo, `${recordingPlaylist(recording)}?token=${encodeURIComponent(pageToken ?? '')}`, { onTrouble: (what) => (hlsTrouble = what) });
  } else if (!fallback && hls && recvState === 'connected') {
    hls.stop();
    hls = undefined;
    hlsPanel.hidden = true;
  }
}

/** Recording on: say so; stopped: offer the replay (its playlist, with this page's token). */
function showRecording(recording: RecordingInfo | null, playlist: string | undefined): void {
  recording ??= null;
  recordButton.setAttribute('aria-pressed', String(recording !== null));
  recordButton.textContent = recording ? 'Stop recording' : 'Record';
  if (recording && playlist) lastPlaylist = playlist;
  recordingStatus.hidden = recording === null && lastPlaylist === undefined;
  recordingStatus.replaceChildren();
  if (!lastPlaylist) return;
  const href = `${lastPlaylist}?token=${encodeURIComponent(pageToken ?? '')}`;
  recordingStatus.dataset['recording'] = String(recording !== null);
  if (recording) recordingStatus.append('● Recording · ', Object.assign(document.createElement('a'), { href, textContent: 'follow it live (HLS)' }));
  else recordingStatus.append('Recording stopped: ', Object.assign(document.createElement('a'), { href, textContent: 'the replay (HLS)' }));
}

recordButton.addEventListener('click', () => {
  const c = client;
  if (!c) return;
  const on = recordButton.getAttribute('aria-pressed') === 'true';
  recordButton.disabled = true;
  c.record(on ? 'stop' : 'start')
    .then((recording) => showRecording(recording, recording ? recordingPlaylist(recording) : undefined))
    .catch((error: unknown) => fail(error))
    .finally(() => (recordButton.disabled = false));
});

function attach(track: RemoteTrack, p: RemoteParticipant): void {
  if (!track.mediaTrack) return;
  if (track.kind === 'audio') {
    audios.play(track.trackId, p.peerId, track.mediaTrack);
    return;
  }
  let tile = videos.get(track.trackId);
  if (!tile) {
    const figure = document.createElement('figure');
    figure.className = track.source === 'screen' ? 'tile screen' : 'tile';
    figure.dataset['peer'] = p.peerId;
    figure.dataset['role'] = p.role;
    const video = Object.assign(document.createElement('video'), { autoplay: true, playsInline: true, muted: true });
    const caption = document.createElement('figcaption');
    caption.textContent = `${p.name ?? p.identity}${p.role === 'student' ? ' (on stage)' : ''}`;
    figure.append(video, caption);
    stage.append(figure);
    tile = { figure, video };
    videos.set(track.trackId, tile);
  }
  playTrack(tile.video, track.mediaTrack);
}

function detach(track: RemoteTrack): void {
  audios.remove(track.trackId);
  videos.get(track.trackId)?.figure.remove();
  videos.delete(track.trackId);
}

async function onHand(c: CallClient, hand: Hand | undefined): Promise<void> {
  renderHand(hand);
  try {
    if (hand?.state === 'onstage') await goLive(c);
    else if (hand?.state === 'back') goQuiet();
  } catch (error) {
    fail(error);
  }
}

function renderHand(hand: Hand | undefined): void {
  const s = staff ? undefined : (hand?.state ?? 'none');
  raiseButton.hidden = s !== 'none' && s !== 'back';
  lowerButton.hidden = s !== 'raised';
  acceptButton.hidden = declineButton.hidden = s !== 'invited';
  const words = { raised: 'Your hand is raised.', invited: 'The teacher invites you to the stage.', onstage: 'You are on stage: everyone sees and hears you.', back: 'You are back in the audience.' } as const;
  showAlert(handStatus, s && s !== 'none' ? words[s] : '');
}

function renderQueue(next: HandQueue): void {
  if (next.version < queue.version) return;
  queue = next;
  handsList.replaceChildren(
    ...queue.hands
      .filter((h) => h.state !== 'back')
      .map((hand) => {
        const item = document.createElement('li');
        item.dataset['peer'] = hand.peerId;
        item.dataset['state'] = hand.state;
        const label = document.createElement('span');
        label.textContent = `${hand.name ?? hand.identity} · ${{ raised: 'hand raised', invited: 'invited', onstage: 'on stage', back: '' }[hand.state]} `;
        item.append(label);
        const action = hand.state === 'raised' ? 'invite' : 'remove';
        const button = Object.assign(document.createElement('button'), { type: 'button', textContent: action === 'invite' ? 'Invite to stage' : 'Remove from stage' });
        button.dataset['action'] = action;
        button.addEventListener('click', () => void moveOther(action, hand.peerId));
        item.append(button);
        return item;
      }),
  );
  byId('hands-empty').hidden = handsList.childElementCount > 0;
}

async function moveOther(action: 'invite' | 'remove', peerId: string): Promise<void> {
  const c = client;
  if (!c) return;
  try {
    await c.moveHand(action, { peerId, version: queue.version });
  } catch (error) {
    // Another assistant moved the queue first: show it as it is now.
    if (error instanceof ChorusClientError && error.code === 'STALE_VERSION') renderQueue(await c.handQueue());
    fail(error);
  }
}

async function moveOwn(action: 'raise' | 'lower' | 'accept' | 'decline'): Promise<void> {
  try {
    await client?.moveHand(action);
  } catch (error) {
    fail(error);
  }
}

function addChat(message: ChatMessage): void {
  const item = document.createElement('li');
  item.dataset['to'] = message.to;
  const who = document.createElement('strong');
  who.textContent = `${message.from.name ?? message.from.identity}${message.to === 'staff' ? ' (to the teacher)' : ''}: `;
  item.append(who, document.createTextNode(message.text));
  chatLog.append(item);
  item.scrollIntoView({ block: 'nearest' });
}

byId('join').addEventListener('click', () => void join());
byId('leave').addEventListener('click', () => {
  void client?.close();
  client = undefined;
  clearTimeout(recvTimer);
  hls?.stop();
  hls = undefined;
  hlsPanel.hidden = true;
  goQuiet();
  setState('left');
});
raiseButton.addEventListener('click', () => void moveOwn('raise'));
lowerButton.addEventListener('click', () => void moveOwn('lower'));
acceptButton.addEventListener('click', () => void moveOwn('accept'));
declineButton.addEventListener('click', () => void moveOwn('decline'));
micButton.addEventListener('click', () => {
  micOn = !micOn;
  micButton.textContent = micOn ? 'Mute' : 'Unmute';
  micButton.setAttribute('aria-pressed', String(micOn));
  void client?.setMuted('microphone', !micOn).catch(fail);
});
byId<HTMLFormElement>('chat-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = chatInput.value.trim();
  if (!text || !client) return;
  void client.sendChat(text, chatStaff.checked ? 'staff' : 'class').then(
    () => {
      chatInput.value = '';
    },
    fail,
  );
});

exposeDebug({
  get state() {
    return state;
  },
  get role() {
    return staff ? 'staff' : 'student';
  },
  get hand() {
    return client?.hand?.state;
  },
  get queueVersion() {
    return queue.version;
  },
  get recording() {
    return recordButton.getAttribute('aria-pressed') === 'true';
  },
  /** This page's tracks live on the node. */
  get published() {
    return [...(client?.publications.values() ?? [])].filter((p) => p.live).length;
  },
  /** 'hls' while a student watches the recording because its WebRTC could not connect. */
  get mode() {
    return hls ? 'hls' : 'webrtc';
  },
  get hlsTime() {
    return hlsVideo.currentTime;
  },
  get hlsWidth() {
    return hlsVideo.videoWidth;
  },
  get hlsTrouble() {
    return hlsTrouble;
  },
  /** Bytes sent so far on each video layer this page encodes, by rid (dynacast turns unwanted ones off). */
  async sentLayers(): Promise<Record<string, number>> {
    const sent: Record<string, number> = {};
    (await client?.sendStats())?.forEach((stat: { type: string; kind?: string; rid?: string; ssrc?: number; bytesSent?: number }) => {
      if (stat.type === 'outbound-rtp' && stat.kind === 'video') sent[stat.rid ?? String(stat.ssrc)] = stat.bytesSent ?? 0;
    });
    return sent;
  },
});
