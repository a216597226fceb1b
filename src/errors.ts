// One error catalogue: every protocol error code, its default message and its HTTP status, and
// every WebSocket close code the engine uses. Nothing else in the code base invents a code. The
// codes themselves are the wire protocol's (client/src/protocol.ts): the compiler checks both lists.

import type * as Wire from '../client/src/protocol.ts';

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
} as const satisfies Record<Wire.ErrorCode, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** WebSocket close codes (RFC 6455 section 7.4 and the 4000-4999 private range). */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001, // server shutting down
  protocolError: 1002,
  policy: 1008, // e.g. the JWT expired mid-session
  tooLarge: 1009, // frame over the hard payload limit
  internal: 1011,
} as const satisfies typeof Wire.CLOSE;

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
