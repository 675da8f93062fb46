// The open conversation: its header, its history (older pages as one scrolls up), live
// messages, edits and deletions, typing, and the read marker.

import { state, me, nameOf, title } from './state.js';
import { $, el, button, toast } from './dom.js';
import { api } from './api.js';
import { box, putMessage, reveal } from './messages.js';
import { renderConversations, setDot, typingText } from './list.js';
import { composerState, input, setComposer, resetTyping, switchDraft } from './composer.js';
import { mentionsMe } from './mentions.js';
import { openDetails, refreshDetails } from './people.js';

const wide = window.matchMedia('(min-width: 721px)');

/** Opens a conversation; with `messageId`, loads back to that message and shows it. */
export async function openConversation(id, messageId) {
  if (!state.convs.has(id)) return;
  if (!(state.open && state.open.id === id)) {
    switchDraft(state.open ? state.open.id : null, id);
    state.open = { id, msgs: new Map(), els: new Map(), pending: new Map(),
      hasMore: false, loading: null, members: [] };
    resetTyping();
    stuck = true;
    box.replaceChildren();
    setComposer(true);
    renderHeader();
    renderTyping(id);
    renderConversations();
  }
  showChat(true);
  const o = state.open;
  if (!o.msgs.size) {
    loadMembers(o);
    await loadHistory(o);
    markRead();
  }
  if (messageId !== undefined) await showMessage(messageId, 40);
  else if (wide.matches) input.focus();
}

/**
 * Shows a message of the open conversation, in view and briefly highlighted: older pages are
 * loaded until it is there (at most `pages` of them). Says so when it is not found.
 */
export async function showMessage(id, pages = 20) {
  const o = state.open;
  if (!o) return false;
  for (let i = 0; i < pages && !o.msgs.has(id) && o.hasMore && state.open === o; i += 1) {
    await loadHistory(o, oldestId());
  }
  if (state.open !== o) return false;
  stuck = false;
  if (reveal(id)) return true;
  toast(o.hasMore ? 'That message is further back than the history loaded here.'
    : 'That message is no longer in this conversation.');
  return false;
}

export function closeConversation() {
  switchDraft(state.open ? state.open.id : null, null);
  state.open = null;
  box.replaceChildren(el('p', 'notice', 'Pick a conversation, or start one with New group or New direct chat.'));
  setComposer(false);
  $('typing').textContent = '';
  showChat(false);
  renderHeader();
  renderConversations();
}

/** On a phone only one pane shows: the list, or the open conversation. */
function showChat(on) { document.body.classList.toggle('chat-open', on); }
wide.addEventListener('change', () => { if (state.open) showChat(true); });

export function renderHeader() {
  const c = state.open && state.convs.get(state.open.id);
  $('chat-name').textContent = c ? title(c) : 'Pick a conversation';
  $('details').hidden = !c;
  const ul = $('members');
  ul.replaceChildren();
  if (c) {
    const members = state.open.members;
    if (c.kind === 'direct') {
      const peer = members.find((m) => m.id !== me()) || c.peer;
      const isOnline = peer && state.online.get(peer.id);
      const li = el('li', 'member');
      const dot = el('span', 'dot');
      setDot(dot, isOnline);
      li.append(dot, isOnline ? 'online' : 'offline');
      ul.append(li);
    } else {
      const here = members.filter((m) => m.id === me() || state.online.get(m.id)).length;
      ul.append(el('li', 'member', `${members.length} members, ${here} online`));
      if (c.posting === 'admins') ul.append(el('li', 'member badge', 'announcements'));
    }
  }
  composerState();
}

export async function loadMembers(o) {
  try {
    const members = await api('GET', `/v1/groups/${o.id}/members`);
    members.forEach((m) => { if (m.id !== me()) state.online.set(m.id, m.online); });
    if (state.open !== o) return;
    o.members = members;
    // Names in quotes, reactions and mentions come from the members.
    o.msgs.forEach((m) => { if (m.reply_to || m.reactions?.length || m.mentions?.length) putMessage(m); });
    renderHeader();
    renderConversations();
    refreshDetails();
  } catch { /* the header shows no members */ }
}

/**
 * A page of history: the newest, or the one before `before` (keeping the view still). While
 * a page is on its way, a second call waits for that one.
 */
async function loadHistory(o, before) {
  if (o.loading) return o.loading;
  o.loading = fetchPage(o, before);
  try { await o.loading; } finally { o.loading = null; }
  // A short first page may not fill the pane, so there is no scrolling to trigger the next one.
  if (state.open === o && o.hasMore && box.scrollHeight <= box.clientHeight + 60) await loadHistory(o, oldestId());
  return undefined;
}

async function fetchPage(o, before) {
  let page;
  try {
    page = await api('GET', `/v1/messages/group/${o.id}?limit=50${before ? `&before=${before}` : ''}`);
  } catch {
    if (state.open === o && !before) {
      const retry = button('Retry', () => { notice.remove(); loadHistory(o); }, 'link');
      const notice = el('p', 'notice', 'Could not load the messages. ');
      notice.append(retry);
      box.append(notice);
    }
    return;
  }
  if (state.open !== o) return;
  const [height, top] = [box.scrollHeight, box.scrollTop];
  page.messages.forEach((m) => putMessage(m));
  o.hasMore = page.has_more;
  if (!page.messages.length && !before) {
    box.append(el('p', 'notice', 'No messages yet. Say hello!'));
  }
  await Promise.resolve(); // the day separators are drawn before measuring
  box.scrollTop = before ? top + (box.scrollHeight - height) : box.scrollHeight;
}

