// The tus 1.0.0 upload state machine: creation, resume via HEAD, PATCH in chunks, retries,
// termination and (with parallelUploads > 1) the concatenation extension.
//
// No DOM, no `window`: everything with a side effect (HTTP, storage, timers) is injected, so the
// same code runs in the browser and under `node --test` with fakes.
//
//   const upload = new Upload(file, { endpoint: 'https://host/files/', onProgress, onSuccess });
//   upload.start();   // create or resume, then send
//   upload.pause();   // abort the request in flight, keep the URL
//   upload.start();   // HEAD, then continue from the server's offset
//   upload.abort(true) / upload.cancel();   // stop and DELETE on the server

import { encodeMetadata } from './metadata.js';
import { XhrTransport } from './transport.js';
import { UrlStore, fingerprint as defaultFingerprint } from './url-store.js';

export const TUS_VERSION = '1.0.0';
export const DEFAULT_CHUNK_SIZE = 5 * 1024 * 1024;
export const DEFAULT_RETRY_DELAYS = Object.freeze([0, 1000, 3000, 5000, 10000]);

/** States reported through onStateChange and the `state` property. */
export const STATES = Object.freeze(['idle', 'uploading', 'retrying', 'paused', 'done', 'error', 'aborted']);

/** Every failure reported by onError. `status` is null when no HTTP response arrived. */
export class UploadError extends Error {
  constructor(message, { status = null, code = null, body = '', method = null, url = null,
    kind = 'http', retryable = false, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'UploadError';
    this.status = status; // HTTP status, or null for network errors / protocol violations
    this.code = code; // the "CODE" of a "CODE: message" body, when the server sent one
    this.body = body; // raw response body text
    this.method = method;
    this.url = url;
    this.kind = kind; // 'http' | 'network' | 'timeout' | 'abort' | 'protocol'
    this.retryable = retryable;
  }
}

// 409: our offset is stale, 423: someone else holds the upload, 5xx: the server's problem.
// Every other 4xx means retrying the same request cannot help.
export function isRetryableStatus(status) {
  return status === 409 || status === 423 || status >= 500;
}

const realScheduler = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (id) => globalThis.clearTimeout(id),
};

/**
 * One run of an upload (from start() to pause/abort/end). Cancelling it aborts its requests and
 * wakes its retry sleeps, so a stale run can never touch the upload after pause().
 */
class RunToken {
  constructor() {
    this.cancelled = false;
    this.controller = new AbortController();
    this.sleepers = new Set();
    this.children = new Set();
  }

  get signal() {
    return this.controller.signal;
  }

  /** A token cancelled together with this one, but also cancellable on its own. */
  derive() {
    const child = new RunToken();
    if (this.cancelled) child.cancel();
    else this.children.add(child);
    return child;
  }

  cancel() {
    if (this.cancelled) return;
    this.cancelled = true;
    this.controller.abort();
    for (const wake of [...this.sleepers]) wake();
    for (const child of this.children) child.cancel();
  }

  /** Wait `ms` through the injected scheduler; resolves early if the run is cancelled. */
  sleep(scheduler, ms) {
    return new Promise((resolve) => {
      if (this.cancelled) {
        resolve();
        return;
      }
      let timer;
      const done = () => {
        this.sleepers.delete(wake);
        resolve();
      };
      const wake = () => {
        scheduler.clearTimeout(timer);
        done();
      };
      // Registered before scheduling: a fake scheduler may call back synchronously.
      this.sleepers.add(wake);
      timer = scheduler.setTimeout(done, ms);
    });
  }
}

/** Case-insensitive response header lookup; accepts plain objects and fetch `Headers`. */
function header(response, name) {
  const headers = response.headers ?? {};
  if (typeof headers.get === 'function') return headers.get(name);
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === wanted) return String(value);
  }
  return null;
}

/** A non-negative integer header value, or null if missing/invalid. */
function parseOffset(value) {
  if (value === null || value === undefined || !/^\s*\d+\s*$/.test(value)) return null;
  const number = Number(value);
  return Number.isSafeInteger(number) ? number : null;
}

