/**
 * The Chorus client SDK (published as `@chorus-rtc/client`): one client per room kind, over the
 * wire protocol the node speaks (`src/protocol`, the same source the node is built from).
 *
 * - `ChorusClient`: a broadcast (broadcaster or listener; HLS when WebRTC fails, with `@chorus-rtc/client/hls`).
 * - `CallClient`: a call or a class (publish, subscribe, views and layers, hands, chat, recording).
 * - `WatchClient`: a watch party's synchronised playback.
 *
 * In Node, give any of them `handlerFactory: nodeHandlerFactory(wrtc)` from `@chorus-rtc/client/node`.
 *
 * @module @chorus-rtc/client
 */
export { ChorusClient, type ChorusClientOptions, type ClientEvents, type ClientState, type MediaMode } from './chorusClient.js';
export { CallClient, type CallClientOptions, type CallEvents, type CallState, type RemoteParticipant, type RemoteTrack, type TrackView } from './callClient.js';
export { WatchClient, type PlayerLike, type WatchClientEvents, type WatchClientOptions, type WatchClientState } from './watchClient.js';
export type { ClockSample } from './clock.js';
export { ChorusClientError } from './signaling.js';
export type { P2pFactory } from './p2pLink.js';
export { isAllowedVideoUrl, kindOfSource, PROTOCOL_VERSION, positionAt, recordingPlaylist, trackSources } from '../protocol/basics.js';
export type { BroadcastState, ChatMessage, CreatedTransport, RoomKind, Role, Responses, ServerEvents, TransportInfo } from '../protocol/messages.js';
export type { ErrorCode, WireError } from '../protocol/errors.js';
export type { CallPathReason, ConnectionQuality, Hand, HandAction, HandQueue, HandState, MediaPath, ParticipantInfo, RecordingInfo, RoomChange, RoomDelta, RoomSnapshot, TrackInfo, TrackSource } from '../protocol/room.js';
export type { WatchCause, WatchHost, WatchMember, WatchSnapshot, WatchState } from '../protocol/watch.js';
