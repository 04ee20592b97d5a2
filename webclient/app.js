/*
 * The upload page: a queue of resumable tus uploads and the list of stored files.
 *
 * Configuration (query string or <body> data- attributes): see config.js, which also holds the
 * rules that keep a crafted link to this page from sending uploads or links elsewhere.
 * Example: /?chunkSize=1048576&parallel=2
 *
 * The protocol lives in tus/upload.js; this file only wires it to the DOM.
 */

import { createAccount } from './account.js';
import { ApiClient } from './api.js';
import { copyText } from './clipboard.js';
import { attachEditAction } from './edit.js';
import { createFileTable, parseTags } from './file-table.js';
import { thumbnailSoon } from './thumbnail.js';
import { isCrossOrigin, parseInteger, readConfig, safeHref } from './config.js';
import { followFileEvents, mergeFileEvent } from './events.js';
import {
  DEFAULT_LINK_LIFETIME,
  LINK_LIFETIMES,
  formatBytes,
  formatDate,
  formatDuration,
  percentOf,
  SpeedMeter,
} from './format.js';
import { XhrTransport } from './tus/transport.js';
import { Upload } from './tus/upload.js';
import { UrlStore, fingerprint } from './tus/url-store.js';

const PAGE_SIZE = 50;
const PROGRESS_TEXT_INTERVAL_MS = 1000; // live-region updates: often enough, not chatty
const MAX_ERRORS_SHOWN = 5;
const ACTIVE_STATES = new Set(['uploading', 'retrying']);

// ---- configuration ----------------------------------------------------------------------------

const config = readConfig({
  search: window.location.search,
  dataset: document.body.dataset,
  baseURI: document.baseURI,
});
const urlStore = new UrlStore();
// Same-origin requests carry the session cookie anyway; another origin needs it asked for.
const transport = new XhrTransport({
  withCredentials: isCrossOrigin(config.endpoint, config.pageOrigin),
});
const api = new ApiClient({
  base: config.apiBase,
  credentials: isCrossOrigin(config.apiBase, config.pageOrigin) ? 'include' : 'same-origin',
  onUnauthorized: () => account?.sessionEnded(),
});
/** Who is signed in, and what the page shows them; set up in init(). */
let account = null;

const $ = (id) => document.getElementById(id);
const els = {
  errors: $('errors'),
  announcer: $('announcer'),
  dropZone: $('drop-zone'),
  fileInput: $('file-input'),
  concurrency: $('concurrency'),
  parallel: $('parallel'),
  pasteForm: $('paste-form'),
  pasteName: $('paste-name'),
  pasteText: $('paste-text'),
  queue: $('queue'),
  queueEmpty: $('queue-empty'),
  clearFinished: $('clear-finished'),
  fileList: $('file-list'),
  fileListStatus: $('file-list-status'),
  fileListMore: $('file-list-more'),
  filesHeading: $('files-heading'),
  refreshList: $('refresh-list'),
  uploadRowTemplate: $('upload-row-template'),
  fileRowTemplate: $('file-row-template'),
};
const fileTable = createFileTable({
  form: $('file-search'),
  input: $('file-search-input'),
  chips: $('tag-filters'),
  table: document.querySelector('.file-table'),
  onChange: () => loadFiles(),
});

// ---- messages ---------------------------------------------------------------------------------

function showError(message) {
  const item = document.createElement('p');
  item.className = 'error';
  const text = document.createElement('span');
  text.textContent = message;
  const dismiss = document.createElement('button');
  dismiss.type = 'button';
  dismiss.className = 'button small';
  dismiss.textContent = 'Dismiss';
  dismiss.setAttribute('aria-label', `Dismiss: ${message}`);
  dismiss.addEventListener('click', () => item.remove());
  item.append(text, dismiss);
  els.errors.append(item);
  while (els.errors.children.length > MAX_ERRORS_SHOWN) els.errors.firstElementChild.remove();
}

