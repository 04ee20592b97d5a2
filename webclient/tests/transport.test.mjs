import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';

import { TransportError, XhrTransport } from '../tus/transport.js';

/** Minimal XMLHttpRequest stand-in: the test decides how each request ends. */
class FakeXhr {
  static last = null;

  constructor() {
    this.upload = {};
    this.requestHeaders = {};
    this.responseHeaders = {};
    this.status = 0;
    this.responseText = '';
    this.aborted = false;
    FakeXhr.last = this;
  }

  open(method, url, async) {
    Object.assign(this, { method, url, async });
  }

  setRequestHeader(name, value) {
    this.requestHeaders[name] = value;
  }

  getResponseHeader(name) {
    const key = Object.keys(this.responseHeaders).find((k) => k.toLowerCase() === name.toLowerCase());
    return key === undefined ? null : this.responseHeaders[key];
  }

  send(body) {
    this.body = body;
  }

  abort() {
    this.aborted = true;
    this.onabort?.();
  }

  // Test controls
  respond(status, headers = {}, text = '') {
    Object.assign(this, { status, responseHeaders: headers, responseText: text });
    this.onload?.();
  }
}

let saved;
beforeEach(() => {
  saved = globalThis.XMLHttpRequest;
  globalThis.XMLHttpRequest = FakeXhr;
});
afterEach(() => {
  globalThis.XMLHttpRequest = saved;
});

test('sends method, URL, headers and body; returns status, lower-case headers and text', async () => {
  const transport = new XhrTransport({ timeout: 5000 });
  const body = new Blob(['abc']);
  const pending = transport.request({
    method: 'PATCH', url: 'http://x/files/1', headers: { 'Upload-Offset': 3 }, body,
  });
  const xhr = FakeXhr.last;
  assert.equal(xhr.method, 'PATCH');
  assert.equal(xhr.url, 'http://x/files/1');
  assert.equal(xhr.async, true);
  assert.equal(xhr.timeout, 5000);
  assert.deepEqual(xhr.requestHeaders, { 'Upload-Offset': '3' });
  assert.equal(xhr.body, body);
  xhr.respond(204, { 'Upload-Offset': '6', 'X-Other': 'ignored' });
  assert.deepEqual(await pending, { status: 204, headers: { 'upload-offset': '6' }, body: '' });
});

test('HTTP error statuses resolve (they are answers, not transport failures)', async () => {
  const pending = new XhrTransport().request({ method: 'HEAD', url: 'http://x/files/2' });
  FakeXhr.last.respond(404, {}, 'not-found: Upload not found');
  const response = await pending;
  assert.equal(response.status, 404);
  assert.equal(response.body, 'not-found: Upload not found');
});

test('network errors, timeouts and aborts reject with distinct kinds', async () => {
  const transport = new XhrTransport();
  const network = transport.request({ method: 'POST', url: 'http://x/files/' });
  FakeXhr.last.onerror();
  await assert.rejects(network, (e) => e instanceof TransportError && e.kind === 'network');

  const timeout = transport.request({ method: 'POST', url: 'http://x/files/' });
  FakeXhr.last.ontimeout();
  await assert.rejects(timeout, { name: 'TransportError', kind: 'timeout' });

  const noStatus = transport.request({ method: 'POST', url: 'http://x/files/' });
  FakeXhr.last.respond(0);
  await assert.rejects(noStatus, { kind: 'network' });
});

test('an AbortSignal aborts the XHR', async () => {
  const controller = new AbortController();
  const pending = new XhrTransport().request({ method: 'PATCH', url: 'http://x/1', signal: controller.signal });
  const xhr = FakeXhr.last;
  controller.abort();
  assert.equal(xhr.aborted, true);
  await assert.rejects(pending, { kind: 'abort' });

  const already = new XhrTransport().request({ method: 'HEAD', url: 'http://x/1', signal: controller.signal });
  await assert.rejects(already, { kind: 'abort' });
});

test('upload progress is forwarded only for requests with a body', async () => {
  const seen = [];
  const transport = new XhrTransport();
  const withBody = transport.request({
    method: 'PATCH', url: 'http://x/1', body: new Blob(['0123456789']),
    onUploadProgress: (loaded, total) => seen.push([loaded, total]),
  });
  const xhr = FakeXhr.last;
  xhr.upload.onprogress({ lengthComputable: true, loaded: 4, total: 10 });
  xhr.upload.onprogress({ lengthComputable: false, loaded: 5, total: 0 });
  xhr.respond(204, { 'Upload-Offset': '10' });
  await withBody;
  assert.deepEqual(seen, [[4, 10]]);

  const head = transport.request({ method: 'HEAD', url: 'http://x/1', onUploadProgress: () => {} });
  assert.equal(FakeXhr.last.upload.onprogress, undefined, 'no listener: avoids a CORS preflight');
  FakeXhr.last.respond(200);
  await head;
});
