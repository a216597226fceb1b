// @uchat/client: a client for the uchat engine that reconnects, recovers with `since` and resends
// with the same cid, so every message is seen once and every send is stored once.

export { ChatClient } from './client.ts';
export type {
  ChatClientOptions, ClientEvents, ClientState, HistoryPage, HistoryQuery, ReadResult, SendAck, SendOptions, StateDetail,
} from './client.ts';
export type { BackoffOptions } from './backoff.ts';
export { newCid } from './cid.ts';
export { ChatError, type ChatErrorCode, type ClientErrorCode } from './errors.ts';
export type { WebSocketConstructor, WebSocketLike } from './platform.ts';
export { applyRetraction, isRetraction } from './retraction.ts';
export type { JoinOptions, Joined, LeftInfo, MessageInfo, ResetInfo, Subscription } from './subscription.ts';
export * from './protocol.ts';
