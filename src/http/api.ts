// The HTTP API: history, who is online, the host app's room operations, the caller's rooms and
// blocks. Every request is validated here (params.ts); bad input is a 4xx with
// {"error":{"code","message"}}, never a 500.

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { RoomInfo } from '../../workers/contract.ts';
import { eventJson, type StoredEvent } from '../../workers/stores/events.ts';
import type { Authenticator, Identity } from '../auth.ts';
import type { Config } from '../config.ts';
import type { Admin } from '../core/admin.ts';
import type { History } from '../core/history.ts';
import { Op, type KeyedLimits } from '../core/limits.ts';
import type { Logger } from '../log.ts';
import type { ClientAddress } from '../net/address.ts';
import { ChatError, MSG } from '../protocol/errors.ts';
import { printable, wellFormed } from '../protocol/text.ts';
import { checkPage, isId } from '../protocol/validate.ts';
import { readBody } from './body.ts';
import { obj, optRoomId, optText, requireAdmin, roomParam, SUBJECT_RE, userList, userParam } from './params.ts';
import { sendError, sendJson } from './respond.ts';

interface Ctx {
  who: Identity;
  params: string[];
  query: URLSearchParams;
  body: unknown;
}

interface Reply {
  status: number;
  /** A JSON string, already encoded. */
  json: string;
}

const ok = (value: unknown, status = 200): Reply => ({ status, json: JSON.stringify(value) });

/** Who may call how often: per client address, and per user (all their requests together). */
export interface ApiLimits {
  addresses: ClientAddress;
  perAddress: KeyedLimits;
  perUser: KeyedLimits;
}

