import { test } from 'node:test';
import assert from 'node:assert/strict';

import { DEFAULT_RETRY_DELAYS, Upload, UploadError } from '../tus/upload.js';
import { UrlStore, fingerprint } from '../tus/url-store.js';
import {
  ENDPOINT, FakeScheduler, FakeServer, FakeTransport, bytesOf, deferred, makeFile,
  networkError, recorder, scripted,
} from './fakes.mjs';

/** An Upload wired to fakes; every collaborator is returned for inspection. */
function setup(file, { handler, server = new FakeServer(), storage = new Map(), ...options } = {}) {
  const transport = new FakeTransport(handler ?? server.handle);
  const scheduler = new FakeScheduler();
  const urlStore = new UrlStore({ storage });
  const rec = recorder();
  const upload = new Upload(file, {
    endpoint: ENDPOINT, transport, scheduler, urlStore, ...rec.callbacks, ...options,
  });
  return { upload, transport, scheduler, urlStore, storage, server, rec };
}

const storageKey = (file) => `tus::${fingerprint(file, ENDPOINT)}`;
const sentBytes = (transport) => transport.only('PATCH').reduce((n, r) => n + r.body.length, 0);

test('creation sends Tus-Resumable, Upload-Length and UTF-8 metadata', async () => {
  const file = makeFile(10, { name: 'résumé 日本.txt', type: 'text/plain' });
  const { upload, transport, rec } = setup(file, { metadata: { owner: 'zoë' } });
  await upload.start();

  const post = transport.requests[0];
  assert.equal(post.method, 'POST');
  assert.equal(post.url, ENDPOINT);
  assert.deepEqual(post.headers, {
    'Tus-Resumable': '1.0.0',
    'Upload-Length': '10',
    'Upload-Metadata': 'filename csOpc3Vtw6kg5pel5pysLnR4dA==,filetype dGV4dC9wbGFpbg==,owner em/Dqw==',
  });
  assert.equal(post.body, null);
  assert.equal(upload.url, `${ENDPOINT}1`);
  assert.deepEqual(rec.of('url'), [[`${ENDPOINT}1`]]);
  assert.deepEqual(rec.of('success'), [[{ url: `${ENDPOINT}1`, partUrls: [] }]]);
  assert.equal(upload.state, 'done');
});

test('a file without a type sends only filename metadata; a relative Location is resolved', async () => {
  const file = new File(['hi'], 'plain', { lastModified: 1 });
  const handler = scripted([
    { status: 201, headers: { Location: '/files/abc' } },
    { status: 204, headers: { 'Upload-Offset': '2' } },
  ]);
  const { upload, transport } = setup(file, { handler });
  await upload.start();
  assert.equal(transport.requests[0].headers['Upload-Metadata'], 'filename cGxhaW4=');
  assert.equal(transport.requests[1].url, 'http://tus.test/files/abc');
  assert.equal(upload.state, 'done');
});

test('a file of 2.5 chunks is sent as three PATCHes with the right offsets and sizes', async () => {
  const file = makeFile(2500);
  const { upload, transport, server, rec } = setup(file, { chunkSize: 1000 });
  await upload.start();

  assert.deepEqual(transport.methods, ['POST', 'PATCH', 'PATCH', 'PATCH']);
  const patches = transport.only('PATCH');
  assert.deepEqual(patches.map((r) => r.headers['Upload-Offset']), ['0', '1000', '2000']);
  assert.deepEqual(patches.map((r) => r.body.length), [1000, 1000, 500]);
  for (const patch of patches) {
    assert.equal(patch.headers['Content-Type'], 'application/offset+octet-stream');
    assert.equal(patch.headers['Tus-Resumable'], '1.0.0');
  }
  assert.deepEqual(server.bytes(upload.url), await bytesOf(file));
  assert.deepEqual(rec.of('chunk'), [[1000, 1000, 2500], [1000, 2000, 2500], [500, 2500, 2500]]);
  assert.deepEqual(rec.of('progress').at(-1), [2500, 2500]);
  assert.deepEqual(rec.of('success').length, 1);
  assert.deepEqual(rec.of('error'), []);
});