function announce(message) {
  // Clear first so that repeating the same message is announced again.
  els.announcer.textContent = '';
  setTimeout(() => {
    els.announcer.textContent = message;
  }, 50);
}

// ---- the upload queue -------------------------------------------------------------------------

/** Queue entries, in the order they were added; see addFile() for their fields. */
const queue = [];

function concurrencyLimit() {
  return parseInteger(els.concurrency.value, 1, 10, config.concurrency);
}

function addFiles(fileList) {
  // Images get a thumbnail made from the local file first (a moment at most; others at once).
  const files = [...fileList];
  Promise.all(files.map((file) => thumbnailSoon(file))).then((thumbnails) => {
    files.forEach((file, index) => addFile(file, thumbnails[index]));
    pump();
  });
}

function addFile(file, thumbnail = null) {
  const fp = fingerprint(file, config.endpoint);
  const duplicate = queue.find((item) => item.fp === fp && item.state !== 'done');
  if (duplicate) {
    showError(`“${file.name}” is already in the queue.`);
    return;
  }
  const item = {
    file,
    fp,
    parallel: parseInteger(els.parallel.value, 1, 6, 1),
    upload: null,
    row: createUploadRow(file),
    state: 'queued',
    sent: 0,
    meter: new SpeedMeter(),
    measureFromNextReport: false,
    resumedFrom: null,
    resumable: urlStore.get(fp) !== null, // an earlier page load left this file unfinished
    error: null,
    lastText: 0,
    retryText: '',
    thumbnail,
  };
  queue.push(item);
  els.queue.append(item.row);
  bindRowButtons(item);
  setItemState(item, 'queued');
  updateQueueChrome();
}

/** Start queued uploads while fewer than the configured number are running. */
function pump() {
  let active = queue.filter((item) => ACTIVE_STATES.has(item.state)).length;
  for (const item of queue) {
    if (active >= concurrencyLimit()) break;
    if (item.state === 'queued') {
      startItem(item);
      active += 1;
    }
  }
}

function startItem(item) {
  item.upload ??= createUpload(item);
  item.measureFromNextReport = true;
  setItemState(item, 'uploading');
  item.upload.start();
}

function createUpload(item) {
  return new Upload(item.file, {
    endpoint: config.endpoint,
    chunkSize: config.chunkSize,
    retryDelays: config.retryDelays,
    parallelUploads: item.parallel,
    metadata: item.thumbnail ? { thumbnail: item.thumbnail } : {},
    transport,
    urlStore,
    onProgress: (sent, total) => onItemProgress(item, sent, total),
    onRetry: (attempt, delay, reason) => onItemRetry(item, attempt, delay, reason),
    onStateChange: (state) => onUploadStateChange(item, state),
    onSuccess: () => onItemEnded(item),
    onError: (error) => {
      showError(`Upload of “${item.file.name}” failed: ${error.message}`);
      onItemEnded(item, error);
    },
  });
}

function onUploadStateChange(item, state) {
  // 'done' and 'error' arrive with onSuccess/onError (which carry the details); 'idle' and
  // 'aborted' are the queue's own business (queued / removed rows).
  if (['uploading', 'retrying', 'paused'].includes(state)) {
    // After a retry the next report is the server's offset (HEAD): measure speed from there.
    if (state === 'uploading' && item.state === 'retrying') item.measureFromNextReport = true;
    setItemState(item, state);
  }
}

function onItemProgress(item, sent) {
  // The first report after (re)starting is the server's offset, not bytes sent just now.
  if (item.measureFromNextReport) {
    item.measureFromNextReport = false;
    item.meter.reset(sent);
    // A first report above zero means the server already had bytes from an earlier session.
    if (item.sent === 0 && sent > 0) item.resumedFrom = sent;
  } else {
    item.meter.add(sent);
  }
  item.sent = sent;
  renderProgress(item);
}

function onItemRetry(item, attempt, delay, reason) {
  const wait = delay > 0 ? `in ${formatDuration(delay / 1000)}` : 'now';
  item.retryText = `Problem: ${reason.message}. Retrying ${wait} (attempt ${attempt} of ${config.retryDelays.length}).`;
  setItemState(item, 'retrying');
}

