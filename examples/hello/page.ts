/**
 * The example's page: `?as=broadcast|listen|call&room=<room>`. A broadcaster sends its microphone;
 * a listener plays the broadcast; a call sends microphone and camera and shows everyone else.
 */
import { CallClient, ChorusClient, type RemoteTrack } from '@chorus-rtc/client';

const params = new URLSearchParams(location.search);
const room = params.get('room') ?? 'hello';
const as = params.get('as') ?? 'call';
const status = document.querySelector<HTMLElement>('#status')!;
const media = document.querySelector<HTMLElement>('#media')!;

/** What the page shows, for people and for the example's own test. */
const shown = { state: 'starting', error: '' };
(window as unknown as { example: typeof shown }).example = shown;
const say = (state: string): void => {
  shown.state = state;
  status.textContent = `${as} in ${room}: ${state}`;
};

function play(track: MediaStreamTrack, id: string): void {
  const element = document.createElement(track.kind === 'video' ? 'video' : 'audio');
  element.id = id;
  element.autoplay = true;
  element.srcObject = new MediaStream([track]);
  media.append(element);
}

async function main(): Promise<void> {
  const { chorusUrl } = (await (await fetch('/config')).json()) as { chorusUrl: string };
  const { token } = (await (await fetch('/token', { method: 'POST', body: JSON.stringify({ room, as }) })).json()) as { token: string };
  if (as === 'call') {
    const call = new CallClient({ url: chorusUrl, roomId: room, token });
    call.on('tracksubscribed', (track: RemoteTrack) => track.mediaTrack && play(track.mediaTrack, `remote-${track.trackId}`));
    call.on('trackunsubscribed', (track: RemoteTrack) => document.getElementById(`remote-${track.trackId}`)?.remove());
    await call.join();
    const local = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 180 } });
    await call.publish(local.getAudioTracks()[0]!, 'microphone');
    await call.publish(local.getVideoTracks()[0]!, 'camera', { video: { width: 320, height: 180 } });
  } else {
    const client = new ChorusClient({ url: chorusUrl, roomId: room, token });
    client.on('track', (track: MediaStreamTrack) => play(track, 'broadcast'));
    client.on('trackended', () => document.getElementById('broadcast')?.remove());
    await client.join();
    if (as === 'broadcast') {
      const local = await navigator.mediaDevices.getUserMedia({ audio: true });
      await client.publish(local.getAudioTracks()[0]!);
    }
  }
  say('joined');
}

main().catch((error: unknown) => {
  shown.error = String(error);
  say(`failed: ${String(error)}`);
});
