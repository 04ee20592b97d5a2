import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ApiClient } from '../api.js';
import { parseTags, typeIcon } from '../file-table.js';

test('parseTags splits on commas and spaces, lower-cases and drops duplicates', () => {
  assert.deepEqual(parseTags('Work, draft  work,,x.1'), ['work', 'draft', 'x.1']);
  assert.deepEqual(parseTags('  '), []);
});

test('parseTags refuses what the server would refuse', () => {
  assert.throws(() => parseTags('a/b'), /not a tag/);
  assert.throws(() => parseTags('x'.repeat(33)), /not a tag/);
  assert.throws(() => parseTags(Array.from({ length: 21 }, (_, n) => `t${n}`).join(',')), /At most 20/);
});

test('typeIcon names the major type', () => {
  assert.equal(typeIcon('image/png'), 'IMG');
  assert.equal(typeIcon('text/plain'), 'TXT');
  assert.equal(typeIcon(''), 'FILE');
});

test('repeated query values become repeated parameters (tag=a&tag=b)', () => {
  const api = new ApiClient({ base: 'http://example.test/api/', fetch: () => null });
  const url = new URL(api.url('uploads', { tag: ['a', 'b'], q: '', sort: '-size' }));
  assert.deepEqual(url.searchParams.getAll('tag'), ['a', 'b']);
  assert.equal(url.searchParams.get('q'), null);
  assert.equal(url.searchParams.get('sort'), '-size');
});