test('the default chunk size is 5 MiB and the default retry delays are as documented', async () => {
  assert.deepEqual([...DEFAULT_RETRY_DELAYS], [0, 1000, 3000, 5000, 10000]);
  const file = makeFile(6 * 1024 * 1024);
  const { upload, transport } = setup(file);
  await upload.start();
  assert.deepEqual(transport.only('PATCH').map((r) => r.body.length), [5 * 1024 * 1024, 1024 * 1024]);
});

test('the file is read chunk by chunk through slice(), never whole', async () => {
  const file = makeFile(3000);
  const slices = [];
  const spy = {
    name: 'spy.bin', size: file.size, type: '', lastModified: 5,
    slice(start, end) {
      slices.push([start, end]);
      return file.slice(start, end);
    },
  };
  const { upload, rec } = setup(spy, { chunkSize: 1000 });
  await upload.start();
  assert.equal(rec.of('success').length, 1);
  assert.deepEqual(slices, [[0, 1000], [1000, 2000], [2000, 3000]]);
});

test('network errors are retried with exactly the configured delays, then it gives up', async () => {
  const file = makeFile(100);
  const handler = () => {
    throw networkError();
  };
  const { upload, transport, scheduler, rec } = setup(file, { handler });
  await upload.start();

  assert.deepEqual(scheduler.delays, [0, 1000, 3000, 5000, 10000]);
  assert.deepEqual(rec.of('retry').map(([attempt, delay]) => [attempt, delay]),
    [[1, 0], [2, 1000], [3, 3000], [4, 5000], [5, 10000]]);
  assert.ok(rec.of('retry').every(([, , reason]) => reason.kind === 'network'));
  assert.equal(transport.requests.length, 6); // first try + 5 retries
  assert.ok(transport.requests.every((r) => r.method === 'POST'));
  const [[error]] = rec.of('error');
  assert.ok(error instanceof UploadError);
  assert.equal(error.status, null);
  assert.equal(error.kind, 'network');
  assert.match(error.message, /Network error during POST .*gave up after 5 retries/);
  assert.equal(upload.state, 'error');
  assert.deepEqual(rec.of('success'), []);
});

test('custom retryDelays are used as given', async () => {
  const handler = scripted([networkError(), networkError(), networkError()]);
  const { upload, scheduler, transport, rec } = setup(makeFile(10), { handler, retryDelays: [7, 70] });
  await upload.start();
  assert.deepEqual(scheduler.delays, [7, 70]);
  assert.equal(transport.requests.length, 3);
  assert.equal(rec.of('error').length, 1);
});

test('5xx and 423 on PATCH are retried: HEAD first, then continue', async () => {
  const file = makeFile(2500);
  const server = new FakeServer();
  let patches = 0;
  server.intercept((request) => {
    if (request.method !== 'PATCH') return undefined;
    patches += 1;
    if (patches === 2) return { status: 503, body: 'backend-unavailable: Storage backend unavailable' };
    if (patches === 3) return { status: 423, body: 'locked: Upload is locked by another request' };
    return undefined;
  });
  const { upload, transport, scheduler, rec } = setup(file, { server, chunkSize: 1000 });
  await upload.start();

  assert.deepEqual(scheduler.delays, [0, 1000]);
  assert.deepEqual(rec.of('retry').map(([attempt, delay, reason]) => [attempt, delay, reason.status]),
    [[1, 0, 503], [2, 1000, 423]]);
  assert.deepEqual(transport.methods,
    ['POST', 'PATCH', 'PATCH', 'HEAD', 'PATCH', 'HEAD', 'PATCH', 'PATCH']);
  assert.deepEqual(transport.only('PATCH').map((r) => r.headers['Upload-Offset']),
    ['0', '1000', '1000', '1000', '2000']);
  assert.deepEqual(server.bytes(upload.url), await bytesOf(file));
  assert.equal(rec.of('success').length, 1);
  assert.ok(rec.of('state').some(([state]) => state === 'retrying'));
});