function onItemEnded(item, error = null) {
  item.error = error;
  setItemState(item, error ? 'error' : 'done');
  if (!error) announce(`Upload of ${item.file.name} complete.`);
  scheduleListRefresh();
  pump();
}

function setItemState(item, state) {
  item.state = state;
  renderItem(item);
  updateQueueChrome();
  if (!ACTIVE_STATES.has(state)) pump();
}

// ---- queue row rendering ----------------------------------------------------------------------

function createUploadRow(file) {
  const row = els.uploadRowTemplate.content.firstElementChild.cloneNode(true);
  const part = (id) => row.querySelector(`[data-testid="${id}"]`);
  part('name').textContent = file.name;
  part('progress').setAttribute('aria-label', `Progress of ${file.name}`);
  part('pause').setAttribute('aria-label', `Pause ${file.name}`);
  part('resume').setAttribute('aria-label', `Resume ${file.name}`);
  part('cancel').setAttribute('aria-label', `Cancel ${file.name}`);
  return row;
}

function rowPart(item, id) {
  return item.row.querySelector(`[data-testid="${id}"]`);
}

function renderItem(item) {
  const { row, state } = item;
  row.dataset.state = state;
  renderStatus(item);
  const buttons = {
    pause: ACTIVE_STATES.has(state),
    resume: state === 'paused' || state === 'error',
    cancel: state !== 'done',
  };
  for (const [name, visible] of Object.entries(buttons)) rowPart(item, name).hidden = !visible;
  const resumeLabel = state === 'error' ? 'Retry' : 'Resume';
  rowPart(item, 'resume').textContent = resumeLabel;
  rowPart(item, 'resume').setAttribute('aria-label', `${resumeLabel} ${item.file.name}`);
  renderProgress(item, { force: true });
}

function renderStatus(item) {
  const status = rowPart(item, 'status');
  const text = statusText(item);
  if (status.textContent !== text) status.textContent = text; // unchanged: no live announcement
}

function statusText(item) {
  switch (item.state) {
    case 'queued':
      return item.resumable ? 'Waiting — will resume the earlier upload' : 'Waiting';
    case 'uploading': {
      const parts = item.upload?.partUrls.length ?? 0;
      const resumed = item.resumedFrom
        ? ` — resumed at ${percentOf(item.resumedFrom, item.file.size)}%`
        : '';
      return `${parts > 1 ? `Uploading in ${parts} parts` : 'Uploading'}${resumed}`;
    }
    case 'retrying':
      return item.retryText || 'Retrying';
    case 'paused':
      return 'Paused';
    case 'done':
      return 'Done';
    case 'error':
      return `Failed: ${item.error?.message ?? 'unknown error'}`;
    default:
      return '';
  }
}

function renderProgress(item, { force = false } = {}) {
  const total = item.file.size;
  const done = item.state === 'done';
  const percent = done ? 100 : total > 0 ? percentOf(item.sent, total) : 0;
  const progress = rowPart(item, 'progress');
  progress.max = Math.max(total, 1);
  progress.value = done ? progress.max : item.sent;
  rowPart(item, 'percent').textContent = `${percent}%`;
  renderStatus(item); // "Uploading in 3 parts" / "resumed at" are known only after a moment

  // The text lines are live regions: throttle them so screen readers are not flooded.
  const now = Date.now();
  if (!force && now - item.lastText < PROGRESS_TEXT_INTERVAL_MS) return;
  item.lastText = now;
  const sent = done ? total : item.sent;
  rowPart(item, 'bytes').textContent = `${formatBytes(sent)} of ${formatBytes(total)}`;
  const running = item.state === 'uploading';
  const speed = running ? item.meter.bytesPerSecond : null;
  const left = running ? item.meter.secondsLeft(sent, total) : null;
  rowPart(item, 'speed').textContent = speed === null ? '' : `${formatBytes(Math.round(speed))}/s`;
  rowPart(item, 'eta').textContent = left === null ? '' : `${formatDuration(left)} left`;
}

