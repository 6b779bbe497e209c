/**
 * @chorus-rtc/server-sdk: Chorus for an application's server.
 *
 * - `mintToken(key, grant)`: a join token, signed here with an API key (no node needed).
 * - `verifyWebhook(body, signature, secret)`: checks a webhook's `chorus-signature`.
 * - `ChorusServer`: the admin API and the media REST API of a node, typed.
 *
 * @module @chorus-rtc/server-sdk
 */
export { ChorusApiError } from './errors.js';
export { DEFAULT_TTL_SECONDS, mintToken, type ApiKey, type Grants, type PublishGrant, type RoomGrant, type SignedToken } from './tokens.js';
export { SIGNATURE_HEADER, verifyWebhook } from '../../../src/webhooks/signature.js';
export { ChorusServer, type ChorusServerOptions, type ConsumeAnswer, type ConsumeRequest, type DtlsParameters, type JoinAnswer, type PeerView, type ProduceRequest, type RecordingInfo, type RoomKind, type RoomView, type TrackSource, type TransportInfo, type TransportRequest } from './client.js';
