// The web client's script (served as /app.js, an ES module). The connection, reconnects, rejoins
// with `since`, resends with the same cid and retries are the client library's (/client/index.js,
// built from client/); this file keeps the page's state and draws it.
// Every user-provided string is rendered with textContent / createTextNode, never as HTML.

import { applyRetraction, ChatClient, isRetraction, newCid } from './client/index.js';

const ROOM_RE = /^[A-Za-z0-9._:-]{1,64}$/;
const TYPING_EVERY_MS = 2000;   // send `typing` at most this often
const TYPING_SHOW_MS = 3000;    // show "X is typing" this long after the last one
const PAGE = 50;                // join / history page size
const store = (() => { try { return window.sessionStorage; } catch { return null; } })();

/** The engine that served this page: its own /ws (the CSP allows no other host). */
function wsUrl() {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
}

// ---- elements ------------------------------------------------------------------------------------
const $ = (id) => document.getElementById(id);
const el = {
  nickname: $('nickname'), me: $('me'), status: $('status'), joinForm: $('join-form'), room: $('room'),
  rooms: $('rooms'), activeRoom: $('active-room'), loadOlder: $('load-older'), messages: $('messages'),
  typing: $('typing'), sendForm: $('send-form'), sendText: $('send-text'), send: $('send'), error: $('error'),
};
function h(tag, cls, text) {
  const n = document.createElement(tag);
  if (cls) n.className = cls;
  if (text !== undefined) n.textContent = String(text);
  return n;
}

// ---- state ---------------------------------------------------------------------------------------
const S = {
  me: null,               // {id, name}
  client: null,           // the ChatClient of this identity
  everConnected: false,
  rooms: new Map(),       // id -> Room, in list order
  active: null,           // id of the shown room
  pending: new Map(),     // cid -> {cid, room, text, state: 'pending'|'acked'|'failed', code, message, id, at}
  readSupported: true,
  lastTypingSent: 0,
  meRoomsFetched: null,   // identity key the room list was fetched for
};

function newRoom(id, name) {
  return {
    id, name: name || id, sub: null, joined: false,
    msgs: new Map(),      // id -> message
    lastId: null,         // newest id shown
    unread: 0, noOlder: false, loadingOlder: false, readSentFor: null, error: null,
    typers: new Map(),    // user id -> {name, until}
  };
}

function randomToken(n) {
  const a = new Uint8Array(n);
  crypto.getRandomValues(a);
  return Array.from(a, (b) => 'abcdefghijklmnopqrstuvwxyz0123456789'[b % 36]).join('');
}
function suffix() {
  let s = store && store.getItem('chat.suffix');
  if (!s || !/^[a-z0-9]{4,12}$/.test(s)) {
    s = randomToken(6);
    if (store) store.setItem('chat.suffix', s);
  }
  return s;
}
/** User id from a nickname: [A-Za-z0-9._-] only, plus this tab's random suffix. */
function userIdFor(nick) {
  const base = nick.normalize('NFKD').replace(/[^A-Za-z0-9._-]+/g, '').slice(0, 40) || 'user';
  return base + '-' + suffix();
}
function save() {
  if (!store) return;
  store.setItem('chat.rooms', JSON.stringify([...S.rooms.keys()]));
  if (S.active) store.setItem('chat.active', S.active); else store.removeItem('chat.active');
}

// ---- errors and status -----------------------------------------------------------------------------
let errorTimer = 0;
function showError(code, message) {
  el.error.textContent = (code ? code + ': ' : '') + (message || '');
  el.error.dataset.code = code || '';
  el.error.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => { el.error.hidden = true; }, 8000);
}
function setStatus(state, text) {
  el.status.dataset.state = state;
  el.status.textContent = text || state;
}

