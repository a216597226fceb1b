// Micro-benchmark of the batches between the front thread and the actor (workers/contract.ts): a
// batch of N sends encoded and decoded, then the commit event with their N results, each field
// read once, as the two threads do. Compares the engine's encoding (shared structures for these
// shapes) with record definitions made afresh in every batch, one per process (they share
// msgpackr's module state). Nanoseconds per message, the median of 5 rounds, at batches of 4, 12
// and 50 messages.
//   taskset -c 1 node --import tsx scripts/batch-cost.ts shared
//   taskset -c 1 node --import tsx scripts/batch-cost.ts per-batch
import { Packr } from 'msgpackr';
import { nsPerOpRounds } from './rounds.ts';
import { decodeBatch, encodeBatch, type CommittedEvt, type SendCmd, type SendResult, type ToActor } from '../workers/contract.ts';

const now = Date.now();
const send = (i: number): SendCmd => ({
  t: 'send', token: i, room: `room-${i % 1000}`, type: 'CHAT', fromId: `user-${i % 2000}`, fromName: `User ${i % 2000}`, text: 'x'.repeat(64),
  cid: `c${i}.${now * 1000}`, at: now, create: true, target: null, admin: false, recipients: null,
});
const result = (i: number): SendResult => ({ token: i, room: `room-${i % 1000}`, seq: i, id: '0ABCDEFGHJKLM', at: now, dup: false, deliver: true, error: null });
type Codec = { enc: (x: unknown[]) => Uint8Array; dec: (b: Uint8Array) => unknown[] };
function codecOf(name: string | undefined): Codec {
  if (name === 'shared') return { enc: (x) => encodeBatch(x as ToActor[]), dec: (b) => decodeBatch(b) };
  if (name === 'per-batch') {
    const perBatch = new Packr({ useRecords: true, moreTypes: false });
    return { enc: (x) => new Uint8Array(perBatch.pack(x)), dec: (b) => perBatch.unpack(b) as unknown[] };
  }
  throw new Error('usage: batch-cost.ts shared|per-batch');
}
const which = process.argv[2];
const codec = codecOf(which);

let sink = 0;
for (const n of [4, 12, 50]) {
  const sends = Array.from({ length: n }, (_, i) => send(i));
  const evt: CommittedEvt[] = [{ t: 'committed', results: Array.from({ length: n }, (_, i) => result(i)), batch: n, commitMs: 0.1 }];
  const reps = Math.ceil(200_000 / n);
  const r = nsPerOpRounds(5, reps * n, () => {
    for (let k = 0; k < reps; k++) {
      for (const s of codec.dec(codec.enc(sends)) as SendCmd[]) sink += s.token + s.text.length + s.room.length + s.fromId.length;
      for (const x of (codec.dec(codec.enc(evt)) as CommittedEvt[])[0].results) sink += x.seq + (x.deliver ? 1 : 0) + x.id.length;
    }
  });
  console.log(`batch ${n}: ${which}: ${r.median.toFixed(0)} ns per message (rounds ${r.rounds})`);
}
if (sink === 0) throw new Error('nothing read');
