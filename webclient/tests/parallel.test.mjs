import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Upload } from '../tus/upload.js';
import { UrlStore, fingerprint } from '../tus/url-store.js';
import {
  ENDPOINT, FakeScheduler, FakeServer, FakeTransport, bytesOf, deferred, makeFile, recorder,
} from './fakes.mjs';

function setup(file, { server = new FakeServer(), storage = new Map(), ...options } = {}) {
  const transport = new FakeTransport(server.handle);
  const scheduler = new FakeScheduler();
  const rec = recorder();
  const upload = new Upload(file, {
    endpoint: ENDPOINT,
    transport,
    scheduler,
    urlStore: new UrlStore({ storage }),
    ...rec.callbacks,
    ...options,
  });
  return { upload, transport, scheduler, storage, server, rec };
}

const storageKey = (file) => `tus::${fingerprint(file, ENDPOINT)}`;
const partialPosts = (t) => t.only('POST').filter((r) => r.headers['Upload-Concat'] === 'partial');
const finalPosts = (t) => t.only('POST').filter((r) => r.headers['Upload-Concat']?.startsWith('final;'));

test('parallelUploads=3 creates 3 partial uploads, the final one up front, then sends the parts', async () => {
  const file = makeFile(1001, { name: 'big.bin' });
  const { upload, transport, server, storage, rec } = setup(file, { parallelUploads: 3, chunkSize: 200 });
  await upload.start();

  const partials = partialPosts(transport);
  assert.equal(partials.length, 3);
  const lengths = partials.map((r) => Number(r.headers['Upload-Length'])).sort((a, b) => a - b);
  assert.deepEqual(lengths, [333, 334, 334]);
  assert.equal(lengths.reduce((a, b) => a + b, 0), file.size);
  assert.ok(partials.every((r) => r.headers['Upload-Metadata'] === undefined));
  assert.ok(partials.every((r) => r.headers['Tus-Resumable'] === '1.0.0'));

  // Each part holds exactly its contiguous range of the file, in order.
  const fileBytes = await bytesOf(file);
  const [u0, u1, u2] = upload.partUrls;
  assert.deepEqual(server.bytes(u0), fileBytes.subarray(0, 333));
  assert.deepEqual(server.bytes(u1), fileBytes.subarray(333, 667));
  assert.deepEqual(server.bytes(u2), fileBytes.subarray(667, 1001));

  const finals = finalPosts(transport);
  assert.equal(finals.length, 1);
  assert.equal(finals[0].headers['Upload-Concat'], `final;${u0} ${u1} ${u2}`);
  assert.equal(finals[0].headers['Upload-Length'], undefined);
  assert.equal(finals[0].headers['Upload-Metadata'], 'filename YmlnLmJpbg==,filetype YXBwbGljYXRpb24vb2N0ZXQtc3RyZWFt');
  const firstPatch = transport.requests.findIndex((r) => r.method === 'PATCH');
  const finalAt = transport.requests.indexOf(finals[0]);
  assert.ok(finalAt > transport.requests.indexOf(partials.at(-1)), 'after the parts exist');
  assert.ok(finalAt < firstPatch, 'before any byte is sent (concatenation-unfinished)');
  assert.equal(transport.only('HEAD').length, 1, 'fresh parts are not asked for their offset');
  assert.deepEqual(transport.requests.at(-1).method, 'HEAD', 'the final upload is checked at the end');

  assert.equal(upload.url, `${ENDPOINT}4`);
  assert.deepEqual(server.bytes(upload.url), fileBytes);
  assert.deepEqual(rec.of('success'), [[{ url: upload.url, partUrls: [u0, u1, u2] }]]);
  assert.equal(upload.state, 'done');
  assert.equal(upload.offset, 1001);
  assert.equal(storage.size, 0);
});

test('final URLs follow file order even when parts are created out of order', async () => {
  const file = makeFile(600);
  const server = new FakeServer();
  // Hold the first part's creation until the others exist, so it gets the highest id.
  const hold = deferred();
  let posts = 0;
  server.intercept((r, srv) => {
    if (r.method === 'POST' && r.headers['Upload-Concat'] === 'partial') {
      posts += 1;
      if (posts === 1) return hold.promise.then(() => srv.create(r));
      if (posts === 3) setImmediate(hold.resolve);
    }
    return undefined;
  });
  const { upload, transport } = setup(file, { server, parallelUploads: 3 });
  await upload.start();
  const [u0, u1, u2] = upload.partUrls;
  assert.deepEqual([u0, u1, u2], [`${ENDPOINT}3`, `${ENDPOINT}1`, `${ENDPOINT}2`]);
  assert.equal(finalPosts(transport)[0].headers['Upload-Concat'], `final;${u0} ${u1} ${u2}`);
  assert.deepEqual(server.bytes(upload.url), await bytesOf(file));
});