// ---- connection ------------------------------------------------------------------------------------
/** One client per identity: a new nickname closes the old one (its unsent messages fail `closed`). */
function connect() {
  if (S.client) S.client.close();
  const c = new ChatClient({ url: wsUrl(), user: S.me.id, name: S.me.name });
  S.client = c;
  S.everConnected = false;
  c.on('state', (state, detail) => {
    if (c !== S.client) return;
    if (state === 'connected') {
      S.everConnected = true;
      setStatus('connected');
      // rooms whose join was refused are tried again on every new connection
      for (const room of S.rooms.values()) if (room.error && !room.sub) subscribe(room);
      fetchMyRooms();
    } else if (state === 'disconnected') {
      setStatus('reconnecting', 'reconnecting in ' + Math.ceil((detail.retryIn || 0) / 1000) + ' s');
    } else if (state === 'connecting') {
      if (S.everConnected) setStatus('reconnecting', 'reconnecting\u2026'); else setStatus('connecting');
    } else {
      setStatus('offline');
    }
    render();
  });
  c.on('error', (err) => { if (c === S.client) showError(err.code || 'error', err.message); });
  for (const room of S.rooms.values()) subscribe(room);
  // sends never acked are sent again with the same cid: the engine stores and delivers them once
  for (const p of S.pending.values()) if (p.state === 'pending') transmit(p);
}
window.addEventListener('online', () => { if (S.client) S.client.reconnect(); });

/** The engine's list of this user's rooms with unread counts. */
async function fetchMyRooms() {
  const key = S.me.id + '\n' + S.me.name;
  if (S.meRoomsFetched === key) return;
  S.meRoomsFetched = key;
  let body;
  try {
    const q = new URLSearchParams({ user: S.me.id, name: S.me.name });
    const r = await fetch('/api/me/rooms?' + q, { headers: { accept: 'application/json' } });
    if (!r.ok) return;
    body = await r.json();
  } catch {
    return;
  }
  if (!body || !Array.isArray(body.rooms)) return;
  for (const info of body.rooms) {
    if (!info || typeof info.id !== 'string' || !ROOM_RE.test(info.id)) continue;
    let room = S.rooms.get(info.id);
    if (!room) {
      room = newRoom(info.id, typeof info.name === 'string' && info.name ? info.name : info.id);
      S.rooms.set(room.id, room);
      subscribe(room);
    } else if (typeof info.name === 'string' && info.name) {
      room.name = info.name;
    }
    if (typeof info.unread === 'number' && room.id !== S.active) room.unread = info.unread;
  }
  save();
  render();
}

/** Join a room through the library: every message once, in order, across reconnects. */
function subscribe(room) {
  room.error = null;
  const sub = S.client.join(room.id, {
    limit: PAGE,
    onMessage: (m, info) => onMessage(room, m, info),
    onReset: () => {
      // the engine could not replay what was missed: start over from its latest page
      room.msgs.clear();
      room.lastId = null;
      room.noOlder = false;
    },
    onTyping: (user) => {
      if (!user || typeof user.id !== 'string' || isMine({ from: user })) return;
      room.typers.set(user.id, { name: String(user.name || user.id), until: Date.now() + TYPING_SHOW_MS });
      setTimeout(renderTyping, TYPING_SHOW_MS + 50);
      renderTyping();
    },
    // another member read further: the unread counts beside the messages fall
    onReceipt: () => { if (room.id === S.active) renderMessages(); },
    onLeft: (info) => {
      if (room.sub !== sub) return;
      room.sub = null;
      if (info.reason === 'refused') {
        // kept in the list, marked: leave it with ×, or it is tried again on the next connection
        room.error = info.error.code;
        showError(info.error.code, info.error.message + ' (' + room.id + ')');
      } else {
        dropRoom(room.id);
        showError('left', 'you left ' + room.id + ' (' + info.reason + ')');
      }
      render();
    },
  });
  room.sub = sub;
  sub.ready.then(() => {
    if (room.sub !== sub) return;
    room.joined = true;
    if (room.id === S.active) markRead(room);
    render();
  }, () => {});
}

function isMine(m) { return !!(S.me && m.from && m.from.id === S.me.id); }

function onMessage(room, m, info) {
  if (room.msgs.has(m.id)) return;
  if (isRetraction(m)) {
    const target = typeof m.target === 'string' ? room.msgs.get(m.target) : undefined;
    if (target) applyRetraction(target, m);
    if (!room.lastId || m.id > room.lastId) room.lastId = m.id;
    render();
    return;
  }
  room.msgs.set(m.id, m);
  if (!room.lastId || m.id > room.lastId) room.lastId = m.id;
  if (m.from && typeof m.from.id === 'string') room.typers.delete(m.from.id);
  const p = typeof m.cid === 'string' && isMine(m) ? S.pending.get(m.cid) : undefined;
  if (p) { p.id = m.id; if (p.state === 'acked') S.pending.delete(p.cid); }
  // the first page of a join is what was said before: only later messages count as unread
  const counts = !info.initial && (m.type === 'CHAT' || m.type === 'SYSTEM') && !isMine(m);
  if (room.id === S.active && room.joined && document.hasFocus()) markRead(room);
  else if (counts) room.unread++;
  render();
}

