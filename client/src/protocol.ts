// The wire protocol (chat.v1) as types: every frame a client sends and every frame the engine
// sends, the Message object, the error codes and the close codes. One source of truth: the engine
// imports these types (type-only, erased at run time) and the compiler checks both sides against
// them. Nothing here depends on anything else; the few values are plain constants.

/** The subprotocol this library speaks (JSON text frames). */
export const SUBPROTOCOL_JSON = 'chat.v1.json';
/** The same frames as MessagePack binary frames. */
export const SUBPROTOCOL_MSGPACK = 'chat.v1.msgpack';

/**
 * Message types the engine stores today; a client must accept others (later types) too. DELETE
 * and EDIT are events about an earlier message (`target`): apply them to the copy the app holds.
 */
export type MessageType = 'CHAT' | 'ENTER' | 'QUIT' | 'SYSTEM' | 'DELETE' | 'EDIT';

export interface Sender {
  id: string;
  name: string;
}

/** A stored message, as `msg`, `joined`, `history` and the HTTP API carry it. */
export interface Message {
  /** TSID, 13 characters of Crockford base32; ids sort in time order. */
  id: string;
  room: string;
  /** Gapless per room from 1 (per room epoch). */
  seq: number;
  type: MessageType;
  from: Sender;
  /** Absent when the message was deleted (`deleted: true`), and on DELETE events. */
  text?: string;
  /** Server time of acceptance, ms since 1970. */
  at: number;
  /** The sender's idempotency key (present on messages sent with one). */
  cid?: string;
  /** DELETE and EDIT events: the id of the message they delete or edit. */
  target?: string;
  /** The message was deleted (or, for an EDIT event, superseded): its text is erased. */
  deleted?: true;
  /** The message was edited: `text` is the newest text, given at this time (ms since 1970). */
  editedAt?: number;
}

/**
 * A message as a client receives it: a type it does not know yet (and fields it does not know)
 * are passed through, never dropped.
 */
export type IncomingMessage = Omit<Message, 'type'> & { type: MessageType | (string & {}) };

// ---- client -> engine ---------------------------------------------------------------------------

/** Every client frame may carry `ref`; the reply (or error) echoes it. */
interface Ref {
  ref?: string;
}

export interface JoinFrame extends Ref {
  op: 'join';
  room: string;
  /** Replay every message after this id (`recovered: true`), or the latest page (`recovered: false`). */
  since?: string;
  /** Size of the latest page (0..100, default 50). */
  limit?: number;
}

export interface LeaveFrame extends Ref {
  op: 'leave';
  room: string;
}

export interface SendFrame extends Ref {
  op: 'send';
  room: string;
  text: string;
  /** Idempotency key, 1..128 characters, unique per sender. */
  cid: string;
}

export interface HistoryFrame extends Ref {
  op: 'history';
  room: string;
  before?: string;
  after?: string;
  /** 1..100, default 50. */
  limit?: number;
}

export interface ReadFrame extends Ref {
  op: 'read';
  room: string;
  upTo: string;
}

export interface DeleteFrame extends Ref {
  op: 'delete';
  room: string;
  /** The id of the message to delete (the sender's own, or any as an admin). */
  id: string;
  /** Optional idempotency key (1..128 characters); the ack echoes it. */
  cid?: string;
}

export interface EditFrame extends Ref {
  op: 'edit';
  room: string;
  /** The id of the sender's own message to edit. */
  id: string;
  text: string;
  /** Idempotency key, 1..128 characters, unique per sender (shared with `send`). */
  cid: string;
}

export interface TypingFrame extends Ref {
  op: 'typing';
  room: string;
}

export interface PingFrame extends Ref {
  op: 'ping';
}

export type ClientFrame = JoinFrame | LeaveFrame | SendFrame | DeleteFrame | EditFrame | HistoryFrame | ReadFrame | TypingFrame | PingFrame;
export type ClientOp = ClientFrame['op'];

