/**
 * The SDK in Node (servers, bots, tests): mediasoup-client's Chrome111 handler on a WebRTC for
 * Node that the application brings (`@roamhq/wrtc`; not a dependency of the SDK):
 *
 *   import wrtc from '@roamhq/wrtc';
 *   new CallClient({ url, roomId, token, handlerFactory: nodeHandlerFactory(wrtc) });
 *
 * @module @chorus-rtc/client/node
 */
import type { types } from 'mediasoup-client';
import { Chrome111 } from 'mediasoup-client/handlers/Chrome111';

type Description = { type: string; sdp: string };
export type Constructor = new (...args: never[]) => object;

/** What the SDK needs of a Node WebRTC implementation (the shape of `@roamhq/wrtc`). */
export interface NodeWebRtc {
  RTCPeerConnection: Constructor;
  RTCSessionDescription: new (init: never) => object;
  RTCIceCandidate: Constructor;
  MediaStream: Constructor;
  MediaStreamTrack: Constructor;
}

/**
 * @roamhq/wrtc's `localDescription` getter serializes libwebrtc's live description on the
 * JavaScript thread while libwebrtc's signaling thread adds the ICE candidates it gathers to that
 * same object: the two race, and now and then the getter segfaults inside SdpSerialize and takes
 * the whole process with it. mediasoup-client reads `localDescription` right after
 * `setLocalDescription` in `send()`, which is exactly when gathering starts. The description it
 * needs is the one it set (mids, ssrcs, fingerprint; the server is ICE-lite and takes no client
 * candidates), so this peer connection answers with that and never calls the native getter.
 * `currentLocalDescription`/`pendingLocalDescription` are left native: mediasoup-client does not
 * read them.
 */
export function pinnedLocalDescription<T extends Constructor>(Base: T, SessionDescription: NodeWebRtc['RTCSessionDescription']): T {
  function PeerConnection(this: unknown, ...args: never[]): unknown {
    const pc = new Base(...args) as { setLocalDescription(description: never): Promise<void> };
    let local: object | null = null;
    const setLocalDescription = async (description?: Description): Promise<void> => {
      // Without an argument libwebrtc makes the description itself, and only the racy getter
      // could tell us what it is.
      if (!description) throw new TypeError('setLocalDescription() needs the description in this Node peer connection');
      await pc.setLocalDescription(description as never);
      local = new SessionDescription(description as never);
    };
    return new Proxy(pc, {
      get(target, property) {
        if (property === 'localDescription') return local;
        if (property === 'setLocalDescription') return setLocalDescription;
        const value = Reflect.get(target, property, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
      set(target, property, value) {
        return Reflect.set(target, property, value, target);
      },
    });
  }
  PeerConnection.prototype = Base.prototype;
  return PeerConnection as unknown as T;
}

let installedFrom: NodeWebRtc | undefined;

/**
 * A handler factory for the SDK's clients in Node. mediasoup-client's handler looks the WebRTC
 * classes up as globals, as in a browser: they are installed once, from `wrtc`.
 */
export function nodeHandlerFactory(wrtc: NodeWebRtc): types.HandlerFactory {
  if (installedFrom !== wrtc) {
    const g = globalThis as Record<string, unknown>;
    g['RTCPeerConnection'] = pinnedLocalDescription(wrtc.RTCPeerConnection, wrtc.RTCSessionDescription);
    g['RTCSessionDescription'] = wrtc.RTCSessionDescription;
    g['RTCIceCandidate'] = wrtc.RTCIceCandidate;
    g['MediaStream'] = wrtc.MediaStream;
    g['MediaStreamTrack'] = wrtc.MediaStreamTrack;
    installedFrom = wrtc;
  }
  return Chrome111.createFactory();
}
