// The one error type the library rejects with: the engine's code when the engine refused, or one
// of the library's own codes when it gave up locally.

import { RETRYABLE_CODES, type ErrorCode } from './protocol.ts';

/**
 * Codes the library itself uses:
 * - `closed`: close() was called (or the client was already closed);
 * - `timeout`: a send was not acked within `maxPendingAge`, or a request not answered within
 *   `requestTimeout` (a send's outcome is then unknown: retry it with the same cid);
 * - `pending_full`: `maxPending` sends are already waiting for their ack;
 * - `left`: the subscription was left before the engine answered its join.
 */
export type ClientErrorCode = 'closed' | 'timeout' | 'pending_full' | 'left';

export type ChatErrorCode = ErrorCode | ClientErrorCode;

export class ChatError extends Error {
  override readonly name = 'ChatError';
  /** The refused send's cid, when the error is about a send. */
  readonly cid: string | undefined;
  /** The room the refused operation named, when there is one. */
  readonly room: string | undefined;

  constructor(readonly code: ChatErrorCode, message: string, about: { cid?: string; room?: string } = {}) {
    super(message);
    this.cid = about.cid;
    this.room = about.room;
  }
}

/** Whether an engine error code means "nothing was done, try again later". */
export function isRetryable(code: string): boolean {
  return (RETRYABLE_CODES as readonly string[]).includes(code);
}
