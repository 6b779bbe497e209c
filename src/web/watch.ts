/**
 * Watch-party page: a video every member's player keeps in step with the room. The host (or a
 * co-host with the control grant) gets play/pause/seek/speed/address controls; everyone sees who
 * watches and how far their own player is from the room (drift). Start watching is a button
 * because browsers only play sound after a gesture.
 */
import { ChorusClientError, isAllowedVideoUrl, WatchClient, type WatchState } from '@chorus-rtc/client';
import { byId, copyButton, describeError, endsSession, exposeDebug, linkParams, resumeStore, shareOrigin, showAlert } from './shared.js';

type PageState = 'loading' | 'create' | 'creating' | 'idle' | 'connecting' | 'watching' | 'reconnecting' | 'ended' | 'error' | 'disabled';

const words: Record<PageState, string> = {
  loading: 'Loading…',
  create: 'Start a watch party and share the guest link.',
  creating: 'Creating the watch party…',
  idle: 'Press Start watching to join.',
  connecting: 'Connecting…',
  watching: 'Watching together',
  reconnecting: 'Connection lost. Reconnecting…',
  ended: 'This watch party has ended.',
  error: 'Not connected.',
  disabled: 'Watch party links come from whoever runs this server.',
};

const extraWords: Record<string, string> = {
  NOT_HOST: 'Only the host can do that.',
  WRONG_ROOM_KIND: 'This link is for another kind of room (not a watch party).',
};

const status = byId('status');
const video = byId<HTMLVideoElement>('video');
const errorBox = byId('error');
const controls = byId<HTMLFieldSetElement>('controls');
const seek = byId<HTMLInputElement>('seek');
const rate = byId<HTMLSelectElement>('rate');
const urlInput = byId<HTMLInputElement>('url');

let state: PageState = 'loading';
let client: WatchClient | undefined;
let lastError: string | undefined;
let seeking = false;

exposeDebug({
  get state() {
    return state;
  },
  get isHost() {
    return client?.isHost ?? false;
  },
  get canControl() {
    return client?.canControl ?? false;
  },
  get version() {
    return client?.playback?.version ?? null;
  },
  get playing() {
    return client?.playback?.playing ?? null;
  },
  get url() {
    return client?.playback?.url ?? null;
  },
  get currentTime() {
    return video.currentTime;
  },
  get expected() {
    return client?.expectedPosition() ?? null;
  },
  get drift() {
    return client?.driftMs ?? null;
  },
  get members() {
    return client?.members.length ?? 0;
  },
  get error() {
    return lastError ?? null;
  },
});

function setState(next: PageState, detail?: string): void {
  state = next;
  status.dataset['state'] = next;
  status.textContent = detail ?? words[next];
}

/** What the user typed into the address field and the server (or this page) refused. */
const badVideoAddress = 'That video address cannot be used: give an http:// or https:// address of a video file, or a path on this server such as /sample.webm.';

function fail(error: unknown, words: Record<string, string> = {}): void {
  const code = error instanceof ChorusClientError ? error.code : undefined;
  lastError = (code && (words[code] ?? extraWords[code])) ?? describeError(error);
  showAlert(errorBox, lastError);
}

/** Why the browser could not play what the room points at (MediaError codes). */
const mediaErrorWords: Record<number, string> = {
  1: 'loading was stopped',
  2: 'a network error interrupted it',
  3: 'the browser could not decode it',
  4: 'the address is not a video this browser can play, or its server refused it',
};

