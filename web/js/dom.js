// Small DOM helpers. Everything a person or the server wrote reaches the page through
// textContent only, never as markup.

export const $ = (id) => document.getElementById(id);

/** Creates an element with an optional class and text. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A button that runs `onClick`; `label` is its accessible name when it differs from its text. */
export function button(text, onClick, className, label) {
  const b = el('button', className, text);
  b.type = 'button';
  if (label) b.setAttribute('aria-label', label);
  b.addEventListener('click', onClick);
  return b;
}

const SVG = 'http://www.w3.org/2000/svg';

/** Line icons (24×24 path data, stroked in the text's colour). */
export const ICONS = {
  file: 'M13 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V9zM13 2v7h7',
};

/** A decorative icon: an <svg> of one of ICONS. */
export function icon(name, className = 'icon') {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', className);
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', ICONS[name]);
  svg.append(path);
  return svg;
}

/** Shows `text` in an error line (a role="alert" element), or hides it when empty. */
export function showError(node, text) {
  node.textContent = text || '';
  node.hidden = !text;
}

let toastTimer = null;

/** A failed action's message, for actions that have no form of their own to show it in. */
export function toast(text) {
  const node = $('toast');
  showError(node, text);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => showError(node, ''), 8000);
}

/**
 * Runs an action from a button: the button is disabled meanwhile, and a failure is shown in
 * `errorNode` (or as a toast). Resolves to the action's result, or undefined when it failed.
 */
export async function act(btn, errorNode, action, describe) {
  if (btn) btn.disabled = true;
  if (errorNode) showError(errorNode, '');
  try {
    return await action();
  } catch (e) {
    const text = describe(e);
    if (errorNode) showError(errorNode, text); else toast(text);
    return undefined;
  } finally {
    if (btn) btn.disabled = false;
  }
}

export function openDialog(id) {
  const d = $(id);
  d.querySelectorAll('.error').forEach((n) => showError(n, ''));
  if (!d.open) d.showModal();
  return d;
}

export function closeDialog(id) {
  const d = $(id);
  if (d.open) d.close();
}

const sameDay = (a, b) => a.toDateString() === b.toDateString();

/** 14:05 today; "Nov 28" (short) or "Nov 28 14:05" on other days. */
export function formatTime(ts, short = false) {
  const d = new Date(ts);
  const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (sameDay(d, new Date())) return hm;
  const day = d.toLocaleDateString([], { month: 'short', day: 'numeric' });
  return short ? day : `${day} ${hm}`;
}

/** The local calendar day of a time, as a key. */
export const dayKey = (ts) => new Date(ts).toDateString();

/** "Today", "Yesterday", or the date written out, for the separators between days. */
export function dayLabel(ts) {
  const d = new Date(ts);
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (sameDay(d, today)) return 'Today';
  if (sameDay(d, yesterday)) return 'Yesterday';
  const opts = { weekday: 'long', month: 'long', day: 'numeric' };
  if (d.getFullYear() !== today.getFullYear()) opts.year = 'numeric';
  return d.toLocaleDateString([], opts);
}

/** A random v4 UUID, also outside a secure context (http://192.168.x.y is not one). */
export function uuid() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
