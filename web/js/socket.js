// The one WebSocket (/ws): connect, ping, reconnect with backoff and `since`, so that a
// message missed while away is replayed once it is back.

import { state } from './state.js';
import { $ } from './dom.js';
import { api, refreshToken } from './api.js';

let handlers = {};
let ws = null;
let ready = false;        // whether this socket's `ready` has come
let retries = 0;          // failed attempts since the last `ready`: the backoff exponent
let retryTimer = null;
let pingTimer = null;
let lastFrameAt = 0;
let checkToken = false;   // the last attempt never opened: maybe the token was refused

/** Socket events by `type`. */
export function setHandlers(h) { handlers = h; }

export const isReady = () => ready;

function setStatus() {
  const status = $('status');
  status.textContent = ready ? 'connected' : 'reconnecting…';
  status.classList.toggle('ok', ready);
}

/** The `ready` frame came: the backoff starts over. */
export function markReady() {
  ready = true;
  retries = 0;
  setStatus();
}

export async function connect() {
  clearTimeout(retryTimer);
  drop();
  if (!state.session) return;
  try {
    // A refused token looks like any failed connection to the browser, so ask over HTTP (which
    // refreshes on 401); refresh ahead of time when the token is about to run out anyway.
    if (Date.now() > state.session.expires_at - 30000) await refreshToken();
    else if (checkToken) await api('GET', '/v1/test-auth');
  } catch {
    if (state.session) scheduleReconnect();
    return;
  }
  if (!state.session || ws) return;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const since = state.maxId === null ? '' : `&since=${state.maxId}`;
  const token = encodeURIComponent(state.session.token);
  const sock = new WebSocket(`${proto}//${location.host}/ws?token=${token}${since}`);
  ws = sock;
  let opened = false;
  sock.onopen = () => {
    opened = true;
    lastFrameAt = Date.now();
    pingTimer = setInterval(ping, 25000);
  };
  sock.onmessage = (ev) => {
    if (ws !== sock) return;
    lastFrameAt = Date.now();
    let e;
    try { e = JSON.parse(ev.data); } catch { return; }
    if (Object.prototype.hasOwnProperty.call(handlers, e?.type)) handlers[e.type](e);
  };
  sock.onclose = () => {
    if (ws !== sock) return; // replaced or dropped on purpose
    checkToken = !opened;
    drop();
    scheduleReconnect();
  };
}

/** Every 25 s; a socket silent for a minute (a sleeping laptop, dead Wi-Fi) is given up on. */
function ping() {
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  if (Date.now() - lastFrameAt > 60000) { drop(); scheduleReconnect(); return; }
  ws.send(JSON.stringify({ type: 'ping' }));
}

export function drop() {
  clearInterval(pingTimer);
  const old = ws;
  ws = null;
  old?.close();
  ready = false;
  setStatus();
}

/** 1 s, 2 s, 4 s, 8 s, then 15 s between attempts until a `ready`. */
function scheduleReconnect() {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connect, Math.min(1000 * 2 ** retries, 15000));
  retries += 1;
}

/** Stops for good (signed out). */
export function stop() {
  clearTimeout(retryTimer);
  drop();
  retries = 0;
  checkToken = false;
}

export const sendFrame = (frame) => { if (ws && ready) ws.send(JSON.stringify(frame)); };

// Coming back (network up, tab shown again): do not wait out the backoff.
export function reconnectNow() {
  if (state.session && !ws) { retries = 0; connect(); }
}
window.addEventListener('online', reconnectNow);
