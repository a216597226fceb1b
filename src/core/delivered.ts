// A stored message (from a reader) in the form the front thread keeps and publishes: its JSON is
// encoded once, here, and every copy sent is those bytes.

import { messageJson, type Delivered, type Message } from '../../workers/contract.ts';

export function toDelivered(m: Message): Delivered {
  return { room: m.room, seq: m.seq, id: m.id, at: m.at, from: m.from.id, json: messageJson(m) };
}