function resolveUrl(location, base) {
  try {
    return new URL(location, base).href;
  } catch {
    // A relative endpoint (e.g. "/files/") is no base for URL(); the browser resolves it later.
    return location;
  }
}

const isSuccess = (status) => status >= 200 && status < 300;

function defaultUrlStore() {
  const store = new UrlStore();
  return store.storage ? store : null;
}

export class Upload {
  /**
   * @param {Blob|File} file anything with size and slice(start, end); name/type/lastModified used
   *   for metadata and the fingerprint when present.
   * @param {object} options endpoint, uploadUrl, chunkSize, retryDelays, parallelUploads,
   *   metadata, headers, transport, urlStore, scheduler, fingerprint, and the callbacks
   *   onProgress, onChunkComplete, onSuccess, onError, onRetry, onStateChange,
   *   onUploadUrlAvailable (see the destructuring below for defaults).
   */
  constructor(file, options = {}) {
    if (!file || typeof file.slice !== 'function' || !Number.isSafeInteger(file.size)) {
      throw new TypeError('Upload needs a File or Blob (size and slice())');
    }
    const {
      endpoint = null,
      uploadUrl = null,
      chunkSize = DEFAULT_CHUNK_SIZE,
      retryDelays = DEFAULT_RETRY_DELAYS,
      parallelUploads = 1,
      metadata = {},
      headers = {},
      transport = new XhrTransport(),
      urlStore = defaultUrlStore(),
      scheduler = realScheduler,
      fingerprint = defaultFingerprint,
    } = options;
    if (!endpoint && !uploadUrl) throw new TypeError('Upload needs an endpoint (or an uploadUrl)');
    if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) {
      throw new TypeError('chunkSize must be a positive integer');
    }
    if (!Array.isArray(retryDelays) || !retryDelays.every((d) => Number.isFinite(d) && d >= 0)) {
      throw new TypeError('retryDelays must be an array of non-negative numbers');
    }
    if (!Number.isSafeInteger(parallelUploads) || parallelUploads < 1) {
      throw new TypeError('parallelUploads must be an integer >= 1');
    }

    this.file = file;
    this.options = options;
    this.endpoint = endpoint;
    this.chunkSize = chunkSize;
    this.retryDelays = [...retryDelays];
    this.parallelUploads = parallelUploads;
    this.metadata = metadata;
    this.headers = headers;
    this.transport = transport;
    this.urlStore = urlStore;
    this.scheduler = scheduler;
    this.fingerprint = fingerprint(file, endpoint);
    this.isPartial = options.uploadConcat === 'partial'; // internal: a part of a parallel upload

