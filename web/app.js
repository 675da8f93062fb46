// Browser client for chatserver. Plain ES2020, no framework, no build step.
//
// Data flow: HTTP (same origin, /v1/...) for the session, the conversation list, history, sending and
// read markers; one WebSocket (/ws) for everything live. Every message has a server id, and every
// message path (history, POST answer, socket, replay after reconnect) goes through the same
// id-keyed maps, so a message is shown once however many times it arrives.
//
// All user content is untrusted: it only ever reaches the page through textContent.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  /** Creates an element with an optional class and text. */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const box = $('messages');
  const input = $('composer-input');
  const wide = window.matchMedia('(min-width: 721px)');

  // ---- Session (sessionStorage: per tab, so two tabs can be two different users) ----
  const SESSION_KEY = 'chatserver.session';
  let session = null; // {token, refresh_token, expires_at (ms), user}
  try { session = JSON.parse(sessionStorage.getItem(SESSION_KEY)); } catch { session = null; }

  function saveSession(r) {
    session = { token: r.token, refresh_token: r.refresh_token,
      expires_at: Date.now() + (r.expires_in || 3600) * 1000, user: r.user };
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  }

  const me = () => (session ? session.user.id : null);

  // ---- HTTP API ----
  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }

  /** One JSON request. Throws ApiError for an error answer, TypeError when the network fails. */
  async function request(method, path, body, token) {
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (res.status === 204) return null;
    const data = await res.json().catch(() => null);
    if (!res.ok) throw new ApiError(res.status, data?.code ?? `http_${res.status}`, data?.error ?? res.statusText);
    return data;
  }

  let refreshing = null; // one refresh at a time, shared by every caller that got a 401

  /** Trades the refresh token for a new pair. A rejected refresh token ends the session. */
  function refreshToken() {
    if (!refreshing) {
      const s = session;
      if (!s) return Promise.reject(new ApiError(401, 'unauthorized', 'signed out'));
      refreshing = request('POST', '/v1/auth/refresh', { refresh_token: s.refresh_token })
        .then((r) => { if (session === s) saveSession(r); }, (e) => {
          if (e instanceof ApiError && e.status === 401 && session === s) {
            signOut('Your session has expired. Please sign in again.');
          }
          throw e;
        })
        .finally(() => { refreshing = null; });
    }
    return refreshing;
  }

  /** An authenticated request; on 401 it refreshes the access token once and retries. */
  async function api(method, path, body) {
    if (!session) throw new ApiError(401, 'unauthorized', 'signed out');
    try { return await request(method, path, body, session.token); } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401) throw e;
    }
    await refreshToken();
    if (!session) throw new ApiError(401, 'unauthorized', 'signed out');
    return request(method, path, body, session.token);
  }

  // ---- State ----
  const convs = new Map();     // conversation id -> object from GET /v1/groups, kept up to date
  const convEls = new Map();   // conversation id -> <li> in #conversations
  const online = new Map();    // user id -> bool (listings + presence events)
  const typing = new Map();    // conversation id -> Map(user id -> {name, timer})
  const drafts = new Map();    // conversation id -> unsent composer text
  let open = null;             // the open conversation: {id, msgs: Map(id -> message), els, pending, ...}
  let maxId = null;            // highest message id received on the socket: the `since` of a reconnect

  // ---- Conversation list ----
  const title = (c) => (c.kind === 'direct' ? (c.peer ? c.peer.username : 'Direct chat') : c.name);
  const activity = (c) => (c.last_message ? c.last_message.timestamp : c.created_at) || '';

  function preview(c) {
    const m = c.last_message;
    if (!m) return 'No messages yet';
    if (m.deleted) return 'message deleted';
    const who = m.sender_id === me() ? 'You: ' : (c.kind === 'group' ? `${m.sender_username}: ` : '');
    return who + m.content.replace(/\s+/g, ' ');
  }

  /** Fetches the conversation list. `initial`: also take the newest message id as `since`. */
  async function refreshConversations(initial = false) {
    const list = await api('GET', '/v1/groups');
    const seen = new Set();
    for (const g of list) {
      seen.add(g.id);
      const old = convs.get(g.id);
      // A live message may have arrived while the request was on its way: keep the newer one.
      if (old?.last_message && old.last_message.id > (g.last_message?.id ?? 0)) g.last_message = old.last_message;
      if (old) Object.assign(old, g); else convs.set(g.id, g);
      if (initial && g.last_message) maxId = Math.max(maxId || 0, g.last_message.id);
    }
    if (initial && maxId === null) maxId = 0;
    for (const id of [...convs.keys()]) if (!seen.has(id)) convs.delete(id);
    if (open && !convs.has(open.id)) closeConversation();
    if (open) renderHeader();
    markRead();
    renderConversations();
  }

  let refreshTimer = null;
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => refreshConversations().catch(() => {}), 300);
  }

  /** Keyed update of #conversations: one <li><button data-conversation-id> per conversation. */
  function renderConversations() {
    const list = $('conversations');
    for (const [id, li] of convEls) if (!convs.has(id)) { li.remove(); convEls.delete(id); }
    const sorted = [...convs.values()].sort((a, b) =>
      (activity(b) > activity(a) ? 1 : activity(b) < activity(a) ? -1 : b.id - a.id));
    sorted.forEach((c, i) => {
      let li = convEls.get(c.id);
      if (!li) {
        li = el('li');
        const btn = el('button', 'conv');
        btn.type = 'button'; // the badge below is `.unread`; its text is the count
        btn.dataset.conversationId = String(c.id);
        btn.append(el('span', 'dot'), el('span', 'conv-name'), el('span', 'conv-time'),
          el('span', 'conv-preview'), el('span', 'unread'));
        btn.addEventListener('click', () => openConversation(c.id));
        li.append(btn);
        convEls.set(c.id, li);
      }
      fillConversation(li.firstChild, c);
      if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
    });
    $('no-conversations').hidden = convs.size > 0;
    const total = sorted.reduce((n, c) => n + (c.unread_count || 0), 0);
    document.title = total ? `(${total}) Chat` : 'Chat';
  }

  function fillConversation(btn, c) {
    const [dot, name, time, prev, badge] = btn.children;
    const peer = c.kind === 'direct' ? c.peer?.id ?? null : null;
    dot.hidden = peer === null;
    setDot(dot, online.get(peer));
    name.textContent = title(c);
    time.textContent = c.last_message ? formatTime(c.last_message.timestamp, true) : '';
    const typers = typingText(c.id);
    prev.textContent = typers || preview(c);
    prev.classList.toggle('is-typing', !!typers);
    const n = c.unread_count || 0;
    badge.textContent = String(n);
    badge.hidden = n === 0;
    btn.classList.toggle('has-unread', n > 0);
    btn.toggleAttribute('aria-current', open?.id === c.id);
    btn.setAttribute('aria-label', `${title(c)}${n ? `, ${n} unread` : ''}. ${prev.textContent}`);
  }

  function setDot(dot, isOnline) {
    dot.classList.toggle('online', !!isOnline);
    dot.title = isOnline ? 'online' : 'offline';
  }

  /** Online state of every direct chat's peer (the list's `peer` has no `online` field). */
  async function refreshPresence() {
    const peers = new Set([...convs.values()].filter((c) => c.kind === 'direct' && c.peer)
      .map((c) => c.peer.id));
    await Promise.all([...peers].map((id) => api('GET', `/v1/users/${id}`)
      .then((u) => online.set(u.id, u.online), () => {})));
    renderConversations();
    if (open) loadMembers(open);
  }

  // ---- The open conversation ----
  function openConversation(id) {
    if (!convs.has(id)) return;
    if (open && open.id === id) { showChat(true); return; }
    if (open) drafts.set(open.id, input.value);
    open = { id, msgs: new Map(), els: new Map(), pending: new Map(),
      hasMore: false, loading: false, members: [] };
    lastTypingAt = 0;
    stuck = true;
    box.replaceChildren();
    input.value = drafts.get(id) || '';
    showChat(true);
    setComposer(true);
    renderHeader();
    renderTyping(id);
    renderConversations();
    const o = open;
    loadHistory(o).then(() => markRead());
    loadMembers(o);
    if (wide.matches) input.focus();
  }

  function closeConversation() {
    if (open) drafts.set(open.id, input.value);
    open = null;
    box.replaceChildren();
    input.value = '';
    setComposer(false);
    $('typing').textContent = '';
    showChat(false);
    renderHeader();
    renderConversations();
  }

  function setComposer(on) {
    input.disabled = $('composer-send').disabled = !on;
    autosize();
  }

  /** On a phone only one pane shows: the list, or the open conversation. */
  function showChat(on) { document.body.classList.toggle('chat-open', on); }

  function renderHeader() {
    const c = open && convs.get(open.id);
    $('chat-name').textContent = c ? title(c) : 'Pick a conversation';
    const ul = $('members');
    ul.replaceChildren();
    if (!c) return;
    const people = c.kind === 'direct' ? open.members.filter((m) => m.id !== me()) : open.members;
    for (const m of people) {
      const li = el('li', 'member');
      const dot = el('span', 'dot');
      const isOnline = m.id === me() || online.get(m.id);
      setDot(dot, isOnline);
      li.append(dot, c.kind === 'direct' ? (isOnline ? 'online' : 'offline')
        : (m.id === me() ? `${m.username} (you)` : m.username));
      ul.append(li);
    }
  }

  async function loadMembers(o) {
    try {
      const members = await api('GET', `/v1/groups/${o.id}/members`);
      members.forEach((m) => { if (m.id !== me()) online.set(m.id, m.online); });
      if (open !== o) return;
      o.members = members;
      renderHeader();
      renderConversations();
    } catch { /* the header just shows no members */ }
  }

  /** Loads a page of history: the newest one, or the one before `before` (keeping the view still). */
  async function loadHistory(o, before) {
    if (o.loading) return;
    o.loading = true;
    let page;
    try {
      page = await api('GET', `/v1/messages/group/${o.id}?limit=50${before ? `&before=${before}` : ''}`);
    } catch {
      o.loading = false;
      if (open === o && !before) box.append(el('p', 'notice', 'Could not load the messages. Reopen the conversation to retry.'));
      return;
    }
    o.loading = false;
    if (open !== o) return;
    const [height, top] = [box.scrollHeight, box.scrollTop];
    page.messages.forEach((m) => putMessage(m));
    o.hasMore = page.has_more;
    box.scrollTop = before ? top + (box.scrollHeight - height) : box.scrollHeight;
    // A short first page may not fill the pane, so there is no scrolling to trigger the next one.
    if (o.hasMore && box.scrollHeight <= box.clientHeight + 60) await loadHistory(o, oldestId());
  }

  const oldestId = () => Number(box.querySelector('[data-message-id]')?.dataset.messageId);

  let stuck = true; // the view was at the bottom when last scrolled: keep it there when it resizes
  box.addEventListener('scroll', () => {
    stuck = nearBottom();
    if (open && open.hasMore && !open.loading && box.scrollTop < 80) loadHistory(open, oldestId());
  });
  new ResizeObserver(() => { if (stuck) box.scrollTop = box.scrollHeight; }).observe(box);

  const nearBottom = () => box.scrollHeight - box.scrollTop - box.clientHeight < 100;

  /** Adds or updates a message of the open conversation: one element per id, in id order. */
  function putMessage(m) {
    const o = open;
    o.msgs.set(m.id, m);
    if (m.client_id && m.sender_id === me() && o.pending.has(m.client_id)) {
      o.pending.get(m.client_id).node.remove();
      o.pending.delete(m.client_id);
    }
    let node = o.els.get(m.id);
    if (!node) {
      node = el('div', 'msg');
      node.dataset.messageId = String(m.id);
      node.append(el('div', 'meta'), el('div', 'text'));
      o.els.set(m.id, node);
      // Before the first message with a larger id, or before the pending ones at the end.
      let next = null;
      for (let child = box.lastElementChild; child; child = child.previousElementSibling) {
        const id = child.dataset.messageId;
        if (id === undefined || Number(id) > m.id) next = child; else break;
      }
      box.insertBefore(node, next);
    }
    fillMessage(node, m);
  }

  function fillMessage(node, m) {
    const mine = m.sender_id === me();
    node.classList.toggle('mine', mine);
    node.classList.toggle('deleted', !!m.deleted);
    const [meta, text] = node.children;
    const parts = [];
    if (!mine) parts.push(el('span', 'sender', m.sender_username));
    const time = el('time', 'time', formatTime(m.timestamp));
    time.dateTime = m.timestamp;
    time.title = new Date(m.timestamp).toLocaleString();
    parts.push(time);
    if (m.edited_at && !m.deleted) parts.push(el('span', 'edited', 'edited'));
    meta.replaceChildren(...parts);
    text.textContent = m.deleted ? 'message deleted' : m.content;
  }

  function formatTime(ts, short = false) {
    const d = new Date(ts);
    const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    if (d.toDateString() === new Date().toDateString()) return hm;
    const day = d.toLocaleDateString([], { month: 'short', day: 'numeric' });
    return short ? day : `${day} ${hm}`;
  }

  /** Is the user looking at this conversation right now? */
  const viewing = (id) => open?.id === id && document.visibilityState === 'visible';

  /** Marks the open conversation read up to its newest message (the marker only moves forward). */
  function markRead() {
    const c = open && viewing(open.id) && convs.get(open.id);
    if (!c) return;
    if (c.unread_count) { c.unread_count = 0; renderConversations(); }
    const newest = open.msgs.size ? Math.max(...open.msgs.keys()) : 0;
    const before = c.last_read_id || 0;
    if (newest <= before) return;
    c.last_read_id = newest;
    api('POST', `/v1/groups/${c.id}/read`, { message_id: newest })
      .catch(() => { if (c.last_read_id === newest) c.last_read_id = before; });
  }

  // ---- Incoming messages and events ----

  /** A message from the socket (live or replayed) or from our own POST. */
  function applyMessage(m) {
    const c = convs.get(m.group_id);
    if (!c) { scheduleRefresh(); return; } // a conversation we do not know yet
    const isNew = !c.last_message || m.id > c.last_message.id;
    if (isNew || c.last_message.id === m.id) c.last_message = m;
    if (isNew && m.sender_id !== me() && m.id > (c.last_read_id || 0) && !viewing(c.id)) {
      c.unread_count = (c.unread_count || 0) + 1;
    }
    if (open?.id === m.group_id) {
      const stick = nearBottom() || m.sender_id === me();
      putMessage(m);
      if (stick) box.scrollTop = box.scrollHeight;
      stopTyping(m.group_id, m.sender_id);
      markRead();
    }
    renderConversations();
  }

  /** An edit or a deletion: update the message if it is on screen and the preview if it is last. */
  function patchMessage(groupId, id, changes) {
    const c = convs.get(groupId);
    if (c?.last_message?.id === id) c.last_message = { ...c.last_message, ...changes };
    if (open?.id === groupId && open.msgs.has(id)) putMessage({ ...open.msgs.get(id), ...changes });
    renderConversations();
  }

  function typingText(groupId) {
    const n = [...(typing.get(groupId)?.values() ?? [])].map((t) => t.name);
    return n.length === 0 ? '' : n.length === 1 ? `${n[0]} is typing…`
      : n.length === 2 ? `${n[0]} and ${n[1]} are typing…` : 'Several people are typing…';
  }

  function renderTyping(groupId) {
    if (open?.id === groupId) $('typing').textContent = typingText(groupId);
  }

  function stopTyping(groupId, userId) {
    const users = typing.get(groupId);
    if (!users?.has(userId)) return;
    clearTimeout(users.get(userId).timer);
    users.delete(userId);
    renderTyping(groupId);
    renderConversations();
  }

  /** Socket events by `type`. */
  const handlers = {
    ready() {
      wsReady = true;
      retries = 0;
      setStatus();
      // Catch up on what the replay does not cover: unread counts, new or renamed conversations, presence.
      refreshConversations(maxId === null).then(refreshPresence).catch(() => {});
    },
    group_message(e) {
      maxId = Math.max(maxId || 0, e.id);
      applyMessage(e);
    },
    message_edited(e) { patchMessage(e.group_id, e.id, { content: e.content, edited_at: e.edited_at }); },
    message_deleted(e) {
      patchMessage(e.group_id, e.id, { content: '', deleted: true });
      const c = convs.get(e.group_id);
      if (c?.unread_count && !viewing(c.id)) scheduleRefresh(); // it may have been an unread one
    },
    typing(e) {
      if (e.user_id === me()) return;
      if (!typing.has(e.group_id)) typing.set(e.group_id, new Map());
      const users = typing.get(e.group_id);
      if (users.has(e.user_id)) clearTimeout(users.get(e.user_id).timer);
      users.set(e.user_id, { name: e.username,
        timer: setTimeout(() => stopTyping(e.group_id, e.user_id), 3000) });
      renderTyping(e.group_id);
      renderConversations();
    },
    read(e) {
      // Our own marker moved (another tab or device): that conversation is read up to there.
      const c = convs.get(e.group_id);
      if (!c || e.user_id !== me()) return;
      c.last_read_id = Math.max(c.last_read_id || 0, e.message_id);
      if (!c.last_message || e.message_id >= c.last_message.id) c.unread_count = 0;
      renderConversations();
    },
    presence(e) {
      online.set(e.user_id, e.online);
      renderConversations();
      if (open) renderHeader();
    },
    member_added(e) {
      if (e.user_id === me() || !convs.has(e.group_id)) scheduleRefresh();
      else if (open?.id === e.group_id) loadMembers(open);
    },
    member_removed(e) {
      if (e.user_id === me()) handlers.group_deleted(e);
      else if (open?.id === e.group_id) loadMembers(open);
    },
    group_updated(e) {
      const c = convs.get(e.group_id);
      if (!c) { scheduleRefresh(); return; }
      if (e.group?.name) c.name = e.group.name;
      renderConversations();
      if (open?.id === c.id) renderHeader();
    },
    group_deleted(e) {
      convs.delete(e.group_id);
      if (open?.id === e.group_id) closeConversation();
      renderConversations();
    },
    error(e) { console.warn('chatserver:', e.code, e.error); },
    ack() {},  // we send over HTTP; the answer of the POST is our acknowledgement
    pong() {},
  };

  // ---- WebSocket: connect, ping, reconnect with backoff and `since` ----
  let ws = null, wsReady = false; // the socket, and whether its `ready` has come
  let retries = 0, retryTimer = null; // failed attempts since the last `ready`: the backoff exponent
  let pingTimer = null, lastFrameAt = 0;
  let checkToken = false;  // the last attempt never opened: maybe the token was refused (401)

  function setStatus() {
    const status = $('status');
    status.textContent = wsReady ? 'connected' : 'reconnecting…';
    status.classList.toggle('ok', wsReady);
  }

  async function connect() {
    clearTimeout(retryTimer);
    dropSocket();
    if (!session) return;
    try {
      // A refused token looks like any failed connection to the browser, so ask over HTTP (which
      // refreshes on 401). Refresh ahead of time when the token is about to run out anyway.
      if (Date.now() > session.expires_at - 30000) await refreshToken();
      else if (checkToken) await api('GET', '/v1/test-auth');
    } catch {
      if (session) scheduleReconnect(); // network trouble; a dead session has signed out already
      return;
    }
    if (!session || ws) return; // signed out, or another attempt got there first
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const since = maxId === null ? '' : `&since=${maxId}`;
    const sock = new WebSocket(`${proto}//${location.host}/ws?token=${encodeURIComponent(session.token)}${since}`);
    ws = sock;
    let opened = false;
    sock.onopen = () => {
      opened = true;
      lastFrameAt = Date.now();
      pingTimer = setInterval(ping, 25000);
    };
    sock.onmessage = (ev) => {
      if (ws !== sock) return;
      lastFrameAt = Date.now();
      let e;
      try { e = JSON.parse(ev.data); } catch { return; }
      if (Object.prototype.hasOwnProperty.call(handlers, e?.type)) handlers[e.type](e);
    };
    sock.onclose = () => {
      if (ws !== sock) return; // replaced or dropped on purpose
      checkToken = !opened;
      dropSocket();
      scheduleReconnect();
    };
  }

  /** Every 25 s; a socket silent for a minute (sleeping laptop, dead Wi-Fi) is given up on. */
  function ping() {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - lastFrameAt > 60000) { dropSocket(); scheduleReconnect(); return; }
    ws.send(JSON.stringify({ type: 'ping' }));
  }

  function dropSocket() {
    clearInterval(pingTimer);
    const old = ws;
    ws = null;
    old?.close();
    wsReady = false;
    setStatus();
  }

  /** 1 s, 2 s, 4 s, 8 s, then 15 s between attempts until a `ready`. */
  function scheduleReconnect() {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, Math.min(1000 * 2 ** retries, 15000));
    retries += 1;
  }

  const sendFrame = (frame) => { if (ws && wsReady) ws.send(JSON.stringify(frame)); };

  // Coming back (network up, tab shown again): do not wait out the backoff.
  window.addEventListener('online', () => { if (session && !ws) { retries = 0; connect(); } });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState !== 'visible' || !session) return;
    markRead();
    if (!ws) { retries = 0; connect(); }
  });

  // ---- Composer: Enter sends, Shift+Enter is a new line; typing frames at most every 2 s ----
  let lastTypingAt = 0;

  function uuid() {
    if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    // crypto.randomUUID needs a secure context (https or localhost); http://192.168.x.y is not one.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // variant 1
    const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function autosize() {
    input.style.height = 'auto';
    // scrollHeight leaves out the borders, which border-box sizing counts.
    const height = input.scrollHeight + input.offsetHeight - input.clientHeight;
    input.style.height = `${Math.min(height, 160)}px`;
    input.style.overflowY = height > 160 ? 'auto' : 'hidden';
  }

  function send() {
    const content = input.value.trim();
    if (!open || !content) return;
    input.value = '';
    autosize();
    drafts.delete(open.id);
    post({ group_id: open.id, content, client_id: uuid() });
  }

  /** Shows a "sending…" bubble and POSTs; a retry reuses the client_id, so it is never doubled. */
  function post(p) {
    const o = open;
    if (!o || o.id !== p.group_id) return;
    let entry = o.pending.get(p.client_id);
    if (!entry) {
      const node = el('div', 'msg mine pending');
      node.dataset.clientId = p.client_id;
      node.append(el('div', 'meta'), el('div', 'text', p.content));
      box.append(node);
      entry = { node, p };
      o.pending.set(p.client_id, entry);
    }
    entry.node.classList.remove('failed');
    entry.node.firstChild.textContent = 'sending…';
    box.scrollTop = box.scrollHeight;
    api('POST', `/v1/messages/group/${p.group_id}`, { content: p.content, client_id: p.client_id })
      .then((m) => applyMessage(m))
      .catch((e) => {
        if (o.pending.get(p.client_id) !== entry) return; // arrived after all, or conversation closed
        entry.node.classList.add('failed');
        const retry = el('button', 'link', 'Retry');
        retry.type = 'button';
        retry.addEventListener('click', () => post(p));
        entry.node.firstChild.replaceChildren(`Not sent${e instanceof ApiError ? `: ${e.message}` : ''}. `, retry);
      });
  }

  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  input.addEventListener('input', () => {
    autosize();
    if (open && input.value.trim() && Date.now() - lastTypingAt > 2000) {
      lastTypingAt = Date.now();
      sendFrame({ type: 'typing', group_id: open.id });
    }
  });
  $('composer').addEventListener('submit', (e) => { e.preventDefault(); send(); input.focus(); });
  $('back').addEventListener('click', () => closeConversation());

  // ---- Login, start, logout ----
  function showLoginError(text) {
    $('login-error').textContent = text;
    $('login-error').hidden = !text;
  }

  $('login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const id = $('login-username').value.trim();
    const password = $('login-password').value;
    if (!id || !password) { showLoginError('Enter your username or email and your password.'); return; }
    $('login-submit').disabled = true;
    showLoginError('');
    try {
      const body = id.includes('@') ? { email: id, password } : { username: id, password };
      saveSession(await request('POST', '/v1/users/login', body));
      $('login-password').value = '';
      start();
    } catch (err) {
      showLoginError(!(err instanceof ApiError) ? 'Cannot reach the server.'
        : err.status === 401 ? 'Wrong username/email or password.'
          : err.status === 429 ? 'Too many attempts. Wait a moment and try again.' : err.message);
    } finally {
      $('login-submit').disabled = false;
    }
  });

  // The server names its seeded accounts only to a browser on its own machine: a hint that
  // fills the form with one.
  async function showHint() {
    let welcome;
    try { welcome = await request('GET', '/v1/welcome'); } catch { return; }
    const accounts = welcome.demo_accounts || [];
    const hint = $('login-hint');
    hint.replaceChildren();
    if (!accounts.length) { hint.hidden = true; return; }
    hint.append('Try the seeded accounts ');
    accounts.forEach((a, i) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'link';
      b.textContent = a.username;
      b.addEventListener('click', () => {
        $('login-username').value = a.username;
        $('login-password').value = a.password;
        $('login-submit').focus();
      });
      if (i > 0) hint.append(i === accounts.length - 1 ? ' or ' : ', ');
      hint.append(b);
    });
    const same = accounts.every((a) => a.password === accounts[0].password);
    if (same) {
      const code = document.createElement('code');
      code.textContent = accounts[0].password;
      hint.append(', password ', code, '.');
    } else hint.append('.');
    hint.hidden = false;
  }

  async function start() {
    $('login-view').hidden = true;
    $('app-view').hidden = false;
    $('me').textContent = session.user.username;
    setStatus();
    // The list also gives `since` for the first socket; offline, the socket's `ready` fetches it.
    await refreshConversations(true).catch(() => {});
    if (session) connect();
  }

  /** Forgets the session and everything shown, back to the login screen. */
  function signOut(message) {
    session = null;
    sessionStorage.removeItem(SESSION_KEY);
    clearTimeout(retryTimer);
    dropSocket();
    [retries, checkToken, maxId] = [0, false, null];
    closeConversation();
    convs.clear();
    online.clear();
    drafts.clear();
    typing.forEach((users) => users.forEach((t) => clearTimeout(t.timer)));
    typing.clear();
    renderConversations();
    $('app-view').hidden = true;
    $('login-view').hidden = false;
    showLoginError(message || '');
    $('login-username').focus();
    showHint();
  }

  $('logout').addEventListener('click', () => {
    const s = session;
    signOut();
    if (s) request('POST', '/v1/auth/logout', { refresh_token: s.refresh_token }, s.token).catch(() => {});
  });

  wide.addEventListener('change', () => { if (open) showChat(true); });

  if (session?.token && session.user) start();
  else { session = null; $('login-username').focus(); showHint(); }
})();
