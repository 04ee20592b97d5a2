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
 * Add the Edit button to a file row (nothing for files that cannot be edited). The text opens in
 * a modal dialog, so the editor has the page's width whatever the file table's layout.
 * @param {HTMLElement} row      the file row (with a `[data-testid=file-actions]` button group)
 * @param {object} upload        the upload as the API lists it
 * @param {object} deps          { api, showError, announce, onSaved(newUpload) }
 */
export function attachEditAction(row, upload, { api, showError, announce, onSaved }) {
  const actions = row.querySelector('[data-testid="file-actions"]');
  if (!actions || !isEditable(upload)) return;
  const name = upload.filename || '(unnamed)';
  const button = h('button', {
    type: 'button',
    class: 'button',
    'aria-label': `Edit ${name}`,
    dataset: { testid: 'edit' },
  }, 'Edit');
  actions.insertBefore(button, actions.querySelector('[data-testid="delete"]'));

  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const content = await api.uploadContent(upload.id, 'text');
      openEditor(upload, name, content.text, { api, showError, announce, onSaved, returnFocus: button });
    } catch (error) {
      showError(`Could not open “${name}” for editing: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  });
}

function openEditor(upload, name, text, { api, showError, announce, onSaved, returnFocus }) {
  const textarea = h('textarea', {
    spellcheck: 'false',
    'aria-label': `Text of ${name}`,
    dataset: { testid: 'edit-text' },
  });
  textarea.value = text;
  const save = h('button', { type: 'submit', class: 'button primary', dataset: { testid: 'edit-save' } }, 'Save as new version');
  const cancel = h('button', { type: 'button', class: 'button', dataset: { testid: 'edit-cancel' } }, 'Cancel');
  const headingId = `edit-heading-${upload.id}`;
  const form = h('form', { method: 'dialog', class: 'edit-form' },
    h('h2', { id: headingId }, `Edit ${name}`),
    textarea,
    h('p', { class: 'muted' }, 'Saving stores a new version; this one is kept until you delete it.'),
    h('div', { class: 'actions' }, save, cancel));
  const dialog = h('dialog', { class: 'edit-dialog', 'aria-labelledby': headingId, dataset: { testid: 'edit-dialog' } }, form);
  const close = () => {
    dialog.close();
    dialog.remove();
    if (returnFocus.isConnected) returnFocus.focus();
  };
  cancel.addEventListener('click', close);
  dialog.addEventListener('cancel', (event) => {
    event.preventDefault(); // Escape: close the same way as Cancel
    close();
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
      close();
      announce(`Saved a new version of ${name}; the previous one is kept.`);
      onSaved?.(made);
    } catch (error) {
      showError(`Could not save “${name}”: ${error.message}`);
    } finally {
      save.disabled = false;
    }
  });
  document.body.append(dialog);
  dialog.showModal();
  textarea.focus();
}
