// The one contract between the front thread (src/) and the persistence actor (workers/).
// Every message that crosses the MessagePort is a member of ToActor or FromActor; both sides
// import this file, so a new message type is one edit here and the compiler finds every handler.
// Messages cross in batches: one postMessage carries an array, msgpackr-encoded into one buffer
// that is transferred, not cloned (one postMessage per message costs ~5x).

import { Packr } from 'msgpackr';
import type { Message, MessageType } from '../client/src/protocol.ts';
import type { Config } from '../src/config.ts';
import type { ThreadGc } from './full-gc.ts';
import type { ErrorCode, InternalCode } from '../src/protocol/errors.ts';

/** The public message object is the wire protocol's own type (client/src/protocol.ts). */
export type { Message, MessageType };

/**
 * A message as the front thread keeps and publishes it: the JSON is encoded once (by the front
 * thread for a message it forwarded, by the actor or a reader for one read from the store).
 */
export interface Delivered {
  room: string;
  seq: number;
  id: string;
  at: number;
  /** Sender's user id (for per-recipient block filters). */
  from: string;
  /** JSON.stringify(Message), exactly the bytes of the Message object on the wire. */
  json: string;
}

const Q = JSON.stringify;

/**
 * The Message JSON, keys in the order PROTOCOL.md shows them. Every copy of a message is built by
 * messageJsonOf: from a Message (messageJson) or from a new message's fields (newMessageJson).
 * Pieces are joined in a reused array, so building it allocates only the string (a template
 * literal leaves a tree of partial strings to flatten); only the user-supplied strings are
 * escaped, and only when they need it (id, room, type and target are validated to need none).
 */
export function messageJson(m: Message): string {
  return messageJsonOf(m.id, m.room, m.seq, m.type, m.from.id, m.from.name, m.text, m.at, m.cid ?? null, m.target ?? null, m.deleted === true, m.editedAt);
}

/**
 * The JSON of a message as it is first stored (no retraction state yet; a DELETE carries no
 * text). The front thread builds it for each message it publishes, from what it forwarded, so the
 * string never crosses the port.
 */
export function newMessageJson(id: string, room: string, seq: number, type: MessageType, fromId: string, fromName: string, text: string, at: number, cid: string | null, target: string | null): string {
  return messageJsonOf(id, room, seq, type, fromId, fromName, type === 'DELETE' ? undefined : text, at, cid, target, false, undefined);
}

function messageJsonOf(id: string, room: string, seq: number, type: MessageType, fromId: string, fromName: string, text: string | undefined, at: number, cid: string | null, target: string | null, deleted: boolean, editedAt: number | undefined): string {
  const p = PARTS;
  p[0] = '{"id":"'; p[1] = id; p[2] = '","room":"'; p[3] = room; p[4] = '","seq":'; p[5] = seq; p[6] = ',"type":"'; p[7] = type;
  p[8] = '","from":{"id":"'; p[9] = jsonInner(fromId); p[10] = '","name":"'; p[11] = jsonInner(fromName);
  p[12] = text === undefined ? '"}' : '"},"text":"'; p[13] = text === undefined ? '' : jsonInner(text);
  p[14] = text === undefined ? ',"at":' : '","at":'; p[15] = at;
  p[16] = cid === null ? '' : ',"cid":"'; p[17] = cid === null ? '' : jsonInner(cid); p[18] = cid === null ? '' : '"';
  p[19] = target === null ? '' : ',"target":"'; p[20] = target ?? ''; p[21] = target === null ? '' : '"';
  p[22] = deleted ? ',"deleted":true' : ''; p[23] = editedAt === undefined ? '' : ',"editedAt":'; p[24] = editedAt ?? ''; p[25] = '}';
  return p.join('');
}

/** The pieces of a JSON text being joined: one array per thread, reused. */
const PARTS: (string | number)[] = new Array<string>(26).fill('');

/** Characters JSON.stringify escapes or may: quote, backslash, controls, and any surrogate (a lone one is escaped). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string's JSON form without its quotes: the string itself when nothing in it needs escaping. */
export function jsonInner(s: string): string {
  return NEEDS_ESCAPE.test(s) ? Q(s).slice(1, -1) : s;
}

/**
 * The type of a message from its JSON without parsing it (the STOMP `type` header). messageJson
 * writes `{"id":"<13>","room":"<room>","seq":<seq>,"type":"`, 47 characters besides room and seq
 * (neither needs escaping), so the type starts at a known place; anything else is searched.
 */
