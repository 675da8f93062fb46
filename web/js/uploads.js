// Files for the next message: the Attach button, files dropped on the conversation, and
// images pasted into it. Each uploads at once (POST /v1/attachments, the file as the body)
// and shows as a chip above the composer until the message is sent: its name and size, the
// upload's progress or, plainly, why it failed, and × to take it out again. Each
// conversation keeps its own, as it keeps its draft.

import { state } from './state.js';
import { $, el, button, icon, showError } from './dom.js';
import { ApiError, answerError, refreshToken, problem } from './api.js';
import { humanSize, readableBytes } from './attachments.js';

/** Files one message may carry (the server's limit). */
export const MAX_FILES = 10;

const list = $('pending-files');
const note = $('composer-note');
const input = $('composer-input');
const chooser = $('attach-input');
const PREVIEWS = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];

let items = [];         // the open conversation's files: {file, name, status, progress, attachment, …}
const kept = new Map(); // conversation id -> its files while another one is open

/** Whether files can be added now: a conversation is open and one may write in it. */
const canAttach = () => !!state.open && !input.disabled;

/** Shows a short sentence about the files (or the send) under the chips; '' hides it. */
export function composerNote(text) { showError(note, text); }

/** Starts uploading `files` for the open conversation. */
export function addFiles(files) {
  if (!canAttach()) return;
  const all = [...files];
  const room = MAX_FILES - items.length;
  composerNote(all.length > room
    ? `A message carries at most ${MAX_FILES} files: ${all.length - Math.max(room, 0)} left out.` : '');
  for (const file of all.slice(0, Math.max(room, 0))) {
    const item = { file, name: file.name || 'file', status: 'uploading', progress: 0,
      attachment: null, xhr: null, error: '', preview: null, li: null };
    if (PREVIEWS.includes(file.type)) item.preview = URL.createObjectURL(file);
    items.push(item);
    upload(item);
  }
  renderAll();
}

/** One upload, with its progress; a refused token is renewed once. */
function upload(item, retried = false) {
  if (!state.session) { failed(item, new ApiError(401, 'unauthorized', 'signed out')); return; }
  Object.assign(item, { status: 'uploading', progress: 0, error: '' });
  const xhr = new XMLHttpRequest();
  item.xhr = xhr;
  xhr.open('POST', `/v1/attachments?name=${encodeURIComponent(item.name)}`);
  xhr.setRequestHeader('Authorization', `Bearer ${state.session.token}`);
  xhr.setRequestHeader('Content-Type', item.file.type || 'application/octet-stream');
  xhr.upload.addEventListener('progress', (e) => {
    if (item.xhr !== xhr || !e.lengthComputable) return;
    item.progress = e.loaded / Math.max(e.total, 1);
    render(item);
  });
  xhr.addEventListener('load', () => {
    if (item.xhr !== xhr) return;
    item.xhr = null;
    if (xhr.status === 401 && !retried) {
      refreshToken().then(() => upload(item, true), (e) => failed(item, e));
      return;
    }
    if (xhr.status !== 201) { failed(item, answerError(xhr.status, xhr.responseText, xhr.statusText)); return; }
    try {
      item.attachment = JSON.parse(xhr.responseText);
      item.status = 'done';
    } catch {
      failed(item, new ApiError(xhr.status, 'bad_answer', 'The server answered something unexpected.'));
      return;
    }
    render(item);
  });
  xhr.addEventListener('error', () => { if (item.xhr === xhr) { item.xhr = null; failed(item, null); } });
  xhr.send(item.file);
  render(item);
}

/** A server's phrase as a sentence: a capital first, a full stop last. */
const sentence = (text) => `${text.charAt(0).toUpperCase()}${text.slice(1)}${/[.!?…]$/.test(text) ? '' : '.'}`;

function failed(item, e) {
  item.status = 'failed';
  if (e instanceof ApiError && e.code === 'payload_too_large') {
    item.error = `Too large: ${readableBytes(e.message)}${/[.!?]$/.test(e.message) ? '' : '.'}`;
  } else {
    item.error = e ? sentence(readableBytes(problem(e))) : 'The upload broke off. Check the connection and try again.';
  }
  render(item);
}

function remove(item) {
  item.xhr?.abort();
  item.xhr = null;
  if (item.preview) URL.revokeObjectURL(item.preview);
  item.li?.remove();
  items = items.filter((i) => i !== item);
  composerNote('');
  renderAll();
  input.focus();
}

