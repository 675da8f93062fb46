// Mentions: `@` in the composer opens a list of the conversation's members (filtered as one
// types; arrows and Enter or Tab, or a click, pick; Escape closes) that writes `@username `.
// In messages, the @names the server counted as mentions stand out, and so does a message
// that mentions me.

import { state, me, nameOf } from './state.js';
import { $, el } from './dom.js';

const input = $('composer-input');
const list = $('mention-list');
const MAX_SHOWN = 8;

let options = [];  // the members offered
let active = 0;    // the one Enter would pick
let start = -1;    // where the typed `@name` starts in the composer's text

/** Whether a message @-mentions the signed-in person (one's own messages never count). */
export const mentionsMe = (m) => !m.deleted && m.sender_id !== me() && (m.mentions || []).includes(me());

// ---- In messages ----

const NAME = /@([A-Za-z0-9_.-]+)/g;
const WORDISH = /[\p{L}\p{N}_]/u; // an @ right after one of these is an address, not a mention

/** Fills a message's text, with the @names of the members it mentions marked. */
export function fillText(node, m) {
  const content = m.deleted ? 'message deleted' : (m.content || '');
  const ids = new Set(m.deleted ? [] : (m.mentions || []));
  const names = new Map((state.open?.members || []).filter((u) => ids.has(u.id))
    .map((u) => [u.username.toLowerCase(), u]));
  if (!names.size) { node.textContent = content; return; }
  const parts = [];
  let at = 0;
  for (const match of content.matchAll(NAME)) {
    if (match.index > 0 && WORDISH.test(content[match.index - 1])) continue;
    // As the server reads it: the whole run, or the run without a trailing '.' or '-'.
    let name = match[1];
    if (!names.has(name.toLowerCase())) name = name.replace(/[.-]+$/, '');
    const who = names.get(name.toLowerCase());
    if (!who) continue;
    parts.push(content.slice(at, match.index));
    const span = el('span', who.id === me() ? 'mention mention-me' : 'mention', `@${name}`);
    span.title = nameOf(who);
    parts.push(span);
    at = match.index + 1 + name.length;
  }
  parts.push(content.slice(at));
  node.replaceChildren(...parts.filter((p) => p !== ''));
}

// ---- The completion list ----

export const completing = () => !list.hidden;

export function closeCompletion() {
  list.hidden = true;
  list.replaceChildren();
  options = [];
  input.removeAttribute('aria-activedescendant');
}

/** Looks at what is typed before the caret: an `@name` being written opens the list. */
export function updateCompletion() {
  const o = state.open;
  const caret = input.selectionStart;
  if (!o || input.disabled || caret !== input.selectionEnd) { closeCompletion(); return; }
  const typed = /(?:^|[^\p{L}\p{N}_])@([A-Za-z0-9_.-]{0,32})$/u.exec(input.value.slice(0, caret));
  if (!typed) { closeCompletion(); return; }
  const q = typed[1].toLowerCase();
  start = caret - typed[1].length - 1;
  const rank = (u) => {
    if (u.username.toLowerCase().startsWith(q)) return 0;
    if ((u.display_name || '').toLowerCase().split(/\s+/).some((w) => w.startsWith(q))) return 1;
    return u.username.toLowerCase().includes(q) ? 2 : -1;
  };
  const previous = options[active]?.id;
  options = o.members.filter((u) => u.id !== me() && rank(u) >= 0)
    .sort((a, b) => rank(a) - rank(b) || a.username.localeCompare(b.username))
    .slice(0, MAX_SHOWN);
  if (!options.length) { closeCompletion(); return; }
  active = Math.max(0, options.findIndex((u) => u.id === previous));
  render();
}

function render() {
  list.replaceChildren(...options.map((u, i) => {
    const li = el('li', 'mention-option');
    li.id = `mention-option-${i}`;
    li.setAttribute('role', 'option');
    li.setAttribute('aria-selected', String(i === active));
    li.append(el('span', 'mention-name', nameOf(u)));
    if (u.display_name) li.append(el('span', 'mention-user', `@${u.username}`));
    // A press keeps the focus in the composer; the click then picks.
    li.addEventListener('mousedown', (e) => e.preventDefault());
    li.addEventListener('click', () => pick(u));
    return li;
  }));
  list.hidden = false;
  input.setAttribute('aria-activedescendant', `mention-option-${active}`);
  list.children[active]?.scrollIntoView({ block: 'nearest' });
}

/** Writes `@username ` in place of what was typed after the `@`. */
function pick(u) {
  const caret = input.selectionStart;
  const after = input.value.slice(caret);
  const text = `@${u.username}${after.startsWith(' ') ? '' : ' '}`;
  input.value = input.value.slice(0, start) + text + after;
  const end = start + text.length + (after.startsWith(' ') ? 1 : 0);
  input.setSelectionRange(end, end);
  closeCompletion();
  input.focus();
  input.dispatchEvent(new Event('input', { bubbles: true })); // resizes, tells the others
}

/** The composer's keys while the list is open; true when the key was the list's. */
export function completionKey(e) {
  if (!completing() || e.isComposing) return false;
  if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
    active = (active + (e.key === 'ArrowDown' ? 1 : options.length - 1)) % options.length;
    render();
  } else if ((e.key === 'Enter' && !e.shiftKey) || e.key === 'Tab') {
    pick(options[active]);
  } else if (e.key === 'Escape') {
    closeCompletion();
  } else {
    return false;
  }
  e.preventDefault();
  return true;
}

input.setAttribute('aria-autocomplete', 'list');
input.setAttribute('aria-controls', 'mention-list');
input.addEventListener('click', updateCompletion);
input.addEventListener('keyup', (e) => { if (e.key === 'ArrowLeft' || e.key === 'ArrowRight' || e.key === 'Home' || e.key === 'End') updateCompletion(); });
input.addEventListener('blur', () => setTimeout(() => { if (document.activeElement !== input) closeCompletion(); }, 0));