export function typeOf(d: Pick<Delivered, 'json' | 'room' | 'seq'>): string {
  const i = typeAt(d);
  return d.json.slice(i, d.json.indexOf('"', i));
}

function typeAt(d: Pick<Delivered, 'json' | 'room' | 'seq'>): number {
  const i = 47 + d.room.length + digits(d.seq);
  return d.json.charCodeAt(i - 1) === 34 /* " */ ? i : d.json.indexOf('"type":"') + 8;
}

/**
 * Whether a message is a DELETE or EDIT event (they change an earlier message). Asked of every
 * message a window appends, so it reads two characters where the type is (see typeOf) instead
 * of searching the JSON: ~6x cheaper. No other type starts with "D" or "ED".
 */
export function isRetraction(d: Pick<Delivered, 'json' | 'room' | 'seq'>): boolean {
  const i = typeAt(d);
  const c = d.json.charCodeAt(i);
  return c === 68 /* D */ || (c === 69 /* E */ && d.json.charCodeAt(i + 1) === 68 /* D */);
}

function digits(n: number): number {
  let k = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    k++;
  }
  return k;
}

export type RoomKind = 'public' | 'group' | 'direct';

/** A room as the HTTP API shows it. */
export interface RoomInfo {
  id: string;
  kind: RoomKind;
  name: string | null;
  subject: string | null;
  /** Members of a group or direct room; null for public rooms (anyone may join). */
  members: string[] | null;
  epoch: string;
  createdAt: number;
}

/** A room's state as the actor knows it, sent to the front thread when it activates the room. */
export interface RoomState {
  room: string;
  /** Kind, members and epoch: what authorization and `joined` need. */
  info: RoomInfo;
  /** Last seq the front thread may show (committed, or accepted in immediate mode). */
  lastSeq: number;
  /** The newest messages (at most the window size), oldest first, ending at lastSeq. */
  recent: Delivered[];
  /** True when `recent` holds every message the room still has (no older page in the store). */
  complete: boolean;
  /** Read markers (user, seq) of the room where receipts are shared (see receiptsIn); else empty. */
  reads: [string, number][];
}

/** Does a room of this kind share read receipts (CHAT_PUBLIC_RECEIPTS for public rooms)? */
export function receiptsIn(kind: RoomKind, publicReceipts: boolean): boolean {
  return kind !== 'public' || publicReceipts;
}

// ---- front -> actor ----------------------------------------------------------------------------

export interface SendCmd {
  t: 'send';
  /** Front-thread handle of the pending send; echoed in the result. */
  token: number;
  room: string;
  type: MessageType;
  fromId: string;
  fromName: string;
  text: string;
  cid: string | null;
  /** Server time at acceptance (ms). */
  at: number;
  /** Create the room (public) if it no longer exists (auth mode none), as the sender's. */
  create: boolean;
  /** DELETE and EDIT: the message they retract (checked by the actor: workers/persistence/retraction.ts). */
  target: string | null;
  /** The sender is an admin (may delete anyone's message). */
  admin: boolean;
  /**
   * Webhooks on: write a message.created event with these push targets (members with no
   * connection joined to the room at acceptance); null: no event.
   */
  recipients: string[] | null;
}

export interface LoadCmd {
  t: 'load';
  room: string;
  /** Create the room (public) if it does not exist, as this user's (null: never create). */
  creator: string | null;
}

export interface ShutdownCmd {
  t: 'shutdown';
}

/** Move a read marker (never backwards); written with the next group commit. */
export interface MarkCmd {
  t: 'mark';
  /** seq -1 (and id ''): at the newest message the actor has accepted in the room so far. */
  room: string;
  user: string;
  seq: number;
  id: string;
  /** Only create a marker where the user has none (first join of a public room). */
  ifAbsent: boolean;
  /** Answer with a ReplyEvt of this reqId once the marker is committed (a client's `read`). */
  reqId?: number;
}

/** Host-app and membership operations: answered by a ReplyEvt with the same reqId. */
export type AdminOp =
  /** `by`: the user creating it (quotas, blocks), null for the host app. */
  | { op: 'createRoom'; id: string | null; kind: RoomKind; name: string | null; subject: string | null; members: string[]; by: string | null }
  | { op: 'deleteRoom'; room: string }
  | { op: 'addMembers'; room: string; users: string[] }
  | { op: 'removeMembers'; room: string; users: string[] }
  | { op: 'block'; blocker: string; blocked: string; on: boolean };

