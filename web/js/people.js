// Groups and the people in them: a new group with its members, a new direct chat, and a
// conversation's details, where its owner and admins rename it, make it an announcement
// group, and add, promote, mute and remove members (as their role allows).

import { state, me, nameOf, title, manages } from './state.js';
import { $, el, button, act, showError, openDialog, closeDialog } from './dom.js';
import { api, problem } from './api.js';
import { picker } from './picker.js';
import { refreshConversations } from './list.js';
import { openConversation, loadMembers } from './chat.js';

const memberIds = () => new Set(state.open?.members.map((m) => m.id) ?? []);

// ---- New group ----
const groupPicker = picker($('new-group-people'), { id: 'new-group', multi: true });

$('new-group').addEventListener('click', () => {
  $('new-group-name').value = '';
  groupPicker.reset();
  openDialog('new-group-dialog');
  $('new-group-name').focus();
});

$('new-group-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const name = $('new-group-name').value.trim();
  const error = $('new-group-error');
  if (!name) { showError(error, 'Give the group a name.'); return; }
  const member_ids = groupPicker.chosen().map((u) => u.id);
  const group = await act($('new-group-create'), error,
    () => api('POST', '/v1/groups', { name, member_ids }), problem);
  if (!group) return;
  closeDialog('new-group-dialog');
  await opened(group);
});

/** A conversation just made or found: into the list, and open. */
async function opened(conv) {
  if (!state.convs.has(conv.id)) state.convs.set(conv.id, { ...conv, unread_count: 0, last_read_id: 0 });
  await refreshConversations().catch(() => {});
  openConversation(conv.id);
}

// ---- New direct chat ----
picker($('direct-people'), {
  id: 'direct',
  multi: false,
  onPick: (u) => startDirect(u.id, $('direct-error')).then((ok) => ok && closeDialog('direct-dialog')),
});

$('new-direct').addEventListener('click', () => {
  openDialog('direct-dialog');
  $('direct-find').value = '';
  $('direct-find').focus();
});

/** Opens (creating on first use) the direct chat with `userId`; true when it worked. */
export async function startDirect(userId, errorNode) {
  const conv = await act(null, errorNode, () => api('POST', `/v1/direct/${userId}`), problem);
  if (!conv) return false;
  await opened(conv);
  return true;
}

// ---- Add members ----
const addPicker = picker($('add-people'), { id: 'add', multi: true, exclude: memberIds });

function openAdd() {
  addPicker.reset();
  openDialog('add-dialog');
  addPicker.focus();
}

$('add-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const o = state.open;
  const people = addPicker.chosen();
  const error = $('add-error');
  if (!o) return;
  if (!people.length) { showError(error, 'Find and pick someone to add first.'); return; }
  const done = await act($('add-submit'), error, async () => {
    for (const u of people) await api('POST', `/v1/groups/${o.id}/members`, { user_id: u.id });
    return true;
  }, (err) => `${problem(err)} (anyone before that was added)`);
  await loadMembers(o);
  if (done) closeDialog('add-dialog');
});

// ---- Details ----
export function openDetails() {
  if (!state.open) return;
  $('confirm-delete').hidden = true;
  refreshDetails();
  openDialog('details-dialog');
}

/** Re-draws the details dialog from the open conversation (also when it changes live). */
export function refreshDetails() {
  const o = state.open;
  const c = o && state.convs.get(o.id);
  if (!c) { closeDialog('details-dialog'); return; }
  const group = c.kind === 'group';
  $('details-title').textContent = title(c);
  $('rename-form').hidden = !manages(c);
  if (document.activeElement !== $('rename-name')) $('rename-name').value = group ? c.name : '';
  $('posting-row').hidden = !manages(c);
  // Not while its change is on the way: a redraw then (a presence batch arriving) would put
  // back the old setting, and the next click would send that again.
  if (!$('posting').disabled) $('posting').checked = c.posting === 'admins';
  $('add-members').hidden = !manages(c);
  $('leave').hidden = !group || c.role === 'owner';
  $('delete-group').hidden = !group || c.role !== 'owner';
  const list = $('member-list');
  list.replaceChildren(...o.members.map((m) => memberRow(c, m)));
}

const roleName = { owner: 'owner', admin: 'admin', member: 'member' };

