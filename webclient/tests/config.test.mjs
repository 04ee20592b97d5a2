import { test } from 'node:test';
import assert from 'node:assert/strict';

import { httpUrl, isCrossOrigin, readConfig, safeHref, sameOriginUrl } from '../config.js';

const page = 'http://tus.test:8080/';

test('safeHref lets only http(s) URLs into a link', () => {
  assert.equal(safeHref('/files/abc', page), 'http://tus.test:8080/files/abc');
  assert.equal(safeHref('https://cdn.example/x?sig=1', page), 'https://cdn.example/x?sig=1');
  for (const evil of [
    'javascript:alert(document.cookie)',
    ' JavaScript:alert(1)',
    'java\tscript:alert(1)',
    'data:text/html,<script>alert(1)</script>',
    'vbscript:msgbox(1)',
    'blob:http://tus.test:8080/1234',
    'file:///etc/passwd',
    '',
    null,
    undefined,
    42,
    {},
  ]) {
    assert.equal(safeHref(evil, page), null, String(evil));
  }
});

test('sameOriginUrl keeps to the page origin', () => {
  assert.equal(sameOriginUrl('/api/uploads', page).href, 'http://tus.test:8080/api/uploads');
  assert.equal(sameOriginUrl('http://tus.test:8080/files/', page).href, 'http://tus.test:8080/files/');
  for (const elsewhere of [
    'https://evil.example/files/',
    '//evil.example/files/',
    '/\\evil.example/files/',
    'http://tus.test:8081/files/',
    'https://tus.test:8080/files/',
    'http://tus.test:8080@evil.example/',
    'javascript:alert(1)//',
  ]) {
    assert.equal(sameOriginUrl(elsewhere, page), null, elsewhere);
  }
});

test('httpUrl rejects unparsable input', () => {
  assert.equal(httpUrl('http://[bad', page), null);
  assert.equal(httpUrl('   ', page), null);
});

test('defaults', () => {
  const config = readConfig({ baseURI: page });
  assert.equal(config.endpoint, 'http://tus.test:8080/files/');
  assert.equal(config.api, 'http://tus.test:8080/api/uploads');
  assert.equal(config.apiBase, 'http://tus.test:8080/api/');
  assert.equal(config.chunkSize, 5 * 1024 * 1024);
  assert.deepEqual(config.retryDelays, [0, 1000, 3000, 5000, 10000]);
  assert.equal(config.parallel, 1);
  assert.equal(config.concurrency, 2);
  assert.deepEqual(config.ignored, []);
});

test('the query string may not point the page at another origin', () => {
  const config = readConfig({
    baseURI: page,
    search: '?endpoint=https://evil.example/files/&api=javascript:alert(1)//&chunkSize=1024',
    dataset: { endpoint: '/tus/' },
  });
  assert.equal(config.endpoint, 'http://tus.test:8080/tus/', 'falls back to the attribute');
  assert.equal(config.api, 'http://tus.test:8080/api/uploads', 'falls back to the default');
  assert.equal(config.chunkSize, 1024);
  assert.equal(config.ignored.length, 2);
  assert.match(config.ignored[0], /endpoint/);
  assert.match(config.ignored[1], /api/);
});

test('the query string may point at other paths of the same origin', () => {
  const config = readConfig({ baseURI: page, search: '?endpoint=/other/files/&api=/v2/api/uploads' });
  assert.equal(config.endpoint, 'http://tus.test:8080/other/files/');
  assert.equal(config.apiBase, 'http://tus.test:8080/v2/api/');
  assert.deepEqual(config.ignored, []);
});

test('data attributes may name another http(s) origin, never another scheme', () => {
  const config = readConfig({
    baseURI: page,
    dataset: { endpoint: 'https://tus.example/files/', api: 'javascript:alert(1)' },
  });
  assert.equal(config.endpoint, 'https://tus.example/files/');
  assert.equal(config.api, 'http://tus.test:8080/api/uploads');
  assert.equal(isCrossOrigin(config.endpoint, config.pageOrigin), true);
  assert.equal(isCrossOrigin(config.api, config.pageOrigin), false);
});

test('numbers are clamped and bad delays fall back', () => {
  const config = readConfig({ baseURI: page, search: '?parallel=99&concurrency=0&retryDelays=1,x' });
  assert.equal(config.parallel, 6);
  assert.equal(config.concurrency, 1);
  assert.deepEqual(config.retryDelays, [0, 1000, 3000, 5000, 10000]);
});