export interface RequestCmd {
  t: 'req';
  reqId: number;
  body: AdminOp;
}

/** Test hook (CHAT_TEST_HOOKS): while on, every group commit waits before its transaction. */
export interface HoldCmd {
  t: 'hold';
  on: boolean;
}

/** Test hook (CHAT_TEST_HOOKS): collect the actor's heap in full now; it answers CollectedEvt. */
export interface GcCmd {
  t: 'gc';
}

// ---- webhooks (docs/webhooks.md) -----------------------------------------------------------------

export type EventType =
  | 'message.created'
  | 'message.deleted'
  | 'message.edited'
  | 'room.created'
  | 'room.deleted'
  | 'member.added'
  | 'member.removed'
  | 'user.blocked'
  | 'user.unblocked';

/** Where a row is: waiting for delivery, delivered (kept CHAT_WEBHOOK_KEEP), or dead-lettered. */
export type EventState = 'pending' | 'delivered' | 'dead';

/** An outbox row as read back. */
export interface StoredEvent {
  id: number;
  room: string;
  type: EventType;
  at: number;
  body: string;
  state: EventState;
  attempts: number;
  /** Delivered or dead-lettered at (ms), null while pending. */
  doneAt: number | null;
  /** The last delivery failure (status or network error), null if none. */
  error: string | null;
}

/** The webhook outbox's admin calls (docs/webhooks.md): list events, deliver some again. */
export type HooksOp =
  | { op: 'list'; from: number; state: EventState | null; limit: number }
  | { op: 'replay'; from: number }
  | { op: 'replayIds'; ids: number[] };

export interface HooksCmd {
  t: 'hooks';
  reqId: number;
  body: HooksOp;
}

export type ToActor = SendCmd | LoadCmd | ShutdownCmd | MarkCmd | RequestCmd | HoldCmd | GcCmd | HooksCmd;

// ---- actor -> front ----------------------------------------------------------------------------

/** Outcome of one send once it is durable (or found to be a duplicate of a durable one). */
export interface SendResult {
  token: number;
  /** The message the ack names; for a duplicate, the original. */
  room: string;
  seq: number;
  id: string;
  at: number;
  /** True when this send repeated an earlier (from.id, cid): ack it, do not deliver again. */
  dup: boolean;
  /**
   * Publish it now (after-commit, new messages only): the front thread builds its JSON from the
   * send it forwarded (newMessageJson) with this seq, id and at.
   */
  deliver: boolean;
  /** Set when the send was refused instead (e.g. the room was deleted); nothing was stored. */
  error: Extract<ErrorCode, 'not_found' | 'forbidden'> | null;
  /** Why, when it is not just "no such room" (a room the send would create is over a quota). */
  message?: string;
}

/** A send's id, seq and time once the actor has assigned them. */
export interface Assigned {
  token: number;
  seq: number;
  id: string;
  at: number;
}

export interface AcceptedEvt {
  t: 'accepted';
  /** immediate mode: messages with id and seq assigned, not yet durable. Publish now (JSON: as for SendResult.deliver). */
  msgs: Assigned[];
}

export interface ReplyEvt {
  t: 'reply';
  reqId: number;
  error: Extract<ErrorCode, 'not_found' | 'invalid' | 'forbidden'> | InternalCode | null;
  message: string | null;
  /** The room after the operation (createRoom, addMembers, removeMembers); null otherwise. */
  room: RoomInfo | null;
  /** createRoom: false when an existing direct room was returned. */
  created: boolean;
  /** The directory version of the change (deleteRoom, addMembers, removeMembers, block); 0 otherwise. */
  version: number;
}

export interface CommittedEvt {
  t: 'committed';
  results: SendResult[];
  /** Size of the last commit's transaction (messages) and how long it took (ms). */
  batch: number;
  commitMs: number;
}

export interface RoomEvt {
  t: 'room';
  room: string;
  /** null: the room does not exist (and was not created). */
  state: RoomState | null;
  /** Why it was not created, when that was asked and refused (a quota). */
  refused?: { code: Extract<ErrorCode, 'forbidden'>; message: string };
}

export interface HealthEvt {
  t: 'health';
  ok: boolean;
  /** Why the store is degraded (no secrets). */
  reason: string | null;
}

/** The store is open and migrated: the front thread may start listening. */
export interface ReadyEvt {
  t: 'ready';
  /** Every block (blocker, blocked): small, and needed on every delivery decision. */
  blocks: [string, string][];
  /** The directory version read just before the blocks (a cluster node asks for changes after it). */
  dirVersion: number;
}

