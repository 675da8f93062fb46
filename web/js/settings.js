// One's own account: the display name others see, and a new password (which ends every
// session, this one too, so the client signs in again with the new password at once).

import { state, nameOf } from './state.js';
import { $, act, showError, openDialog, closeDialog } from './dom.js';
import { api, request, problem, saveSession, keepUser } from './api.js';
import { connect } from './socket.js';

export function showMe() {
  const u = state.session?.user;
  $('me').textContent = u ? nameOf(u) : '';
  $('me').setAttribute('aria-label', u ? `Settings for ${u.username}` : 'Settings');
}

$('me').addEventListener('click', async () => {
  openDialog('settings-dialog');
  $('display-name').value = state.session?.user.display_name || '';
  $('current-password').value = '';
  $('new-password').value = '';
  $('display-name').focus();
  // The latest profile, in case another tab changed it.
  try {
    const profile = await api('GET', '/v1/me');
    keepUser(profile);
    if (document.activeElement !== $('display-name')) $('display-name').value = profile.display_name || '';
    showMe();
  } catch { /* the form still works with what we have */ }
});

$('profile-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const display_name = $('display-name').value.trim();
  const profile = await act($('profile-save'), $('profile-error'),
    () => api('PATCH', '/v1/me', { display_name }), problem);
  if (!profile) return;
  keepUser(profile);
  showMe();
  showError($('profile-done'), 'Saved.');
});

$('password-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const current_password = $('current-password').value;
  const new_password = $('new-password').value;
  const error = $('password-error');
  if (new_password.length < 8) { showError(error, 'The new password needs at least 8 characters.'); return; }
  const changed = await act($('password-save'), error,
    () => api('PUT', '/v1/me/password', { current_password, new_password }), problem);
  if (changed === undefined) return;
  // Every session ended with the change, this one too: sign in again with the new password.
  const username = state.session.user.username;
  const again = await act(null, error,
    () => request('POST', '/v1/users/login', { username, password: new_password }), problem);
  if (!again) return;
  saveSession(again);
  showMe();
  connect();
  $('current-password').value = '';
  $('new-password').value = '';
  closeDialog('settings-dialog');
});