function updateQueueChrome() {
  els.queueEmpty.hidden = queue.length > 0;
  els.clearFinished.hidden = !queue.some((item) => item.state === 'done');
}

// ---- queue row actions ------------------------------------------------------------------------

function bindRowButtons(item) {
  rowPart(item, 'pause').addEventListener('click', () => pauseItem(item));
  rowPart(item, 'resume').addEventListener('click', () => resumeItem(item));
  rowPart(item, 'cancel').addEventListener('click', () => cancelItem(item));
}

function pauseItem(item) {
  const hadFocus = item.row.contains(document.activeElement);
  item.upload?.pause();
  setItemState(item, 'paused');
  if (hadFocus) rowPart(item, 'resume').focus(); // the pause button just got hidden
}

function resumeItem(item) {
  const hadFocus = item.row.contains(document.activeElement);
  item.error = null;
  setItemState(item, 'queued'); // respects the concurrency limit; pump() starts it if a slot is free
  if (hadFocus) focusFirstVisibleButton(item);
}

async function cancelItem(item) {
  const index = queue.indexOf(item);
  if (index === -1) return;
  queue.splice(index, 1);
  focusAfterRemoval(item.row);
  item.row.remove();
  updateQueueChrome();
  pump();
  try {
    // Terminate on the server too (also an earlier upload of this file found in storage).
    await (item.upload ?? createUpload(item)).abort(true);
    announce(`Upload of ${item.file.name} cancelled.`);
  } catch (error) {
    showError(`Could not delete the upload of “${item.file.name}” on the server: ${error.message}`);
  }
  scheduleListRefresh();
}

function focusFirstVisibleButton(item) {
  const button = [...item.row.querySelectorAll('button')].find((b) => !b.hidden);
  button?.focus();
}

/** Before removing an element that may hold focus, move focus somewhere sensible. */
function focusAfterRemoval(element) {
  if (!element.contains(document.activeElement)) return;
  const next = element.nextElementSibling ?? element.previousElementSibling;
  const target = next?.querySelector('button:not([hidden]), a[href]');
  if (target) target.focus();
  else els.dropZone.focus();
}

function clearFinished() {
  for (const item of queue.filter((i) => i.state === 'done')) {
    queue.splice(queue.indexOf(item), 1);
    item.row.remove();
  }
  updateQueueChrome();
  els.dropZone.focus();
}

// ---- picking files: input, drop zone, pasted text ---------------------------------------------

function openPicker() {
  els.fileInput.click();
}

function bindPicker() {
  els.fileInput.addEventListener('change', () => {
    addFiles([...els.fileInput.files]);
    els.fileInput.value = ''; // so picking the same file again fires "change" again
  });
  els.dropZone.addEventListener('click', openPicker);
  els.dropZone.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault(); // Space would scroll the page
      openPicker();
    }
  });
  for (const type of ['dragenter', 'dragover']) {
    els.dropZone.addEventListener(type, (event) => {
      event.preventDefault();
      event.dataTransfer.dropEffect = 'copy';
      els.dropZone.classList.add('dragging');
    });
  }
  els.dropZone.addEventListener('dragleave', (event) => {
    if (!els.dropZone.contains(event.relatedTarget)) els.dropZone.classList.remove('dragging');
  });
  els.dropZone.addEventListener('drop', (event) => {
    event.preventDefault();
    els.dropZone.classList.remove('dragging');
    const files = [...(event.dataTransfer?.files ?? [])];
    if (files.length) addFiles(files);
  });
  // A file dropped next to the zone must not make the browser navigate away from the page.
  // Only for files: dragging text into the textarea must keep working.
  const isFileDrag = (event) => event.dataTransfer?.types?.includes('Files');
  window.addEventListener('dragover', (event) => isFileDrag(event) && event.preventDefault());
  window.addEventListener('drop', (event) => isFileDrag(event) && event.preventDefault());
}

