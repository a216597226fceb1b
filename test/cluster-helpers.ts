// Cluster test audits: the node bits of an id, per-member streams (gapless, in seq order, after
// `joined`), what a node says over HTTP and what the shared MariaDB database holds. Starting a
// cluster and its Redis is test/support/cluster.ts.

import mysql from 'mysql2/promise';
import { getJson, type Client, type Frame } from './support/client.ts';
import type { ClusterNode } from './support/cluster.ts';
import { until } from './support/wait.ts';

// ---- ids ----------------------------------------------------------------------------------------

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A canonical 13-character TSID as its 64-bit integer. */
export function tsidOf(id: string): bigint {
  if (!/^[0-9A-F][0-9A-HJKMNP-TV-Z]{12}$/.test(id)) throw new Error(`not a canonical TSID: ${id}`);
  let n = 0n;
  for (const c of id) n = (n << 5n) | BigInt(CROCKFORD.indexOf(c));
  return n;
}

/** The node bits of a TSID: 42 bits time, 10 bits node, 12 bits counter. */
export function nodeOf(tsid: bigint | string): number {
  const n = typeof tsid === 'bigint' ? tsid : /^\d+$/.test(tsid) ? BigInt(tsid) : tsidOf(tsid);
  return Number((n >> 12n) & 1023n);
}

// ---- streams ------------------------------------------------------------------------------------

export interface Stream {
  /** The first `joined` for the room on this connection. */
  joined: Frame;
  /** `msg` frames of the room after it, in arrival order. */
  live: Frame[];
  /** Frames of the room that should not be there: `msg` before `joined`, or any later `joined`. */
  strays: Frame[];
}

export function streamOf(c: Client, room: string): Stream {
  const at = c.frames.findIndex((f) => f.op === 'joined' && f.room === room);
  if (at < 0) throw new Error(`no joined for ${room}`);
  const strays = c.frames.slice(0, at).filter((f) => f.op === 'msg' && f.room === room);
  const live: Frame[] = [];
  for (const f of c.frames.slice(at + 1)) {
    if (f.room !== room) continue;
    if (f.op === 'msg') live.push(f);
    else if (f.op === 'joined') strays.push(f);
  }
  return { joined: c.frames[at], live, strays };
}

/** The first place `seqs` stops being first, first+1, first+2, ...; null when it never does. */
export function seqProblem(seqs: number[], first: number): string | null {
  for (let i = 0; i < seqs.length; i++) {
    if (seqs[i] !== first + i) {
      return `expected seq ${first + i} at position ${i}, got ${seqs[i]} (around: ${JSON.stringify(seqs.slice(Math.max(0, i - 3), i + 4))})`;
    }
  }
  return null;
}

/** Highest seq of `room` this connection has (joined or msg). */
export function lastSeq(c: Client, room: string): number {
  let s = -1;
  for (const f of c.frames) {
    if (f.room !== room) continue;
    if (f.op === 'msg' && f.seq > s) s = f.seq;
    if (f.op === 'joined' && f.seq > s) s = f.seq;
  }
  return s;
}

/** Wait until the connection has a `msg` of `room` with seq >= `seq`; on timeout say where it stands. */
export async function awaitSeq(c: Client, room: string, seq: number, timeoutMs: number, who: string): Promise<void> {
  if (lastSeq(c, room) >= seq) return;
  try {
    await c.waitFor((f) => f.op === 'msg' && f.room === room && f.seq >= seq, timeoutMs, `seq ${seq}`);
  } catch (err) {
    const s = c.frames.some((f) => f.op === 'joined' && f.room === room) ? streamOf(c, room) : null;
    const seqs = s?.live.map((m) => m.seq as number) ?? [];
    throw new Error(`${who}: waited ${timeoutMs} ms for seq ${seq} of ${room}; joined.seq=${s?.joined.seq}, got ${seqs.length} live msgs, last ${JSON.stringify(seqs.slice(-8))}` +
      `${s ? `, order: ${seqProblem(seqs, s.joined.seq + 1) ?? 'gapless'}` : ''} (${(err as Error).message.slice(0, 200)})`);
  }
}

/** Wait for an ack of every cid; an `error` carrying one of them fails at once with the frame. */
export async function awaitAcks(c: Client, cids: string[], timeoutMs: number, who: string): Promise<Map<string, Frame>> {
  const want = new Set(cids);
  const acks = new Map<string, Frame>();
  await until(`${who}: acks for ${cids.length} sends`, () => {
    for (const f of c.frames) {
      if (!want.has(f.cid)) continue;
      if (f.op === 'error') throw new Error(`${who}: send ${f.cid} refused: ${JSON.stringify(f)}`);
      if (f.op === 'ack') acks.set(f.cid, f);
    }
    return acks.size === want.size ? true : undefined;
  }, timeoutMs, 20).catch((err: Error) => {
    if (err.message.startsWith('timed out')) {
      const missing = cids.filter((cid) => !acks.has(cid));
      throw new Error(`${err.message}: ${missing.length} without ack, e.g. ${JSON.stringify(missing.slice(0, 5))}; connection ${c.closeCode === null ? 'open' : `closed ${c.closeCode}`}`);
    }
    throw err;
  });
  return acks;
}

// ---- HTTP and the database ----------------------------------------------------------------------

/** GET /api/rooms/:room/online on a node: the user ids (asserts the documented shape). */
export async function online(node: ClusterNode, room: string): Promise<string[]> {
  const { status, body } = await getJson(`${node.http}/api/rooms/${room}/online`);
  if (status !== 200 || body.room !== room || !Array.isArray(body.online)) {
    throw new Error(`GET /api/rooms/${room}/online on node ${node.id}: ${status} ${JSON.stringify(body)}`);
  }
  return body.online as string[];
}

export interface Row { tsid: string; id: string; room: string; seq: number; type: string; from_id: string; cid: string | null }

/** Every stored message of these rooms, by room then seq; tsid as a decimal string (no precision loss). */
export async function storedMessages(dbUrl: string, rooms: string[]): Promise<Row[]> {
  const c = await mysql.createConnection({ uri: dbUrl, supportBigNumbers: true, bigNumberStrings: true });
  try {
    const [rows] = await c.query<(Row & mysql.RowDataPacket)[]>(
      'SELECT CAST(tsid AS CHAR) AS tsid, id, room, CAST(seq AS SIGNED) AS seq, type, from_id, cid FROM messages WHERE room IN (?) ORDER BY room, seq, tsid', [rooms]);
    return rows.map((r) => ({ ...r, seq: Number(r.seq) }));
  } finally {
    await c.end();
  }
}

export async function health(node: ClusterNode): Promise<Frame> {
  const { status, body } = await getJson(`${node.http}/healthz`);
  if (status !== 200) throw new Error(`healthz of node ${node.id}: ${status} ${JSON.stringify(body)}`);
  return body;
}

/** Wait until the node's /healthz reports its bus `up` or `down`. */
export async function awaitBus(node: ClusterNode, state: 'up' | 'down', timeoutMs: number): Promise<void> {
  await until(`healthz of node ${node.id} to say bus ${state}`, async () => ((await health(node)).cluster?.bus === state ? true : undefined), timeoutMs);
}