function memberRow(c, m) {
  const li = el('li', 'member-row');
  const who = el('div', 'who');
  const dot = el('span', `dot${m.id === me() || state.online.get(m.id) ? ' online' : ''}`);
  who.append(dot, el('strong', null, m.id === me() ? `${nameOf(m)} (you)` : nameOf(m)));
  if (m.display_name) who.append(el('span', 'muted', m.username));
  if (c.kind === 'group') who.append(el('span', `role ${m.role}`, roleName[m.role]));
  const muted = m.muted_until && Date.parse(m.muted_until) > Date.now();
  if (muted) who.append(el('span', 'muted', `muted until ${new Date(m.muted_until).toLocaleString()}`));
  li.append(who);
  const actions = el('div', 'row-actions');
  const error = $('details-error');
  const name = m.username;
  if (m.id !== me()) {
    actions.append(button('Message', () => startDirect(m.id, error)
      .then((ok) => ok && closeDialog('details-dialog')), 'secondary', `Message ${name}`));
  }
  if (canChange(c, m)) {
    const setRole = (role) => (ev) => change(ev.currentTarget, m, { role });
    if (m.role === 'member') actions.append(button('Make admin', setRole('admin'), 'secondary', `Make ${name} an admin`));
    else actions.append(button('Make member', setRole('member'), 'secondary', `Make ${name} a member`));
    if (muted) {
      actions.append(button('Unmute', (ev) => change(ev.currentTarget, m, { muted_until: null }), 'secondary', `Unmute ${name}`));
    } else {
      const span = el('select');
      span.setAttribute('aria-label', `Mute ${name} for`);
      for (const [minutes, text] of [[10, '10 minutes'], [60, '1 hour'], [1440, '1 day']]) {
        const opt = el('option', null, text);
        opt.value = String(minutes);
        span.append(opt);
      }
      const mute = button('Mute', (ev) => change(ev.currentTarget, m, {
        muted_until: new Date(Date.now() + Number(span.value) * 60000).toISOString(),
      }), 'secondary', `Mute ${name}`);
      actions.append(span, mute);
    }
    actions.append(button('Remove', (ev) => remove(ev.currentTarget, m), 'secondary danger', `Remove ${name}`));
  }
  li.append(actions);
  return li;
}

/** Owners change anyone but themselves; admins change plain members. */
function canChange(c, m) {
  if (!manages(c) || m.id === me() || m.role === 'owner') return false;
  return m.role === 'member' || c.role === 'owner';
}

async function change(btn, m, body) {
  const o = state.open;
  const updated = await act(btn, $('details-error'),
    () => api('PATCH', `/v1/groups/${o.id}/members/${m.id}`, body), problem);
  if (updated && state.open === o) {
    Object.assign(m, updated);
    refreshDetails();
  }
}

async function remove(btn, m) {
  const o = state.open;
  const ok = await act(btn, $('details-error'),
    () => api('DELETE', `/v1/groups/${o.id}/members/${m.id}`), problem);
  if (ok !== undefined && state.open === o) {
    o.members = o.members.filter((x) => x.id !== m.id);
    refreshDetails();
  }
}

$('rename-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const o = state.open;
  const name = $('rename-name').value.trim();
  const group = await act($('rename-submit'), $('details-error'),
    () => api('PATCH', `/v1/groups/${o.id}`, { name }), problem);
  if (group) groupChanged(group);
});

$('posting').addEventListener('change', async (e) => {
  const o = state.open;
  const posting = e.target.checked ? 'admins' : 'everyone';
  const group = await act(e.target, $('details-error'),
    () => api('PATCH', `/v1/groups/${o.id}`, { posting }), problem);
  if (group) groupChanged(group);
  refreshDetails(); // the switch shows what the server has
});

/** The server's new group object (our answer, or `group_updated` from the socket). */
export function groupChanged(group) {
  const c = state.convs.get(group.id);
  if (!c) return;
  Object.assign(c, { name: group.name, posting: group.posting });
  refreshConversations().catch(() => {});
}

$('add-members').addEventListener('click', () => openAdd());

$('leave').addEventListener('click', async (e) => {
  const o = state.open;
  const ok = await act(e.currentTarget, $('details-error'),
    () => api('DELETE', `/v1/groups/${o.id}/members/${me()}`), problem);
  if (ok !== undefined) {
    closeDialog('details-dialog');
    await refreshConversations().catch(() => {});
  }
});

$('delete-group').addEventListener('click', () => {
  $('confirm-delete').hidden = false;
  $('confirm-delete-yes').focus();
});
$('confirm-delete-no').addEventListener('click', () => { $('confirm-delete').hidden = true; });
$('confirm-delete-yes').addEventListener('click', async (e) => {
  const o = state.open;
  const ok = await act(e.currentTarget, $('details-error'), () => api('DELETE', `/v1/groups/${o.id}`), problem);
  if (ok !== undefined) {
    closeDialog('details-dialog');
    await refreshConversations().catch(() => {});
  }
});

// Every dialog's Cancel / close buttons.
document.querySelectorAll('dialog [data-close]').forEach((b) =>
  b.addEventListener('click', () => b.closest('dialog').close()));
