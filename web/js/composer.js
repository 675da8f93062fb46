// Writing: Enter sends, Shift+Enter is a new line; a "sending…" bubble until the server has
// it; a retry reuses the client_id, so a message is never stored twice. A message may carry
// files (uploads.js) and answer another (replies.js); `@` offers the members (mentions.js).
// Closed, with the reason, in an announcement group or while muted.

import { state, me } from './state.js';
import { $, el, button, uuid } from './dom.js';
import { api, ApiError } from './api.js';
import { box } from './messages.js';
import { applyMessage } from './chat.js';
import { scheduleRefresh } from './list.js';
import { sendFrame } from './socket.js';
import { uploading, anyFailed, readyFiles, filesSent, switchFiles, composerNote } from './uploads.js';
import { replyTo, cancelReply, switchReply } from './replies.js';
import { completionKey, updateCompletion, closeCompletion } from './mentions.js';
import { humanSize } from './attachments.js';

export const input = $('composer-input');
const sendButton = $('composer-send');
let lastTypingAt = 0;
let muteTimer = null;

export function resetTyping() { lastTypingAt = 0; }

/** Why the person cannot write in the open conversation now, or null. */
function closedBecause() {
  const o = state.open;
  const c = o && state.convs.get(o.id);
  if (!c) return null;
  if (c.kind === 'group' && c.posting === 'admins' && c.role === 'member') {
    return 'Only the owner and admins post in this group.';
  }
  const mine = o.members.find((m) => m.id === me());
  if (mine?.muted_until && Date.parse(mine.muted_until) > Date.now()) {
    const until = new Date(mine.muted_until);
    clearTimeout(muteTimer); // opens again by itself when the mute ends
    muteTimer = setTimeout(composerState, Math.min(until - Date.now() + 500, 2 ** 31 - 1));
    return `You are muted here until ${until.toLocaleString()}.`;
  }
  return null;
}

/** Enables the composer, or closes it with the reason shown in its place. */
export function composerState() {
  const why = state.open ? closedBecause() : null;
  $('composer-closed').textContent = why || '';
  $('composer-closed').hidden = !why;
  setComposer(!!state.open && !why);
}

export function setComposer(on) {
  input.disabled = sendButton.disabled = $('attach').disabled = !on;
  box.classList.toggle('cannot-post', !on); // no Reply where one cannot write
  if (!on) closeCompletion();
  autosize();
}

/** Another conversation opens (or none, with null): each keeps its draft, files and reply. */
export function switchDraft(fromId, toId) {
  if (fromId !== null) state.drafts.set(fromId, input.value);
  input.value = (toId !== null && state.drafts.get(toId)) || '';
  switchFiles(fromId, toId);
  switchReply(fromId, toId);
  closeCompletion();
  autosize();
}

export function autosize() {
  input.style.height = 'auto';
  // scrollHeight leaves out the borders, which border-box sizing counts.
  const height = input.scrollHeight + input.offsetHeight - input.clientHeight;
  input.style.height = `${Math.min(height, 160)}px`;
  input.style.overflowY = height > 160 ? 'auto' : 'hidden';
}

function send() {
  const content = input.value.trim();
  if (!state.open || input.disabled) return;
  if (uploading()) { composerNote('Wait until the files have uploaded, or remove them.'); return; }
  const files = readyFiles();
  if (!content && !files.length) {
    if (anyFailed()) composerNote('Those files could not be uploaded: remove them, or add others.');
    return;
  }
  composerNote('');
  input.value = '';
  autosize();
  state.drafts.delete(state.open.id);
  post({ group_id: state.open.id, content, client_id: uuid(), files, reply_to: replyTo() });
  filesSent();
  cancelReply();
}

/** Shows a "sending…" bubble and POSTs it. */
function post(p) {
  const o = state.open;
  if (!o || o.id !== p.group_id) return;
  let entry = o.pending.get(p.client_id);
  if (!entry) {
    const node = el('div', 'msg mine pending');
    node.dataset.clientId = p.client_id;
    node.append(el('div', 'meta'), el('div', 'text', p.content));
    if (p.files.length) {
      const files = el('ul', 'pending-names');
      files.append(...p.files.map((a) => el('li', null, `📎 ${a.name} (${humanSize(a.size)})`)));
      node.append(files);
    }
    box.querySelectorAll(':scope > .notice').forEach((n) => n.remove());
    box.append(node);
    entry = { node, p };
    o.pending.set(p.client_id, entry);
  }
  entry.node.classList.remove('failed');
  entry.node.firstChild.textContent = 'sending…';
  box.scrollTop = box.scrollHeight;
  const body = { client_id: p.client_id };
  if (p.content) body.content = p.content;
  if (p.files.length) body.attachment_ids = p.files.map((a) => a.id);
  if (p.reply_to !== null) body.reply_to = p.reply_to;
  api('POST', `/v1/messages/group/${p.group_id}`, body)
    .then((m) => applyMessage(m, scheduleRefresh))
    .catch((e) => {
      if (o.pending.get(p.client_id) !== entry) return; // arrived after all, or closed
      entry.node.classList.add('failed');
      const retry = button('Retry', () => post(p), 'link');
      const reason = e instanceof ApiError ? `: ${e.message}` : ': cannot reach the server';
      entry.node.firstChild.replaceChildren(el('span', null, `Not sent${reason}. `), retry);
      entry.node.firstChild.setAttribute('role', 'alert');
    });
}

input.addEventListener('keydown', (e) => {
  if (completionKey(e)) return; // the @ list's arrows, Enter, Tab and Escape
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  if (e.key === 'Escape' && replyTo() !== null) { e.preventDefault(); cancelReply(); }
});
input.addEventListener('input', () => {
  autosize();
  updateCompletion();
  if (state.open && input.value.trim() && Date.now() - lastTypingAt > 2000) {
    lastTypingAt = Date.now();
    sendFrame({ type: 'typing', group_id: state.open.id });
  }
});
$('composer').addEventListener('submit', (e) => { e.preventDefault(); send(); input.focus(); });
