// Browser client for chatserver: plain ES modules (web/js/), no framework, no build step.
//
// Data flow: HTTP (same origin, /v1/…) for the session, the lists, history, and every action;
// one WebSocket (/ws) for everything live. Every message has a server id, and every way a
// message arrives (history, a POST's answer, the socket, the replay after a reconnect) goes
// through the same id-keyed maps, so it is shown once however often it arrives.
//
// All content from people is untrusted: it reaches the page through textContent only.

import { state, me } from './js/state.js';
import { $ } from './js/dom.js';
import { request, loadSession, forgetSession, whenSignedOut } from './js/api.js';
import * as socket from './js/socket.js';
import { refreshConversations, refreshPresence, renderConversations, scheduleRefresh, clearSearch } from './js/list.js';
import { applyMessage, patchMessage, closeConversation, loadMembers, renderHeader, memberUpdated,
  someoneTyping, viewing } from './js/chat.js';
import { groupChanged, refreshDetails } from './js/people.js';
import { showMe } from './js/settings.js';
import { showLogin, whenSignedIn, showWelcome } from './js/login.js';
import './js/composer.js';
import { forgetUploads } from './js/uploads.js';
import { forgetReplies } from './js/replies.js';
import { forgetFiles } from './js/attachments.js';

socket.setHandlers({
  ready() {
    socket.markReady();
    // What the replay does not cover: unread counts, new or renamed conversations, presence.
    refreshConversations(state.maxId === null).then(refreshPresence).catch(() => {});
  },
  group_message(e) {
    state.maxId = Math.max(state.maxId || 0, e.id);
    applyMessage(e, scheduleRefresh);
  },
  message_edited(e) {
    patchMessage(e.group_id, e.id, { content: e.content, edited_at: e.edited_at, mentions: e.mentions || [] });
    // An unread message that now mentions us changes the count only the server keeps.
    const c = state.convs.get(e.group_id);
    if (c?.unread_count && !viewing(c.id)) scheduleRefresh();
  },
  message_reactions(e) { patchMessage(e.group_id, e.id, { reactions: e.reactions }); },
  message_deleted(e) {
    patchMessage(e.group_id, e.id, { content: '', deleted: true, attachments: [], reactions: [], mentions: [] });
    const c = state.convs.get(e.group_id);
    if (c?.unread_count && !viewing(c.id)) scheduleRefresh(); // it may have been an unread one
  },
  typing: someoneTyping,
  read(e) {
    // Our own marker moved (another tab or device): read up to there.
    const c = state.convs.get(e.group_id);
    if (!c || e.user_id !== me()) return;
    c.last_read_id = Math.max(c.last_read_id || 0, e.message_id);
    if (!c.last_message || e.message_id >= c.last_message.id) { c.unread_count = 0; c.mention_count = 0; }
    else if (c.mention_count) scheduleRefresh(); // read part of the way: the server counts the rest
    renderConversations();
  },
  presence(e) { this.presence_batch({ changes: [e] }); },
  // Changes that came close together (a class logging in), in order, drawn once.
  presence_batch(e) {
    for (const c of e.changes || []) state.online.set(c.user_id, c.online);
    renderConversations();
    if (state.open) { renderHeader(); refreshDetails(); }
  },
  member_added(e) {
    if (e.user_id === me() || !state.convs.has(e.group_id)) scheduleRefresh();
    else if (state.open?.id === e.group_id) loadMembers(state.open);
  },
  member_removed(e) {
    if (e.user_id === me()) this.group_deleted(e);
    else if (state.open?.id === e.group_id) loadMembers(state.open);
  },
  member_updated: memberUpdated,
  group_updated(e) {
    if (!state.convs.has(e.group_id)) { scheduleRefresh(); return; }
    groupChanged(e.group);
  },
  group_deleted(e) {
    state.convs.delete(e.group_id);
    if (state.open?.id === e.group_id) closeConversation();
    renderConversations();
    refreshDetails();
  },
  error(e) { console.warn('chatserver:', e.code, e.error); },
  ack() {}, // we send over HTTP; the POST's answer is the acknowledgement
  pong() {},
});

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible') socket.reconnectNow();
});

async function start() {
  $('login-view').hidden = true;
  $('app-view').hidden = false;
  showMe();
  // The list also gives `since` for the first socket; offline, the socket's `ready` fetches it.
  await refreshConversations(true).catch(() => {});
  if (state.session) socket.connect();
}

/** Forgets the session and everything shown, back to the login screen. */
function signOut(message) {
  forgetSession();
  socket.stop();
  state.maxId = null;
  closeConversation();
  state.convs.clear();
  state.online.clear();
  state.drafts.clear();
  forgetUploads();
  forgetReplies();
  forgetFiles();
  state.typing.forEach((users) => users.forEach((t) => clearTimeout(t.timer)));
  state.typing.clear();
  document.querySelectorAll('dialog[open]').forEach((d) => d.close());
  clearSearch();
  renderConversations();
  showLogin(message);
}

whenSignedIn(start);
whenSignedOut(signOut);

$('logout').addEventListener('click', () => {
  const s = state.session;
  signOut();
  if (s) request('POST', '/v1/auth/logout', { refresh_token: s.refresh_token }, s.token).catch(() => {});
});

if (loadSession()) { start(); showWelcome(); } else showLogin();
