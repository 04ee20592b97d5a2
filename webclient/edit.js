// The "Edit" action of a small text file: open its text, change it, save it as a NEW upload.
//
// Saving never overwrites: the new version is a new upload (same name, same type, its
// `previous` metadata pointing at the old one) made with POST /api/files, and the old one stays
// until the user deletes it. The text is fetched with GET /api/uploads/<id>/content?encoding=text.

import { h } from './dom.js';

/** Files larger than this are not offered for editing (a text area is no place for them). */
export const EDIT_MAX_BYTES = 1024 * 1024;

const TAG = /^[a-z0-9_.-]{1,32}$/;
const FILETYPE = /^[A-Za-z0-9][\x20-\x7e]{0,254}$/;
const TEXT_TYPES = /^(text\/|application\/(json|xml|javascript|x-yaml|yaml|toml|x-sh|sql)\b)/i;
const TEXT_EXTENSIONS = /\.(txt|md|markdown|csv|tsv|json|ya?ml|toml|ini|cfg|conf|log|xml|html?|css|js|mjs|ts|py|rb|go|rs|java|c|h|cpp|sh|sql|svg|env)$/i;

/** Is this upload a small, complete text file the page can edit? */
export function isEditable(upload) {
  if (!upload?.complete || !Number.isFinite(upload.size) || upload.size > EDIT_MAX_BYTES) return false;
  if (upload.filetype && TEXT_TYPES.test(upload.filetype)) return true;
  return TEXT_EXTENSIONS.test(upload.filename ?? '');
}

/**
 * Add the Edit button and its panel to a file row (nothing for files that cannot be edited).
 * @param {HTMLElement} row      the file row (with a `[data-testid=file-actions]` button group)
 * @param {object} upload        the upload as the API lists it
 * @param {object} deps          { api, showError, announce, onSaved(newUpload) }
 */
export function attachEditAction(row, upload, { api, showError, announce, onSaved }) {
  const actions = row.querySelector('[data-testid="file-actions"]');
  if (!actions || !isEditable(upload)) return;
  const name = upload.filename || '(unnamed)';
  const textarea = h('textarea', {
    spellcheck: 'false',
    'aria-label': `Text of ${name}`,
    dataset: { testid: 'edit-text' },
  });
  const save = h('button', { type: 'submit', class: 'button primary', dataset: { testid: 'edit-save' } }, 'Save as new version');
  const cancel = h('button', { type: 'button', class: 'button', dataset: { testid: 'edit-cancel' } }, 'Cancel');
  const note = h('p', { class: 'muted' }, 'Saving keeps this version; delete it yourself when you no longer need it.');
  const form = h('form', { class: 'inline-form edit-form', hidden: true, dataset: { testid: 'edit-form' } },
    textarea, note, h('div', { class: 'actions' }, save, cancel));
  const button = h('button', {
    type: 'button',
    class: 'button',
    'aria-label': `Edit ${name}`,
    dataset: { testid: 'edit' },
  }, 'Edit');
  const deleteButton = actions.querySelector('[data-testid="delete"]');
  actions.insertBefore(button, deleteButton);
  actions.after(form);

  const close = () => {
    form.hidden = true;
    actions.hidden = false;
    row.dataset.busy = 'false';
    button.focus();
  };

  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const content = await api.uploadContent(upload.id, 'text');
      textarea.value = content.text;
      actions.hidden = true;
      form.hidden = false;
      row.dataset.busy = 'true'; // a list refresh keeps this row (and what is being typed)
      textarea.focus();
    } catch (error) {
      showError(`Could not open “${name}” for editing: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  });
  cancel.addEventListener('click', close);
  form.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') close();
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    save.disabled = true;
    try {
      // Carry the old version's tags and type over when they are ones the JSON API takes.
      const tags = (upload.metadata?.tags ?? '').split(',').map((t) => t.trim()).filter((t) => TAG.test(t));
      const made = await api.createFile({
        filename: upload.filename || 'untitled.txt',
        text: textarea.value,
        filetype: FILETYPE.test(upload.filetype ?? '') ? upload.filetype : undefined,
        tags,
        previous: upload.id,
      });
      form.hidden = true;
      actions.hidden = false;
      row.dataset.busy = 'false';
      announce(`Saved a new version of ${name}; the previous one is kept.`);
      onSaved?.(made);
    } catch (error) {
      showError(`Could not save “${name}”: ${error.message}`);
    } finally {
      save.disabled = false;
    }
  });
}
