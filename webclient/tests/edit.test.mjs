import { test } from 'node:test';
import assert from 'node:assert/strict';

import { EDIT_MAX_BYTES, isEditable } from '../edit.js';

const file = (over) => ({ complete: true, size: 10, filename: 'notes.txt', filetype: '', ...over });

test('small complete text files are editable; binaries, big and unfinished ones are not', () => {
  assert.equal(isEditable(file()), true);
  assert.equal(isEditable(file({ filename: 'data', filetype: 'text/csv' })), true);
  assert.equal(isEditable(file({ filename: 'conf', filetype: 'application/json' })), true);
  assert.equal(isEditable(file({ filename: 'photo.jpg', filetype: 'image/jpeg' })), false);
  assert.equal(isEditable(file({ size: EDIT_MAX_BYTES + 1 })), false);
  assert.equal(isEditable(file({ complete: false })), false);
});
