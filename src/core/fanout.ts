// Where a message is published: appended to its room's hot window, then one native publish per
// codec's topic, and one by one to the few connections that filter senders (their user blocks
// someone). Every `app.publish` of the engine is in this file: messages, typing, read receipts,
// and the frames that go to one connection through its own topic (acks).

import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import type { Delivered } from '../../workers/contract.ts';
import type { Logger } from '../log.ts';
import type { Stats } from '../metrics/stats.ts';
import type { Out, ReplyFields } from '../protocol/frames.ts';
import { msgFrameJson, receiptJson, replyJson } from '../protocol/json.ts';
import { msgFrameMsgpack, receiptMsgpack, replyMsgpack } from '../protocol/msgpack.ts';
import { stompMessage, stompReceipt, type StompTopics } from '../protocol/stomp/wire.ts';
import type { ReceiptFields } from '../protocol/wire.ts';
import type { Access } from './access.ts';
import type { Room } from './rooms.ts';
import type { Session, SocketData } from './session.ts';

export class Fanout {
  constructor(
    private readonly app: TemplatedApp,
    private readonly access: Access,
    private readonly stompTopics: StompTopics,
    private readonly stats: Stats,
    private readonly log: Logger,
  ) {}

  /** Publish a message of `room` (the next in its seq order) to everyone joined to it here. */
  publish(room: Room<Session>, d: Delivered): void {
    if (!room.append(d)) {
      this.log.error({ room: d.room, seq: d.seq, last: room.lastSeq }, 'out-of-order delivery');
      return;
    }
    this.stats.delivered++;
    this.app.publish(room.jsonTopic, msgFrameJson(d.json), false);
    // Encode for MessagePack subscribers only if there are any (free when none are connected).
    if (this.app.numSubscribers(room.msgpackTopic) > 0) this.app.publish(room.msgpackTopic, msgFrameMsgpack(d.json), true);
    // STOMP: MESSAGE frames name the subscription, so one topic per (subscription id, style).
    const stomp = this.stompTopics.of(room.id);
    if (stomp !== undefined) for (const [topic, t] of stomp) this.app.publish(topic, stompMessage(t.sub, d), false);
    // Connections whose user blocks someone are not on the topic; each gets the message unless
    // it comes from someone they block. Rare, so this loop is short.
    for (const s of room.filtered) {
      if (this.access.blocked(s.userId, d.from)) continue;
      const out = s.wire.message(room.id, d);
      if (out !== null) s.send(out);
    }
  }

  /**
   * To one open connection through its own topic (`r/<conn>`): uWS drains every socket once at the
   * end of the turn, so the frame leaves in the same write as the room messages published to the
   * connection just before it (a plain ws.send is not reliably corked outside a uWS handler: a
   * second write). The topic is subscribed at the connection's first such frame: one that never
   * sends holds no topic (a topic costs uWS memory for every connection).
   */
  toConnection(s: Session, out: Out): void {
    if (s.replyTopic === null) {
      s.replyTopic = 'r/' + s.connId;
      s.ws!.subscribe(s.replyTopic);
    }
    this.app.publish(s.replyTopic, out, typeof out !== 'string');
  }

  /**
   * A read receipt to the room's connections except `from` (the reading connection, while open;
   * null when from another node or it closed), never to users who block the reader.
   */
  receipt(room: Room<Session>, r: ReceiptFields, from: Session | null): void {
    const ws = from !== null && !from.closed ? from.ws : null;
    const json = receiptJson(r);
    this.publishExcept(ws, room.jsonTopic, json, false);
    if (this.app.numSubscribers(room.msgpackTopic) > 0) this.publishExcept(ws, room.msgpackTopic, receiptMsgpack(r), true);
    const stomp = this.stompTopics.of(room.id);
    if (stomp !== undefined) for (const [topic, t] of stomp) this.app.publish(topic, stompReceipt(t.sub, r), false);
    for (const o of room.filtered) {
      if (o === from || this.access.blocked(o.userId, r.user)) continue;
      const out = o.wire.receipt(r);
      if (out !== null) o.send(out);
    }
  }

  /** Typing to the room's members except `from` (the typing connection; null when from another node). */
  typing(room: Room<Session>, userId: string, userName: string, from: Session | null): void {
    const fields: ReplyFields = { op: 'typing', room: room.id, user: { id: userId, name: userName } };
    const json = replyJson(fields);
    // Typing goes to the room's other members only.
    const ws = from?.ws ?? null;
    this.publishExcept(ws, room.jsonTopic, json, false);
    if (this.app.numSubscribers(room.msgpackTopic) > 0) this.publishExcept(ws, room.msgpackTopic, replyMsgpack(fields), true);
    for (const o of room.filtered) {
      if (o === from || this.access.blocked(o.userId, userId)) continue;
      const out = o.wire.typing(fields);
      if (out !== null) o.send(out);
    }
  }

  /**
   * Publish to `topic`, skipping the socket `ws` (null: skip none). uWS's ws.publish skips the
   * publishing socket, but publishes nothing at all from a socket on no topic; a socket not on
   * `topic` has nothing to skip, so its frame goes out through app.publish.
   */
  private publishExcept(ws: WebSocket<SocketData> | null, topic: string, out: Out, binary: boolean): void {
    if (ws !== null && ws.isSubscribed(topic)) ws.publish(topic, out, binary);
    else this.app.publish(topic, out, binary);
  }
}
