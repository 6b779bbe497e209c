/**
 * Home page: mints a demo broadcast (POST /api/demo/broadcasts) and hands out the broadcaster
 * and listener links. When the node is not in demo mode it explains where links come from.
 */
import { byId, copyButton, exposeDebug, shareOrigin, showAlert } from './shared.js';

type HomeState = 'loading' | 'ready' | 'creating' | 'created' | 'disabled' | 'error';

interface DemoBroadcast {
  roomId: string;
  broadcasterToken: string;
  listenerToken: string;
}

const status = byId('status');
const form = byId<HTMLFormElement>('create');
const roomInput = byId<HTMLInputElement>('room-name');
const createButton = byId<HTMLButtonElement>('create-button');
const errorBox = byId('error');
const links = byId('links');
const broadcasterLink = byId<HTMLInputElement>('broadcaster-link');
const listenerLink = byId<HTMLInputElement>('listener-link');
const openBroadcaster = byId<HTMLAnchorElement>('open-broadcaster');
const shareText = byId<HTMLTextAreaElement>('share-text');
const shareButton = byId<HTMLButtonElement>('share');

let state: HomeState = 'loading';
let created: { roomId: string; broadcaster: string; listener: string } | undefined;
/** Where the listener link points: the node's LAN/public address when this page is on loopback. */
let listenerOrigin = location.origin;

exposeDebug({
  get state() {
    return state;
  },
  role: null,
  get links() {
    return created ? { ...created } : undefined;
  },
});

const statusWords: Record<HomeState, string> = {
  loading: 'Loading…',
  ready: 'Ready to start a broadcast.',
  creating: 'Creating your broadcast…',
  created: 'Your broadcast is ready. Open the broadcaster page and share the listener link.',
  disabled: 'Creating broadcasts here is turned off on this server.',
  error: 'Could not create a broadcast.',
};

function setState(next: HomeState): void {
  state = next;
  status.dataset['state'] = next;
  status.textContent = statusWords[next];
  createButton.disabled = next === 'creating';
}

/** Whatever the user typed, as a valid room id (1-64 of A-Z a-z 0-9 _ -), or undefined. */
function roomIdFrom(name: string): string | undefined {
  const id = name
    .trim()
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^A-Za-z0-9_-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64);
  return id || undefined;
}

function pageLink(page: string, roomId: string, token: string, origin = location.origin): string {
  const url = new URL(page, origin);
  url.searchParams.set('room', roomId);
  url.searchParams.set('token', token);
  return url.href;
}

async function apiError(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.code === 'BAD_REQUEST') return `The server refused that room name: ${body.error.message ?? 'invalid'}.`;
    if (body.error?.code === 'LIMIT_REACHED') return 'Too many requests. Wait a moment and try again.';
    if (response.status === 404) return 'This server does not create broadcasts from this page.';
  } catch {
    // not JSON: fall through
  }
  return `The server could not create a broadcast (HTTP ${response.status}). Try again in a moment.`;
}

async function create(): Promise<void> {
  setState('creating');
  showAlert(errorBox, '');
  const roomId = roomIdFrom(roomInput.value);
  try {
    const response = await fetch('/api/demo/broadcasts', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(roomId ? { roomId } : {}),
    });
    if (!response.ok) {
      showAlert(errorBox, await apiError(response));
      setState('error');
      return;
    }
    const demo = (await response.json()) as DemoBroadcast;
    created = {
      roomId: demo.roomId,
      broadcaster: pageLink('/broadcast.html', demo.roomId, demo.broadcasterToken),
      // The broadcaster stays on this origin (browsers grant the microphone on localhost, not on
      // a plain-HTTP LAN address); the listener link is for other devices.
      listener: pageLink('/listen.html', demo.roomId, demo.listenerToken, listenerOrigin),
    };
    byId('room-label').textContent = `“${demo.roomId}”`;
    broadcasterLink.value = created.broadcaster;
    listenerLink.value = created.listener;
    openBroadcaster.href = created.broadcaster;
    shareText.value = `Listen live to “${demo.roomId}” on Chorus: open this link and press Play.\n${created.listener}`;
    links.hidden = false;
    setState('created');
    links.scrollIntoView({ behavior: 'smooth', block: 'start' });
  } catch {
    showAlert(errorBox, 'Could not reach the server. Check your connection and try again.');
    setState('error');
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  if (state !== 'creating') void create();
});

copyButton(byId<HTMLButtonElement>('copy-broadcaster'), broadcasterLink);
copyButton(byId<HTMLButtonElement>('copy-listener'), listenerLink);
copyButton(byId<HTMLButtonElement>('copy-share'), shareText);

if (typeof navigator.share === 'function') {
  shareButton.hidden = false;
  shareButton.addEventListener('click', () => {
    if (!created) return;
    void navigator.share({ title: 'Chorus broadcast', text: shareText.value.split('\n')[0], url: created.listener }).catch(() => undefined);
  });
}

async function loadConfig(): Promise<void> {
  try {
    const response = await fetch('/api/config');
    const config = (await response.json()) as { demo?: boolean; publicUrl?: string };
    listenerOrigin = shareOrigin(config.publicUrl);
    byId('lan-hint').hidden = listenerOrigin === location.origin;
    if (config.demo) {
      form.hidden = false;
      byId('call-start').hidden = false;
      byId('class-start').hidden = false;
      setState('ready');
    } else {
      byId('demo-off').hidden = false;
      setState('disabled');
    }
  } catch {
    showAlert(errorBox, 'Could not reach the server. Reload the page to try again.');
    setState('error');
  }
}

/** A new call: a participant token of our own, then the call page (whose share link has no token). */
byId<HTMLButtonElement>('start-call').addEventListener('click', () => {
  void (async () => {
    try {
      const response = await fetch('/api/demo/calls', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      if (!response.ok) {
        showAlert(errorBox, await apiError(response));
        return;
      }
      const call = (await response.json()) as { roomId: string; token: string };
      location.assign(pageLink('/call.html', call.roomId, call.token));
    } catch {
      showAlert(errorBox, 'Could not reach the server. Check your connection and try again.');
    }
  })();
});

/**
 * A new class: a teacher link and a student link for a fresh room. Neither carries a token: in
 * demo mode each visitor asks for one of the link's role.
 */
byId<HTMLButtonElement>('start-class').addEventListener('click', () => {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  const room = btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const link = (origin: string, role: 'teacher' | 'student'): string => {
    const url = new URL('/class.html', origin);
    url.searchParams.set('room', room);
    url.searchParams.set('role', role);
    return url.href;
  };
  byId<HTMLInputElement>('teacher-link').value = link(location.origin, 'teacher');
  byId<HTMLInputElement>('student-link').value = link(listenerOrigin, 'student');
  byId<HTMLAnchorElement>('open-teacher').href = link(location.origin, 'teacher');
  byId('class-links').hidden = false;
});
copyButton(byId<HTMLButtonElement>('copy-teacher'), byId<HTMLInputElement>('teacher-link'));
copyButton(byId<HTMLButtonElement>('copy-student'), byId<HTMLInputElement>('student-link'));

void loadConfig();