const oldestId = () => Number(box.querySelector('[data-message-id]')?.dataset.messageId);

let stuck = true; // at the bottom when last scrolled: stay there as the pane resizes
box.addEventListener('scroll', () => {
  stuck = nearBottom();
  const o = state.open;
  if (o && o.hasMore && !o.loading && box.scrollTop < 80) loadHistory(o, oldestId());
});
new ResizeObserver(() => { if (stuck) box.scrollTop = box.scrollHeight; }).observe(box);

export const nearBottom = () => box.scrollHeight - box.scrollTop - box.clientHeight < 100;

/** Is the person looking at this conversation right now? */
export const viewing = (id) => state.open?.id === id && document.visibilityState === 'visible';

/** Marks the open conversation read up to its newest message (the marker only moves on). */
export function markRead() {
  const c = state.open && viewing(state.open.id) && state.convs.get(state.open.id);
  if (!c) return;
  if (c.unread_count || c.mention_count) { c.unread_count = 0; c.mention_count = 0; renderConversations(); }
  const newest = state.open.msgs.size ? Math.max(...state.open.msgs.keys()) : 0;
  const before = c.last_read_id || 0;
  if (newest <= before) return;
  c.last_read_id = newest;
  api('POST', `/v1/groups/${c.id}/read`, { message_id: newest })
    .catch(() => { if (c.last_read_id === newest) c.last_read_id = before; });
}
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && state.session) markRead();
});

/** A message from the socket (live or replayed) or from our own POST. */
export function applyMessage(m, unknown) {
  const c = state.convs.get(m.group_id);
  if (!c) { unknown(); return; }
  const isNew = !c.last_message || m.id > c.last_message.id;
  if (isNew || c.last_message.id === m.id) c.last_message = m;
  if (isNew && m.sender_id !== me() && m.id > (c.last_read_id || 0) && !viewing(c.id)) {
    c.unread_count = (c.unread_count || 0) + 1;
    if (mentionsMe(m)) c.mention_count = (c.mention_count || 0) + 1;
  }
  if (state.open?.id === m.group_id) {
    const stick = nearBottom() || m.sender_id === me();
    box.querySelectorAll(':scope > .notice').forEach((n) => n.remove());
    putMessage(m);
    if (stick) queueMicrotask(() => { box.scrollTop = box.scrollHeight; });
    stopTyping(m.group_id, m.sender_id);
    markRead();
  }
  renderConversations();
}

/** An edit or a deletion: the message if it is on screen, the preview if it is the last. */
export function patchMessage(groupId, id, changes) {
  const c = state.convs.get(groupId);
  if (c?.last_message?.id === id) c.last_message = { ...c.last_message, ...changes };
  const o = state.open;
  if (o?.id === groupId && o.msgs.has(id)) putMessage({ ...o.msgs.get(id), ...changes });
  if (o?.id === groupId && 'content' in changes) {
    // The replies to it quote it as it is now (the server cuts the quote at 100 characters).
    const excerpt = changes.deleted ? '' : [...changes.content].length > 100
      ? `${[...changes.content].slice(0, 100).join('')}…` : changes.content;
    o.msgs.forEach((msg) => {
      if (msg.reply_to?.id === id) putMessage({ ...msg, reply_to: { ...msg.reply_to, excerpt, deleted: !!changes.deleted } });
    });
  }
  renderConversations();
}

/** Someone's role or mute changed: the members, the details, and whether we may post. */
export function memberUpdated(e) {
  const o = state.open;
  if (o?.id !== e.group_id) return;
  const m = o.members.find((x) => x.id === e.user_id);
  if (m) Object.assign(m, { role: e.role, muted_until: e.muted_until });
  if (e.user_id === me()) {
    const c = state.convs.get(e.group_id);
    if (c) c.role = e.role;
    o.msgs.forEach((msg) => putMessage(msg)); // who may delete what changed
  }
  renderHeader();
  refreshDetails();
}

export function renderTyping(groupId) {
  if (state.open?.id === groupId) $('typing').textContent = typingText(groupId);
}

export function stopTyping(groupId, userId) {
  const users = state.typing.get(groupId);
  if (!users?.has(userId)) return;
  clearTimeout(users.get(userId).timer);
  users.delete(userId);
  renderTyping(groupId);
  renderConversations();
}

export function someoneTyping(e) {
  if (e.user_id === me()) return;
  if (!state.typing.has(e.group_id)) state.typing.set(e.group_id, new Map());
  const users = state.typing.get(e.group_id);
  if (users.has(e.user_id)) clearTimeout(users.get(e.user_id).timer);
  const member = state.open?.members.find((m) => m.id === e.user_id);
  users.set(e.user_id, { name: member ? nameOf(member) : e.username,
    timer: setTimeout(() => stopTyping(e.group_id, e.user_id), 3000) });
  renderTyping(e.group_id);
  renderConversations();
}

$('back').addEventListener('click', () => closeConversation());
$('details').addEventListener('click', () => openDetails());