test('progress is the sum over the parts and ends at the file size', async () => {
  const file = makeFile(900);
  const { upload, rec } = setup(file, { parallelUploads: 3, chunkSize: 100 });
  await upload.start();
  const progress = rec.of('progress');
  assert.ok(progress.length > 9);
  assert.ok(progress.every(([sent, total]) => total === 900 && sent >= 0 && sent <= 900));
  for (let i = 1; i < progress.length; i += 1) assert.ok(progress[i][0] >= progress[i - 1][0]);
  assert.deepEqual(progress.at(-1), [900, 900]);
  const chunks = rec.of('chunk');
  assert.equal(chunks.length, 9);
  assert.equal(chunks.reduce((n, [size]) => n + size, 0), 900);
  assert.deepEqual(chunks.at(-1).slice(1), [900, 900]);
});

test('the part URLs are stored while the parts upload', async () => {
  const file = makeFile(400);
  const storage = new Map();
  const snapshots = [];
  const { upload } = setup(file, {
    storage,
    parallelUploads: 2,
    chunkSize: 100,
    onChunkComplete: () => snapshots.push(storage.get(storageKey(file))),
  });
  await upload.start();
  const last = JSON.parse(snapshots.at(-1));
  assert.deepEqual(last.parts, upload.partUrls);
  assert.equal(last.parts.length, 2);
  assert.ok(last.parts.every((u) => typeof u === 'string'));
  assert.equal(storage.size, 0);
});

test('a reload resumes each part from storage and sends only the missing bytes', async () => {
  const file = makeFile(900);
  const fileBytes = await bytesOf(file);
  const server = new FakeServer();
  const u0 = server.seed({ length: 300, data: fileBytes.subarray(0, 300), partial: true });
  const u1 = server.seed({ length: 300, data: fileBytes.subarray(300, 450), partial: true });
  const u2 = server.seed({ length: 300, partial: true });
  const storage = new Map([[storageKey(file), JSON.stringify({ parts: [u0, u1, u2] })]]);
  // parallelUploads 1 now: the stored layout (3 parts) wins so the byte ranges still match.
  const { upload, transport, rec } = setup(file, { server, storage, parallelUploads: 1, chunkSize: 1000 });
  await upload.start();

  assert.equal(partialPosts(transport).length, 0);
  assert.deepEqual(transport.only('HEAD').map((r) => r.url).sort(), [u0, u1, u2, upload.url].sort());
  const patches = transport.only('PATCH');
  assert.deepEqual(patches.map((r) => [r.url, r.headers['Upload-Offset'], r.body.length]).sort(),
    [[u1, '150', 150], [u2, '0', 300]]);
  assert.equal(patches.reduce((n, r) => n + r.body.length, 0), 450);
  assert.equal(finalPosts(transport)[0].headers['Upload-Concat'], `final;${u0} ${u1} ${u2}`);
  assert.deepEqual(server.bytes(upload.url), fileBytes);
  assert.deepEqual(rec.of('progress').at(-1), [900, 900]);
  assert.equal(storage.size, 0);
});

test('a stored part that expired is re-created and the stored list updated', async () => {
  const file = makeFile(200);
  const fileBytes = await bytesOf(file);
  const server = new FakeServer();
  const u0 = server.seed({ length: 100, data: fileBytes.subarray(0, 100), partial: true });
  const gone = `${ENDPOINT}gone`;
  const storage = new Map([[storageKey(file), JSON.stringify({ parts: [u0, gone] })]]);
  const snapshots = [];
  const { upload, transport } = setup(file, {
    server, storage, onChunkComplete: () => snapshots.push(JSON.parse(storage.get(storageKey(file)))),
  });
  await upload.start();

  assert.equal(partialPosts(transport).length, 1);
  assert.equal(partialPosts(transport)[0].headers['Upload-Length'], '100');
  const [p0, p1] = upload.partUrls;
  assert.equal(p0, u0);
  assert.notEqual(p1, gone);
  assert.deepEqual(snapshots.at(-1).parts, [u0, p1]);
  assert.deepEqual(server.bytes(upload.url), fileBytes);
});

test('a part failing with a 4xx fails the whole upload once and stops the other parts', async () => {
  const file = makeFile(600);
  const server = new FakeServer();
  let patches = 0;
  server.intercept((r) => {
    if (r.method !== 'PATCH') return undefined;
    patches += 1;
    return patches === 2 ? { status: 403, body: 'forbidden: quota exceeded' } : undefined;
  });
  const { upload, transport, rec } = setup(file, { server, parallelUploads: 3, chunkSize: 50 });
  await upload.start();
  const settled = transport.requests.length;
  await new Promise((r) => setTimeout(r, 20));

  assert.deepEqual(rec.of('error').map(([e]) => [e.status, e.message]), [[403, 'forbidden: quota exceeded']]);
  assert.equal(upload.state, 'error');
  assert.equal(finalPosts(transport).length, 1, 'the final upload was made before the parts ran');
  assert.equal(transport.requests.length, settled, 'no requests after the failure');
  assert.ok(transport.only('PATCH').length < 12, 'the siblings did not finish');
});