test('a persistent 500 gives up after the retry list with the server message', async () => {
  const server = new FakeServer().intercept((r) => (r.method === 'PATCH'
    ? { status: 500, body: 'internal-error: Internal server error' } : undefined));
  const { upload, scheduler, rec } = setup(makeFile(10), { server });
  await upload.start();
  assert.deepEqual(scheduler.delays, [0, 1000, 3000, 5000, 10000]);
  const [[error]] = rec.of('error');
  assert.equal(error.status, 500);
  assert.equal(error.message, 'internal-error: Internal server error (gave up after 5 retries)');
});

test('a successful chunk resets the retry budget', async () => {
  // Each PATCH fails once before succeeding: 4 chunks x 1 failure > retryDelays.length (2).
  const server = new FakeServer();
  let fail = true;
  server.intercept((r) => {
    if (r.method !== 'PATCH') return undefined;
    fail = !fail;
    return fail ? undefined : { status: 503, body: 'busy' };
  });
  const { upload, scheduler, rec } = setup(makeFile(400), { server, chunkSize: 100, retryDelays: [5, 6] });
  await upload.start();
  assert.equal(rec.of('success').length, 1);
  assert.deepEqual(scheduler.delays, [5, 5, 5, 5]);
});

test('409 re-HEADs and continues from the server offset without resending bytes below it', async () => {
  const file = makeFile(3000);
  const server = new FakeServer();
  const fileBytes = await bytesOf(file);
  let conflictSent = false;
  server.intercept((request, srv) => {
    if (request.method === 'PATCH' && request.headers['Upload-Offset'] === '1000' && !conflictSent) {
      // Another request already stored bytes up to 2000 (e.g. a response we never saw).
      conflictSent = true;
      srv.append(request.url, fileBytes.subarray(1000, 2000));
      return { status: 409, headers: { 'Upload-Offset': '2000' }, body: 'offset-mismatch: expected 2000' };
    }
    return undefined;
  });
  const { upload, transport, scheduler, rec } = setup(file, { server, chunkSize: 1000 });
  await upload.start();

  assert.deepEqual(transport.methods, ['POST', 'PATCH', 'PATCH', 'HEAD', 'PATCH']);
  const patches = transport.only('PATCH');
  assert.deepEqual(patches.map((r) => r.headers['Upload-Offset']), ['0', '1000', '2000']);
  const afterConflict = transport.requests.slice(transport.requests.indexOf(patches[1]) + 1);
  assert.ok(afterConflict.every((r) => r.method !== 'PATCH' || Number(r.headers['Upload-Offset']) >= 2000));
  assert.deepEqual(scheduler.delays, [0]);
  assert.equal(rec.of('retry')[0][2].status, 409);
  assert.deepEqual(server.bytes(upload.url), fileBytes);
  assert.equal(rec.of('success').length, 1);
});

test('other 4xx stop at once with the server body as the message', async () => {
  const server = new FakeServer().intercept((r) => (r.method === 'PATCH'
    ? { status: 460, body: 'checksum-mismatch: Upload-Checksum does not match the received data\n' }
    : undefined));
  const { upload, transport, scheduler, rec } = setup(makeFile(2500), { server, chunkSize: 1000 });
  await upload.start();

  assert.deepEqual(transport.methods, ['POST', 'PATCH']);
  assert.deepEqual(scheduler.delays, []);
  assert.deepEqual(rec.of('retry'), []);
  const [[error]] = rec.of('error');
  assert.equal(error.message, 'checksum-mismatch: Upload-Checksum does not match the received data');
  assert.equal(error.status, 460);
  assert.equal(error.code, 'checksum-mismatch');
  assert.equal(error.retryable, false);
  assert.equal(upload.state, 'error');
});

test('a 4xx on creation stops too, and an empty body still gives a clear message', async () => {
  const forbidden = setup(makeFile(5), { handler: scripted([{ status: 403, body: 'forbidden: Uploads are closed' }]) });
  await forbidden.upload.start();
  assert.equal(forbidden.rec.of('error')[0][0].message, 'forbidden: Uploads are closed');
  assert.equal(forbidden.transport.requests.length, 1);

  const tooLarge = setup(makeFile(5), { handler: scripted([{ status: 413 }]) });
  await tooLarge.upload.start();
  assert.equal(tooLarge.rec.of('error')[0][0].message, `POST ${ENDPOINT} failed with HTTP 413`);
});

