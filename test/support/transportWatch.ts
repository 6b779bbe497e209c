/**
 * The WebRTC transports of every mediasoup worker this test process starts, found through
 * mediasoup's observer (the node under test runs in this process), so a test can read the
 * server's own view of one client's link: what it sends, retransmits and estimates.
 */
import * as mediasoup from 'mediasoup';

type WebRtcTransport = mediasoup.types.WebRtcTransport;

export interface TransportWatch {
  /** The open WebRTC transport whose selected ICE pair reaches `remoteIp`, and that sends media. */
  sendingTo(remoteIp: string): Promise<WebRtcTransport | undefined>;
  stop(): void;
}

/** Call before the node starts its workers: transports made earlier are not seen. */
export function watchTransports(): TransportWatch {
  const open = new Set<WebRtcTransport>();
  const onWorker = (worker: mediasoup.types.Worker): void => {
    worker.observer.on('newrouter', (router) => {
      router.observer.on('newtransport', (transport) => {
        if (transport.type !== 'webrtc') return;
        const webrtc = transport as WebRtcTransport;
        open.add(webrtc);
        webrtc.observer.once('close', () => open.delete(webrtc));
      });
    });
  };
  mediasoup.observer.on('newworker', onWorker);
  return {
    async sendingTo(remoteIp) {
      for (const transport of open) {
        if (transport.iceSelectedTuple?.remoteIp !== remoteIp) continue;
        const [stats] = await transport.getStats();
        if ((stats?.rtpBytesSent ?? 0) > 0) return transport;
      }
      return undefined;
    },
    stop() {
      mediasoup.observer.off('newworker', onWorker);
    },
  };
}
