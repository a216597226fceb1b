// Messages between nodes: after its commit, a node publishes each room's new messages on the room's
// channel; nodes subscribe only to rooms they serve and hand what other nodes publish to the
// sequencer. Directory changes and typing go on one control channel. Redis keeps none of it: a
// publish lost is a gap the receivers fill from the store.

import { Packr } from 'msgpackr';
import type { Redis } from 'ioredis';
import type { Delivered } from '../../workers/contract.ts';
import { detached } from '../core/detached.ts';
import type { ControlEvt } from '../core/topology.ts';
import type { Logger } from '../log.ts';
import type { Keys } from './scripts.ts';

// Payload: the sender's node id (2 bytes, big-endian), then msgpack [[seq, id, at, from, json], ...].
// A node receives its own publishes too (it serves the same rooms): the prefix lets it drop them
// without decoding.
const packr = new Packr({ useRecords: false, moreTypes: false });
type Batch = [number, string, number, string, string][];

export interface BrokerHandler {
  /** Messages another node committed, in seq order for that node (interleaving is the sequencer's to sort). */
  onMessages(room: string, msgs: Delivered[]): void;
  onControl(evt: ControlEvt): void;
}

export class Broker {
  private readonly subscribed = new Set<string>();
  private handler: BrokerHandler | null = null;
  published = 0;
  received = 0;

  constructor(
    private readonly cmd: Redis,
    private readonly sub: Redis,
    private readonly keys: Keys,
    private readonly nodeId: number,
    private readonly isUp: () => boolean,
    private readonly log: Logger,
  ) {}

  /** Start receiving: the control channel now, room channels as rooms are subscribed. */
  async start(): Promise<void> {
    this.sub.on('messageBuffer', (ch: Buffer, msg: Buffer) => this.onMessage(ch.toString(), msg));
    await this.sub.subscribe(this.keys.control);
  }

  /** Who gets what arrives (nothing is handed on before). */
  listen(handler: BrokerHandler): void {
    this.handler = handler;
  }

  /** Subscribe to a room's channel; resolves once Redis confirms (or at once while it is down). */
  async subscribe(room: string): Promise<void> {
    if (this.subscribed.has(room)) return;
    this.subscribed.add(room);
    const p = this.sub.subscribe(this.keys.channel(room)).catch(() => undefined);
    if (!this.isUp()) return; // ioredis subscribes when Redis is back; the reconnect sweep fills the gap
    await Promise.race([p, new Promise((r) => setTimeout(r, 2000))]);
  }

  unsubscribe(room: string): void {
    if (!this.subscribed.delete(room)) return;
    void this.sub.unsubscribe(this.keys.channel(room)).catch(() => undefined);
  }

  get subscriptions(): number {
    return this.subscribed.size;
  }

  /** Publish one commit's messages, grouped per room (one PUBLISH per room, pipelined). */
  publish(byRoom: Map<string, Delivered[]>): void {
    if (!this.isUp()) return; // receivers fill the gap from the store
    const pipe = this.cmd.pipeline();
    for (const [room, list] of byRoom) {
      const body = packMessages(list);
      const buf = Buffer.allocUnsafe(2 + body.length);
      buf.writeUInt16BE(this.nodeId, 0);
      buf.set(body, 2);
      pipe.publish(this.keys.channel(room), buf);
      this.published += list.length;
    }
    void pipe.exec().catch(() => undefined);
  }

  control(evt: ControlEvt): void {
    if (!this.isUp()) return;
    void this.cmd.publish(this.keys.control, JSON.stringify({ node: this.nodeId, evt })).catch(() => undefined);
  }

  private onMessage(channel: string, payload: Buffer): void {
    if (this.handler === null) return;
    if (channel === this.keys.control) {
      try {
        const { node, evt } = JSON.parse(payload.toString()) as { node: number; evt: ControlEvt };
        if (node !== this.nodeId) this.handler.onControl(evt);
      } catch {
        this.log.warn({}, 'bus: malformed control event ignored');
      }
      return;
    }
    if (payload.length < 2 || payload.readUInt16BE(0) === this.nodeId) return;
    const room = channel.slice(this.keys.channel('').length);
    let msgs: Delivered[];
    try {
      msgs = unpackMessages(room, payload.subarray(2));
    } catch {
      this.log.warn({ room }, 'bus: malformed message batch ignored (the gap is filled from the store)');
      return;
    }
    this.received += msgs.length;
    this.handler.onMessages(room, msgs);
  }
}

/** One room's messages as the bus carries them (after the 2-byte node id). */
export function packMessages(list: Delivered[]): Buffer {
  const batch: Batch = list.map((d) => [d.seq, d.id, d.at, d.from, d.json]);
  return packr.pack(batch);
}

/**
 * A room's messages as another node published them; throws on a malformed payload. Decoded
 * strings can be slices of a string holding a stretch of the batch, and a hot window keeps each
 * message's JSON and sender (and copies its id itself), so those are copied here (detached.ts).
 */
export function unpackMessages(room: string, payload: Uint8Array): Delivered[] {
  const batch = packr.unpack(payload) as Batch;
  return batch.map(([seq, id, at, from, json]) => ({ room, seq, id, at, from: detached(from), json: detached(json) }));
}
