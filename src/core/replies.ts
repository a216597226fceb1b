// Answers to one connection: a reply frame or an error, in the connection's own protocol, with
// every refusal counted by its code.

import type { Delivered } from '../../workers/contract.ts';
import type { Stats } from '../metrics/stats.ts';
import type { ErrorCode } from '../protocol/errors.ts';
import type { ReplyFields } from '../protocol/frames.ts';
import type { Session } from './session.ts';

export class Replies {
  constructor(private readonly stats: Stats) {}

  reply(s: Session, fields: ReplyFields, messages?: Delivered[], ref?: string): void {
    s.wire.reply(s, fields, messages, ref);
  }

  error(s: Session, code: ErrorCode, message: string | undefined, ref: string | undefined, cid?: string): void {
    this.stats.refuse(code);
    s.wire.error(s, code, message, ref, cid);
  }
}