test('retries inside one part are reported and the parent shows retrying', async () => {
  const file = makeFile(300);
  const server = new FakeServer();
  server.failNext((r) => r.method === 'PATCH', { status: 503, body: 'busy' });
  const { upload, scheduler, rec } = setup(file, { server, parallelUploads: 3 });
  await upload.start();
  assert.deepEqual(scheduler.delays, [0]);
  assert.equal(rec.of('retry').length, 1);
  assert.deepEqual(rec.of('state').map(([s]) => s), ['uploading', 'retrying', 'uploading', 'done']);
  assert.deepEqual(server.bytes(upload.url), await bytesOf(file));
});

test('pause stops every part; start resumes each with HEAD', async () => {
  const file = makeFile(600);
  const server = new FakeServer();
  const hold = deferred();
  let held = 0;
  server.intercept((r) => {
    if (r.method === 'PATCH' && r.headers['Upload-Offset'] === '100' && held < 3) {
      held += 1;
      return hold.promise;
    }
    return undefined;
  });
  const { upload, transport, storage } = setup(file, { server, parallelUploads: 3, chunkSize: 100 });
  const run = upload.start();
  while (held < 3) await new Promise((r) => setImmediate(r));
  await upload.pause();
  await run;
  assert.equal(upload.state, 'paused');
  assert.equal(upload.offset, 300);
  assert.equal(JSON.parse(storage.get(storageKey(file))).parts.length, 3);

  const before = transport.requests.length;
  await upload.start();
  const after = transport.requests.slice(before);
  assert.equal(after.filter((r) => r.method === 'HEAD').length, 4, 'three parts, then the final');
  assert.equal(after.filter((r) => r.method === 'POST').length, 0, 'the final upload exists already');
  assert.ok(after.filter((r) => r.method === 'PATCH').every((r) => r.headers['Upload-Offset'] === '100'));
  assert.equal(upload.state, 'done');
  assert.deepEqual(server.bytes(upload.url), await bytesOf(file));
});

test('cancel() deletes the final upload and every part', async () => {
  const file = makeFile(200);
  const server = new FakeServer();
  const hold = deferred();
  server.intercept((r) => (r.method === 'PATCH' ? hold.promise : undefined));
  const { upload, transport, storage } = setup(file, { server, parallelUploads: 2 });
  upload.start();
  while (transport.only('PATCH').length < 2) await new Promise((r) => setImmediate(r));
  const urls = [upload.url, ...upload.partUrls];
  await upload.cancel();
  assert.deepEqual(transport.only('DELETE').map((r) => r.url), urls);
  assert.equal(server.uploads.size, 0);
  assert.equal(storage.size, 0);
  assert.equal(upload.state, 'aborted');
});

test('start() after cancel() lays out and creates fresh parts', async () => {
  const file = makeFile(200);
  const { upload, transport, server } = setup(file, { parallelUploads: 2 });
  await upload.start();
  await upload.cancel();
  assert.equal(upload.state, 'aborted');
  const before = transport.requests.length;
  await upload.start();
  const after = transport.requests.slice(before);
  assert.equal(after.filter((r) => r.headers['Upload-Concat'] === 'partial').length, 2);
  assert.equal(upload.state, 'done');
  assert.deepEqual(server.bytes(upload.url), await bytesOf(file));
});

test('a file smaller than 2 bytes is sent as a single upload', async () => {
  const { upload, transport } = setup(makeFile(1), { parallelUploads: 4 });
  await upload.start();
  assert.deepEqual(transport.methods, ['POST', 'PATCH']);
  assert.equal(transport.requests[0].headers['Upload-Concat'], undefined);
});

test('the final upload URL is stored with the parts and reused after a reload', async () => {
  const file = makeFile(600);
  const storage = new Map();
  const server = new FakeServer();
  const hold = deferred();
  server.intercept((r) => (r.method === 'PATCH' ? hold.promise : undefined));
  const first = setup(file, { server, storage, parallelUploads: 2 });
  first.upload.start();
  while (first.transport.only('PATCH').length < 2) await new Promise((r) => setImmediate(r));
  const stored = JSON.parse(storage.get(storageKey(file)));
  assert.equal(stored.url, first.upload.url);
  assert.deepEqual(stored.parts, first.upload.partUrls);
  await first.upload.pause();

  server.interceptors.length = 0;
  const second = setup(file, { server, storage, parallelUploads: 2 });
  await second.upload.start();
  assert.equal(second.upload.url, stored.url);
  assert.equal(second.transport.only('POST').length, 0);
  assert.deepEqual(server.bytes(stored.url), await bytesOf(file));
});

test('a server without concatenation-unfinished gets the final upload after the parts', async () => {
  const file = makeFile(500);
  const server = new FakeServer(ENDPOINT, { unfinishedConcat: false });
  const { upload, transport, rec } = setup(file, { server, parallelUploads: 2 });
  await upload.start();
  const finals = finalPosts(transport);
  assert.equal(finals.length, 2, 'refused up front, made at the end');
  assert.equal(transport.requests.at(-1), finals[1]);
  assert.equal(upload.state, 'done');
  assert.deepEqual(server.bytes(upload.url), await bytesOf(file));
  assert.equal(rec.of('error').length, 0);
});
