// Frames waiting for their answer, kept across reconnects: sends (keyed by cid, answered by `ack`)
// and idempotent requests (history, read; keyed by ref). Each is written again on every new
// connection until answered, retried with backoff when the engine says `rate_limited` or
// `overloaded`, and given up after its age limit.

import { ChatError, isRetryable } from './errors.ts';
import { after } from './platform.ts';
import type { ErrorCode } from './protocol.ts';

export interface PendingIo {
  /** Write a frame on the open connection; false when there is none (it goes out on the next). */
  write(frame: string): boolean;
  /** Backoff before retry number `attempt` of a refused frame. */
  retryDelay(attempt: number): number;
}

interface Entry<T> {
  frame: string;
  bytes: number;
  room: string;
  cid: string | undefined;
  /** Written on the current connection and not answered yet. */
  inFlight: boolean;
  retries: number;
  cancelRetry: (() => void) | null;
  cancelAge: () => void;
  resolve(value: T): void;
  reject(err: ChatError): void;
}

export class PendingSet<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(private readonly io: PendingIo, private readonly maxAge: number, private readonly what: string) {}

  get size(): number {
    return this.entries.size;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Track a frame and write it now if a connection is open; settles once, with its answer or an error. */
  add(key: string, frame: string, bytes: number, about: { room: string; cid?: string }): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const e: Entry<T> = {
        frame, bytes, room: about.room, cid: about.cid, inFlight: false, retries: 0, cancelRetry: null, resolve, reject,
        cancelAge: after(this.maxAge, () => {
          this.settle(key);
          reject(new ChatError('timeout', `no answer to this ${this.what} within ${this.maxAge} ms`, about));
        }),
      };
      this.entries.set(key, e);
      e.inFlight = this.io.write(frame);
    });
  }

  /** A connection is open: write everything still unanswered, in the order it was added. */
  flush(): void {
    for (const e of this.entries.values()) {
      e.cancelRetry?.();
      e.cancelRetry = null;
      e.inFlight = this.io.write(e.frame);
    }
  }

  /** The connection is gone: nothing is in flight. Returns the key of the largest frame that was. */
  disconnected(): string | undefined {
    let largest: string | undefined;
    let bytes = -1;
    for (const [key, e] of this.entries) {
      if (e.inFlight && e.bytes > bytes) {
        largest = key;
        bytes = e.bytes;
      }
      e.inFlight = false;
      e.cancelRetry?.();
      e.cancelRetry = null;
    }
    return largest;
  }

  /** The answer arrived. False if the key is not (or no longer) pending. */
  resolve(key: string, value: T): boolean {
    const e = this.settle(key);
    if (e === undefined) return false;
    e.resolve(value);
    return true;
  }

  /**
   * The engine refused the frame: `rate_limited` and `overloaded` are retried with backoff on this
   * connection (or written again on the next), anything else rejects. False if not pending.
   */
  refused(key: string, code: ErrorCode, message: string): boolean {
    const e = this.entries.get(key);
    if (e === undefined) return false;
    if (isRetryable(code)) {
      e.inFlight = false;
      e.cancelRetry?.();
      e.cancelRetry = after(this.io.retryDelay(e.retries++), () => {
        e.cancelRetry = null;
        e.inFlight = this.io.write(e.frame);
      });
      return true;
    }
    this.reject(key, new ChatError(code, message, { room: e.room, cid: e.cid }));
    return true;
  }

  reject(key: string, err: ChatError): boolean {
    const e = this.settle(key);
    if (e === undefined) return false;
    e.reject(err);
    return true;
  }

  /** Reject everything (close()). */
  rejectAll(make: (about: { room: string; cid: string | undefined }) => ChatError): void {
    for (const key of [...this.entries.keys()]) {
      const e = this.settle(key)!;
      e.reject(make({ room: e.room, cid: e.cid }));
    }
  }

  private settle(key: string): Entry<T> | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    this.entries.delete(key);
    e.cancelAge();
    e.cancelRetry?.();
    return e;
  }
}
