// The shapes of the protocol on the front thread: which codecs a connection may speak, the client
// frames as validation hands them on, and what an encoded server frame is.

import type * as Protocol from '../../client/src/protocol.ts';
import type { ErrorCode } from './errors.ts';

export const Codec = { Json: 0, Msgpack: 1, Stomp: 2 } as const;
export type Codec = (typeof Codec)[keyof typeof Codec];

/** Subprotocols in the engine's order of preference. */
export const SUBPROTOCOLS: Record<string, Codec> = {
  'chat.v1.json': Codec.Json,
  'chat.v1.msgpack': Codec.Msgpack,
  'v12.stomp': Codec.Stomp,
  'v11.stomp': Codec.Stomp,
  'v10.stomp': Codec.Stomp,
};

/** A client frame after validation: every field typed and checked. */
export type ClientFrame =
  | { op: 'join'; ref: string | undefined; room: string; since: string | undefined; limit: number }
  | { op: 'leave'; ref: string | undefined; room: string }
  | { op: 'send'; ref: string | undefined; room: string; text: string; cid: string }
  | { op: 'delete'; ref: string | undefined; room: string; id: string; cid: string | undefined }
  | { op: 'edit'; ref: string | undefined; room: string; id: string; text: string; cid: string }
  | { op: 'history'; ref: string | undefined; room: string; before: string | undefined; after: string | undefined; limit: number }
  | { op: 'read'; ref: string | undefined; room: string; upTo: string }
  | { op: 'typing'; ref: string | undefined; room: string }
  | { op: 'ping'; ref: string | undefined };

export type Frame<Op extends ClientFrame['op']> = Extract<ClientFrame, { op: Op }>;

/**
 * The wire protocol's client frames (client/src/protocol.ts) as validation hands them on: every
 * optional field present (undefined when absent), `limit` defaulted. ClientFrame must be exactly
 * this: the compiler fails here when either side changes alone.
 */
type Validated<F> = F extends Protocol.ClientFrame
  ? { [K in keyof Required<F>]: K extends 'limit' ? number : undefined extends F[K] ? F[K] | undefined : F[K] }
  : never;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Holds<T extends true> = T;
export type ClientFrameMatchesWire = Holds<Same<ClientFrame, Validated<Protocol.ClientFrame>>>;

/** A refused frame: what the error frame must carry. */
export interface FrameError {
  error: ErrorCode;
  message: string;
  ref: string | undefined;
  cid: string | undefined;
}

export type Decoded = ClientFrame | FrameError;

export function isFrameError(d: Decoded): d is FrameError {
  return (d as FrameError).error !== undefined;
}

export interface PageParams {
  before: string | undefined;
  after: string | undefined;
  limit: number;
}

/** A server frame ready to send: a string for text frames, bytes for binary ones. */
export type Out = string | Uint8Array;

/** The fields of a reply frame other than its messages and ref (`joined`, `left`, `history`, ...). */
export type ReplyFields = Record<string, unknown> & { op: string };