test('protocol violations (no Location, bad Upload-Offset) are reported, not retried', async () => {
  const noLocation = setup(makeFile(5), { handler: scripted([{ status: 201 }]) });
  await noLocation.upload.start();
  assert.match(noLocation.rec.of('error')[0][0].message, /no Location header/);

  const badOffset = setup(makeFile(5), {
    handler: scripted([
      { status: 201, headers: { Location: `${ENDPOINT}9` } },
      { status: 204, headers: { 'Upload-Offset': '99' } },
    ]),
  });
  await badOffset.upload.start();
  assert.match(badOffset.rec.of('error')[0][0].message, /invalid Upload-Offset/);
  assert.deepEqual(badOffset.scheduler.delays, []);
});

test('resumes from a stored URL: HEAD, then only the missing bytes', async () => {
  const file = makeFile(2500);
  const server = new FakeServer();
  const url = server.seed({ length: 2500, data: (await bytesOf(file)).subarray(0, 1500) });
  const storage = new Map([[storageKey(file), JSON.stringify({ url })]]);
  const { upload, transport, rec } = setup(file, { server, storage, chunkSize: 1000 });
  await upload.start();

  assert.deepEqual(transport.methods, ['HEAD', 'PATCH']);
  assert.equal(transport.requests[0].url, url);
  assert.equal(transport.requests[1].headers['Upload-Offset'], '1500');
  assert.equal(sentBytes(transport), 1000);
  assert.ok(sentBytes(transport) < file.size);
  assert.deepEqual(rec.of('progress')[0], [1500, 2500]);
  assert.deepEqual(server.bytes(url), await bytesOf(file));
  assert.equal(upload.url, url);
  assert.equal(storage.size, 0, 'entry removed on success');
});

test('a stored URL whose upload is already complete succeeds without PATCH', async () => {
  const file = makeFile(50);
  const server = new FakeServer();
  const url = server.seed({ length: 50, data: await bytesOf(file) });
  const storage = new Map([[storageKey(file), JSON.stringify({ url })]]);
  const { upload, transport, rec } = setup(file, { server, storage });
  await upload.start();
  assert.deepEqual(transport.methods, ['HEAD']);
  assert.equal(rec.of('success').length, 1);
});

test('HEAD 404 on a stored URL forgets it and creates a new upload', async () => {
  const file = makeFile(300);
  const server = new FakeServer();
  const stale = `${ENDPOINT}expired`;
  const storage = new Map([[storageKey(file), JSON.stringify({ url: stale })]]);
  const { upload, transport, rec } = setup(file, {
    server, storage, onUploadUrlAvailable: (url) => rec.events.push(['stored', url, storage.get(storageKey(file))]),
  });
  await upload.start();

  assert.deepEqual(transport.methods, ['HEAD', 'POST', 'PATCH']);
  assert.equal(transport.requests[0].url, stale);
  assert.notEqual(upload.url, stale);
  const [[newUrl, entry]] = rec.of('stored');
  assert.equal(newUrl, upload.url);
  assert.equal(JSON.parse(entry).url, upload.url);
  assert.deepEqual(server.bytes(upload.url), await bytesOf(file));
  assert.equal(rec.of('success').length, 1);
});

test('HEAD 410 twice: a new upload is created only once', async () => {
  const file = makeFile(300);
  const server = new FakeServer();
  // The first PATCH fails with 503; by then the new upload has expired as well.
  server.intercept((r, srv) => {
    if (r.method === 'PATCH') {
      srv.uploads.delete(r.url);
      return { status: 503, body: 'busy' };
    }
    if (r.method === 'HEAD' && !srv.uploads.has(r.url)) return { status: 410, body: '' };
    return undefined;
  });
  const storage = new Map([[storageKey(file), JSON.stringify({ url: `${ENDPOINT}old` })]]);
  const { upload, transport, rec } = setup(file, { server, storage });
  await upload.start();

  assert.deepEqual(transport.methods, ['HEAD', 'POST', 'PATCH', 'HEAD']);
  const [[error]] = rec.of('error');
  assert.equal(error.status, 410);
  assert.equal(storage.size, 0, 'the dead URL is not kept');
});

