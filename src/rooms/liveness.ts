/**
 * Notices a transport whose media path is dead while its signaling socket lives on: one that
 * never completed ICE + DTLS, or whose ICE consent lapsed and did not come back. The socket alone
 * cannot tell (a phone that switched networks keeps pinging over the new one while its old
 * 5-tuple is gone), and a session like that would hold a consumer and a seat forever.
 */
import type { types } from 'mediasoup';

export function watchTransportLiveness(transport: types.WebRtcTransport, staleMs: number, onStale: (why: string) => void): void {
  if (staleMs <= 0) return;
  let timer: NodeJS.Timeout | undefined;
  const arm = (why: string): void => {
    if (timer || transport.closed) return;
    timer = setTimeout(() => {
      timer = undefined;
      if (!transport.closed) onStale(why);
    }, staleMs);
    timer.unref();
  };
  const disarm = (): void => {
    clearTimeout(timer);
    timer = undefined;
  };
  const healthy = (): boolean =>
    transport.dtlsState === 'connected' && (transport.iceState === 'connected' || transport.iceState === 'completed');

  arm('never connected');
  transport.on('icestatechange', (state) => {
    if (state === 'disconnected') arm('ICE disconnected');
    else if (healthy()) disarm();
  });
  transport.on('dtlsstatechange', (state) => {
    if (state === 'failed') {
      disarm();
      onStale('DTLS failed');
    } else if (healthy()) disarm();
  });
  transport.observer.once('close', disarm);
}