function bindPaste() {
  els.pasteForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = els.pasteText.value;
    if (text.trim() === '') {
      showError('Type or paste some text to upload first.');
      els.pasteText.focus();
      return;
    }
    let name = els.pasteName.value.trim() || 'pasted-text';
    if (!/\.txt$/i.test(name)) name += '.txt';
    // lastModified = now: two pastes with the same name are different files, not a resume.
    addFiles([new File([text], name, { type: 'text/plain', lastModified: Date.now() })]);
    els.pasteText.value = '';
    els.pasteName.value = '';
  });
}

function bindSettings() {
  els.concurrency.value = String(config.concurrency);
  els.parallel.value = String(config.parallel);
  els.concurrency.addEventListener('change', pump);
  els.clearFinished.addEventListener('click', clearFinished);
}

// ---- the file list (JSON API) -----------------------------------------------------------------

const fileList = { uploads: [], total: 0, loading: false, owner: '' };
let refreshTimer = null;

async function loadFiles({ append = false } = {}) {
  if (!account?.signedIn) return;
  if (fileList.loading) {
    // A reload asked for while one runs (a filter changed, a live event came) is not dropped:
    // it runs when this one ends, so the table always ends up showing the latest query.
    if (!append) fileList.reloadAgain = true;
    return;
  }
  fileList.loading = true;
  els.fileListMore.disabled = true;
  const query = {
    limit: PAGE_SIZE,
    offset: append ? fileList.uploads.length : 0,
    owner: account.isAdmin ? fileList.owner : '',
    ...fileTable.query(),
  };
  try {
    const page = await api.request('GET', config.api, { query });
    const uploads = Array.isArray(page?.uploads) ? page.uploads : [];
    fileList.uploads = append ? mergeById(fileList.uploads, uploads) : uploads;
    fileList.total = Number.isFinite(page?.total) ? page.total : fileList.uploads.length;
    renderFileList();
    if (!append) account.refreshUsage(); // uploads and deletions change the storage used
  } catch (error) {
    els.fileListStatus.textContent = 'Could not load the file list.';
    if (error.status !== 401) showError(`Could not load the file list: ${error.message}`);
  } finally {
    fileList.loading = false;
    els.fileListMore.disabled = false;
    if (fileList.reloadAgain) {
      fileList.reloadAgain = false;
      loadFiles();
    }
  }
}

/** Empty the list (signed out, or another user signed in). */
function clearFileList() {
  clearTimeout(refreshTimer);
  fileList.reloadAgain = false;
  fileList.uploads = [];
  fileList.total = 0;
  fileList.owner = '';
  els.fileList.replaceChildren();
  els.fileListStatus.textContent = 'Loading…';
}

function mergeById(existing, more) {
  const seen = new Set(existing.map((u) => u.id));
  return [...existing, ...more.filter((u) => !seen.has(u.id))];
}

/** Uploads ending in a burst cause one reload, not one per upload. */
function scheduleListRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => loadFiles(), 300);
}

// ---- live updates (events.js) -----------------------------------------------------------------

let liveUpdates = null;

/** Follow the signed-in user's file events (an admin's: everyone's) while signed in. */
function startLiveUpdates() {
  liveUpdates?.close();
  const url = new URL('events', config.apiBase).href;
  liveUpdates = followFileEvents({
    url,
    withCredentials: isCrossOrigin(url, config.pageOrigin),
    onEvent: applyFileEvent,
    onReset: scheduleListRefresh,
  });
}

function stopLiveUpdates() {
  liveUpdates?.close();
  liveUpdates = null;
}

/**
 * The one place a file event meets the file table: progress moves a row in place; anything
 * else (a new, finished, renamed, retagged or deleted file) reloads the list, in one burst.
 */
function applyFileEvent(event) {
  const uploads = mergeFileEvent(fileList.uploads, event);
  if (uploads === null) {
    scheduleListRefresh();
  } else if (uploads !== fileList.uploads) {
    fileList.uploads = uploads;
    renderFileList();
  }
}