/** The webhook deliverer's figures (counters since start; the histogram's counts are cumulative). */
export interface HookStats {
  /** Events waiting for delivery (the whole outbox's, re-counted every few seconds). */
  pending: number;
  delivered: number;
  /** Events whose attempt failed and that will be tried again. */
  retried: number;
  deadLettered: number;
  /** Of those, events written straight to the dead-letter list: the outbox was full. */
  overflow: number;
  /** Since when every attempt has failed (ms since the epoch); null while the receiver answers. */
  failingSince: number | null;
  lastError: string | null;
  /** Cause to delivery (ms), per bucket of HOOK_LATENCY_BUCKETS_MS. */
  latencyCounts: number[];
  latencySum: number;
}

/** Once a second: the actor's own health figures. */
export interface StatsEvt {
  t: 'stats';
  /** p99 event-loop delay of the actor over the last second (ms). */
  loopLagMs: number;
  /** Webhooks on: the deliverer's figures; null otherwise. */
  hooks: HookStats | null;
}

/** The answer to a HooksCmd. */
export interface HooksReplyEvt {
  t: 'hooksReply';
  reqId: number;
  /** list: the events; replay: null. */
  events: StoredEvent[] | null;
  /** replay: how many events went back to pending. */
  count: number;
}

/** Test hook (CHAT_TEST_HOOKS): how many commits wait at the commit hold (0 or 1). */
export interface HeldEvt {
  t: 'held';
  waiting: number;
}

/** Test hook (CHAT_TEST_HOOKS): the actor's heap was collected in full (the answer to GcCmd). */
export interface CollectedEvt {
  t: 'collected';
  gc: ThreadGc;
}

export type FromActor = AcceptedEvt | CommittedEvt | RoomEvt | HealthEvt | ReadyEvt | ReplyEvt | StatsEvt | HeldEvt | CollectedEvt | HooksReplyEvt;

/** The worker entries, relative to workers/ and without their extension. */
export type WorkerEntry = 'persistence/actor' | 'readers/reader';

/**
 * Where a worker starts. The entries have this module's own extension: `.js` in the compiled
 * tree (dist/), which starts the entry itself with no loader; `.ts` when the engine runs from
 * sources under tsx, where the thread starts in boot.mjs, which registers tsx in that thread and
 * imports the entry named in workerData.__entry.
 */
export function workerStart(entry: WorkerEntry): { file: URL; entry: string } {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const url = new URL(`./${entry}${ext}`, import.meta.url);
  return { file: ext === '.ts' ? new URL('./boot.mjs', import.meta.url) : url, entry: url.href };
}

/** What the actor is started with (worker_threads workerData); it talks on parentPort. */
export interface ActorInit {
  __entry: string;
  config: Config;
}

// ---- front -> readers (piscina tasks) ----------------------------------------------------------

/** A history page from the store: oldest first, `limit + 1` rows at most so `more` can be told. */
export interface PageTask {
  kind: 'page';
  room: string;
  before?: string;
  after?: string;
  limit: number;
  notBefore: number;
}

/** Everything after `since` (at most `max + 1` messages), for a join that recovers a gap. */
export interface SinceTask {
  kind: 'since';
  room: string;
  since: string;
  max: number;
  notBefore: number;
  /** The room's last seq as the front thread has it: more than `max` after since's seq, nothing is read. */
  lastSeq: number;
}

/** The seq of the newest message at or before `id` (read markers). */
export interface SeqTask {
  kind: 'seqAt';
  room: string;
  id: string;
}

/** Rooms bound to a subject. */
export interface SubjectTask {
  kind: 'subject';
  subject: string;
}

/** The caller's rooms with read marker and last message. */
export interface MyRoomsTask {
  kind: 'myRooms';
  user: string;
  notBefore: number;
  /** Users the caller blocks: their messages are neither `last` nor counted as unread. */
  blocked: string[];
}

/**
 * How many messages of a room with seq in (after, upTo] count as unread for a user (the `read`
 * reply, for what is older than the room's window): neither expired nor from a user in `blocked`.
 */
export interface UnreadTask {
  kind: 'unread';
  room: string;
  after: number;
  upTo: number;
  notBefore: number;
  blocked: string[];
}

export interface UnreadResult {
  unread: number;
}

