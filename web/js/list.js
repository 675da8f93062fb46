// The sidebar: the conversation list (latest activity first, unread counts, typing, who is
// online) and, while a search is typed, the messages found.

import { state, me, title } from './state.js';
import { $, el, act, formatTime, showError } from './dom.js';
import { api, apiFull, problem } from './api.js';
import { openConversation, closeConversation, renderHeader, markRead } from './chat.js';
import { gist } from './replies.js';

const items = new Map(); // conversation id -> <li> in #conversations

const activity = (c) => (c.last_message ? c.last_message.timestamp : c.created_at) || '';

function preview(c) {
  const m = c.last_message;
  if (!m) return 'No messages yet';
  if (m.deleted) return 'message deleted';
  const who = m.sender_id === me() ? 'You: ' : (c.kind === 'group' ? `${m.sender_username}: ` : '');
  return who + gist(m, 120);
}

/** Every page of GET /v1/groups (it pages by latest activity). */
async function allConversations() {
  const list = [];
  let query = 'limit=100';
  for (let page = 0; page < 50; page += 1) {
    const { data, headers } = await apiFull('GET', `/v1/groups?${query}`);
    list.push(...data);
    const next = headers.get('X-Next-Before');
    if (headers.get('X-Has-More') !== 'true' || !next) break;
    query = `limit=100&before=${encodeURIComponent(next)}`;
  }
  return list;
}

/** Fetches the conversation list. `initial`: also take the newest message id as `since`. */
export async function refreshConversations(initial = false) {
  const list = await allConversations();
  const seen = new Set();
  for (const g of list) {
    seen.add(g.id);
    const old = state.convs.get(g.id);
    // A live message may have arrived while the request was on its way: keep the newer one.
    if (old?.last_message && old.last_message.id > (g.last_message?.id ?? 0)) g.last_message = old.last_message;
    if (old) Object.assign(old, g); else state.convs.set(g.id, g);
    if (initial && g.last_message) state.maxId = Math.max(state.maxId || 0, g.last_message.id);
  }
  if (initial && state.maxId === null) state.maxId = 0;
  for (const id of [...state.convs.keys()]) if (!seen.has(id)) state.convs.delete(id);
  if (state.open && !state.convs.has(state.open.id)) closeConversation();
  if (state.open) renderHeader();
  markRead();
  renderConversations();
}

let refreshTimer = null;

/** Refreshes soon, once for a burst of events. */
export function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => refreshConversations().catch(() => {}), 300);
}

/** Online state of every direct chat's peer (the list's `peer` has no `online` field). */
export async function refreshPresence() {
  const peers = new Set([...state.convs.values()].filter((c) => c.kind === 'direct' && c.peer)
    .map((c) => c.peer.id));
  await Promise.all([...peers].map((id) => api('GET', `/v1/users/${id}`)
    .then((u) => state.online.set(u.id, u.online), () => {})));
  renderConversations();
  if (state.open) renderHeader();
}

/** Keyed update of #conversations: one <li><button data-conversation-id> per conversation. */
export function renderConversations() {
  const list = $('conversations');
  for (const [id, li] of items) if (!state.convs.has(id)) { li.remove(); items.delete(id); }
  const sorted = [...state.convs.values()].sort((a, b) =>
    (activity(b) > activity(a) ? 1 : activity(b) < activity(a) ? -1 : b.id - a.id));
  sorted.forEach((c, i) => {
    let li = items.get(c.id);
    if (!li) {
      li = el('li');
      const btn = el('button', 'conv');
      btn.type = 'button';
      btn.dataset.conversationId = String(c.id);
      const badges = el('span', 'badges');
      badges.append(el('span', 'mention-badge'), el('span', 'unread'));
      btn.append(el('span', 'dot'), el('span', 'conv-name'), el('span', 'conv-time'),
        el('span', 'conv-preview'), badges);
      btn.addEventListener('click', () => openConversation(c.id));
      li.append(btn);
      items.set(c.id, li);
    }
    fill(li.firstChild, c);
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
  });
  $('no-conversations').hidden = state.convs.size > 0;
  const total = sorted.reduce((n, c) => n + (c.unread_count || 0), 0);
  document.title = total ? `(${total}) Chat` : 'Chat';
}