function clock(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function render(): void {
  const c = client;
  const playback = c?.playback;
  byId('position').textContent = clock(video.currentTime);
  byId('playing-word').textContent = playback?.playing ? 'playing' : video.ended ? 'ended' : 'paused';
  // Who hosts is only known once joined; before that the line says nothing about it.
  byId('hosted-by').hidden = !playback;
  byId('host-name').textContent = playback?.host ? (playback.host.peerId === c?.peerId ? 'you' : playback.host.identity) : 'nobody';
  const drift = c?.driftMs;
  byId('drift').textContent = drift === null || drift === undefined ? '–' : `${drift > 0 ? '+' : ''}${drift} ms`;
  const sample = c?.clock;
  byId('offset').textContent = sample ? `${Math.round(sample.offsetMs)} ms` : '–';
  byId('rtt').textContent = sample ? `${Math.round(sample.rttMs)} ms` : '–';
  controls.hidden = !(c?.canControl ?? false);
  if (!seeking && Number.isFinite(video.duration)) {
    seek.max = String(video.duration);
    seek.value = String(video.currentTime);
  }
}

function renderMembers(): void {
  const c = client;
  if (!c) return;
  const list = byId('members');
  list.replaceChildren(
    ...c.members.map((m) => {
      const li = document.createElement('li');
      const you = m.peerId === c.peerId ? ' (you)' : '';
      const hosting = c.host?.peerId === m.peerId ? ' · host' : '';
      li.textContent = `${m.identity}${you}${hosting}`;
      return li;
    }),
  );
  byId('member-count').textContent = String(c.members.length);
}

async function start(roomId: string, token: string): Promise<void> {
  const resume = resumeStore(roomId, token);
  const c = new WatchClient({ url: location.origin, roomId, token, ...(resume.get() ? { resumeToken: resume.get()! } : {}) });
  client = c;
  c.attach(video);
  c.on('state', (s) => {
    if (s === 'joined') setState('watching');
    else if (s === 'reconnecting') setState('reconnecting');
    else if (s === 'connecting') setState('connecting');
  });
  c.on('joined', () => {
    resume.set(c.resumeToken);
    showAlert(errorBox, '');
  });
  c.on('playback', (playback: WatchState) => {
    rate.value = String(playback.rate);
    if (playback.url && document.activeElement !== urlInput) urlInput.value = playback.url;
    renderMembers();
  });
  c.on('members', renderMembers);
  c.on('host', renderMembers);
  c.on('blocked', () => {
    const join = byId<HTMLButtonElement>('join');
    join.textContent = 'Tap to play';
    join.hidden = false;
    setState('idle', 'The browser paused the video: tap to play.');
  });
  c.on('error', (error) => {
    if (endsSession(error)) {
      resume.set(undefined);
      setState('ended');
    }
    if (error.code !== 'DISCONNECTED') fail(error);
  });
  setState('connecting');
  try {
    await c.join();
  } catch (error) {
    setState('error');
    fail(error);
    return;
  }
  // A new party has nothing loaded yet: its host starts with the sample video.
  if (c.canControl && c.playback?.url === '') await c.load('/sample.webm').catch(fail);
}

async function control(action: (c: WatchClient) => Promise<unknown>, words: Record<string, string> = {}): Promise<void> {
  if (!client) return;
  try {
    showAlert(errorBox, '');
    await action(client);
  } catch (error) {
    fail(error, words);
  }
}

function loadAddress(): void {
  const url = urlInput.value.trim();
  // Checked here with the protocol's own rule, so the answer names the field, not the protocol.
  if (!isAllowedVideoUrl(url)) {
    lastError = badVideoAddress;
    showAlert(errorBox, lastError);
    return;
  }
  void control((c) => c.load(url), { BAD_REQUEST: badVideoAddress });
}

function wireControls(): void {
  byId('play').addEventListener('click', () => void control((c) => c.play()));
  byId('pause').addEventListener('click', () => void control((c) => c.pause(video.currentTime)));
  byId('back').addEventListener('click', () => void control((c) => c.seek(Math.max(0, (c.expectedPosition() ?? 0) - 10))));
  byId('forward').addEventListener('click', () => void control((c) => c.seek((c.expectedPosition() ?? 0) + 10)));
  seek.addEventListener('input', () => (seeking = true));
  seek.addEventListener('change', () => {
    seeking = false;
    void control((c) => c.seek(Number(seek.value)));
  });
  rate.addEventListener('change', () => void control((c) => c.setRate(Number(rate.value))));
  byId('load').addEventListener('click', loadAddress);
  urlInput.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') loadAddress();
  });
  // A black player and no word is the worst outcome: say what the browser could not do.
  video.addEventListener('error', () => {
    const code = video.error?.code ?? 0;
    lastError = `This video cannot be played here: ${mediaErrorWords[code] ?? 'the browser refused it'} (${video.currentSrc || video.src}).`;
    showAlert(errorBox, lastError);
  });
  // A freshly loaded video could not seek before its metadata: put it where the room is now.
  video.addEventListener('loadedmetadata', () => client?.realign());
}

function showPlayer(roomId: string, token: string): void {
  byId('room-line').hidden = false;
  byId('room-name').textContent = roomId;
  byId('player-card').hidden = false;
  byId('members-card').hidden = false;
  setState('idle');
  const join = byId<HTMLButtonElement>('join');
  join.addEventListener('click', () => {
    join.hidden = true;
    if (client) {
      // Again after the browser refused to play: this tap counts as the gesture.
      client.realign();
      setState('watching');
      return;
    }
    void start(roomId, token);
  });
}

async function main(): Promise<void> {
  wireControls();
  setInterval(render, 200);
  const link = linkParams();
  if ('roomId' in link) {
    showPlayer(link.roomId, link.token);
    return;
  }
  const config = (await fetch('/api/config').then((r) => r.json())) as { demo: boolean; publicUrl?: string };
  if (!config.demo) {
    setState('disabled');
    return;
  }
  setState('create');
  const form = byId<HTMLFormElement>('create');
  form.hidden = false;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    setState('creating');
    void (async () => {
      try {
        const response = await fetch('/api/demo/watch', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const created = (await response.json()) as { roomId: string; hostToken: string; guestToken: string };
        // For other devices: the node's LAN/public address when this page is on loopback.
        const guest = `${shareOrigin(config.publicUrl)}/watch.html?room=${encodeURIComponent(created.roomId)}&token=${encodeURIComponent(created.guestToken)}`;
        history.replaceState(null, '', `/watch.html?room=${encodeURIComponent(created.roomId)}&token=${encodeURIComponent(created.hostToken)}`);
        form.hidden = true;
        byId('share').hidden = false;
        const field = byId<HTMLInputElement>('guest-link');
        field.value = guest;
        copyButton(byId<HTMLButtonElement>('copy-guest'), field);
        showPlayer(created.roomId, created.hostToken);
      } catch (error) {
        setState('error');
        fail(error);
      }
    })();
  });
}

void main();
