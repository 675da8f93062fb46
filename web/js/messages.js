// The messages of the open conversation: one element per message id, in id order, with a
// separator before each new day. Each shows the message it answers, its text (mentions
// marked), its files, its reactions, and the actions a person may take on it.

import { state, me, manages } from './state.js';
import { $, el, button, act, showError, formatTime, dayKey, dayLabel } from './dom.js';
import { api, problem } from './api.js';
import { fillAttachments } from './attachments.js';
import { fillReactions, openPicker } from './reactions.js';
import { fillQuote, startReply, gist } from './replies.js';
import { fillText, mentionsMe } from './mentions.js';

export const box = $('messages');

const PARTS = ['meta', 'quote-slot', 'text', 'files', 'reactions', 'actions'];

/** A message element's parts, by class: {meta, quote-slot, text, files, reactions, actions}. */
const partsOf = (node) => Object.fromEntries(PARTS.map((p) => [p, node.querySelector(`:scope > .${p}`)]));

/** Adds or updates a message of the open conversation. */
export function putMessage(m) {
  const o = state.open;
  o.msgs.set(m.id, m);
  if (m.client_id && m.sender_id === me() && o.pending.has(m.client_id)) {
    o.pending.get(m.client_id).node.remove();
    o.pending.delete(m.client_id);
  }
  let node = o.els.get(m.id);
  if (!node) {
    node = el('div', 'msg');
    node.dataset.messageId = String(m.id);
    node.append(...PARTS.map((p) => el('div', p)));
    o.els.set(m.id, node);
    // Before the first message with a larger id, or before the pending ones at the end.
    let next = null;
    for (let child = box.lastElementChild; child; child = child.previousElementSibling) {
      if (child.classList.contains('day')) { next = child; continue; }
      const id = child.dataset.messageId;
      if (id === undefined || Number(id) > m.id) next = child; else break;
    }
    box.insertBefore(node, next);
  }
  if (!node.classList.contains('editing')) fill(node, m);
  scheduleDays();
}

function fill(node, m) {
  const mine = m.sender_id === me();
  node.classList.toggle('mine', mine);
  node.classList.toggle('deleted', !!m.deleted);
  node.classList.toggle('mentions-me', mentionsMe(m));
  const p = partsOf(node);
  const parts = [];
  if (!mine) parts.push(el('span', 'sender', m.sender_username));
  const time = el('time', 'time', formatTime(m.timestamp));
  time.dateTime = m.timestamp;
  time.title = new Date(m.timestamp).toLocaleString();
  parts.push(time);
  if (m.edited_at && !m.deleted) parts.push(el('span', 'edited', 'edited'));
  if (mentionsMe(m)) parts.push(el('span', 'mentioned', '@ you'));
  p.meta.replaceChildren(...parts);
  fillQuote(p['quote-slot'], m);
  fillText(p.text, m);
  fillAttachments(p.files, m);
  keepingFocus(p.reactions, () => fillReactions(p.reactions, m));
  // An open emoji picker stays open while someone else's reaction comes in.
  if (!node.classList.contains('picking')) keepingFocus(p.actions, () => fillActions(node, p.actions, m));
}

/** Re-draws the buttons in `part`; the one that had the focus (by data-key) has it again. */
function keepingFocus(part, draw) {
  const had = part.contains(document.activeElement) ? document.activeElement.dataset.key : undefined;
  draw();
  if (had !== undefined) [...part.querySelectorAll('button')].find((b) => b.dataset.key === had)?.focus({ preventScroll: true });
}

/** An action button; `key` finds it again after a re-draw. */
function action(key, text, onClick, label) {
  const b = button(text, onClick, 'link', label);
  b.dataset.key = key;
  return b;
}

/** Shows a message again as it is now (after an edit, a cancel or a pick). */
function refill(id) {
  const o = state.open;
  const node = o?.els.get(id);
  if (node && o.msgs.has(id)) fill(node, o.msgs.get(id));
}

/**
 * Reply and react for every message (reply only where one may write: `.cannot-post` on the
 * list hides it); edit for one's own; delete for one's own, and for anyone's as owner or admin.
 */
