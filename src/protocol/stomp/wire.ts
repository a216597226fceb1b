// STOMP's wire adapter. STOMP has no joined/left/read/ack frames: a join's messages become MESSAGE
// frames of its subscription, a reply or an ack a RECEIPT if one was asked, and an error is an
// ERROR frame followed by the close STOMP requires. Each subscription has its own uWS topic (its
// MESSAGE frames name it), counted per room in StompTopics so a publish reaches each one once.

import type { Delivered, Message } from '../../../workers/contract.ts';
import { CLOSE, type ErrorCode } from '../errors.ts';
import type { Out, ReplyFields } from '../frames.ts';
import type { Sink, Wire } from '../wire.ts';
import { encodeStomp, escapeHeader } from './parser.ts';
import type { StompState, StompSub } from './state.ts';

/**
 * A MESSAGE frame for one subscription: the precomputed head, then the per-message headers. Ids
 * and seqs need no escaping; the sender id is the only user-supplied header value.
 */
export function stompMessage(sub: StompSub, d: Delivered): string {
  let body = d.json;
  if (sub.style === 'tutorial') {
    const m = JSON.parse(d.json) as Message;
    body = JSON.stringify({ type: m.type === 'CHAT' ? 'TALK' : m.type, roomId: m.room, sender: m.from.name, message: m.text, id: m.id, seq: m.seq, at: m.at, senderId: m.from.id });
  }
  return `${sub.head}message-id:${d.id}\nseq:${d.seq}\nsender-id:${escapeHeader(d.from)}\ncontent-length:${Buffer.byteLength(body)}\n\n${body}\0`;
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
  ack(_cid: string, _room: string, _id: string, _seq: number, _at: number, ref: string | undefined): Out | null {
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
}
