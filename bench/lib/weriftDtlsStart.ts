/**
 * werift, as DTLS client, waits a fixed 100 ms after ICE connects before it sends its
 * ClientHello (`await setTimeout(100)` in RTCDtlsTransport.start, webrtc/src/transport/dtls.js,
 * werift 0.24). Browsers send it as soon as ICE is up. That pause is the load generator's, not
 * the server's: the server gets the same ClientHello and does the same handshake either way.
 *
 * This starts the handshake at once: when a DTLS transport enters `connecting` (ICE is up and
 * werift has made its DtlsClient, synchronously, just before the pause), we call the client's
 * connect() ourselves and hand werift that same promise when it calls connect() after the pause,
 * so the ClientHello goes out once. Relies on werift internals; if they change (no `dtls`, no
 * `connect`), it does nothing and werift keeps its own timing.
 */
import type { RTCDtlsTransport, RTCPeerConnection } from 'werift';

interface ConnectableDtls {
  connect(): Promise<void>;
}

function startAtOnce(transport: RTCDtlsTransport): void {
  transport.onStateChange.subscribe((state) => {
    if (state !== 'connecting' || transport.role !== 'client') return;
    // start() makes its DtlsClient right after announcing `connecting`, in the same tick.
    queueMicrotask(() => {
      const client = transport.dtls as unknown as Partial<ConnectableDtls> | undefined;
      if (!client || typeof client.connect !== 'function') return;
      const started = client.connect.call(client);
      // werift attaches its own handler when it calls connect() after the pause; until then a
      // failure must not surface as an unhandled rejection.
      started.catch(() => undefined);
      client.connect = () => started;
    });
  });
}

/** Call after setRemoteDescription (the transports exist) and before setLocalDescription (ICE starts). */
export function startDtlsWithoutPause(pc: RTCPeerConnection): void {
  for (const transport of pc.dtlsTransports) startAtOnce(transport);
}
