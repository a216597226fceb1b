// What the actor tells the front thread: the events of one turn, posted as one msgpackr-encoded
// batch, and the store's health, reported when it changes.

import { encodeBatch, type Assigned, type FromActor } from '../contract.ts';
import type { Pending } from './pending.ts';

export class Outbox {
  private out: FromActor[] = [];
  private acceptedBatch: Assigned[] | null = null;
  private healthy = true;

  constructor(private readonly post: (buf: Uint8Array) => void) {}

  push(evt: FromActor): void {
    this.out.push(evt);
  }

  /** Immediate delivery: a message with its id and seq, to publish before it is durable. */
  accepted(p: Pending): void {
    if (this.acceptedBatch === null) {
      this.acceptedBatch = [];
      this.out.push({ t: 'accepted', msgs: this.acceptedBatch });
    }
    this.acceptedBatch.push({ token: p.token, seq: p.msg.seq, id: p.msg.id, at: p.msg.at });
  }

  health(ok: boolean, reason: string | null): void {
    if (ok === this.healthy) return;
    this.healthy = ok;
    this.out.push({ t: 'health', ok, reason });
  }

  flush(): void {
    if (this.out.length === 0) return;
    this.post(encodeBatch(this.out));
    this.out = [];
    this.acceptedBatch = null;
  }
}
