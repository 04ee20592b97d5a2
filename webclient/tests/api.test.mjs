import { test } from 'node:test';
import assert from 'node:assert/strict';

import { ApiClient, ApiError } from '../api.js';

const base = 'http://tus.test/api/';

/** A fetch that records calls and answers from a queue of Response objects. */
function fakeFetch(...answers) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, ...init, body: init.body === undefined ? undefined : JSON.parse(init.body) });
    const next = answers.shift();
    if (next instanceof Error) throw next;
    return next;
  };
  return { fetch, calls };
}

const json = (status, body, headers = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });

test('login posts name and password as JSON with the configured credentials', async () => {
  const { fetch, calls } = fakeFetch(json(200, { name: 'ann', role: 'user' }));
  const api = new ApiClient({ base, fetch, credentials: 'include' });
  assert.deepEqual(await api.login('ann', 'pw'), { name: 'ann', role: 'user' });
  assert.equal(calls[0].url, 'http://tus.test/api/session');
  assert.equal(calls[0].method, 'POST');
  assert.equal(calls[0].credentials, 'include');
  assert.deepEqual(calls[0].body, { name: 'ann', password: 'pw' });
  assert.equal(calls[0].headers['Content-Type'], 'application/json');
});

test('errors carry status, code, message and Retry-After', async () => {
  const { fetch } = fakeFetch(
    json(429, { error: { code: 'too-many-attempts', message: 'try again later' } }, { 'Retry-After': '30' }),
  );
  const api = new ApiClient({ base, fetch });
  await assert.rejects(api.login('ann', 'x'), (error) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 429);
    assert.equal(error.code, 'too-many-attempts');
    assert.equal(error.message, 'try again later');
    assert.equal(error.retryAfter, 30);
    return true;
  });
});

test('a non-JSON error keeps its text; a network failure is status 0', async () => {
  const { fetch } = fakeFetch(new Response('Bad gateway', { status: 502 }), new TypeError('Failed to fetch'));
  const api = new ApiClient({ base, fetch });
  await assert.rejects(api.me(), { status: 502, message: 'Bad gateway' });
  await assert.rejects(api.me(), { status: 0, code: 'network' });
});

test('a 401 outside login calls onUnauthorized; a failed login does not', async () => {
  const seen = [];
  const unauthorized = () => json(401, { error: { code: 'unauthorized', message: 'log in' } });
  const { fetch } = fakeFetch(unauthorized(), unauthorized());
  const api = new ApiClient({ base, fetch, onUnauthorized: (error) => seen.push(error.status) });
  await assert.rejects(api.uploads(), { status: 401 });
  await assert.rejects(api.login('a', 'b'), { status: 401 });
  assert.deepEqual(seen, [401]);
});

test('ids and names are escaped into the path; empty query values are left out', async () => {
  const { fetch, calls } = fakeFetch(
    new Response(null, { status: 204 }),
    json(200, { uploads: [], total: 0 }),
    json(201, { url: 'http://tus.test/links/x', expires: 'z' }),
    json(200, { name: 'a/b' }),
  );
  const api = new ApiClient({ base, fetch });
  assert.equal(await api.deleteUpload('../users'), null);
  await api.uploads({ limit: 50, offset: 0, owner: '' });
  await api.createLink('abc', 3600);
  await api.updateUser('a/b?x', { disabled: true });
  assert.equal(calls[0].url, 'http://tus.test/api/uploads/..%2Fusers');
  assert.equal(calls[1].url, 'http://tus.test/api/uploads?limit=50&offset=0');
  assert.equal(calls[2].url, 'http://tus.test/api/uploads/abc/links');
  assert.deepEqual(calls[2].body, { expires_in: 3600 });
  assert.equal(calls[3].url, 'http://tus.test/api/users/a%2Fb%3Fx');
  assert.equal(calls[3].method, 'PATCH');
});

test('tokens and users unwrap their lists; optional fields are only sent when set', async () => {
  const { fetch, calls } = fakeFetch(
    json(200, { tokens: [{ id: 't1' }] }),
    json(201, { id: 't2', token: 'tus_x' }),
    json(201, { id: 't3', token: 'tus_y' }),
    json(200, { users: [{ name: 'ann' }] }),
    json(201, { name: 'bob' }),
  );
  const api = new ApiClient({ base, fetch });
  assert.deepEqual(await api.tokens(), [{ id: 't1' }]);
  await api.createToken('laptop');
  await api.createToken('ci', 86400);
  assert.deepEqual(await api.users(), [{ name: 'ann' }]);
  await api.createUser({ name: 'bob', password: 'pw' });
  assert.deepEqual(calls[1].body, { label: 'laptop' });
  assert.deepEqual(calls[2].body, { label: 'ci', expires_in: 86400 });
  assert.deepEqual(calls[4].body, { name: 'bob', password: 'pw', role: 'user' });
});

test('scoped tokens send their scopes; JSON files and their content go to the files API', async () => {
  const { fetch, calls } = fakeFetch(
    json(201, { id: 't4', token: 'tus_z', scopes: ['read'] }),
    json(201, { id: 'f1' }),
    json(200, { id: 'f1', text: 'hi' }),
  );
  const api = new ApiClient({ base, fetch });
  await api.createToken('reader', null, ['read']);
  await api.createFile({ filename: 'a.txt', text: 'hi', tags: [], previous: 'abc' });
  assert.deepEqual(await api.uploadContent('f1'), { id: 'f1', text: 'hi' });
  assert.deepEqual(calls[0].body, { label: 'reader', scopes: ['read'] });
  assert.equal(calls[1].url, 'http://tus.test/api/files');
  assert.deepEqual(calls[1].body, { filename: 'a.txt', text: 'hi', previous: 'abc' });
  assert.equal(calls[2].url, 'http://tus.test/api/uploads/f1/content?encoding=text');
});