function renderFileList() {
  const existing = new Map([...els.fileList.children].map((row) => [row.dataset.id, row]));
  const rows = fileList.uploads.map((upload) => {
    const old = existing.get(String(upload.id));
    // Keep a row whose rename/delete form is open: a refresh must not eat what the user typed.
    return old?.dataset.busy === 'true' ? old : createFileRow(upload);
  });
  els.fileList.replaceChildren(...rows);
  renderFileListStatus();
}

function renderFileListStatus() {
  const { total, owner } = fileList;
  const shown = els.fileList.children.length;
  const whose = account?.isAdmin && owner ? ` of ${owner}` : '';
  els.fileListStatus.textContent = total === 0
    ? (fileTable.isFiltered() ? `No files${whose} match.` : whose ? `No files${whose}.` : 'No files uploaded yet.')
    : `${total} ${total === 1 ? 'file' : 'files'}${whose}${shown < total ? `, showing ${shown}` : ''}.`;
  els.fileListMore.hidden = shown >= total;
}

function createFileRow(upload) {
  const row = els.fileRowTemplate.content.firstElementChild.cloneNode(true);
  row.dataset.id = String(upload.id);
  row.dataset.complete = String(Boolean(upload.complete));
  fillFileRow(row, upload);
  bindFileRow(row, upload);
  attachEditAction(row, upload, { api, showError, announce, onSaved: () => loadFiles() });
  return row;
}

function filePart(row, id) {
  return row.querySelector(`[data-testid="${id}"]`);
}

function fillFileRow(row, upload) {
  const link = filePart(row, 'download');
  // Only ever an http(s) URL in href: a javascript: URL here would run in our origin.
  const href = safeHref(upload.download_url, document.baseURI);
  if (href) link.href = href;
  else link.removeAttribute('href');
  link.textContent = upload.filename || '(unnamed)';
  filePart(row, 'size').textContent = formatBytes(upload.size);
  const created = filePart(row, 'created');
  created.dateTime = upload.created ?? '';
  created.textContent = formatDate(upload.created);

  const incomplete = filePart(row, 'incomplete');
  incomplete.hidden = Boolean(upload.complete);
  if (!upload.complete) {
    const progress = incomplete.querySelector('progress');
    const known = Number.isFinite(upload.size) && upload.size > 0;
    const percent = known ? percentOf(upload.offset, upload.size) : null;
    incomplete.querySelector('.incomplete-text').textContent = known
      ? `Incomplete: ${formatBytes(upload.offset)} of ${formatBytes(upload.size)} (${percent}%)`
      : `Incomplete: ${formatBytes(upload.offset)} received, total size not known yet`;
    if (known) {
      progress.max = upload.size;
      progress.value = upload.offset;
    } else {
      progress.removeAttribute('value'); // indeterminate
    }
    progress.setAttribute('aria-label', `Received part of ${upload.filename}`);
  }
  const showOwner = Boolean(account?.isAdmin && account?.accountsOn);
  fileTable.fillRow(row, upload, { showOwner });
  filePart(row, 'owner-meta').hidden = !showOwner;
  filePart(row, 'owner').textContent = upload.owner ?? '—';
  filePart(row, 'share').hidden = !upload.complete;
  filePart(row, 'share').setAttribute('aria-label', `Copy a link to ${upload.filename}`);
  const lifetime = filePart(row, 'share-lifetime');
  lifetime.setAttribute('aria-label', `Lifetime of the link to ${upload.filename}`);
  lifetime.replaceChildren(
    ...LINK_LIFETIMES.map(({ label, seconds }) => new Option(label, String(seconds), false, seconds === DEFAULT_LINK_LIFETIME)),
  );
  filePart(row, 'share-url').setAttribute('aria-label', `Link to ${upload.filename}`);
  filePart(row, 'rename').setAttribute('aria-label', `Rename ${upload.filename}`);
  filePart(row, 'edit-tags').setAttribute('aria-label', `Edit the tags of ${upload.filename}`);
  filePart(row, 'tags-input').setAttribute('aria-label', `Tags of ${upload.filename}`);
  filePart(row, 'delete').setAttribute('aria-label', `Delete ${upload.filename}`);
  filePart(row, 'delete-confirm').setAttribute('aria-label', `Confirm deletion of ${upload.filename}`);
  row.querySelector('.confirm-text').textContent = `Delete “${upload.filename}”? This cannot be undone.`;
}

