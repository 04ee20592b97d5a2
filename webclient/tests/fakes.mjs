// Test doubles for the tus client: a transport that records requests and answers from a handler,
// an in-memory tus server to use as that handler, and a scheduler that records delays.
// (Not a test file itself: node --test only runs *.test.mjs here.)

import { TransportError } from '../tus/transport.js';

export const ENDPOINT = 'http://tus.test/files/';

/** A File of `size` bytes with a recognisable pattern, so misplaced bytes are detected. */
export function makeFile(size, { name = 'data.bin', type = 'application/octet-stream',
  lastModified = 1700000000000 } = {}) {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 1) bytes[i] = (i * 7 + Math.floor(i / 251)) % 256;
  return new File([bytes], name, { type, lastModified });
}

export async function bytesOf(blob) {
  return new Uint8Array(await blob.arrayBuffer());
}

export const networkError = () => new TransportError('network', 'connection reset');

/** Resolve/reject from outside; used to hold a request open until a test releases it. */
export function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Transport double. `handler(request, transport)` returns a response ({status, headers, body}),
 * a promise of one, or throws (e.g. networkError()) to simulate a request that got no response.
 * Every request is recorded with its body bytes.
 */
export class FakeTransport {
  constructor(handler) {
    this.handler = handler;
    this.requests = [];
    this.waiters = [];
  }

  async request({ method, url, headers = {}, body = null, signal, onUploadProgress }) {
    const record = {
      method,
      url,
      headers: { ...headers },
      body: body ? await bytesOf(body) : null,
      signal,
    };
    this.requests.push(record);
    for (const waiter of [...this.waiters]) {
      if (waiter.predicate(record)) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve(record);
      }
    }
    if (signal?.aborted) throw new TransportError('abort', 'aborted before sending');

    const answer = Promise.resolve().then(() => this.handler(record, this));
    const response = await raceAbort(answer, signal);
    if (record.body && onUploadProgress && response.status < 300) {
      onUploadProgress(record.body.length, record.body.length);
    }
    return {
      status: response.status,
      headers: Object.fromEntries(
        Object.entries(response.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]),
      ),
      body: response.body ?? '',
    };
  }

  /** Resolves with the first (past or future) request matching `predicate`. */
  waitFor(predicate) {
    const seen = this.requests.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ predicate, resolve }));
  }

  only(method) {
    return this.requests.filter((r) => r.method === method);
  }

  get methods() {
    return this.requests.map((r) => r.method);
  }
}