test('the URL is stored under the fingerprint while uploading and removed on success', async () => {
  const file = makeFile(2000, { name: 'keep.bin' });
  const storage = new Map();
  const seen = [];
  const { upload } = setup(file, {
    storage,
    chunkSize: 1000,
    onChunkComplete: () => seen.push([...storage.entries()]),
  });
  await upload.start();

  assert.equal(seen.length, 2);
  const [[key, value]] = seen[0];
  assert.equal(key, storageKey(file));
  assert.equal(JSON.parse(value).url, upload.url);
  assert.match(JSON.parse(value).createdAt, /^\d{4}-\d\d-\d\dT/);
  assert.equal(storage.size, 0);
});

test('the stored URL survives an error so a later attempt can resume', async () => {
  const file = makeFile(2000);
  const server = new FakeServer();
  server.failNext((r) => r.method === 'PATCH' && r.headers['Upload-Offset'] === '1000',
    { status: 403, body: 'forbidden: not now' });
  const storage = new Map();
  const first = setup(file, { server, storage, chunkSize: 1000 });
  await first.upload.start();
  assert.equal(first.upload.state, 'error');
  assert.equal(JSON.parse(storage.get(storageKey(file))).url, first.upload.url);

  const second = setup(file, { server, storage, chunkSize: 1000 });
  await second.upload.start();
  assert.deepEqual(second.transport.methods, ['HEAD', 'PATCH']);
  assert.equal(second.transport.requests[1].headers['Upload-Offset'], '1000');
  assert.equal(second.upload.state, 'done');
  assert.deepEqual(server.bytes(first.upload.url), await bytesOf(file));
});

test('pause aborts the request in flight; start resumes with HEAD from the server offset', async () => {
  const file = makeFile(3000);
  const server = new FakeServer();
  const hold = deferred();
  server.intercept((r) => (r.method === 'PATCH' && r.headers['Upload-Offset'] === '1000' && !hold.used
    ? ((hold.used = true), hold.promise) : undefined));
  const { upload, transport, storage, rec } = setup(file, { server, chunkSize: 1000 });

  const firstRun = upload.start();
  const inFlight = await transport.waitFor((r) => r.method === 'PATCH' && r.headers['Upload-Offset'] === '1000');
  await upload.pause();
  await firstRun;
  assert.equal(inFlight.signal.aborted, true);
  assert.equal(upload.state, 'paused');
  assert.equal(upload.offset, 1000);
  assert.equal(JSON.parse(storage.get(storageKey(file))).url, upload.url, 'URL kept while paused');
  assert.deepEqual(rec.of('error'), []);
  hold.resolve({ status: 204, headers: { 'Upload-Offset': '2000' } }); // too late: ignored
  assert.equal(upload.offset, 1000);

  await upload.start();
  assert.deepEqual(transport.methods, ['POST', 'PATCH', 'PATCH', 'HEAD', 'PATCH', 'PATCH']);
  assert.deepEqual(transport.only('PATCH').map((r) => r.headers['Upload-Offset']), ['0', '1000', '1000', '2000']);
  assert.equal(upload.state, 'done');
  assert.deepEqual(server.bytes(upload.url), await bytesOf(file));
  assert.deepEqual(rec.of('state').map(([s]) => s), ['uploading', 'paused', 'uploading', 'done']);
});

test('pause during a retry delay cancels the timer; resume() starts over with HEAD', async () => {
  const file = makeFile(200);
  const server = new FakeServer();
  server.failNext((r) => r.method === 'PATCH', { status: 503, body: 'busy' });
  const transport = new FakeTransport(server.handle);
  const scheduler = new FakeScheduler({ auto: false });
  const rec = recorder();
  const upload = new Upload(file, {
    endpoint: ENDPOINT, transport, scheduler, urlStore: null, retryDelays: [1000], ...rec.callbacks,
  });

  const run = upload.start();
  while (scheduler.pending.size === 0) await new Promise((r) => setImmediate(r));
  assert.equal(upload.state, 'retrying');
  await upload.pause();
  await run;
  assert.equal(scheduler.pending.size, 0);
  assert.equal(scheduler.cleared.length, 1);
  assert.equal(upload.state, 'paused');

  await upload.resume();
  assert.deepEqual(transport.methods, ['POST', 'PATCH', 'HEAD', 'PATCH']);
  assert.equal(upload.state, 'done');
});

