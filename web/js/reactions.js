// Reactions: chips under a message (the emoji and how many; pressed when one is mine; who
// reacted in the title), a click toggling mine, and a small picker of common emoji in the
// message's actions. Every member's page follows the message_reactions frames.

import { state, me, nameOf } from './state.js';
import { el, button, toast } from './dom.js';
import { api, problem } from './api.js';
import { patchMessage } from './chat.js';

export const COMMON = ['👍', '❤️', '😂', '🎉', '😮', '😢', '👀', '✅'];

/** "Ava", "You and Mike", "Ava, Mike and 2 others". */
function whoReacted(ids) {
  const members = state.open?.members || [];
  const names = ids.map((id) => (id === me() ? 'You' : nameOf(members.find((m) => m.id === id))))
    .filter(Boolean);
  const others = ids.length - names.length; // people who left since
  if (others) names.push(others === 1 ? (names.length ? '1 other' : 'someone') : `${others} others`);
  if (names.length <= 1) return names.join('');
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

const isMine = (r) => r.user_ids.includes(me());

/** Fills a message's reaction chips. */
export function fillReactions(row, m) {
  const all = m.deleted ? [] : (m.reactions || []);
  row.replaceChildren(...all.map((r) => {
    const who = whoReacted(r.user_ids);
    const chip = button('', () => toggleReaction(m.group_id, m.id, r.emoji), 'reaction',
      `${r.emoji} ${r.count}: ${who}`);
    chip.append(el('span', 'emoji', r.emoji), el('span', 'count', String(r.count)));
    chip.classList.toggle('mine', isMine(r));
    chip.dataset.key = r.emoji;
    chip.setAttribute('aria-pressed', String(isMine(r)));
    chip.title = `${who} reacted with ${r.emoji}`;
    return chip;
  }));
}

/** The list with my `emoji` added or taken away, as the server will have it. */
function changed(list, emoji, on) {
  const out = [];
  let found = false;
  for (const r of list) {
    if (r.emoji !== emoji) { out.push(r); continue; }
    found = true;
    const user_ids = on ? [...r.user_ids.filter((id) => id !== me()), me()] : r.user_ids.filter((id) => id !== me());
    if (user_ids.length) out.push({ emoji, count: user_ids.length, user_ids });
  }
  if (on && !found) out.push({ emoji, count: 1, user_ids: [me()] });
  return out;
}

/** Adds my `emoji` to a message, or takes it away when it is there: shown at once, then sent. */
export async function toggleReaction(groupId, id, emoji) {
  const m = state.open?.id === groupId ? state.open.msgs.get(id) : null;
  if (!m || m.deleted) return;
  const before = m.reactions || [];
  const on = !before.some((r) => r.emoji === emoji && isMine(r));
  const after = changed(before, emoji, on);
  patchMessage(groupId, id, { reactions: after });
  try {
    await api(on ? 'PUT' : 'DELETE', `/v1/messages/${id}/reactions/${encodeURIComponent(emoji)}`);
  } catch (e) {
    // Undone, unless the server's own list came meanwhile.
    if (state.open?.msgs.get(id)?.reactions === after) patchMessage(groupId, id, { reactions: before });
    toast(`Could not ${on ? 'add' : 'remove'} ${emoji}: ${problem(e)}`);
  }
}

let picking = null; // {node, close} of the message whose picker is open

/**
 * Shows the picker in place of a message's `actions`; `close()` puts the actions back. A
 * pick, Escape, a click elsewhere or the focus leaving the message closes it.
 */
export function openPicker(node, actions, m, close) {
  picking?.close();
  const done = () => {
    if (picking?.node !== node) return;
    picking = null;
    node.removeEventListener('focusout', left);
    close();
  };
  // Tabbing away closes it; a click elsewhere (which may move the focus nowhere) is below.
  const left = (e) => { if (e.relatedTarget && !node.contains(e.relatedTarget)) done(); };
  picking = { node, close: done };
  const row = el('div', 'emoji-picker');
  row.setAttribute('role', 'group');
  row.setAttribute('aria-label', 'Pick a reaction');
  const mineNow = new Set((m.reactions || []).filter(isMine).map((r) => r.emoji));
  const picks = COMMON.map((emoji) => {
    const b = button(emoji, () => { done(); toggleReaction(m.group_id, m.id, emoji); }, 'emoji-pick',
      `React with ${emoji}`);
    b.setAttribute('aria-pressed', String(mineNow.has(emoji)));
    return b;
  });
  row.append(...picks, button('×', () => done(), 'emoji-close', 'Close the reactions'));
  row.addEventListener('keydown', (e) => {
    const all = [...row.querySelectorAll('button')];
    const i = all.indexOf(document.activeElement);
    if (e.key === 'Escape') { e.preventDefault(); done(); }
    else if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
      e.preventDefault();
      all[(i + (e.key === 'ArrowRight' ? 1 : all.length - 1)) % all.length].focus();
    }
  });
  actions.replaceChildren(row);
  node.addEventListener('focusout', left);
  picks[0].focus();
}

document.addEventListener('pointerdown', (e) => {
  if (picking && !picking.node.contains(e.target)) picking.close();
});