/** Tell the engine the room is read up to its newest message; the reply carries what is left. */
function markRead(room) {
  room.unread = 0;
  if (!room.lastId || room.readSentFor === room.lastId || !S.readSupported || !S.client) return;
  const upTo = room.lastId;
  room.readSentFor = upTo;
  S.client.read(room.id, upTo).then((r) => {
    // a reply to an older read crossed a newer one in flight: the newer reply will say
    if (room.readSentFor && r.upTo < room.readSentFor) return;
    room.unread = r.unread;
    render();
  }, (err) => {
    if (err.code === 'unknown_op') S.readSupported = false; // counts stay local
  });
}
window.addEventListener('focus', () => {
  const room = S.active && S.rooms.get(S.active);
  if (room && (room.unread > 0 || room.readSentFor !== room.lastId)) { markRead(room); render(); }
});

// ---- rendering -----------------------------------------------------------------------------------
function fmtTime(at) {
  const d = new Date(at);
  if (isNaN(d.getTime())) return '';
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function render() {
  renderRooms();
  renderMessages();
  renderTyping();
  const room = S.active && S.rooms.get(S.active);
  el.activeRoom.textContent = room ? room.name + (room.name !== room.id ? ' (' + room.id + ')' : '') : 'No room selected';
  el.sendText.disabled = !room;
  el.send.disabled = !room;
  el.me.textContent = S.me ? 'as ' + S.me.id : '';
}

function renderRooms() {
  const items = [];
  for (const room of S.rooms.values()) {
    const li = h('li');
    li.dataset.testid = 'room-item';
    li.dataset.room = room.id;
    if (room.id === S.active) li.className = 'active';
    if (room.error) { li.classList.add('failed'); li.dataset.error = room.error; }
    const open = h('button', 'open');
    open.type = 'button';
    open.title = room.error ? room.id + ': ' + room.error : room.id;
    open.appendChild(h('span', 'name', room.name));
    const badge = h('span', 'badge', room.unread > 0 ? (room.unread > 999 ? '999+' : room.unread) : '');
    badge.dataset.testid = 'unread-badge';
    badge.dataset.count = String(room.unread);
    badge.hidden = room.unread === 0;
    open.appendChild(badge);
    open.addEventListener('click', () => activate(room.id));
    const leave = h('button', 'leave', '\u00d7');
    leave.type = 'button';
    leave.title = 'leave ' + room.id;
    leave.dataset.testid = 'leave';
    leave.addEventListener('click', () => leaveRoom(room.id));
    li.append(open, leave);
    items.push(li);
  }
  el.rooms.replaceChildren(...items);
}

function messageItem(m, p, sub) {
  const type = typeof m.type === 'string' ? m.type : 'CHAT';
  const name = m.from && m.from.name != null ? String(m.from.name) : (m.from && m.from.id) || 'system';
  const li = h('li', 'msg');
  li.dataset.testid = 'message';
  li.dataset.type = type;
  if (m.id) li.dataset.id = m.id;
  if (typeof m.cid === 'string') li.dataset.cid = m.cid;
  const time = h('time', 'time', fmtTime(m.at));
  time.dataset.testid = 'message-time';
  if (typeof m.at === 'number') { time.dateTime = new Date(m.at).toISOString(); time.title = time.dateTime; }
  if (type !== 'CHAT') {
    // ENTER, QUIT, SYSTEM, and types this page does not know yet: one line, centred
    li.classList.add('sys');
    const text = type === 'ENTER' ? name + ' entered' : type === 'QUIT' ? name + ' left' : String(m.text ?? '');
    const t = h('span', 'text', text);
    t.dataset.testid = 'message-text';
    li.append(t, time);
    return li;
  }
  if (isMine(m)) li.classList.add('mine');
  const meta = h('div', 'meta');
  const from = h('span', 'from', name);
  from.dataset.testid = 'message-from';
  meta.append(from, time);
  if (typeof m.editedAt === 'number') meta.append(h('span', 'edited', 'edited'));
  // KakaoTalk style: how many members have not read it yet, falling as they read
  const unread = sub && sub.reads.size > 0 && typeof m.seq === 'number' ? sub.unreadBy(m) : 0;
  if (unread > 0) {
    const u = h('span', 'unread', String(unread));
    u.dataset.testid = 'message-unread';
    u.title = unread + ' not read yet';
    meta.append(u);
  }
  const t = h('div', 'text', m.deleted ? 'message deleted' : String(m.text ?? ''));
  t.dataset.testid = 'message-text';
  if (m.deleted) li.classList.add('deleted');
  li.append(meta, t);
  if (p && p.state !== 'acked') {
    const st = h('div', 'state', p.state === 'failed' ? 'not sent: ' + p.code + (p.message ? ' (' + p.message + ')' : '') : 'sending\u2026');
    st.dataset.testid = 'message-state';
    li.classList.add(p.state === 'failed' ? 'failed' : 'pending');
    li.appendChild(st);
    if (p.state === 'failed') {
      const retry = h('button', 'plain', 'retry');
      retry.type = 'button';
      retry.dataset.testid = 'retry';
      retry.addEventListener('click', () => { p.state = 'pending'; p.code = undefined; transmit(p); render(); });
      li.appendChild(retry);
    }
  }
  return li;
}

function renderMessages() {
  const room = S.active && S.rooms.get(S.active);
  const box = el.messages;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const items = [];
  if (room) {
    const list = [...room.msgs.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const mine = new Map();
    for (const p of S.pending.values()) if (p.room === room.id) mine.set(p.cid, p);
    for (const m of list) {
      const p = isMine(m) && typeof m.cid === 'string' ? mine.get(m.cid) : undefined;
      if (p) mine.delete(p.cid);
      items.push(messageItem(m, p, room.sub));
    }
    // sends not delivered yet: shown last, in the order they were typed
    for (const p of mine.values()) {
      items.push(messageItem({ id: p.id, cid: p.cid, type: 'CHAT', from: S.me, text: p.text, at: p.at || p.sentAt }, p));
    }
    el.loadOlder.hidden = room.noOlder || list.length === 0 || (list[0].seq === 1);
    el.loadOlder.disabled = room.loadingOlder;
    if (items.length === 0) items.push(h('li', 'empty', room.joined ? 'No messages yet.' : room.error ? 'Could not join ' + room.id + ': ' + room.error : 'Joining\u2026'));
  } else {
    el.loadOlder.hidden = true;
    items.push(h('li', 'empty', S.me ? 'Join a room to start chatting.' : 'Pick a nickname and join a room.'));
  }
  box.replaceChildren(...items);
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function renderTyping() {
  const room = S.active && S.rooms.get(S.active);
  const now = Date.now();
  const names = [];
  if (room) {
    for (const [id, t] of room.typers) {
      if (t.until <= now) room.typers.delete(id); else names.push(t.name);
    }
  }
  el.typing.textContent = names.length === 0 ? '' :
    names.length === 1 ? names[0] + ' is typing\u2026' :
    names.slice(0, -1).join(', ') + ' and ' + names[names.length - 1] + ' are typing\u2026';
}

// ---- user actions ----------------------------------------------------------------------------------
/** Take the nickname field as the identity; reconnects when it changed. False if there is none. */
function ensureIdentity() {
  const nick = el.nickname.value.trim().replace(/[\u0000-\u001f\u007f]/g, '').slice(0, 64);
  if (!nick) {
    showError('invalid', 'enter a nickname first');
    el.nickname.focus();
    return false;
  }
  if (S.me && S.me.name === nick && S.client) return true;
  S.me = { id: userIdFor(nick), name: nick };
  if (store) store.setItem('chat.nick', nick);
  connect();
  render();
  return true;
}

function activate(id) {
  const room = S.rooms.get(id);
  if (!room) return;
  S.active = id;
  if (room.joined) markRead(room);
  save();
  render();
  el.messages.scrollTop = el.messages.scrollHeight;
  el.sendText.focus();
}

function leaveRoom(id) {
  const room = S.rooms.get(id);
  if (!room) return;
  if (room.sub) room.sub.leave();
  dropRoom(id);
  render();
}

function dropRoom(id) {
  const room = S.rooms.get(id);
  if (room) room.sub = null;
  S.rooms.delete(id);
  for (const p of [...S.pending.values()]) if (p.room === id) S.pending.delete(p.cid);
  if (S.active === id) S.active = S.rooms.size ? S.rooms.keys().next().value : null;
  save();
}

el.joinForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const id = el.room.value.trim();
  if (!ROOM_RE.test(id)) return showError('invalid', 'a room id is 1..64 of A-Z a-z 0-9 . _ : -');
  if (!ensureIdentity()) return;
  let room = S.rooms.get(id);
  if (!room) {
    room = newRoom(id);
    S.rooms.set(id, room);
    subscribe(room);
  }
  el.room.value = '';
  activate(id);
});

el.nickname.addEventListener('change', () => { if (el.nickname.value.trim()) ensureIdentity(); });

/** Send through the library: resolves once durable; refused sends show their code and a retry. */
function transmit(p) {
  const c = S.client;
  c.send(p.room, p.text, { cid: p.cid }).then((ack) => {
    p.state = 'acked';
    p.id = ack.id;
    p.at = ack.at;
    const r = S.rooms.get(p.room);
    if (!r || r.msgs.has(ack.id)) S.pending.delete(p.cid);
    render();
  }, (err) => {
    // (a client closed for a new nickname: the new one has sent it again)
    if (S.pending.get(p.cid) !== p || c !== S.client) return;
    p.state = 'failed';
    p.code = err.code || 'error';
    p.message = err.message;
    render();
  });
}

el.sendForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = el.sendText.value;
  if (!S.active || !S.client || text.trim() === '') return;
  const p = { cid: newCid(), room: S.active, text, state: 'pending', sentAt: Date.now() };
  S.pending.set(p.cid, p);
  transmit(p);
  el.sendText.value = '';
  S.lastTypingSent = 0;
  render();
  el.messages.scrollTop = el.messages.scrollHeight;
});