test('abort(true) terminates with DELETE and forgets the stored URL', async () => {
  const file = makeFile(3000);
  const server = new FakeServer();
  const hold = deferred();
  server.intercept((r) => (r.method === 'PATCH' && r.headers['Upload-Offset'] === '1000' ? hold.promise : undefined));
  const { upload, transport, storage, rec } = setup(file, { server, chunkSize: 1000 });
  upload.start();
  await transport.waitFor((r) => r.method === 'PATCH' && r.headers['Upload-Offset'] === '1000');
  const url = upload.url;

  await upload.abort(true);
  assert.deepEqual(transport.methods, ['POST', 'PATCH', 'PATCH', 'DELETE']);
  assert.equal(transport.requests[3].url, url);
  assert.equal(transport.requests[3].headers['Tus-Resumable'], '1.0.0');
  assert.equal(server.uploads.has(url), false);
  assert.equal(storage.size, 0);
  assert.equal(upload.state, 'aborted');
  assert.equal(upload.url, null);
  assert.deepEqual(rec.of('error'), []);
  assert.deepEqual(rec.of('success'), []);
});

test('abort() without terminate keeps the URL; cancel() of a never-started upload deletes the stored one', async () => {
  const file = makeFile(100);
  const server = new FakeServer();
  const url = server.seed({ length: 100 });
  const storage = new Map([[storageKey(file), JSON.stringify({ url })]]);
  const { upload, transport } = setup(file, { server, storage });
  await upload.abort();
  assert.equal(transport.requests.length, 0);
  assert.equal(storage.size, 1);

  await upload.cancel();
  assert.deepEqual(transport.methods, ['DELETE']);
  assert.equal(transport.requests[0].url, url);
  assert.equal(storage.size, 0);
});

test('a failing DELETE rejects abort(true)', async () => {
  const handler = scripted([
    { status: 201, headers: { Location: `${ENDPOINT}1` } },
    { status: 403, body: 'forbidden: termination disabled' },
  ]);
  const { upload } = setup(makeFile(0), { handler });
  await upload.start();
  await assert.rejects(upload.abort(true), { message: 'forbidden: termination disabled', status: 403 });
});

test('an empty file is created and completes without PATCH', async () => {
  const { upload, transport, rec } = setup(makeFile(0));
  await upload.start();
  assert.deepEqual(transport.methods, ['POST']);
  assert.equal(transport.requests[0].headers['Upload-Length'], '0');
  assert.equal(rec.of('success').length, 1);
});

test('upload progress inside a chunk is reported from the transport', async () => {
  const file = makeFile(1500);
  const { upload, rec } = setup(file, { chunkSize: 1000 });
  await upload.start();
  const progress = rec.of('progress');
  assert.deepEqual(progress[0], [0, 1500]);
  assert.ok(progress.some(([sent]) => sent === 1000));
  assert.ok(progress.every(([, total]) => total === 1500));
  for (let i = 1; i < progress.length; i += 1) assert.ok(progress[i][0] >= progress[i - 1][0]);
});

test('options are validated', () => {
  const file = makeFile(1);
  assert.throws(() => new Upload(file, {}), /endpoint/);
  assert.throws(() => new Upload(file, { endpoint: ENDPOINT, chunkSize: 0 }), /chunkSize/);
  assert.throws(() => new Upload(file, { endpoint: ENDPOINT, retryDelays: [-1] }), /retryDelays/);
  assert.throws(() => new Upload(file, { endpoint: ENDPOINT, parallelUploads: 0 }), /parallelUploads/);
  assert.throws(() => new Upload('not a file', { endpoint: ENDPOINT }), TypeError);
});
