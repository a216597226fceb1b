// Where a frame comes in: the uWS behavior of `/ws` and of the STOMP path. The upgrade checks the
// connection caps, the origin, the subprotocol and the identity before any socket exists; each
// message is charged to its connection's inbound byte budget and bounded, then decoded by its
// connection's codec (validation: protocol/validate.ts) and handed to the engine.

import type { HttpRequest, HttpResponse, WebSocket, WebSocketBehavior } from 'uWebSockets.js';
import { uws } from '../native/uws.ts';
import type { Authenticator, Identity } from './auth.ts';
import type { Config } from './config.ts';
import { Session, type SocketData } from './core/session.ts';
import type { Engine } from './engine.ts';
import { sendError } from './http/respond.ts';
import type { Logger } from './log.ts';
import type { ClientAddress } from './net/address.ts';
import { Op } from './core/limits.ts';
import { ConnectionCaps } from './net/caps.ts';
import { ChatError, CLOSE, type ErrorCode } from './protocol/errors.ts';
import { Codec, isFrameError, SUBPROTOCOLS, type Decoded } from './protocol/frames.ts';
import { decodeJson } from './protocol/json.ts';
import { decodeMsgpack } from './protocol/msgpack.ts';
import type { StompGateway } from './protocol/stomp/gateway.ts';
import { StompState } from './protocol/stomp/state.ts';

/** The decoder of each codec that frames its own messages (STOMP has its own parser). */
const DECODERS: Record<Codec, ((data: ArrayBuffer, isBinary: boolean) => Decoded) | null> = {
  [Codec.Json]: decodeJson,
  [Codec.Msgpack]: decodeMsgpack,
  [Codec.Stomp]: null,
};

/** A STOMP connection before its CONNECT frame names the user. */
function anonymous(n: number): Identity {
  return { id: `stomp-anon-${n}`, name: 'anonymous', admin: false, exp: 0 };
}

/** Pick the first subprotocol the client offers that the engine speaks; '' = none offered. */
function chooseProtocol(header: string, fallback: Codec): { codec: Codec; echo: string } | null {
  if (header.trim() === '') return { codec: fallback, echo: '' };
  for (const p of header.split(',')) {
    const name = p.trim();
    const codec = SUBPROTOCOLS[name];
    if (codec !== undefined) return { codec, echo: name };
  }
  return null;
}

export interface Intake {
  /** One behavior for /ws and the STOMP path; only the default subprotocol differs. */
  behavior(defaultCodec: Codec): WebSocketBehavior<SocketData>;
  /** Every open connection (slow-consumer sampling, shutdown). */
  readonly sessions: Set<Session>;
}

