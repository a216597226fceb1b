// STOMP's wire adapter. STOMP has no joined/left/read/ack frames: a join's messages become MESSAGE
// frames of its subscription, a reply or an ack a RECEIPT if one was asked, and an error is an
// ERROR frame followed by the close STOMP requires. Each subscription has its own uWS topic (its
// MESSAGE frames name it), counted per room in StompTopics so a publish reaches each one once.

import { typeOf, type Delivered, type Message } from '../../../workers/contract.ts';
import { CLOSE, type ErrorCode } from '../errors.ts';
import type { Out, ReplyFields } from '../frames.ts';
import type { AckFields, ReceiptFields, Sink, Wire } from '../wire.ts';
import { encodeStomp, escapeHeader } from './parser.ts';
import type { StompState, StompSub } from './state.ts';

/**
 * A MESSAGE frame for one subscription: the precomputed head, then the per-message headers. Ids
 * and seqs need no escaping; the sender id is the only user-supplied header value.
 */
export function stompMessage(sub: StompSub, d: Delivered): string {
  let body = d.json;
  const type = typeOf(d);
  if (sub.style === 'tutorial') {
    const m = JSON.parse(d.json) as Message;
    // A deleted message has no `message`; DELETE and EDIT carry `target` (JSON.stringify drops undefined).
    body = JSON.stringify({ type: m.type === 'CHAT' ? 'TALK' : m.type, roomId: m.room, sender: m.from.name, message: m.text, id: m.id, seq: m.seq, at: m.at, senderId: m.from.id, target: m.target, deleted: m.deleted, editedAt: m.editedAt });
  }
  return `${sub.head}type:${type}\nmessage-id:${d.id}\nseq:${d.seq}\nsender-id:${escapeHeader(d.from)}\ncontent-length:${Buffer.byteLength(body)}\n\n${body}\0`;
}

/** A read receipt for one subscription: a MESSAGE with `type:RECEIPT`, the reader and the seq. */
export function stompReceipt(sub: StompSub, r: ReceiptFields): string {
  const body = sub.style === 'tutorial'
    ? JSON.stringify({ type: 'RECEIPT', roomId: r.room, user: r.user, seq: r.seq })
    : JSON.stringify({ type: 'RECEIPT', room: r.room, user: r.user, seq: r.seq });
  const user = escapeHeader(r.user);
  return `${sub.head}type:RECEIPT\nmessage-id:receipt-${r.seq}-${user}\nuser:${user}\nseq:${r.seq}\ncontent-length:${Buffer.byteLength(body)}\n\n${body}\0`;
}

export function receipt(ref: string): string {
  return encodeStomp('RECEIPT', [['receipt-id', ref]]);
}

/** STOMP's only error: an ERROR frame (naming the receipt it refuses), then close, as STOMP requires. */
export function stompFail(sink: Sink, message: string, ref: string | undefined, closeCode: number): void {
  const headers: [string, string][] = [['message', message.slice(0, 200)], ['content-type', 'text/plain']];
  if (ref !== undefined) headers.push(['receipt-id', ref]);
  sink.send(encodeStomp('ERROR', headers, message));
  sink.end(closeCode, message.slice(0, 100));
}

/** The STOMP topics of each room with how many connections listen on each. */
export class StompTopics {
  private readonly byRoom = new Map<string, Map<string, { sub: StompSub; count: number }>>();

  /** The topics of `room` (undefined when no STOMP connection listens to it). */
  of(room: string): ReadonlyMap<string, { sub: StompSub; count: number }> | undefined {
    return this.byRoom.get(room);
  }

  add(sub: StompSub): void {
    let topics = this.byRoom.get(sub.room);
    if (topics === undefined) this.byRoom.set(sub.room, (topics = new Map()));
    const t = topics.get(sub.topic);
    if (t === undefined) topics.set(sub.topic, { sub, count: 1 });
    else t.count++;
  }

  remove(sub: StompSub): void {
    const topics = this.byRoom.get(sub.room);
    const t = topics?.get(sub.topic);
    if (t === undefined || --t.count > 0) return;
    topics!.delete(sub.topic);
    if (topics!.size === 0) this.byRoom.delete(sub.room);
  }
}

export class StompWire implements Wire {
  constructor(private readonly st: StompState, private readonly topics: StompTopics) {}

  reply(sink: Sink, fields: ReplyFields, messages: Delivered[] | undefined, ref: string | undefined): void {
    if (messages !== undefined && messages.length > 0) {
      const sub = this.st.byRoom.get(fields.room as string);
      if (sub !== undefined) for (const d of messages) sink.send(stompMessage(sub, d));
    }
    if (ref !== undefined) sink.send(receipt(ref));
  }

  error(sink: Sink, code: ErrorCode, message: string | undefined, ref: string | undefined): void {
    stompFail(sink, `${code}: ${message ?? code}`, ref, CLOSE.policy);
  }

  /** The RECEIPT of a SEND goes out only now, after the durable commit. */
  ack(_a: AckFields, ref: string | undefined): Out | null {
    return ref === undefined ? null : receipt(ref);
  }

  topic(room: string): string | null {
    return this.st.byRoom.get(room)?.topic ?? null;
  }

  subscribed(room: string, on: boolean): void {
    const sub = this.st.byRoom.get(room);
    if (sub === undefined) return;
    if (on) this.topics.add(sub);
    else this.topics.remove(sub);
  }

  message(room: string, d: Delivered): Out | null {
    const sub = this.st.byRoom.get(room);
    return sub === undefined ? null : stompMessage(sub, d);
  }

  typing(): Out | null {
    return null;
  }

  receipt(r: ReceiptFields): Out | null {
    const sub = this.st.byRoom.get(r.room);
    return sub === undefined ? null : stompReceipt(sub, r);
  }
}