/** The chip of one file, made once and updated in place as the upload goes on. */
function render(item) {
  if (!item.li) {
    item.li = el('li', 'pending-file');
    let preview;
    if (item.preview) {
      preview = el('img', 'pf-preview');
      preview.src = item.preview;
      preview.alt = '';
    } else {
      preview = el('span', 'pf-preview');
      preview.append(icon('file', 'icon file-icon'));
    }
    const body = el('span', 'pf-body');
    body.append(el('span', 'pf-name', item.name), el('span', 'pf-status'));
    const bar = el('progress', 'pf-progress');
    bar.max = 1;
    bar.setAttribute('aria-label', `Uploading ${item.name}`);
    item.li.append(preview, body, bar, button('×', () => remove(item), 'pf-remove', `Remove ${item.name}`));
    item.li.title = item.name;
  }
  const li = item.li;
  li.className = `pending-file is-${item.status}`;
  const status = li.querySelector('.pf-status');
  const size = humanSize(item.file.size);
  if (item.status === 'uploading') {
    status.textContent = item.progress >= 1 ? `${size} · finishing…` : `${size} · uploading ${Math.floor(item.progress * 100)}%`;
  }
  else if (item.status === 'done') status.textContent = `${size} · ready`;
  else status.textContent = item.error;
  // Only a failure is announced: progress would be read out at every step.
  if (item.status === 'failed') status.setAttribute('role', 'alert'); else status.removeAttribute('role');
  const bar = li.querySelector('progress');
  bar.value = item.progress;
  bar.hidden = item.status !== 'uploading';
}

function renderAll() {
  list.replaceChildren(...items.map((i) => { render(i); return i.li; }));
  list.hidden = !items.length;
}

/** Whether some file is still on its way. */
export const uploading = () => items.some((i) => i.status === 'uploading');
/** Whether some file failed (and is still shown, to be removed or kept out of the message). */
export const anyFailed = () => items.some((i) => i.status === 'failed');
/** The uploaded files, as attachment objects, in the order added. */
export const readyFiles = () => items.filter((i) => i.status === 'done').map((i) => i.attachment);

/** The message went: its files leave the composer (the failed ones stay, with their reason). */
export function filesSent() {
  items.filter((i) => i.status === 'done').forEach((i) => { if (i.preview) URL.revokeObjectURL(i.preview); i.li?.remove(); });
  items = items.filter((i) => i.status !== 'done');
  renderAll();
}

/** Another conversation opens: this one's files wait (their uploads go on) for its return. */
export function switchFiles(fromId, toId) {
  if (fromId !== null && items.length) kept.set(fromId, items);
  items = (toId !== null && kept.get(toId)) || [];
  if (toId !== null) kept.delete(toId);
  composerNote('');
  renderAll();
}

/** Signing out: every upload stops, every file is let go of. */
export function forgetUploads() {
  for (const group of [items, ...kept.values()]) {
    group.forEach((i) => { i.xhr?.abort(); i.xhr = null; if (i.preview) URL.revokeObjectURL(i.preview); });
  }
  kept.clear();
  items = [];
  renderAll();
}

// ---- The three ways in: the button, a drop, a paste ----

$('attach').addEventListener('click', () => chooser.click());
chooser.addEventListener('change', () => {
  addFiles(chooser.files);
  chooser.value = '';
  input.focus();
});

/** A pasted image has no real name ("image.png"): it gets the time it was pasted. */
function named(file) {
  if (file.name && file.name !== 'image.png') return file;
  const ext = (file.type.split('/')[1] || 'png').replace('jpeg', 'jpg');
  const stamp = new Date().toISOString().slice(0, 19).replace('T', ' ').replace(/:/g, '.');
  return new File([file], `Pasted image ${stamp}.${ext}`, { type: file.type });
}

document.addEventListener('paste', (e) => {
  const t = e.target;
  const elsewhere = t instanceof Element && t !== input && t.closest('input, textarea, select, [contenteditable], dialog');
  const files = [...(e.clipboardData?.files || [])];
  if (elsewhere || !files.length || !canAttach()) return;
  // Copied from a document, there is text as well as a picture of it: the text is pasted too.
  if (!e.clipboardData.types.includes('text/plain')) e.preventDefault();
  addFiles(files.map(named));
  input.focus();
});

const pane = document.querySelector('.chat');
let depth = 0; // dragenter/dragleave come for every element inside the pane
const carriesFiles = (e) => [...(e.dataTransfer?.types || [])].includes('Files');

pane.addEventListener('dragenter', (e) => {
  if (!carriesFiles(e) || !canAttach()) return;
  e.preventDefault();
  depth += 1;
  pane.classList.add('dropping');
});
pane.addEventListener('dragover', (e) => {
  if (!carriesFiles(e) || !canAttach()) return;
  e.preventDefault();
  e.dataTransfer.dropEffect = 'copy';
});
pane.addEventListener('dragleave', () => {
  depth = Math.max(0, depth - 1);
  if (!depth) pane.classList.remove('dropping');
});
pane.addEventListener('drop', (e) => {
  depth = 0;
  pane.classList.remove('dropping');
  if (!carriesFiles(e)) return;
  e.preventDefault();
  addFiles(e.dataTransfer.files);
  input.focus();
});
// A file dropped beside the conversation is not opened in place of the page.
window.addEventListener('dragover', (e) => { if (carriesFiles(e)) e.preventDefault(); });
window.addEventListener('drop', (e) => { if (carriesFiles(e)) e.preventDefault(); });