/** Limits the engine applies to client frames. */
export const LIMITS = {
  /** Longest cid and ref. */
  maxCid: 128,
  maxRef: 128,
  /** Largest join page; largest history page. */
  maxJoinLimit: 100,
  maxHistoryLimit: 100,
  /** The engine's default CHAT_MAX_PAYLOAD (bytes of one frame). */
  defaultMaxPayload: 65536,
} as const;

// ---- engine -> client ---------------------------------------------------------------------------

interface Reply {
  /** The `ref` of the client frame this answers. */
  ref?: string;
}

/** A live message of a joined room; members get every message, their own included, in seq order. */
export type MsgFrame = { op: 'msg' } & Message;

export interface JoinedFrame extends Reply {
  op: 'joined';
  room: string;
  /** Changes when the room's history was replaced: reload it. */
  epoch: string;
  /** Last seq delivered to members; live `msg` frames continue at seq + 1. */
  seq: number;
  messages: Message[];
  /** Only for a join with `since` (or unsolicited, false): whether `messages` is everything after it. */
  recovered?: boolean;
  /**
   * Read positions: user id -> the seq they have read up to. Group and direct rooms: every member
   * (0: nothing read); public rooms: empty unless the engine shares receipts there. A user the
   * caller blocks shows 0. Unread count of a message: entries other than its sender below its seq.
   */
  reads: Record<string, number>;
}

export interface LeftFrame extends Reply {
  op: 'left';
  room: string;
  /** Unsolicited: why the engine detached the connection from the room. */
  reason?: 'deleted' | 'removed';
}

export interface AckFrame extends Reply {
  op: 'ack';
  /** The frame's cid: always for `send` and `edit`, for `delete` when it carried one. */
  cid?: string;
  room: string;
  /** The stored message (for `delete` and `edit`: the DELETE or EDIT event). */
  id: string;
  seq: number;
  at: number;
  /** `delete` and `edit`: the message deleted or edited. */
  target?: string;
}

/** Someone else in the room read up to `seq` (at most one per user and room per 100 ms). */
export interface ReceiptFrame {
  op: 'receipt';
  room: string;
  user: string;
  seq: number;
}

export interface HistoryPageFrame extends Reply {
  op: 'history';
  room: string;
  messages: Message[];
  more: boolean;
}

export interface ReadReplyFrame extends Reply {
  op: 'read';
  room: string;
  upTo: string;
  unread: number;
}

export interface TypingEventFrame {
  op: 'typing';
  room: string;
  user: Sender;
}

export interface PongFrame extends Reply {
  op: 'pong';
}

export interface ErrorFrame extends Reply {
  op: 'error';
  code: ErrorCode;
  message: string;
  /** Always present when the refused frame was a `send`. */
  cid?: string;
}

export type ServerFrame = MsgFrame | JoinedFrame | LeftFrame | AckFrame | ReceiptFrame | HistoryPageFrame | ReadReplyFrame | TypingEventFrame | PongFrame | ErrorFrame;
export type ServerOp = ServerFrame['op'];

// ---- errors and close codes ---------------------------------------------------------------------

/** Every error code the engine sends (error frames, HTTP error bodies). */
export const ERROR_CODES = [
  'bad_frame', 'unknown_op', 'invalid', 'too_large', 'not_found', 'forbidden', 'unauthorized', 'rate_limited', 'overloaded', 'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Codes that mean "nothing was done, try again later": a client retries these with backoff. */
export const RETRYABLE_CODES = ['rate_limited', 'overloaded'] as const satisfies readonly ErrorCode[];
export type RetryableCode = (typeof RETRYABLE_CODES)[number];

/** WebSocket close codes the engine uses (RFC 6455 section 7.4). */
export const CLOSE = {
  normal: 1000,
  /** The engine is shutting down: reconnect (to another node). */
  goingAway: 1001,
  protocolError: 1002,
  /** Never sent: what a peer sees when a connection ends without a close frame (cut, or failed to open). */
  abnormal: 1006,
  /** Policy: the token expired mid-session (reason "token expired"); reconnect with a fresh one. */
  policy: 1008,
  /** A frame over twice CHAT_MAX_PAYLOAD. */
  tooLarge: 1009,
  internal: 1011,
} as const;
export type CloseCode = (typeof CLOSE)[keyof typeof CLOSE];