function fill(btn, c) {
  const [dot, name, time, prev, badges] = btn.children;
  const [mention, badge] = badges.children;
  const peer = c.kind === 'direct' ? c.peer?.id ?? null : null;
  dot.hidden = peer === null;
  setDot(dot, state.online.get(peer));
  name.textContent = title(c);
  time.textContent = c.last_message ? formatTime(c.last_message.timestamp, true) : '';
  const typers = typingText(c.id);
  prev.textContent = typers || preview(c);
  prev.classList.toggle('is-typing', !!typers);
  const n = c.unread_count || 0;
  badge.textContent = String(n);
  badge.hidden = n === 0;
  const at = c.mention_count || 0;
  mention.textContent = at > 1 ? `@${at}` : '@';
  mention.hidden = at === 0;
  mention.title = at === 1 ? 'You were mentioned' : `You were mentioned ${at} times`;
  btn.classList.toggle('has-unread', n > 0);
  btn.toggleAttribute('aria-current', state.open?.id === c.id);
  const mentioned = at ? `, ${at === 1 ? 'mentioned you' : `mentioned you ${at} times`}` : '';
  btn.setAttribute('aria-label', `${title(c)}${n ? `, ${n} unread` : ''}${mentioned}. ${prev.textContent}`);
}

export function setDot(dot, isOnline) {
  dot.classList.toggle('online', !!isOnline);
  dot.title = isOnline ? 'online' : 'offline';
}

export function typingText(groupId) {
  const n = [...(state.typing.get(groupId)?.values() ?? [])].map((t) => t.name);
  return n.length === 0 ? '' : n.length === 1 ? `${n[0]} is typing…`
    : n.length === 2 ? `${n[0]} and ${n[1]} are typing…` : 'Several people are typing…';
}

// ---- Message search ----

let searchSeq = 0;

/** Runs the search typed in the sidebar, or goes back to the list when it is empty. */
async function search() {
  const q = $('search').value.trim();
  const seq = ++searchSeq;
  const results = $('search-results');
  const error = $('search-error');
  $('search-clear').hidden = !q;
  if (!q) {
    results.hidden = true;
    $('conversations').hidden = false;
    showError(error, '');
    return;
  }
  const found = await act(null, error,
    () => api('GET', `/v1/messages/search?q=${encodeURIComponent(q)}&limit=50`), problem);
  if (seq !== searchSeq || found === undefined) return;
  results.replaceChildren();
  $('conversations').hidden = true;
  results.hidden = false;
  if (!found.messages.length) results.append(el('li', 'empty', `No messages match “${q}”.`));
  for (const m of found.messages) {
    const c = state.convs.get(m.group_id);
    const btn = el('button', 'result');
    btn.type = 'button';
    const where = c ? title(c) : 'A conversation';
    const who = m.sender_id === me() ? 'You' : m.sender_username;
    btn.append(el('span', 'result-name', where), el('span', 'conv-time', formatTime(m.timestamp, true)),
      el('span', 'result-text', `${who}: ${m.content.replace(/\s+/g, ' ')}`));
    btn.addEventListener('click', () => openConversation(m.group_id, m.id));
    const li = el('li');
    li.append(btn);
    results.append(li);
  }
}

let searchTimer = null;
$('search').addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(search, 250);
});
$('search-form').addEventListener('submit', (e) => { e.preventDefault(); clearTimeout(searchTimer); search(); });
$('search-clear').addEventListener('click', () => { $('search').value = ''; search(); $('search').focus(); });

/** Back to the plain list (signing out). */
export function clearSearch() {
  $('search').value = '';
  search();
}

