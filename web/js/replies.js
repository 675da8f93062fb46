// Answering a message: "Replying to …" above the composer until it is sent or cancelled, and
// the quote a reply shows of the message it answers; a click on the quote goes to that one.

import { state, me, nameOf } from './state.js';
import { $, el, button } from './dom.js';
import { showMessage } from './chat.js';

const bar = $('reply-bar');
const input = $('composer-input');
let target = null;      // {id, name, excerpt}: the message the next one answers
const kept = new Map(); // conversation id -> its target while another one is open

/** The name to show for a message's sender: "You", a member's display name, or the username. */
function senderName(id, username) {
  if (id !== null && id === me()) return 'You';
  const member = state.open?.members.find((m) => m.id === id);
  return (member && nameOf(member)) || username || 'Someone';
}

const cut = (text, n) => (text.length > n ? `${text.slice(0, n)}…` : text);

/** What a message says, in one short line (its files when it has no text). */
export function gist(m, n = 80) {
  const text = (m.content || '').replace(/\s+/g, ' ').trim();
  if (text) return cut(text, n);
  const files = m.attachments || [];
  if (files.length === 1) return `📎 ${files[0].name}`;
  return files.length ? `📎 ${files.length} files` : '';
}

export function startReply(m) {
  target = { id: m.id, name: senderName(m.sender_id, m.sender_username), excerpt: gist(m) };
  render();
  input.focus();
}

export function cancelReply() {
  target = null;
  render();
}

/** The id of the message being answered, or null. */
export const replyTo = () => target?.id ?? null;

function render() {
  bar.hidden = !target;
  if (!target) { bar.replaceChildren(); return; }
  const text = el('span', 'reply-text');
  text.append('Replying to ', el('strong', null, target.name), target.excerpt ? `: ${target.excerpt}` : '');
  bar.replaceChildren(el('span', 'reply-icon', '↩'), text,
    button('×', () => { cancelReply(); input.focus(); }, 'reply-cancel', 'Cancel reply'));
}

/** Another conversation opens: the reply in progress waits for this one's return. */
export function switchReply(fromId, toId) {
  if (fromId !== null) { if (target) kept.set(fromId, target); else kept.delete(fromId); }
  target = (toId !== null && kept.get(toId)) || null;
  if (toId !== null) kept.delete(toId);
  render();
}

export function forgetReplies() {
  kept.clear();
  cancelReply();
}

/** Fills a message's quote of the one it answers (empty when it answers none). */
export function fillQuote(slot, m) {
  const r = m.deleted ? null : m.reply_to;
  if (!r) { slot.replaceChildren(); return; }
  const who = senderName(r.sender_id, r.sender_username);
  const said = r.deleted ? 'Original message deleted' : (r.excerpt || '📎 Attachment');
  const quote = button('', () => showMessage(r.id), r.deleted ? 'quote gone' : 'quote',
    r.deleted ? 'Go to the deleted original message' : `Go to the original message, ${who}: ${said}`);
  if (!r.deleted) quote.append(el('span', 'quote-who', who));
  quote.append(el('span', 'quote-text', said));
  slot.replaceChildren(quote);
}
