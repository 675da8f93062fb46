// HTTP to this server (same origin, /v1/…): one JSON request at a time, the access token
// refreshed once on a 401, and every error as an ApiError carrying the server's message.

import { state } from './state.js';

const SESSION_KEY = 'chatserver.session';

export class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

/** The message to show a person for a failed action. */
export function problem(e) {
  if (e instanceof ApiError) return e.message || `The server answered ${e.status}.`;
  return 'Cannot reach the server. Check the connection and try again.';
}

/** Keeps a session (sessionStorage: per tab, so two tabs can be two different people). */
export function saveSession(r) {
  state.session = { token: r.token, refresh_token: r.refresh_token,
    expires_at: Date.now() + (r.expires_in || 3600) * 1000, user: r.user };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(state.session));
}

/** The signed-in person's profile changed (display name): kept with the session. */
export function keepUser(user) {
  if (!state.session) return;
  state.session.user = { ...state.session.user, ...user };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(state.session));
}

export function loadSession() {
  try { state.session = JSON.parse(sessionStorage.getItem(SESSION_KEY)); } catch { state.session = null; }
  if (!state.session?.token || !state.session.user) state.session = null;
  return state.session;
}

export function forgetSession() {
  state.session = null;
  sessionStorage.removeItem(SESSION_KEY);
}

/** One request; resolves to {data, headers}. Throws ApiError for an error answer. */
export async function requestFull(method, path, body, token) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, data?.code ?? `http_${res.status}`, data?.error ?? res.statusText);
  return { data, headers: res.headers };
}

export const request = async (method, path, body, token) =>
  (await requestFull(method, path, body, token)).data;

let refreshing = null; // one refresh at a time, shared by every caller that got a 401
let onSignedOut = () => {};

/** What to do when the session cannot be renewed (the login screen). */
export function whenSignedOut(f) { onSignedOut = f; }

/** Trades the refresh token for a new pair; a refused refresh token ends the session. */
export function refreshToken() {
  if (!refreshing) {
    const s = state.session;
    if (!s) return Promise.reject(new ApiError(401, 'unauthorized', 'signed out'));
    refreshing = request('POST', '/v1/auth/refresh', { refresh_token: s.refresh_token })
      .then((r) => { if (state.session === s) saveSession(r); }, (e) => {
        if (e instanceof ApiError && e.status === 401 && state.session === s) {
          onSignedOut('Your session has ended. Please log in again.');
        }
        throw e;
      })
      .finally(() => { refreshing = null; });
  }
  return refreshing;
}

/** An authenticated request; on 401 it refreshes the access token once and retries. */
export async function apiFull(method, path, body) {
  if (!state.session) throw new ApiError(401, 'unauthorized', 'signed out');
  try { return await requestFull(method, path, body, state.session.token); } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
  }
  await refreshToken();
  if (!state.session) throw new ApiError(401, 'unauthorized', 'signed out');
  return requestFull(method, path, body, state.session.token);
}

export const api = async (method, path, body) => (await apiFull(method, path, body)).data;

/** An error answer as an ApiError, from a fetch() Response or an XHR's status and text. */
export function answerError(status, text, statusText = '') {
  let data = null;
  try { data = JSON.parse(text); } catch { /* not JSON: a proxy's page, say */ }
  return new ApiError(status, data?.code ?? `http_${status}`, data?.error ?? (statusText || `HTTP ${status}`));
}

/**
 * An authenticated GET of something that is not JSON (an attachment): the Response, after one
 * refresh on 401. Throws ApiError for an error answer.
 */
export async function apiRaw(path) {
  const get = () => fetch(path, { headers: { Authorization: `Bearer ${state.session.token}` } });
  if (!state.session) throw new ApiError(401, 'unauthorized', 'signed out');
  let res = await get();
  if (res.status === 401) {
    await refreshToken();
    if (!state.session) throw new ApiError(401, 'unauthorized', 'signed out');
    res = await get();
  }
  if (!res.ok) throw answerError(res.status, await res.text().catch(() => ''), res.statusText);
  return res;
}