function bindFileRow(row, upload) {
  const actions = filePart(row, 'file-actions');
  const renameForm = filePart(row, 'rename-form');
  const renameInput = filePart(row, 'rename-input');
  const confirm = filePart(row, 'delete-confirm');
  const shareForm = filePart(row, 'share-form');
  const tagsForm = filePart(row, 'tags-form');
  const tagsInput = filePart(row, 'tags-input');

  const showPanel = (panel) => {
    actions.hidden = panel !== null;
    tagsForm.hidden = panel !== tagsForm;
    renameForm.hidden = panel !== renameForm;
    confirm.hidden = panel !== confirm;
    shareForm.hidden = panel !== shareForm;
    row.dataset.busy = String(panel !== null);
  };

  filePart(row, 'share').addEventListener('click', () => {
    filePart(row, 'share-result').hidden = true;
    showPanel(shareForm);
    filePart(row, 'share-lifetime').focus();
  });
  filePart(row, 'share-close').addEventListener('click', () => {
    showPanel(null);
    filePart(row, 'share').focus();
  });
  shareForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    await shareFile(row, upload);
  });

  filePart(row, 'rename').addEventListener('click', () => {
    renameInput.value = upload.filename ?? '';
    showPanel(renameForm);
    renameInput.focus();
    renameInput.select();
  });
  filePart(row, 'rename-cancel').addEventListener('click', () => {
    showPanel(null);
    filePart(row, 'rename').focus();
  });
  renameForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const filename = renameInput.value.trim();
    if (!filename) {
      showError('A file name cannot be empty.');
      renameInput.focus();
      return;
    }
    await renameFile(row, upload, filename);
  });
  row.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && row.dataset.busy === 'true') {
      const wasSharing = !shareForm.hidden;
      showPanel(null);
      filePart(row, wasSharing ? 'share' : 'rename').focus();
    }
  });

  filePart(row, 'edit-tags').addEventListener('click', () => {
    tagsInput.value = (upload.tags ?? []).join(', ');
    showPanel(tagsForm);
    tagsInput.focus();
  });
  filePart(row, 'tags-cancel').addEventListener('click', () => {
    showPanel(null);
    filePart(row, 'edit-tags').focus();
  });
  tagsForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    let tags;
    try {
      tags = parseTags(tagsInput.value);
    } catch (error) {
      showError(error.message);
      tagsInput.focus();
      return;
    }
    await retagFile(row, upload, tags);
  });

  filePart(row, 'delete').addEventListener('click', () => {
    showPanel(confirm);
    filePart(row, 'cancel-delete').focus(); // the safe choice gets focus
  });
  filePart(row, 'cancel-delete').addEventListener('click', () => {
    showPanel(null);
    filePart(row, 'delete').focus();
  });
  filePart(row, 'confirm-delete').addEventListener('click', () => deleteFile(row, upload));
}

