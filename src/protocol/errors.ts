// One error catalogue: every error code the engine answers with (on the wire, in an HTTP body, in
// an actor reply), its default message and HTTP status, and every WebSocket close code it uses.
// Nothing else in the code base invents a code, a status or a close code. The codes a client sees
// are the wire protocol's (client/src/protocol.ts): the compiler checks both lists.

import type * as Protocol from '../../client/src/protocol.ts';

/** Codes a client can receive: in an `error` frame, a STOMP ERROR, or an HTTP error body. */
export const ERRORS = {
  bad_frame: { status: 400, message: 'frame is not valid JSON/MessagePack or not an object' },
  unknown_op: { status: 400, message: 'unknown op' },
  invalid: { status: 400, message: 'a field is missing or malformed' },
  too_large: { status: 413, message: 'frame exceeds CHAT_MAX_PAYLOAD' },
  not_found: { status: 404, message: 'not found' },
  forbidden: { status: 403, message: 'forbidden' },
  unauthorized: { status: 401, message: 'unauthorized' },
  rate_limited: { status: 429, message: 'rate limited, slow down' },
  overloaded: { status: 503, message: 'the store is behind; retry later, nothing was stored' },
  internal: { status: 500, message: 'internal error' },
} as const satisfies Record<Protocol.ErrorCode, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/**
 * Internal codes: never sent as they are. `conflict` is the persistence actor's answer when an
 * operation collides with the store's state (a room id already taken, a store that refuses a
 * commit); the front thread answers the client `invalid` for it (see `clientCode`).
 */
export const INTERNAL_ERRORS = {
  conflict: { status: 409, message: 'the operation conflicts with the stored state' },
} as const;

export type InternalCode = keyof typeof INTERNAL_ERRORS;

/** The code a client sees for an actor's answer. */
export function clientCode(code: ErrorCode | InternalCode): ErrorCode {
  return code === 'conflict' ? 'invalid' : code;
}

/** Messages written in more than one place. */
export const MSG = {
  noSuchRoom: 'no such room',
  notMember: 'you are not a member of this room',
  guestsPublicOnly: 'this engine serves guests public rooms only (CHAT_GUEST_ROOMS=public)',
} as const;

/** WebSocket close codes (RFC 6455 section 7.4). */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001, // server shutting down
  protocolError: 1002,
  /** Never sent: what a peer sees when a connection ends without a close frame (uWS cut it off). */
  abnormal: 1006,
  policy: 1008, // e.g. the JWT expired mid-session
  tooLarge: 1009, // frame over the hard payload limit
  internal: 1011,
} as const satisfies typeof Protocol.CLOSE;

/** An error with a protocol code, thrown by validation at the edge and turned into a frame or 4xx. */
export class ChatError extends Error {
  override name = 'ChatError';
  constructor(readonly code: ErrorCode, message?: string) {
    super(message ?? ERRORS[code].message);
  }
  get status(): number {
    return ERRORS[this.code].status;
  }
}
