import { test } from 'node:test';
import assert from 'node:assert/strict';

import { followFileEvents, mergeFileEvent } from '../events.js';

class FakeEventSource {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;
  static made = [];

  constructor(url, options) {
    this.url = url;
    this.options = options;
    this.readyState = FakeEventSource.CONNECTING;
    this.listeners = {};
    this.closed = false;
    FakeEventSource.made.push(this);
  }

  addEventListener(type, listener) {
    (this.listeners[type] ??= []).push(listener);
  }

  emit(type, data, lastEventId = '') {
    for (const listener of this.listeners[type] ?? []) listener({ data, lastEventId });
  }

  close() {
    this.closed = true;
    this.readyState = FakeEventSource.CLOSED;
  }
}

test('events are handed to the page, and a refused stream resumes after the last id', () => {
  FakeEventSource.made = [];
  const seen = [];
  let resets = 0;
  const timers = [];
  const follow = followFileEvents({
    url: 'http://example.test/api/events',
    onEvent: (event) => seen.push(event),
    onReset: () => { resets += 1; },
    EventSourceImpl: FakeEventSource,
    setTimer: (fn) => timers.push(fn),
  });
  const [first] = FakeEventSource.made;
  first.emit('created', JSON.stringify({ type: 'created', id: 'a' }), '5-0');
  first.emit('progress', 'not json', '6-0');
  assert.deepEqual(seen, [{ type: 'created', id: 'a' }]);

  first.readyState = FakeEventSource.CONNECTING; // the browser reconnects by itself
  first.emit('error');
  assert.equal(timers.length, 0);

  first.readyState = FakeEventSource.CLOSED; // refused (503): we reconnect
  first.emit('error');
  assert.equal(timers.length, 1);
  timers[0]();
  assert.equal(resets, 1);
  const second = FakeEventSource.made[1];
  assert.equal(new URL(second.url).searchParams.get('last_event_id'), '6-0');

  second.emit('reset', '{}');
  assert.equal(resets, 2);
  follow.close();
  assert.equal(second.closed, true);
});

test('mergeFileEvent moves progress forward and asks for a reload otherwise', () => {
  const uploads = [{ id: 'a', offset: 5, size: 10, complete: false }, { id: 'b', offset: 1, complete: true }];
  const moved = mergeFileEvent(uploads, { type: 'progress', id: 'a', offset: 7, size: 10 });
  assert.equal(moved[0].offset, 7);
  assert.equal(uploads[0].offset, 5); // not changed in place
  assert.equal(mergeFileEvent(moved, { type: 'progress', id: 'a', offset: 6 }), moved); // never back
  assert.equal(mergeFileEvent(uploads, { type: 'progress', id: 'zzz', offset: 1 }), null);
  assert.equal(mergeFileEvent(uploads, { type: 'created', id: 'c' }), null);
  assert.equal(mergeFileEvent(uploads, { type: 'finished', id: 'a', offset: 10 }), null);
  assert.equal(mergeFileEvent(uploads, { type: 'deleted', id: 'a' }), null);
});