    this.url = uploadUrl; // the upload's URL (for parallel uploads: the final upload's URL)
    this.state = 'idle';
    this._offset = 0;
    this._complete = false; // all bytes confirmed by the server
    this._prepared = false; // stored URL looked up / parts laid out
    this._recreated = false; // a 404/410 already made us create a new upload once
    this._retryAttempt = 0;
    this._token = null;
    this._runPromise = null;
    this._parts = null; // child uploads when sending parallel partial uploads
    this._partSent = [];
    this._fresh = false; // a part just created: its offset is 0 without asking
    this._finalLater = false; // the server cannot make the final upload before its parts finish
  }

  /** Bytes the server has confirmed (summed over the parts for parallel uploads). */
  get offset() {
    return this._parts ? this._parts.reduce((sum, part) => sum + part.offset, 0) : this._offset;
  }

  /** URLs of the partial uploads, in file order (empty unless parallel; null = not created). */
  get partUrls() {
    return this._parts ? this._parts.map((part) => part.url) : [];
  }

  /**
   * Create or resume the upload and send it. Returns a promise that settles when this run ends
   * (success, error, pause or abort); it never rejects for upload failures (see onError).
   */
  start() {
    if (this.state === 'uploading' || this.state === 'retrying') return this._runPromise;
    if (this.state === 'done') return Promise.resolve();
    this._token?.cancel();
    const token = (this._token = new RunToken());
    this._setState('uploading');
    this._runPromise = this._execute(token).then(
      (completed) => {
        if (completed && token === this._token && !token.cancelled) this._succeed();
      },
      (error) => {
        if (token === this._token && !token.cancelled) this._fail(error);
      },
    );
    return this._runPromise;
  }

  /** Same as start(): after pause() or an error, HEAD the upload and continue from its offset. */
  resume() {
    return this.start();
  }

  /** Abort the request in flight and stop; the upload URL is kept so start() resumes. */
  pause() {
    if (this.state !== 'uploading' && this.state !== 'retrying') return Promise.resolve();
    this._token.cancel();
    this._setState('paused');
    return this._runPromise;
  }

  /**
   * Stop for good. With terminate=true, also DELETE the upload (and its parts) on the server and
   * forget the stored URL; a later start() then begins a new upload. Rejects if a DELETE fails.
   */
  async abort(terminate = false) {
    this._token?.cancel();
    // A finished upload stays 'done' unless it is being deleted from the server.
    if (terminate || this.state !== 'done') this._setState('aborted');
    await this._runPromise;
    if (!terminate) return;
    await this._prepare(); // an upload never started may still have a stored URL to clean up
    const urls = [this.url, ...this.partUrls].filter(Boolean);
    this._storeRemove();
    this.url = null;
    this._parts = null;
    this._prepared = false; // a later start() lays out a fresh upload (the entry is gone)
    this._offset = 0;
    this._complete = false;
    this._recreated = false;
    const token = new RunToken();
    const failures = [];
    for (const url of urls) {
      try {
        const response = await this._request(token, {
          method: 'DELETE', url, headers: this._baseHeaders(),
        });
        // Already gone is fine: the goal is that it does not exist.
        if (!isSuccess(response.status) && response.status !== 404 && response.status !== 410) {
          failures.push(this._httpError('DELETE', url, response));
        }
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length) throw failures[0];
  }

  /** abort(true): stop and terminate the upload on the server. */
  cancel() {
    return this.abort(true);
  }

  // ---- run orchestration ------------------------------------------------------------------

  async _execute(token) {
    this._retryAttempt = 0; // every (re)start gets the full retry budget
    this._setState('uploading');
    await this._prepare();
    if (token.cancelled) return false;
    if (this._parts) return this._executeParallel(token);
    const completed = await this._withRetries(token, () => this._sendSingle(token));
    if (completed) this._complete = true;
    return completed;
  }

  /** Run `attempt`, retrying retryable failures with the configured delays. */
  async _withRetries(token, attempt) {
    for (;;) {
      try {
        await attempt();
        return !token.cancelled;
      } catch (error) {
        if (token.cancelled) return false;
        if (!error?.retryable) throw error;
        if (this._retryAttempt >= this.retryDelays.length) throw this._gaveUp(error);
        const delay = this.retryDelays[this._retryAttempt];
        this._retryAttempt += 1;
        this._setState('retrying');
        this._emit('onRetry', this._retryAttempt, delay, error);
        await token.sleep(this.scheduler, delay);
        if (token.cancelled) return false;
        this._setState('uploading');
      }
    }
  }

  _gaveUp(error) {
    if (this.retryDelays.length === 0) return error;
    const n = this.retryDelays.length;
    return new UploadError(`${error.message} (gave up after ${n} ${n === 1 ? 'retry' : 'retries'})`, {
      ...error, retryable: false, cause: error,
    });
  }

  /** Look up a stored URL (or stored parts) once, and lay out parts for a parallel upload. */
  async _prepare() {
    if (this._prepared) return;
    this._prepared = true;
    const stored = this.url || this.isPartial ? null : await this._storeGet();
    const storedParts = stored?.parts;
    if (Array.isArray(storedParts) && storedParts.length > 1 && storedParts.length <= this.file.size) {
      // Resume with the stored number of parts even if the option changed since.
      this._setupParts(storedParts.map((url) => (typeof url === 'string' ? url : null)));
      if (typeof stored.url === 'string') this.url = stored.url; // the final upload, made up front
    } else if (typeof stored?.url === 'string') {
      this.url = stored.url;
    } else if (!this.url && !this.isPartial && this.parallelUploads > 1 && this.file.size > 1) {
      this._setupParts(new Array(Math.min(this.parallelUploads, this.file.size)).fill(null));
    }
  }

  _succeed() {
    this._complete = true;
    this._storeRemove();
    this._setState('done');
    this._emit('onSuccess', { url: this.url, partUrls: this.partUrls });
  }

  _fail(error) {
    this._setState('error');
    this._emit('onError', error);
  }

  // ---- single upload: HEAD or POST, then PATCH chunks ----------------------------------------

  async _sendSingle(token) {
    // A part created a moment ago (before its final upload) is known to be at 0: no HEAD.
    let offset = this.url ? (this._fresh ? 0 : await this._head(token)) : null;
    this._fresh = false;
    if (offset === null) {
      await this._create(token);
      offset = 0;
    }
    this._offset = offset;
    this._emitProgress(offset);
    while (offset < this.file.size) {
      offset = await this._patch(token, offset);
    }
  }

  /** The server's offset for this.url, or null if the upload is gone and must be re-created. */
  async _head(token) {
    const url = this.url;
    const response = await this._request(token, { method: 'HEAD', url, headers: this._baseHeaders() });
    const length = parseOffset(header(response, 'Upload-Length'));
    const gone = response.status === 404 || response.status === 410;
    // A different length means the URL is not this file's upload (stale entry): start over too.
    const mismatch = isSuccess(response.status) && length !== null && length !== this.file.size;
    if (gone || mismatch) {
      this._storeRemove(); // a dead URL is useless, whether or not we may create a new upload
      if (this._recreated || !this.endpoint) {
        throw gone
          ? this._httpError('HEAD', url, response)
          : new UploadError(`Upload at ${url} has length ${length}, expected ${this.file.size}`, {
            status: response.status, method: 'HEAD', url, kind: 'protocol',
          });
      }
      this._recreated = true;
      this.url = null;
      return null;
    }
    if (!isSuccess(response.status)) throw this._httpError('HEAD', url, response);
    const offset = parseOffset(header(response, 'Upload-Offset'));
    if (offset === null || offset > this.file.size) {
      throw this._protocolError('HEAD', url, response, 'missing or invalid Upload-Offset');
    }
    return offset;
  }

  async _create(token) {
    const headers = { ...this._baseHeaders(), 'Upload-Length': String(this.file.size) };
    if (this.isPartial) headers['Upload-Concat'] = 'partial';
    const metadata = this._metadataHeader();
    if (metadata) headers['Upload-Metadata'] = metadata;
    this.url = await this._post(token, headers);
    if (!this.isPartial) {
      this._storeSet({ url: this.url, createdAt: new Date().toISOString() });
    }
    this._emit('onUploadUrlAvailable', this.url);
  }

  /** POST to the endpoint and return the absolute Location of the created upload. */
  async _post(token, headers) {
    const endpoint = this.endpoint;
    if (!endpoint) {
      throw new UploadError('Cannot create an upload without an endpoint', { kind: 'protocol' });
    }
    const response = await this._request(token, { method: 'POST', url: endpoint, headers });
    if (!isSuccess(response.status)) throw this._httpError('POST', endpoint, response);
    const location = header(response, 'Location');
    if (!location) throw this._protocolError('POST', endpoint, response, 'no Location header');
    return resolveUrl(location, endpoint);
  }

  /** Send one chunk starting at `offset`; returns the server's new offset. */
  async _patch(token, offset) {
    const url = this.url;
    const end = Math.min(offset + this.chunkSize, this.file.size);
    const response = await this._request(token, {
      method: 'PATCH',
      url,
      headers: {
        ...this._baseHeaders(),
        'Upload-Offset': String(offset),
        'Content-Type': 'application/offset+octet-stream',
      },
      body: this.file.slice(offset, end), // a view of the file: never read it all into memory
      onUploadProgress: (loaded) => {
        if (!token.cancelled) this._emitProgress(offset + Math.min(loaded, end - offset));
      },
    });
    if (!isSuccess(response.status)) throw this._httpError('PATCH', url, response);
    const newOffset = parseOffset(header(response, 'Upload-Offset'));
    if (newOffset === null || newOffset < offset || newOffset > end) {
      throw this._protocolError('PATCH', url, response, 'missing or invalid Upload-Offset');
    }
    if (newOffset === offset) {
      // Nothing accepted: retry (HEAD first) rather than loop forever on the same chunk.
      throw new UploadError(`Server accepted no bytes at offset ${offset}`, {
        status: response.status, method: 'PATCH', url, kind: 'protocol', retryable: true,
      });
    }
    this._offset = newOffset;
    this._retryAttempt = 0; // progress was made: a later glitch gets the full retry budget
    this._emitProgress(newOffset);
    this._emit('onChunkComplete', newOffset - offset, newOffset, this.file.size);
    return newOffset;
  }

  // ---- parallel upload: N partial uploads, then a final concatenation ----------------------

  _setupParts(urls) {
    const size = this.file.size;
    const count = urls.length;
    this._partSent = new Array(count).fill(0);
    this._parts = urls.map((url, index) => {
      // Contiguous ranges whose sizes differ by at most one byte.
      const start = Math.floor((size * index) / count);
      const end = Math.floor((size * (index + 1)) / count);
      return new Upload(this.file.slice(start, end), {
        endpoint: this.endpoint,
        uploadUrl: url,
        uploadConcat: 'partial',
        chunkSize: this.chunkSize,
        retryDelays: this.retryDelays,
        headers: this.headers,
        transport: this.transport,
        scheduler: this.scheduler,
        urlStore: null, // the parent stores the list of part URLs
        fingerprint: () => `${this.fingerprint}#part${index}`,
        onProgress: (sent) => {
          this._partSent[index] = sent;
          this._emitProgress(this._partSent.reduce((a, b) => a + b, 0));
        },
        onChunkComplete: (chunk) => this._emit('onChunkComplete', chunk, this.offset, size),
        onRetry: (...args) => this._emit('onRetry', ...args),
        onStateChange: () => this._syncStateFromParts(),
        onUploadUrlAvailable: () => this._storeParts(),
      });
    });
  }

  async _executeParallel(token) {
    const partsToken = token.derive();
    try {
      await this._createUpFront(token, partsToken);
      if (token.cancelled) return false;
      const pending = this._parts.filter((part) => !part._complete);
      const results = await Promise.all(pending.map((part) => part._execute(partsToken)));
      if (token.cancelled || results.includes(false)) return false;
    } catch (error) {
      partsToken.cancel(); // one part failed for good: stop its siblings too
      throw error;
    }
    return this._withRetries(token, () => this._finishFinal(token));
  }

  /**
   * Create every part, then the final upload, before any bytes go (the server's
   * concatenation-unfinished extension): the file's URL is known at once and the final upload
   * completes by itself when its last part does. A server without the extension refuses the
   * early final upload with a 4xx; it is then made after the parts, as concatenation requires.
   */
  async _createUpFront(token, partsToken) {
    const missing = this._parts.filter((part) => !part.url);
    await Promise.all(missing.map(async (part) => {
      if (await part._withRetries(partsToken, () => part._create(partsToken))) part._fresh = true;
    }));
    if (token.cancelled || this.url || this._finalLater) return;
    try {
      await this._withRetries(token, () => this._createFinal(token));
    } catch (error) {
      if (!error?.status || error.status >= 500) throw error;
      this._finalLater = true; // e.g. 400: "partial upload not complete"
    }
  }

  /** After the parts: check the early final upload is complete, or make it now. */
  async _finishFinal(token) {
    if (!this.url) {
      await this._createFinal(token);
      return;
    }
    const url = this.url;
    const response = await this._request(token, { method: 'HEAD', url, headers: this._baseHeaders() });
    if (response.status === 404 || response.status === 410) {
      this.url = null; // the final upload is gone (expired): make a new one of the same parts
      await this._createFinal(token);
      return;
    }
    if (!isSuccess(response.status)) throw this._httpError('HEAD', url, response);
    if (parseOffset(header(response, 'Upload-Offset')) !== this.file.size) {
      throw new UploadError(`Final upload ${url} is not complete yet`, {
        status: response.status, method: 'HEAD', url, kind: 'protocol', retryable: true,
      });
    }
  }

  async _createFinal(token) {
    const headers = {
      ...this._baseHeaders(),
      'Upload-Concat': `final;${this.partUrls.join(' ')}`,
    };
    const metadata = this._metadataHeader();
    if (metadata) headers['Upload-Metadata'] = metadata;
    this.url = await this._post(token, headers);
    this._storeParts();
    this._emit('onUploadUrlAvailable', this.url);
  }

  /** While the parts run, the parent shows "retrying" if any part is waiting to retry. */
  _syncStateFromParts() {
    if (this.state !== 'uploading' && this.state !== 'retrying') return;
    const retrying = this._parts?.some((part) => part.state === 'retrying');
    this._setState(retrying ? 'retrying' : 'uploading');
  }

  _storeParts() {
    const entry = { parts: this.partUrls, createdAt: new Date().toISOString() };
    if (this.url) entry.url = this.url; // the final upload, once it exists
    this._storeSet(entry);
  }

  // ---- helpers ------------------------------------------------------------------------------

  /** Send a request; transport failures become retryable UploadErrors. */
  async _request(token, request) {
    const abortError = (cause) => new UploadError(`${request.method} ${request.url} aborted`, {
      method: request.method, url: request.url, kind: 'abort', cause,
    });
    if (token.cancelled) throw abortError();
    let response;
    try {
      response = await this.transport.request({ ...request, signal: token.signal });
    } catch (error) {
      if (token.cancelled) throw abortError(error);
      const kind = error?.kind === 'timeout' ? 'timeout' : 'network';
      const what = kind === 'timeout' ? 'Timed out' : 'Network error';
      throw new UploadError(`${what} during ${request.method} ${request.url}`, {
        method: request.method, url: request.url, kind, retryable: true, cause: error,
      });
    }
    // A response that raced with pause() must not move the state of a stopped run.
    if (token.cancelled) throw abortError();
    return response;
  }

  _httpError(method, url, response) {
    const body = String(response.body ?? '').trim();
    // The server's errors are "code: human message" in text/plain; show them verbatim.
    const message = body ? body.slice(0, 1000) : `${method} ${url} failed with HTTP ${response.status}`;
    const code = /^([a-z0-9][a-z0-9-]*):\s/i.exec(body)?.[1] ?? null;
    return new UploadError(message, {
      status: response.status, code, body, method, url, retryable: isRetryableStatus(response.status),
    });
  }

  _protocolError(method, url, response, problem) {
    return new UploadError(`Unexpected response to ${method} ${url}: ${problem}`, {
      status: response.status, body: String(response.body ?? ''), method, url, kind: 'protocol',
    });
  }

  _baseHeaders() {
    return { ...this.headers, 'Tus-Resumable': TUS_VERSION };
  }

  _metadataHeader() {
    if (this.isPartial) return ''; // parts carry no metadata; the final upload does
    const defaults = {};
    if (this.file.name) defaults.filename = this.file.name;
    if (this.file.type) defaults.filetype = this.file.type;
    return encodeMetadata({ ...defaults, ...this.metadata });
  }

  _emitProgress(sent) {
    this._emit('onProgress', sent, this.file.size);
  }

  _setState(state) {
    if (this.state === state) return;
    const previous = this.state;
    this.state = state;
    this._emit('onStateChange', state, previous);
  }

  _emit(name, ...args) {
    const callback = this.options[name];
    if (typeof callback === 'function') callback(...args);
  }

  async _storeGet() {
    try {
      return (await this.urlStore?.get(this.fingerprint)) ?? null;
    } catch {
      return null;
    }
  }

  _storeSet(entry) {
    try {
      this.urlStore?.set(this.fingerprint, entry);
    } catch {
      // Remembering the URL is best effort; the upload itself goes on.
    }
  }

  _storeRemove() {
    try {
      this.urlStore?.remove(this.fingerprint);
    } catch {
      // Same as _storeSet.
    }
  }
}
