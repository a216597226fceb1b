// A per-codec wire adapter: how one connection's replies, errors, acks and messages are written,
// and which uWS topic carries a room's messages to it. The core calls these and never branches on
// the codec; JSON and MessagePack share one adapter each, a STOMP connection has its own (its
// frames name its subscriptions).

import type * as Protocol from '../../client/src/protocol.ts';
import type { Delivered } from '../../workers/contract.ts';
import type { ErrorCode } from './errors.ts';
import type { Out, ReplyFields } from './frames.ts';

/** Where a connection's frames go: a socket, corked, dropped once it is closed. */
export interface Sink {
  send(out: Out): void;
  /** Close the connection with a close frame. */
  end(code: number, reason: string): void;
}

export interface Wire {
  /** A reply (`joined`, `left`, `history`, `read`, `pong`): plain fields, optional messages, the ref echoed. */
  reply(sink: Sink, fields: ReplyFields, messages: Delivered[] | undefined, ref: string | undefined): void;
  error(sink: Sink, code: ErrorCode, message: string | undefined, ref: string | undefined, cid: string | undefined): void;
  /** The ack of a committed send, delete or edit (published on the connection's own topic), or null if none is due. */
  ack(a: AckFields, ref: string | undefined): Out | null;
  /** The uWS topic that carries `room`'s messages to this connection; null if it takes none. */
  topic(room: string): string | null;
  /** The connection (un)subscribed `topic(room)`. */
  subscribed(room: string, on: boolean): void;
  /** One message written to this connection alone (it is not on the topic: it filters senders). */
  message(room: string, d: Delivered): Out | null;
  /** A typing event written to this connection alone; null if its protocol has none. */
  typing(fields: ReplyFields): Out | null;
  /** A read receipt written to this connection alone. */
  receipt(r: ReceiptFields): Out | null;
}

/** An ack's fields (the wire protocol's AckFrame without op and ref). */
export type AckFields = Omit<Protocol.AckFrame, 'op' | 'ref'>;
/** A receipt's fields. */
export type ReceiptFields = Omit<Protocol.ReceiptFrame, 'op'>;

/** The topic of a room's messages for JSON and for MessagePack connections. */
export const jsonTopic = (room: string): string => 'j/' + room;
export const msgpackTopic = (room: string): string => 'm/' + room;