export function websocketIntake(cfg: Config, engine: Engine, auth: Authenticator, stomp: StompGateway<Session>, addresses: ClientAddress, log: Logger): Intake {
  const sessions = new Set<Session>();
  const caps = new ConnectionCaps(cfg.maxConns, cfg.maxConnsPerIp);
  let connSeq = 0;
  // Over CHAT_MAX_PAYLOAD: up to 2x it the frame is answered `too_large` and the connection stays;
  // up to hardLimit it is answered and the connection closed with 1009; past hardLimit uWS drops
  // the connection without reading further (the peer sees 1006). Nothing of any of them is used.
  const softClose = cfg.maxPayload * 2;
  const hardLimit = Math.min(Math.max(cfg.maxPayload * 32, 2 << 20), 64 << 20);
  const inboundRefusal = engine.connLimits.refusal(Op.inbound, 'on this connection (CHAT_INBOUND_BYTES_RATE); the frame was not read');

  const behavior = (defaultCodec: Codec): WebSocketBehavior<SocketData> => ({
    compression: uws.DISABLED,
    maxPayloadLength: hardLimit,
    maxBackpressure: cfg.maxBackpressure,
    closeOnBackpressureLimit: 1,
    idleTimeout: cfg.idleTimeout,
    sendPingsAutomatically: true,

    upgrade: (res: HttpResponse, req: HttpRequest, context) => {
      const refuse = (code: ErrorCode, message: string): void => {
        // Connection errors are logged with their reason, never with the token or query string.
        log.info({ code, reason: message }, 'websocket upgrade refused');
        sendError(res, code, message);
      };
      // Everything from req must be read now: it is invalid after this function returns.
      const key = req.getHeader('sec-websocket-key');
      const protocolHeader = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      const origin = req.getHeader('origin');
      const creds = { query: req.getQuery() ?? '', authorization: req.getHeader('authorization') };
      const address = addresses.of(Buffer.from(res.getRemoteAddressAsText()).toString(), req.getHeader('x-forwarded-for'));
      if (!engine.accepting) return refuse('overloaded', 'the engine is shutting down');
      // Caps first, before any work: a slot is held from here until the connection closes.
      const capped = caps.take(address);
      if (capped === 'total') return refuse('overloaded', `the engine holds ${cfg.maxConns} connections (CHAT_MAX_CONNS); retry later`);
      if (capped === 'address') return refuse('rate_limited', `at most ${cfg.maxConnsPerIp} connections from one address (CHAT_MAX_CONNS_PER_IP)`);
      let settled = false;
      const release = (): void => {
        if (!settled) caps.give(address);
        settled = true;
      };
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
        release();
      });
      const refuseHeld = (code: ErrorCode, message: string): void => {
        release();
        refuse(code, message);
      };
      if (cfg.allowedOrigins.length > 0 && origin !== '' && !cfg.allowedOrigins.includes(origin)) {
        return refuseHeld('forbidden', 'this origin may not open a WebSocket here');
      }
      const proto = chooseProtocol(protocolHeader, defaultCodec);
      if (proto === null) return refuseHeld('invalid', `no supported subprotocol offered; use one of ${Object.keys(SUBPROTOCOLS).join(', ')}`);
      const isStomp = proto.codec === Codec.Stomp;
      // STOMP clients (Spring's) authenticate in CONNECT: without credentials on the upgrade they
      // are let in anonymous, and CONNECT must identify them before any other frame.
      const deferred = isStomp && creds.authorization === '' && !/(^|&)(token|user)=/.test(creds.query);
      const who: Promise<Identity> = deferred ? Promise.resolve(anonymous(++connSeq)) : auth.identify(creds);
      who.then((id: Identity) => {
        if (aborted) return;
        if (!deferred && !engine.mayConnect(id.id)) return refuseHeld('rate_limited', `at most ${cfg.maxConnsPerUser} connections per user`);
        const st = isStomp ? new StompState(cfg.maxPayload, deferred) : null;
        const s = new Session(++connSeq, id, proto.codec, address, engine.connLimits.fresh(), st, engine.stompTopics);
        settled = true; // the slot is the connection's now: given back when it closes
        res.cork(() => res.upgrade<SocketData>({ s }, key, proto.echo, extensions, context));
      }, (err: unknown) => {
        if (aborted) return;
        if (err instanceof ChatError) return refuseHeld(err.code, err.message);
        log.error({ err: String(err) }, 'upgrade failed');
        release();
        sendError(res, 'unauthorized');
      });
    },

    open: (ws: WebSocket<SocketData>) => {
      const s = ws.getUserData().s;
      s.ws = ws;
      sessions.add(s);
      engine.onOpen(s, s.stomp === null || !s.stomp.needsIdentity);
      if (s.stomp !== null) stomp.onOpen(s, s.stomp);
    },

    message: (ws: WebSocket<SocketData>, data: ArrayBuffer, isBinary: boolean) => {
      const s = ws.getUserData().s;
      // Bytes on the wire first, before any parsing: a frame over the connection's inbound budget is
      // refused unread (no ref or cid to echo); on STOMP, whose frames may span messages, the
      // ERROR closes the connection.
      if (!engine.connLimits.take(s.buckets, Op.inbound, Date.now(), data.byteLength)) {
        return engine.error(s, 'rate_limited', inboundRefusal, undefined);
      }
      const decode = DECODERS[s.codec];
      if (data.byteLength > cfg.maxPayload) {
        // Nothing of it is stored or delivered. Up to twice the limit it is still decoded, only so
        // the error can echo its ref and cid (a client can tell which send was refused).
        let ref: string | undefined;
        let cid: string | undefined;
        if (data.byteLength <= softClose && decode !== null) {
          const d = decode(data, isBinary);
          ref = d.ref;
          cid = isFrameError(d) ? d.cid : d.op === 'send' || d.op === 'edit' || d.op === 'delete' ? d.cid : undefined;
        }
        engine.error(s, 'too_large', `frame of ${data.byteLength} bytes exceeds CHAT_MAX_PAYLOAD (${cfg.maxPayload})`, ref, cid);
        if (data.byteLength > softClose) ws.end(CLOSE.tooLarge, 'frame too large');
        return;
      }
      if (decode === null) return stomp.onData(s, data);
      const d = decode(data, isBinary);
      if (isFrameError(d)) return engine.error(s, d.error, d.message, d.ref, d.cid);
      engine.onFrame(s, d);
    },

    close: (ws: WebSocket<SocketData>, code: number) => {
      const s = ws.getUserData().s;
      sessions.delete(s);
      caps.give(s.address);
      stomp.onClose(s);
      // uWS closes a socket that passed maxBackpressure with 1006 and no close frame; a socket whose
      // buffer is still over the limit at close is the slow consumer being cut off, and counted.
      if (engine.onClose(s, code)) log.warn({ conn: s.connId, user: s.userId, limit: cfg.maxBackpressure }, 'slow consumer cut off at the backpressure limit');
    },
  });

  return { behavior, sessions };
}
