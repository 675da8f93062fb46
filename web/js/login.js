// The first screen: log in with a username (or email) and password, or sign up when the
// server lets anyone register. On the server's own machine it names the demo accounts.

import { state } from './state.js';
import { $, button, el, showError } from './dom.js';
import { request, saveSession, ApiError, problem } from './api.js';

let onSignedIn = () => {};
export function whenSignedIn(f) { onSignedIn = f; }

let signingUp = false;

function setMode(up) {
  signingUp = up && state.registration === 'open';
  $('login-title').textContent = signingUp ? 'Create an account' : 'Log in';
  $('email-row').hidden = !signingUp;
  $('login-submit').textContent = signingUp ? 'Sign up' : 'Log in';
  $('login-password').autocomplete = signingUp ? 'new-password' : 'current-password';
  $('login-username-hint').hidden = signingUp;
  $('switch-mode').textContent = signingUp ? 'I already have an account' : 'Create an account';
  $('switch-row').hidden = state.registration !== 'open';
  showError($('login-error'), '');
}

$('switch-mode').addEventListener('click', () => { setMode(!signingUp); $('login-username').focus(); });

function loginProblem(e) {
  if (!(e instanceof ApiError)) return problem(e);
  if (e.status === 401) return 'Wrong username/email or password.';
  if (e.status === 429) return `Too many attempts. ${e.message}`;
  return e.message;
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const id = $('login-username').value.trim();
  const password = $('login-password').value;
  const email = $('login-email').value.trim();
  const error = $('login-error');
  if (!id || !password || (signingUp && !email)) {
    showError(error, signingUp ? 'Fill in a username, your email and a password.'
      : 'Enter your username (or email) and your password.');
    return;
  }
  $('login-submit').disabled = true;
  showError(error, '');
  try {
    if (signingUp) await request('POST', '/v1/users/register', { username: id, email, password });
    const body = !signingUp && id.includes('@') ? { email: id, password } : { username: id, password };
    saveSession(await request('POST', '/v1/users/login', body));
    $('login-password').value = '';
    setMode(false);
    onSignedIn();
  } catch (err) {
    showError(error, loginProblem(err));
  } finally {
    $('login-submit').disabled = false;
  }
});

/** What the server says before anyone signs in: is sign-up open, and the demo accounts. */
export async function showWelcome() {
  let welcome;
  try { welcome = await request('GET', '/v1/welcome'); } catch { welcome = {}; }
  state.registration = welcome.registration || 'closed';
  setMode(signingUp);
  const accounts = welcome.demo_accounts || [];
  const hint = $('login-hint');
  hint.replaceChildren();
  hint.hidden = !accounts.length;
  if (!accounts.length) return;
  hint.append('Try a demo account: ');
  accounts.forEach((a, i) => {
    const b = button(a.username, () => {
      setMode(false);
      $('login-username').value = a.username;
      $('login-password').value = a.password;
      $('login-submit').focus();
    }, 'link', `Fill in ${a.username}`);
    if (i > 0) hint.append(i === accounts.length - 1 ? ' or ' : ', ');
    hint.append(b);
  });
  if (accounts.every((a) => a.password === accounts[0].password)) {
    hint.append(', password ', el('code', null, accounts[0].password), '.');
  } else hint.append('.');
}

export function showLogin(message) {
  $('app-view').hidden = true;
  $('login-view').hidden = false;
  setMode(false);
  showError($('login-error'), message || '');
  $('login-username').focus();
  showWelcome();
}
