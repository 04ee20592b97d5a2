import { test } from 'node:test';
import assert from 'node:assert/strict';

import { UrlStore, fingerprint } from '../tus/url-store.js';

const file = new File(['abc'], 'a.txt', { type: 'text/plain', lastModified: 1000 });
const endpoint = 'http://tus.test/files/';

test('fingerprint depends on name, size, type, lastModified and endpoint', () => {
  const base = fingerprint(file, endpoint);
  assert.equal(base, JSON.stringify([endpoint, 'a.txt', 3, 'text/plain', 1000]));
  assert.equal(fingerprint(new File(['abc'], 'a.txt', { type: 'text/plain', lastModified: 1000 }), endpoint), base);
  const variants = [
    fingerprint(new File(['abc'], 'b.txt', { type: 'text/plain', lastModified: 1000 }), endpoint),
    fingerprint(new File(['abcd'], 'a.txt', { type: 'text/plain', lastModified: 1000 }), endpoint),
    fingerprint(new File(['abc'], 'a.txt', { type: 'text/csv', lastModified: 1000 }), endpoint),
    fingerprint(new File(['abc'], 'a.txt', { type: 'text/plain', lastModified: 1001 }), endpoint),
    fingerprint(file, 'http://other.test/files/'),
  ];
  for (const variant of variants) assert.notEqual(variant, base);
  assert.equal(new Set(variants).size, variants.length);
});

test('Map-like storage: set, get, remove with a prefix', () => {
  const map = new Map();
  const store = new UrlStore({ storage: map, prefix: 'p:' });
  assert.equal(store.get('fp'), null);
  store.set('fp', { url: 'http://tus.test/files/1' });
  assert.deepEqual([...map.keys()], ['p:fp']);
  assert.equal(map.get('p:fp'), '{"url":"http://tus.test/files/1"}');
  assert.deepEqual(store.get('fp'), { url: 'http://tus.test/files/1' });
  assert.deepEqual(store.entries(), [['fp', { url: 'http://tus.test/files/1' }]]);
  store.remove('fp');
  assert.equal(map.size, 0);
  assert.equal(store.get('fp'), null);
});

test('localStorage-like storage and parts entries', () => {
  const data = {};
  const local = {
    getItem: (k) => (k in data ? data[k] : null),
    setItem: (k, v) => { data[k] = String(v); },
    removeItem: (k) => { delete data[k]; },
    key: (i) => Object.keys(data)[i] ?? null,
    get length() { return Object.keys(data).length; },
  };
  const store = new UrlStore({ storage: local });
  store.set('x', { parts: ['u1', null] });
  assert.deepEqual(Object.keys(data), ['tus::x']);
  assert.deepEqual(store.get('x'), { parts: ['u1', null] });
  data.unrelated = '1';
  assert.deepEqual(store.entries(), [['x', { parts: ['u1', null] }]]);
  store.remove('x');
  assert.deepEqual(Object.keys(data), ['unrelated']);
});

test('corrupt entries read as null and failing storage is ignored', () => {
  const map = new Map([['tus::bad', '{not json'], ['tus::num', '5']]);
  const store = new UrlStore({ storage: map });
  assert.equal(store.get('bad'), null);
  assert.equal(store.get('num'), null);

  const broken = {
    getItem() { throw new Error('denied'); },
    setItem() { throw new Error('quota'); },
    removeItem() { throw new Error('denied'); },
  };
  const quiet = new UrlStore({ storage: broken });
  assert.doesNotThrow(() => quiet.set('a', { url: 'u' }));
  assert.equal(quiet.get('a'), null);
  assert.doesNotThrow(() => quiet.remove('a'));
});

test('without any storage (Node has no localStorage) the store is inert', () => {
  const store = new UrlStore({ storage: null });
  store.set('a', { url: 'u' });
  assert.equal(store.get('a'), null);
  assert.deepEqual(store.entries(), []);
});
