// Finding people: a search box over GET /v1/users, its matches as buttons, and (to pick
// several) the chosen ones as chips that can be taken out again.

import { me } from './state.js';
import { el, button, showError } from './dom.js';
import { api, problem } from './api.js';

const label = (u) => (u.display_name ? `${u.display_name} (${u.username})` : u.username);

/**
 * Builds a picker in `root`. `exclude()` gives ids not to offer (members already, oneself);
 * `onPick(user)` runs for each person picked. Returns {chosen, reset, focus}.
 */
export function picker(root, { id, multi, exclude = () => new Set(), onPick = () => {} }) {
  const find = el('input');
  find.id = `${id}-find`;
  find.type = 'search';
  find.autocomplete = 'off';
  find.placeholder = 'Type a name';
  const findLabel = el('label', null, 'Find people');
  findLabel.htmlFor = find.id;
  const results = el('ul', 'people');
  results.setAttribute('aria-label', 'People found');
  const chips = el('ul', 'chips');
  chips.setAttribute('aria-label', 'Chosen');
  const error = el('p', 'error');
  error.setAttribute('role', 'alert');
  error.hidden = true;
  root.replaceChildren(findLabel, find, error, results, ...(multi ? [chips] : []));
  const chosen = new Map(); // id -> user

  function renderChips() {
    chips.replaceChildren(...[...chosen.values()].map((u) => {
      const li = el('li', 'chip', label(u));
      li.append(button('×', () => { chosen.delete(u.id); renderChips(); }, 'link', `Remove ${u.username}`));
      return li;
    }));
  }

  let seq = 0;
  async function lookUp() {
    const q = find.value.trim();
    const mine = ++seq;
    if (!q) { results.replaceChildren(); showError(error, ''); return; }
    let found;
    try {
      found = await api('GET', `/v1/users?q=${encodeURIComponent(q)}&limit=8`);
    } catch (e) {
      if (mine === seq) showError(error, problem(e));
      return;
    }
    if (mine !== seq) return;
    showError(error, '');
    const skip = exclude();
    const people = found.filter((u) => u.id !== me() && !skip.has(u.id) && !chosen.has(u.id));
    results.replaceChildren(...people.map((u) => {
      const li = el('li');
      li.append(button(label(u), () => pick(u), 'person', `${multi ? 'Add' : 'Pick'} ${u.username}`));
      return li;
    }));
    if (!people.length) results.append(el('li', 'empty', `Nobody else matches “${q}”.`));
  }

  function pick(u) {
    if (multi) {
      chosen.set(u.id, u);
      renderChips();
      find.value = '';
      results.replaceChildren();
      find.focus();
    }
    onPick(u);
  }

  let timer = null;
  find.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(lookUp, 200); });
  find.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter') return;
    e.preventDefault(); // Enter picks the first match rather than submitting the form
    results.querySelector('button')?.click();
  });

  return {
    chosen: () => [...chosen.values()],
    reset() { chosen.clear(); renderChips(); find.value = ''; results.replaceChildren(); showError(error, ''); },
    focus() { find.focus(); },
  };
}

