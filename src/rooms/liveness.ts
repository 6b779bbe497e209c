/**
 * Notices a transport whose media path is dead while its signaling socket lives on: one that
 * never completed ICE + DTLS although media was due on it, or whose ICE consent lapsed and did
 * not come back. The socket alone cannot tell (a phone that switched networks keeps pinging over
 * the new one while its old 5-tuple is gone), and a session like that would hold a consumer and
 * a seat forever.
 *
 * A transport is only judged while media is expected on it. mediasoup-client connects a
 * transport lazily, on its first consume or produce: a listener waiting for a broadcast that has
 * not started, or a broadcaster who has not pressed Start yet, holds a transport that has no
 * reason to connect, and its live socket is all there is to ask of it. Removing those would have
 * them rejoin every stale window (and a room with only them in it close and reopen).
 */
import type { types } from 'mediasoup';

export interface TransportLiveness {
  /** Whether ICE and DTLS are both up: media can flow. */
  readonly connected: boolean;
  /** Whether media is expected may have changed (a consumer came or went, a broadcast started): judge again. */
  update(): void;
}

export function watchTransportLiveness(
  transport: types.WebRtcTransport,
  staleMs: number,
  /** Whether media is due on the transport although it carries nothing yet (it was told to consume). */
  told: () => boolean,
  onStale: (why: string) => void,
): TransportLiveness {
  let timer: NodeJS.Timeout | undefined;
  let everConnected = false;
  /** Producers and consumers on it: media is due while it carries any. */
  let carried = 0;
  const healthy = (): boolean =>
    transport.dtlsState === 'connected' && (transport.iceState === 'connected' || transport.iceState === 'completed');
  const dead = (): boolean => !transport.closed && !healthy() && (carried > 0 || told());
  const why = (): string => (transport.dtlsState === 'closed' ? 'DTLS closed' : everConnected ? 'ICE disconnected' : 'never connected');
  const disarm = (): void => {
    clearTimeout(timer);
    timer = undefined;
  };
  const update = (): void => {
    if (healthy()) everConnected = true;
    if (!dead()) return disarm();
    if (timer || staleMs <= 0) return;
    // The window runs from the moment media became due (or the path went down), not from when
    // the transport was made.
    timer = setTimeout(() => {
      timer = undefined;
      if (dead()) onStale(why());
    }, staleMs);
    timer.unref();
  };

  transport.on('icestatechange', update);
  transport.on('dtlsstatechange', (state) => {
    if (state === 'failed' && staleMs > 0) {
      disarm();
      onStale('DTLS failed');
    } else update();
  });
  // Consumers and producers are what make media due; both close with the transport too.
  const carry = (item: { observer: { once(event: 'close', listener: () => void): unknown } }): void => {
    carried++;
    item.observer.once('close', () => {
      carried--;
      update();
    });
    update();
  };
  transport.observer.on('newconsumer', carry);
  transport.observer.on('newproducer', carry);
  transport.observer.once('close', disarm);
  update();
  return {
    get connected() {
      return !transport.closed && healthy();
    },
    update,
  };
}
