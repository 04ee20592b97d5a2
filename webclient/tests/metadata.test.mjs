import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  decodeBase64Utf8, decodeMetadata, encodeBase64Utf8, encodeMetadata,
} from '../tus/metadata.js';

test('ASCII values are base64 encoded', () => {
  assert.equal(encodeBase64Utf8('hello'), 'aGVsbG8=');
  assert.equal(encodeMetadata({ filename: 'hello', filetype: 'text/plain' }),
    'filename aGVsbG8=,filetype dGV4dC9wbGFpbg==');
});

test('non-ASCII values are UTF-8 encoded before base64', () => {
  // Bytes: "r" C3A9 "sum" C3A9 " " E697A5 E69CAC ".txt"
  assert.equal(encodeBase64Utf8('résumé 日本.txt'), 'csOpc3Vtw6kg5pel5pysLnR4dA==');
  assert.equal(encodeBase64Utf8('é'), 'w6k=');
  // Astral plane (surrogate pair in JS) -> 4 UTF-8 bytes.
  assert.equal(encodeBase64Utf8('😀'), '8J+YgA==');
  assert.equal(encodeMetadata({ filename: 'résumé 日本.txt' }), 'filename csOpc3Vtw6kg5pel5pysLnR4dA==');
});

test('agrees with Buffer for long and mixed strings', () => {
  const text = 'Ünïcödé ✓ 😀 '.repeat(5000); // long enough to need several fromCharCode slices
  assert.equal(encodeBase64Utf8(text), Buffer.from(text, 'utf8').toString('base64'));
});

test('empty values become bare keys; null and undefined are skipped', () => {
  assert.equal(encodeMetadata({ a: '', b: null, c: undefined, d: 'x' }), 'a,d eA==');
  assert.equal(encodeMetadata({}), '');
});

test('numbers are stringified', () => {
  assert.equal(encodeMetadata({ n: 42 }), 'n NDI=');
});

test('invalid keys are rejected', () => {
  assert.throws(() => encodeMetadata({ 'two words': 'x' }), TypeError);
  assert.throws(() => encodeMetadata({ 'a,b': 'x' }), TypeError);
  assert.throws(() => encodeMetadata({ '': 'x' }), TypeError);
  assert.throws(() => encodeMetadata({ 'clé': 'x' }), TypeError);
});

test('decode inverts encode, including bare keys and non-ASCII', () => {
  const meta = { filename: 'naïve 文件 😀.txt', filetype: 'text/plain', empty: '' };
  assert.deepEqual(decodeMetadata(encodeMetadata(meta)), meta);
  assert.deepEqual(decodeMetadata(' a aGVsbG8= , b '), { a: 'hello', b: '' });
  assert.deepEqual(decodeMetadata(''), {});
  assert.equal(decodeBase64Utf8('w6k='), 'é');
});

test('decoding invalid UTF-8 throws', () => {
  assert.throws(() => decodeBase64Utf8(Buffer.from([0xff, 0xfe]).toString('base64')));
});