function fillActions(node, actions, m) {
  actions.replaceChildren();
  if (m.deleted) return;
  const c = state.convs.get(m.group_id);
  const mine = m.sender_id === me();
  const what = gist(m, 40);
  const reply = action('reply', 'Reply', () => startReply(state.open.msgs.get(m.id) || m), `Reply to message: ${what}`);
  reply.classList.add('reply');
  const react = action('react', 'React', () => {
    node.classList.add('picking');
    openPicker(node, actions, state.open.msgs.get(m.id) || m, () => {
      node.classList.remove('picking');
      refill(m.id);
      if (node.contains(document.activeElement) || document.activeElement === document.body) {
        node.querySelector('.actions button[data-key="react"]')?.focus({ preventScroll: true });
      }
    });
  }, `React to message: ${what}`);
  actions.append(reply, react);
  if (mine) actions.append(action('edit', 'Edit', () => startEdit(m.id), `Edit message: ${what}`));
  if (mine || manages(c)) {
    actions.append(action('delete', 'Delete', () => confirmDelete(m.id), `Delete message: ${what}`));
  }
}

function startEdit(id) {
  const o = state.open;
  const node = o?.els.get(id);
  const m = o?.msgs.get(id);
  if (!node || !m || m.deleted) return;
  node.classList.add('editing');
  const { text, actions } = partsOf(node);
  const form = el('form', 'edit');
  const area = el('textarea');
  area.value = m.content;
  area.rows = Math.min(8, m.content.split('\n').length + 1);
  area.maxLength = 4000;
  area.setAttribute('aria-label', 'Edit message');
  const error = el('p', 'error');
  error.setAttribute('role', 'alert');
  error.hidden = true;
  const save = el('button', null, 'Save');
  save.type = 'submit';
  const done = () => { node.classList.remove('editing'); refill(id); };
  form.append(area, error, save, button('Cancel', done, 'secondary'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const content = area.value.trim();
    if (!content) {
      showError(error, m.attachments?.length ? 'The text cannot be empty.'
        : 'A message cannot be empty; delete it instead.');
      return;
    }
    const edited = await act(save, error, () => api('PATCH', `/v1/messages/${id}`, { content }), problem);
    if (edited && state.open === o) { o.msgs.set(id, edited); done(); }
  });
  area.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') done();
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
  });
  text.replaceChildren(form);
  actions.replaceChildren();
  area.focus();
}

function confirmDelete(id) {
  const o = state.open;
  const node = o?.els.get(id);
  if (!node) return;
  const { actions } = partsOf(node);
  const error = el('span', 'error');
  error.setAttribute('role', 'alert');
  error.hidden = true;
  const yes = button('Yes, delete', async () => {
    const ok = await act(yes, error, () => api('DELETE', `/v1/messages/${id}`), problem);
    if (ok !== undefined && state.open === o) putMessage({ ...o.msgs.get(id), content: '', deleted: true });
  }, 'link danger');
  actions.replaceChildren(el('span', 'confirm', 'Delete for everyone?'), yes,
    button('Cancel', () => refill(id), 'link'), error);
  yes.focus();
}

// ---- Day separators ----

let daysQueued = false;

/** Re-draws the separators once after a burst of changes. */
export function scheduleDays() {
  if (daysQueued) return;
  daysQueued = true;
  queueMicrotask(() => { daysQueued = false; renderDays(); });
}

function renderDays() {
  box.querySelectorAll(':scope > .day').forEach((d) => d.remove());
  const o = state.open;
  if (!o) return;
  let last = null;
  for (const node of [...box.children]) {
    const id = node.dataset.messageId;
    const ts = id !== undefined ? o.msgs.get(Number(id))?.timestamp : node.classList.contains('msg') ? new Date().toISOString() : null;
    if (!ts) continue;
    const key = dayKey(ts);
    if (key !== last) {
      const sep = el('div', 'day');
      sep.setAttribute('role', 'separator');
      sep.append(el('span', null, dayLabel(ts)));
      box.insertBefore(sep, node);
      last = key;
    }
  }
}

/** Shows one message (a search result): in view, briefly highlighted. */
export function reveal(id) {
  const node = state.open?.els.get(id);
  if (!node) return false;
  node.scrollIntoView({ block: 'center' });
  node.classList.add('found');
  setTimeout(() => node.classList.remove('found'), 4000);
  return true;
}
