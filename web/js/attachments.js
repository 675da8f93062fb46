// Files in messages: images as thumbnails (a click shows the whole picture in a viewer), other
// files as a download button with their name and size. Fetching a file needs the bearer
// header, so every one is fetched and shown through a blob: URL; thumbnails are kept per
// attachment id (the oldest unused ones let go past a limit), the rest revoked once used.

import { $, el, button, icon, toast } from './dom.js';
import { apiRaw, problem } from './api.js';

const IMAGES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];

/** Whether the server serves this attachment as an image (and has a thumbnail of it). */
export const isImage = (a) => a.width != null && a.height != null && IMAGES.includes(a.content_type);

/** 512 B, 3.4 KB, 12 MB. */
export function humanSize(n) {
  if (!(n >= 1024)) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v < 9.95 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** A server's sentence with its byte counts made readable ("at most 10485760 bytes"). */
export const readableBytes = (text) => text.replace(/(\d+) bytes/g, (_, n) => humanSize(Number(n)));

// ---- Thumbnails, kept per attachment id ----

const MAX_THUMBS = 200;
const thumbs = new Map(); // attachment id -> {promise, url}; the last used at the end

function thumbnail(id) {
  let entry = thumbs.get(id);
  if (entry) {
    thumbs.delete(id); // to the end: used just now
  } else {
    entry = { url: null };
    entry.promise = apiRaw(`/v1/attachments/${id}/thumbnail`).then((r) => r.blob()).then((b) => {
      entry.url = URL.createObjectURL(b);
      return entry.url;
    });
    entry.promise.catch(() => { if (thumbs.get(id) === entry) thumbs.delete(id); }); // asked again next time
  }
  thumbs.set(id, entry);
  trim();
  return entry.promise;
}

/** Lets go of the least recently used thumbnails that no image on the page shows. */
function trim() {
  if (thumbs.size <= MAX_THUMBS) return;
  const shown = new Set([...document.querySelectorAll('img[src^="blob:"]')].map((i) => i.src));
  for (const [id, entry] of thumbs) {
    if (thumbs.size <= MAX_THUMBS) break;
    if (!entry.url || shown.has(entry.url)) continue;
    URL.revokeObjectURL(entry.url);
    thumbs.delete(id);
  }
}

/** Signing out: every kept file goes. */
export function forgetFiles() {
  thumbs.forEach((entry) => { if (entry.url) URL.revokeObjectURL(entry.url); });
  thumbs.clear();
  closeViewer();
}

// ---- In a message ----

/** Fills a message's files; left alone when it shows the same ones already (no flicker). */
export function fillAttachments(box, m) {
  const list = m.deleted ? [] : (m.attachments || []);
  const key = list.map((a) => a.id).join(',');
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.replaceChildren(...list.map((a) => (isImage(a) ? imageTile(a) : fileButton(a))));
}

/** `w`×`h` made to fit in `maxW`×`maxH`, never larger than it is. */
function fit(w, h, maxW, maxH) {
  const s = Math.min(1, maxW / w, maxH / h);
  return [Math.max(1, Math.round(w * s)), Math.max(1, Math.round(h * s))];
}

function imageTile(a) {
  const img = el('img');
  [img.width, img.height] = fit(a.width, a.height, 280, 220); // its room, before it loads
  img.alt = a.name;
  img.decoding = 'async';
  const tile = button('', () => openViewer(a), 'thumb', `Open image ${a.name}, ${humanSize(a.size)}`);
  tile.title = a.name;
  tile.append(img);
  // An image the server has no thumbnail of (a huge one) is offered as a download instead.
  thumbnail(a.id).then((url) => { img.src = url; }, () => tile.replaceWith(fileButton(a)));
  return tile;
}

function fileButton(a) {
  const b = button('', () => download(a, b), 'file', `Download ${a.name}, ${humanSize(a.size)}`);
  b.title = a.name;
  b.append(icon('file', 'icon file-icon'), el('span', 'file-name', a.name), el('span', 'file-size', humanSize(a.size)));
  return b;
}

/** Fetches the file and hands it to the browser as a download under its own name. */
async function download(a, b) {
  if (b) { b.disabled = true; b.classList.add('busy'); }
  try {
    const blob = await (await apiRaw(`/v1/attachments/${a.id}`)).blob();
    const url = URL.createObjectURL(blob);
    const link = el('a');
    link.href = url;
    link.download = a.name;
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000); // the download has long started by then
  } catch (e) {
    toast(`Could not download ${a.name}: ${problem(e)}`);
  } finally {
    if (b) { b.disabled = false; b.classList.remove('busy'); }
  }
}

// ---- The viewer: one image, whole ----

const viewer = $('viewer');
const viewerImg = $('viewer-image');
let shown = null; // {a, url} of the image in the viewer

async function openViewer(a) {
  closeViewer();
  const mine = { a, url: null };
  shown = mine;
  $('viewer-name').textContent = a.name;
  $('viewer-size').textContent = `${humanSize(a.size)}${a.width ? `, ${a.width} × ${a.height}` : ''}`;
  $('viewer-status').textContent = 'Loading…';
  viewerImg.alt = a.name;
  const thumb = thumbs.get(a.id)?.url;
  if (thumb) viewerImg.src = thumb; else viewerImg.removeAttribute('src');
  viewer.showModal();
  $('viewer-close').focus();
  try {
    const blob = await (await apiRaw(`/v1/attachments/${a.id}`)).blob();
    if (shown !== mine) return;
    mine.url = URL.createObjectURL(blob);
    viewerImg.src = mine.url;
    $('viewer-status').textContent = '';
  } catch (e) {
    if (shown === mine) $('viewer-status').textContent = `Could not load the image: ${problem(e)}`;
  }
}

function closeViewer() {
  if (viewer.open) viewer.close();
  else forgetShown();
}

function forgetShown() {
  if (shown?.url) URL.revokeObjectURL(shown.url);
  shown = null;
  viewerImg.removeAttribute('src');
}

viewer.addEventListener('close', forgetShown);
// A click on the dark backdrop (the dialog itself, outside its content) closes it too.
viewer.addEventListener('click', (e) => { if (e.target === viewer) viewer.close(); });
$('viewer-close').addEventListener('click', () => viewer.close());
$('viewer-download').addEventListener('click', () => { if (shown) download(shown.a, $('viewer-download')); });