/** Create a signed link of the chosen lifetime, show it, and put it on the clipboard. */
async function shareFile(row, upload) {
  const button = filePart(row, 'share-create');
  const seconds = Number(filePart(row, 'share-lifetime').value);
  button.disabled = true;
  try {
    const link = await api.createLink(upload.id, seconds);
    const url = safeHref(link?.url, document.baseURI);
    if (!url) throw new Error('the server answered without a usable link');
    const field = filePart(row, 'share-url');
    field.value = url;
    filePart(row, 'share-url-caption').textContent = `Link, valid until ${formatDate(link.expires, 'it expires')}`;
    filePart(row, 'share-result').hidden = false;
    field.focus();
    field.select();
    const copied = await copyText(url);
    announce(copied ? `Link to ${upload.filename} copied.` : `Link to ${upload.filename} created: copy it from the field.`);
  } catch (error) {
    showError(`Could not create a link to “${upload.filename}”: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

async function renameFile(row, upload, filename) {
  const save = filePart(row, 'rename-save');
  save.disabled = true;
  try {
    const updated = await api.renameUpload(upload.id, filename);
    const fresh = { ...upload, ...(updated ?? { filename }) };
    fileList.uploads = fileList.uploads.map((u) => (u.id === upload.id ? fresh : u));
    const replacement = createFileRow(fresh);
    row.replaceWith(replacement);
    filePart(replacement, 'rename').focus();
    announce(`Renamed to ${fresh.filename}.`);
  } catch (error) {
    showError(`Could not rename “${upload.filename}”: ${error.message}`);
    save.disabled = false;
  }
}

async function retagFile(row, upload, tags) {
  const save = filePart(row, 'tags-save');
  save.disabled = true;
  try {
    const updated = await api.setTags(upload.id, tags);
    const fresh = { ...upload, ...(updated ?? { tags }) };
    fileList.uploads = fileList.uploads.map((u) => (u.id === upload.id ? fresh : u));
    const replacement = createFileRow(fresh);
    row.replaceWith(replacement);
    filePart(replacement, 'edit-tags').focus();
    announce(`Tags of ${fresh.filename}: ${tags.length ? tags.join(', ') : 'none'}.`);
  } catch (error) {
    showError(`Could not change the tags of “${upload.filename}”: ${error.message}`);
    save.disabled = false;
  }
}

async function deleteFile(row, upload) {
  const button = filePart(row, 'confirm-delete');
  button.disabled = true;
  try {
    await api.deleteUpload(upload.id);
    fileList.uploads = fileList.uploads.filter((u) => u.id !== upload.id);
    fileList.total = Math.max(0, fileList.total - 1);
    const next = row.nextElementSibling ?? row.previousElementSibling;
    row.remove();
    renderFileListStatus();
    // Keep keyboard users in the list instead of dropping focus to <body>.
    if (next) filePart(next, 'download').focus();
    else els.filesHeading.focus();
    announce(`Deleted ${upload.filename}.`);
  } catch (error) {
    showError(`Could not delete “${upload.filename}”: ${error.message}`);
    button.disabled = false;
  }
}

// ---- start ------------------------------------------------------------------------------------

// ---- owner filter (admins) --------------------------------------------------------------------

function bindOwnerFilter() {
  const form = $('owner-filter');
  const input = $('owner-filter-input');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    fileList.owner = input.value.trim();
    loadFiles();
  });
  $('owner-filter-clear').addEventListener('click', () => {
    input.value = '';
    fileList.owner = '';
    loadFiles();
  });
}

// ---- signing in and out -----------------------------------------------------------------------

/** Stop and forget this page's uploads: the next person to sign in must not inherit them. */
function abandonQueue() {
  for (const item of queue.splice(0)) {
    item.upload?.pause();
    item.row.remove();
  }
  updateQueueChrome();
}

// ---- start ------------------------------------------------------------------------------------

function init() {
  for (const message of config.ignored) showError(message);
  bindPicker();
  bindPaste();
  bindSettings();
  bindOwnerFilter();
  els.refreshList.addEventListener('click', () => loadFiles());
  els.fileListMore.addEventListener('click', () => loadFiles({ append: true }));
  updateQueueChrome();
  account = createAccount({
    api,
    showError,
    announce,
    onSignedIn: () => {
      clearFileList();
      loadFiles();
      startLiveUpdates();
    },
    onSignedOut: () => {
      stopLiveUpdates();
      abandonQueue();
      clearFileList();
    },
  });
  account.start();
}

init();