/** Directory changes after a version (a cluster node reconciling what the bus may have lost). */
export interface DirChangesTask {
  kind: 'dirChanges';
  since: number;
  /** At most this many rooms and this many blocks. */
  limit: number;
}

export interface DirChangesResult {
  /** Every change with a version up to this one is in the answer (or at or before `since`). */
  upTo: number;
  /** Rooms whose members changed or that were deleted, as they are now (info null: deleted). */
  rooms: { version: number; room: string; info: RoomInfo | null }[];
  /** Blocks set or lifted, as they are now. */
  blocks: { version: number; blocker: string; blocked: string; on: boolean }[];
}

/** Messages with seq in [from, to], in seq order (a cluster node filling a gap it saw on the bus). */
export interface RangeTask {
  kind: 'range';
  room: string;
  from: number;
  to: number;
}

/** The last committed seq of each room (a cluster node catching up after the bus was down). */
export interface LastSeqsTask {
  kind: 'lastSeqs';
  rooms: string[];
}

export interface RangeResult {
  messages: Message[];
}

export interface LastSeqsResult {
  seqs: [string, number][];
}

export type ReadTask = PageTask | SinceTask | SeqTask | SubjectTask | MyRoomsTask | UnreadTask | RangeTask | LastSeqsTask | DirChangesTask;

export interface SeqResult {
  /** 0 when no message is at or before the id. */
  seq: number;
}

export interface RoomsResult {
  rooms: RoomInfo[];
}

export interface MyRoom {
  info: RoomInfo;
  lastSeq: number;
  readSeq: number;
  /** The newest message neither expired nor from a user the caller blocks. */
  last: Message | null;
  /** Messages after the read marker, up to lastSeq, neither expired nor from a blocked user. */
  unread: number;
}

export interface MyRoomsResult {
  rooms: MyRoom[];
}

export interface PageResult {
  messages: Message[];
}

export interface SinceResult {
  /** Seq of the `since` message, or null when it is not (or no longer) stored. */
  sinceSeq: number | null;
  messages: Message[];
}

/** SQLite only: a PASSIVE checkpoint, run by a reader thread on a connection of its own. */
export interface CheckpointTask {
  kind: 'checkpoint';
}

/** What the checkpoint reported: the frames in the WAL (the /metrics gauge chat_sqlite_wal_frames). */
export interface CheckpointResult {
  log: number;
}

/**
 * Test hook (CHAT_TEST_HOOKS), SQLite only: one of `threads` tasks that together collect every
 * reader's heap. Each counts itself in `arrived` (an Int32Array over a SharedArrayBuffer) and
 * blocks until all have arrived, so no reader runs two of them.
 */
export interface GcTask {
  kind: 'gc';
  arrived: Int32Array;
  threads: number;
}

/** What the reader pool's workers are started with. */
export interface ReaderInit {
  __entry: string;
  path: string;
}

// ---- encoding ----------------------------------------------------------------------------------

// Records (msgpackr's structure extension) turn repeated object keys into a one-byte reference.
// The shapes every message crosses the port in (a send, its result, the commit event carrying the
// results) are shared structures: both threads build the same fixed table from this list, so a
// batch carries no key names for them, and the decoder reads them with one compiled reader for the
// life of the thread instead of defining and compiling one per batch. Each list is the key order
// in which the engine builds that object (write-path.ts `forward`, pending.ts, group-commit.ts); an
// object of another shape (an optional field set, another event) is encoded with a record
// definition of its own in the batch, as before. The table never grows (no shape is ever added to
// it at run time), so the two threads cannot disagree.
export const SHARED_SHAPES: readonly (readonly string[])[] = [
  ['t', 'token', 'room', 'type', 'fromId', 'fromName', 'text', 'cid', 'at', 'create', 'target', 'admin', 'recipients'],
  ['token', 'room', 'seq', 'id', 'at', 'dup', 'deliver', 'error'],
  ['t', 'results', 'batch', 'commitMs'],
];

const packr = new Packr({
  useRecords: true,
  moreTypes: false,
  structures: SHARED_SHAPES.map((keys) => [...keys]),
  maxSharedStructures: SHARED_SHAPES.length,
  shouldShareStructure: () => false,
});

export function encodeBatch(items: ToActor[] | FromActor[]): Uint8Array {
  // pack() returns a view into msgpackr's reusable buffer; copy it so the copy can be transferred.
  return new Uint8Array(packr.pack(items));
}

export function decodeBatch<T extends ToActor | FromActor>(buf: Uint8Array): T[] {
  return packr.unpack(buf) as T[];
}