el.sendText.addEventListener('input', () => {
  const room = S.active && S.rooms.get(S.active);
  if (!room || !room.joined || !S.client || el.sendText.value === '') return;
  const now = Date.now();
  if (now - S.lastTypingSent < TYPING_EVERY_MS) return;
  if (S.client.typing(room.id)) S.lastTypingSent = now;
});

el.loadOlder.addEventListener('click', () => {
  const room = S.active && S.rooms.get(S.active);
  if (!room || room.loadingOlder || room.msgs.size === 0 || !S.client) return;
  let oldest = null;
  for (const id of room.msgs.keys()) if (oldest === null || id < oldest) oldest = id;
  room.loadingOlder = true;
  render();
  S.client.history(room.id, { before: oldest, limit: PAGE }).then((page) => {
    room.loadingOlder = false;
    const before = el.messages.scrollHeight - el.messages.scrollTop;
    for (const m of page.messages) if (!room.msgs.has(m.id)) room.msgs.set(m.id, m);
    if (!page.more) room.noOlder = true;
    if (room.id === S.active) {
      render();
      el.messages.scrollTop = el.messages.scrollHeight - before; // keep the reader's place
    }
  }, (err) => {
    room.loadingOlder = false;
    showError(err.code || 'error', err.message + ' (' + room.id + ')');
    render();
  });
});

// ---- start -----------------------------------------------------------------------------------------
(function start() {
  const nick = (store && store.getItem('chat.nick')) || '';
  let saved = [];
  try { saved = JSON.parse((store && store.getItem('chat.rooms')) || '[]'); } catch { saved = []; }
  for (const id of Array.isArray(saved) ? saved : []) {
    if (typeof id === 'string' && ROOM_RE.test(id) && !S.rooms.has(id)) S.rooms.set(id, newRoom(id));
  }
  const active = store && store.getItem('chat.active');
  if (active && S.rooms.has(active)) S.active = active;
  if (nick) {
    el.nickname.value = nick;
    ensureIdentity();
  }
  render();
  setInterval(renderTyping, 1000);
})();
