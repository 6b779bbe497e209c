/**
 * For pages in Chromium that must not get WebRTC through (a network that allows nothing but an
 * absent relay): passed to addInitScript, it runs before the page's scripts.
 */
export function blockWebRtc(): void {
  const Native = window.RTCPeerConnection;
  const relayOnly = (config?: RTCConfiguration): RTCConfiguration => ({ ...config, iceServers: [], iceTransportPolicy: 'relay' });
  class RelayOnlyPeerConnection extends Native {
    constructor(config?: RTCConfiguration) {
      super(relayOnly(config));
    }
    override setConfiguration(config?: RTCConfiguration): void {
      super.setConfiguration(relayOnly(config));
    }
  }
  window.RTCPeerConnection = RelayOnlyPeerConnection;
}