export function registerApi(app: TemplatedApp, history: History, admin: Admin, auth: Authenticator, limits: ApiLimits, cfg: Config, log: Logger): void {
  /**
   * One wrapper for every JSON route: reads the request synchronously (it is invalid after the
   * handler returns), takes a token of the caller's address (429 past it) before any work,
   * registers onAborted before any await, reads a bounded body, identifies the caller (and takes a
   * token of the user), and turns ChatError into its status.
   */
  const route = (method: 'get' | 'post' | 'put' | 'del', pattern: string, nParams: number, withBody: boolean, fn: (c: Ctx) => Promise<Reply>): void => {
    app[method](pattern, (res: HttpResponse, req: HttpRequest) => {
      const params = Array.from({ length: nParams }, (_, i) => req.getParameter(i) ?? '');
      const rawQuery = req.getQuery() ?? '';
      const creds = { query: rawQuery, authorization: req.getHeader('authorization') };
      const contentType = req.getHeader('content-type');
      const address = limits.addresses.of(Buffer.from(res.getRemoteAddressAsText()).toString(), req.getHeader('x-forwarded-for'));
      if (!limits.perAddress.take(address, Op.http)) return sendError(res, 'rate_limited', limits.perAddress.refusal(Op.http));
      let aborted = false;
      res.onAborted(() => { aborted = true; });
      const bodyP = withBody ? readBody(res, contentType) : Promise.resolve(undefined);
      Promise.all([bodyP, auth.identify(creds)])
        .then(([body, who]) => {
          if (!limits.perUser.take(who.id, Op.http)) throw new ChatError('rate_limited', limits.perUser.refusal(Op.http));
          return fn({ who, params, query: new URLSearchParams(rawQuery), body });
        })
        .then((r) => { if (!aborted) sendJson(res, r.status, r.json); }, (err: unknown) => {
          if (aborted) return;
          if (err instanceof ChatError) return sendError(res, err.code, err.message);
          log.error({ err: String(err), route: pattern }, 'request failed');
          sendError(res, 'internal');
        });
    });
  };

  route('get', '/api/rooms/:room/messages', 1, false, async ({ who, params, query }) => {
    const room = roomParam(params[0]);
    const limitRaw = query.get('limit');
    if (limitRaw !== null && !/^\d{1,4}$/.test(limitRaw)) throw new ChatError('invalid', 'limit must be an integer 1..100');
    const page = checkPage(query.get('before') || undefined, query.get('after') || undefined, limitRaw === null ? undefined : Number(limitRaw));
    if (typeof page === 'string') throw new ChatError('invalid', page);
    const p = await history.page(room, page, { userId: who.id, admin: who.admin });
    return { status: 200, json: '{"messages":[' + p.messages.map((d) => d.json).join(',') + '],"more":' + p.more + '}' };
  });

  // Who is online in the room (user ids with a joined connection; on every node in a cluster).
  route('get', '/api/rooms/:room/online', 1, false, async ({ who, params }) => {
    const room = roomParam(params[0]);
    const online = await admin.online(room, { userId: who.id, admin: who.admin });
    return { status: 200, json: JSON.stringify({ room, online }) };
  });

  // Retract a message: its sender, or an admin (forbidden otherwise; not_found for an unknown id).
  route('del', '/api/rooms/:room/messages/:id', 2, false, async ({ who, params }) => {
    const room = roomParam(params[0]);
    if (!isId(params[1])) throw new ChatError('invalid', 'the message id must be a message id');
    const r = await admin.deleteMessage(room, params[1], who);
    return ok({ room: r.room, id: r.id, seq: r.seq, at: r.at, target: params[1] });
  });

  // Read positions of the room's members (see receipts), as `joined.reads` carries them.
  route('get', '/api/rooms/:room/reads', 1, false, async ({ who, params }) => {
    const room = roomParam(params[0]);
    return ok({ room, reads: await admin.reads(room, { userId: who.id, admin: who.admin }) });
  });

  route('post', '/api/rooms/:room/messages', 1, true, async ({ who, params, body }) => {
    requireAdmin(who);
    const room = roomParam(params[0]);
    const text = obj(body).text;
    if (typeof text !== 'string' || text.length === 0 || !wellFormed(text)) throw new ChatError('invalid', 'text must be a non-empty, well-formed string');
    const r = await admin.postSystem(room, text);
    return ok({ room: r.room, id: r.id, seq: r.seq, at: r.at }, 201);
  });

  route('post', '/api/rooms', 0, true, async ({ who, body }) => {
    const b = obj(body);
    if (b.kind !== 'public' && b.kind !== 'group' && b.kind !== 'direct') throw new ChatError('invalid', 'kind must be public, group or direct');
    const r = await admin.createRoom(who, {
      id: optRoomId(b.id),
      kind: b.kind,
      name: optText(b.name, 'name', SUBJECT_RE),
      subject: optText(b.subject, 'subject', SUBJECT_RE),
      members: userList(b.members, 'members'),
    });
    return ok(r.room, r.created ? 201 : 200);
  });

  route('get', '/api/rooms', 0, false, async ({ who, query }) => {
    const subject = query.get('subject');
    if (subject === null || !SUBJECT_RE.test(subject) || !printable(subject)) throw new ChatError('invalid', 'subject is required (1..128 printable characters)');
    return ok({ rooms: await admin.roomsBySubject(who, subject) });
  });

  route('del', '/api/rooms/:room', 1, false, async ({ who, params }) => {
    requireAdmin(who);
    const room = roomParam(params[0]);
    await admin.deleteRoom(room);
    return ok({ deleted: room });
  });

  route('post', '/api/rooms/:room/members', 1, true, async ({ who, params, body }) => {
    requireAdmin(who);
    const users = userList(obj(body).users, 'users');
    if (users.length === 0) throw new ChatError('invalid', 'users must name at least one user');
    return ok(await admin.setMembers(roomParam(params[0]), users, true) satisfies RoomInfo);
  });

  route('del', '/api/rooms/:room/members/:user', 2, false, async ({ who, params }) => {
    requireAdmin(who);
    return ok(await admin.setMembers(roomParam(params[0]), [userParam(params[1])], false));
  });

  // The webhook outbox (docs/webhooks.md): events from an id, the dead-letter list, replays.
  const listed = (events: StoredEvent[]): string =>
    '{"events":[' + events.map((e) => `{"id":"${e.id}","state":"${e.state}","attempts":${e.attempts},"doneAt":${e.doneAt},"error":${JSON.stringify(e.error)},"event":${eventJson(e)}}`).join(',') + ']}';
  const listQuery = (query: URLSearchParams): { from: number; limit: number } => {
    const from = query.get('from') ?? '0';
    const limit = query.get('limit') ?? '100';
    if (!/^\d{1,15}$/.test(from)) throw new ChatError('invalid', 'from must be an event id (a whole number)');
    if (!/^\d{1,4}$/.test(limit) || Number(limit) < 1 || Number(limit) > 1000) throw new ChatError('invalid', 'limit must be an integer 1..1000');
    return { from: Number(from), limit: Number(limit) };
  };

  route('get', '/api/webhooks/events', 0, false, async ({ who, query }) => {
    requireAdmin(who);
    const state = query.get('state');
    if (state !== null && state !== 'pending' && state !== 'delivered' && state !== 'dead') throw new ChatError('invalid', 'state must be pending, delivered or dead');
    const r = await admin.webhooks({ op: 'list', ...listQuery(query), state });
    return { status: 200, json: listed(r.events ?? []) };
  });

  route('get', '/api/webhooks/dead', 0, false, async ({ who, query }) => {
    requireAdmin(who);
    const r = await admin.webhooks({ op: 'list', ...listQuery(query), state: 'dead' });
    return { status: 200, json: listed(r.events ?? []) };
  });

  route('post', '/api/webhooks/replay', 0, true, async ({ who, body }) => {
    requireAdmin(who);
    const b = obj(body);
    const id = (v: unknown): number => {
      if (typeof v !== 'string' || !/^\d{1,15}$/.test(v)) throw new ChatError('invalid', 'an event id is a string of digits, as the events carry it');
      return Number(v);
    };
    let r;
    if (b.from !== undefined && b.ids === undefined) r = await admin.webhooks({ op: 'replay', from: id(b.from) });
    else if (b.ids !== undefined && b.from === undefined && Array.isArray(b.ids) && b.ids.length >= 1 && b.ids.length <= 1000) r = await admin.webhooks({ op: 'replayIds', ids: b.ids.map(id) });
    else throw new ChatError('invalid', 'give either from (an event id: every delivered or dead-lettered event from it) or ids (1..1000 event ids)');
    return ok({ replayed: r.count });
  });

  // A self-asserted identity (CHAT_AUTH=none) owns nothing: with CHAT_GUEST_ROOMS=public, /api/me/* is refused.
  const mine = (who: Identity): void => {
    if (!who.admin && cfg.auth === 'none' && cfg.guestRooms === 'public') throw new ChatError('forbidden', MSG.guestsPublicOnly);
  };

  route('get', '/api/me/rooms', 0, false, async ({ who }) => {
    mine(who);
    return ok({ rooms: await admin.myRooms(who) });
  });

  route('get', '/api/me/blocks', 0, false, async ({ who }) => {
    mine(who);
    return ok({ blocked: admin.blockList(who.id) });
  });

  route('put', '/api/me/blocks/:user', 1, false, async ({ who, params }) => {
    mine(who);
    const other = userParam(params[0]);
    if (other === who.id) throw new ChatError('invalid', 'you cannot block yourself');
    await admin.setBlock(who.id, other, true);
    return ok({ blocked: admin.blockList(who.id) });
  });

  route('del', '/api/me/blocks/:user', 1, false, async ({ who, params }) => {
    mine(who);
    await admin.setBlock(who.id, userParam(params[0]), false);
    return ok({ blocked: admin.blockList(who.id) });
  });
}