function raceAbort(promise, signal) {
  if (!signal) return promise;
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new TransportError('abort', 'aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** Answers from a fixed list, one per request; records how many were unused/missing. */
export function scripted(responses) {
  const queue = [...responses];
  const handler = (request) => {
    if (queue.length === 0) {
      handler.overrun.push(request);
      return { status: 599, body: 'script exhausted' };
    }
    const next = queue.shift();
    if (next instanceof Error) throw next;
    return typeof next === 'function' ? next(request) : next;
  };
  handler.overrun = [];
  handler.remaining = () => queue.length;
  return handler;
}

/**
 * A small in-memory tus server (creation, HEAD, PATCH, DELETE, concatenation) so tests can run
 * realistic flows. `intercept(fn)` lets a test answer a request itself: fn returns a response,
 * throws, or returns undefined to let the server handle it.
 */
export class FakeServer {
  constructor(endpoint = ENDPOINT, { unfinishedConcat = true } = {}) {
    this.endpoint = endpoint;
    this.unfinishedConcat = unfinishedConcat; // concatenation-unfinished, as tusserver offers
    this.uploads = new Map(); // url -> { length, data: Uint8Array, partial, metadata }
    this.nextId = 1;
    this.interceptors = [];
    this.handle = this.handle.bind(this);
  }

  intercept(fn) {
    this.interceptors.push(fn);
    return this;
  }

  /** Interceptor that answers the first `times` requests matching `match` with `answer`. */
  failNext(match, answer, times = 1) {
    let left = times;
    return this.intercept((request) => {
      if (left > 0 && match(request)) {
        left -= 1;
        if (answer instanceof Error) throw answer;
        return typeof answer === 'function' ? answer(request) : answer;
      }
      return undefined;
    });
  }

  /** Create an upload directly (as if a previous page load had started it). */
  seed({ length, data = new Uint8Array(0), partial = false, metadata = '' }) {
    const url = `${this.endpoint}${this.nextId++}`;
    this.uploads.set(url, { length, data: Uint8Array.from(data), partial, metadata });
    return url;
  }

  /** Store more bytes for an upload (as if another request had sent them). */
  append(url, bytes) {
    const upload = this.uploads.get(url);
    upload.data = concatBytes([upload.data, bytes]);
  }

  bytes(url) {
    const upload = this.uploads.get(url);
    return upload ? this._data(upload) : new Uint8Array(0);
  }

  /** A final upload's bytes are its parts' bytes, read when asked (concatenation is virtual). */
  _data(upload) {
    if (!upload.final) return upload.data;
    return concatBytes(upload.final.map((u) => this.uploads.get(u)?.data ?? new Uint8Array(0)));
  }

  _finalDone(upload) {
    return upload.final.every((u) => {
      const part = this.uploads.get(u);
      return part && part.data.length === part.length;
    });
  }

  handle(request) {
    for (const interceptor of this.interceptors) {
      const answer = interceptor(request, this);
      if (answer !== undefined) return answer;
    }
    if (request.headers['Tus-Resumable'] !== '1.0.0') return { status: 412, body: 'unsupported-version: x' };
    if (request.method === 'POST' && request.url === this.endpoint) return this.create(request);
    const upload = this.uploads.get(request.url);
    if (!upload) return { status: 404, body: 'not-found: Upload not found' };
    switch (request.method) {
      case 'HEAD':
        if (upload.final && !this._finalDone(upload)) {
          return { status: 200, headers: { 'Upload-Length': upload.length } }; // no offset yet
        }
        return {
          status: 200,
          headers: { 'Upload-Offset': this._data(upload).length, 'Upload-Length': upload.length },
        };
      case 'PATCH':
        if (upload.final) return { status: 403, body: 'forbidden: a final upload cannot be modified' };
        return this.patch(upload, request);
      case 'DELETE':
        this.uploads.delete(request.url);
        return { status: 204 };
      default:
        return { status: 405, body: 'method-not-allowed: Method not allowed' };
    }
  }

  create(request) {
    const concat = request.headers['Upload-Concat'];
    const metadata = request.headers['Upload-Metadata'] ?? '';
    let upload;
    if (concat?.startsWith('final;')) {
      const urls = concat.slice('final;'.length).trim().split(/\s+/);
      const parts = urls.map((u) => this.uploads.get(u));
      const unfinished = parts.some((p) => p && p.data.length !== p.length);
      if (parts.some((p) => !p || !p.partial) || (unfinished && !this.unfinishedConcat)) {
        return { status: 400, body: 'invalid-concat: partial upload missing or incomplete' };
      }
      const length = parts.reduce((n, p) => n + p.length, 0);
      upload = { length, data: new Uint8Array(0), partial: false, metadata, final: urls };
    } else {
      const length = Number(request.headers['Upload-Length']);
      if (!Number.isInteger(length)) return { status: 400, body: 'length-required: x' };
      upload = { length, data: new Uint8Array(0), partial: concat === 'partial', metadata };
    }
    const url = `${this.endpoint}${this.nextId++}`;
    this.uploads.set(url, upload);
    return { status: 201, headers: { Location: url, 'Upload-Offset': this._data(upload).length } };
  }

  patch(upload, request) {
    if (request.headers['Content-Type'] !== 'application/offset+octet-stream') {
      return { status: 415, body: 'unsupported-media-type: x' };
    }
    const offset = Number(request.headers['Upload-Offset']);
    if (offset !== upload.data.length) {
      return { status: 409, headers: { 'Upload-Offset': upload.data.length }, body: 'offset-mismatch: x' };
    }
    if (offset + request.body.length > upload.length) return { status: 413, body: 'too-large: x' };
    upload.data = concatBytes([upload.data, request.body]);
    return { status: 204, headers: { 'Upload-Offset': upload.data.length } };
  }
}

function concatBytes(arrays) {
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

/**
 * setTimeout-like scheduler that records every delay. In auto mode callbacks run on the next
 * macrotask (no real waiting); otherwise they wait for run().
 */
export class FakeScheduler {
  constructor({ auto = true } = {}) {
    this.auto = auto;
    this.delays = [];
    this.pending = new Map();
    this.cleared = [];
    this.nextId = 1;
  }

  setTimeout(fn, ms) {
    const id = this.nextId++;
    this.delays.push(ms);
    this.pending.set(id, fn);
    if (this.auto) setImmediate(() => this.fire(id));
    return id;
  }

  clearTimeout(id) {
    if (this.pending.delete(id)) this.cleared.push(id);
  }

  fire(id) {
    const fn = this.pending.get(id);
    this.pending.delete(id);
    fn?.();
  }

  /** Run every pending callback (manual mode). */
  run() {
    for (const id of [...this.pending.keys()]) this.fire(id);
  }
}

/** Collects every callback an Upload makes, in order. */
export function recorder() {
  const events = [];
  const record = (name) => (...args) => events.push([name, ...args]);
  return {
    events,
    callbacks: {
      onProgress: record('progress'),
      onChunkComplete: record('chunk'),
      onSuccess: record('success'),
      onError: record('error'),
      onRetry: record('retry'),
      onStateChange: record('state'),
      onUploadUrlAvailable: record('url'),
    },
    of: (name) => events.filter((e) => e[0] === name).map((e) => e.slice(1)),
  };
}

/** Let pending promise callbacks and immediates run. */
export const tick = () => new Promise((resolve) => setImmediate(resolve));
