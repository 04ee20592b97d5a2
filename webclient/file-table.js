// The file table's search, tag filters, sort and per-row extras (thumbnail, type, tags, status,
// tag editing). app.js owns loading and the rows' other actions; this module owns what the
// catalog added: the query sent to GET /api/uploads and the cells that show tags and previews.

import { h } from './dom.js';

const TAG = /^[a-z0-9._-]{1,32}$/;
const MAX_TAGS = 20;
const SEARCH_DELAY_MS = 250;
const ICONS = { image: 'IMG', video: 'VID', audio: 'AUD', text: 'TXT', application: 'BIN' };

/** Tags typed as "a, b c": split on commas and spaces, lower-cased; throws on a bad one. */
export function parseTags(text) {
  const tags = [...new Set(String(text).toLowerCase().split(/[\s,]+/).filter(Boolean))];
  const bad = tags.find((tag) => !TAG.test(tag));
  if (bad) throw new Error(`“${bad}” is not a tag: use a-z, 0-9, “-”, “_” and “.”, at most 32.`);
  if (tags.length > MAX_TAGS) throw new Error(`At most ${MAX_TAGS} tags per file.`);
  return tags;
}

/** A type badge (plain text: no emoji font needed) for files without a thumbnail. */
export function typeIcon(filetype) {
  return ICONS[String(filetype ?? '').split('/')[0]] ?? 'FILE';
}

export function createFileTable({ form, input, chips, table, onChange }) {
  const state = { q: '', tags: [], sort: '-created' };
  let timer = null;

  const changed = () => {
    renderChips();
    renderSortHeaders();
    onChange();
  };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearTimeout(timer);
    state.q = input.value.trim();
    changed();
  });
  input.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (state.q === input.value.trim()) return;
      state.q = input.value.trim();
      changed();
    }, SEARCH_DELAY_MS);
  });
  for (const header of table.querySelectorAll('th[data-sort]')) {
    header.querySelector('button').addEventListener('click', () => {
      const field = header.dataset.sort;
      const current = state.sort.replace(/^-/, '');
      // A new column starts ascending (created: newest first); the same column flips.
      if (current !== field) state.sort = field === 'created' ? '-created' : field;
      else state.sort = state.sort.startsWith('-') ? field : `-${field}`;
      changed();
    });
  }

  function renderSortHeaders() {
    const field = state.sort.replace(/^-/, '');
    for (const header of table.querySelectorAll('th[data-sort]')) {
      if (header.dataset.sort === field) {
        header.setAttribute('aria-sort', state.sort.startsWith('-') ? 'descending' : 'ascending');
      } else {
        header.removeAttribute('aria-sort');
      }
    }
  }

  function renderChips() {
    chips.replaceChildren(
      ...state.tags.map((tag) => h(
        'button',
        {
          type: 'button',
          class: 'chip active',
          dataset: { testid: 'tag-filter', tag },
          'aria-label': `Stop filtering by tag ${tag}`,
          onclick: () => {
            state.tags = state.tags.filter((t) => t !== tag);
            changed();
          },
        },
        `#${tag} ×`,
      )),
    );
  }

  function addTagFilter(tag) {
    if (state.tags.includes(tag)) return;
    state.tags = [...state.tags, tag];
    changed();
  }

  /** The query of GET /api/uploads for the current search, filters and sort. */
  function query() {
    return { q: state.q, tag: state.tags, sort: state.sort };
  }

  function isFiltered() {
    return Boolean(state.q || state.tags.length);
  }

  /** Fill the catalog's cells of one row: preview, type, tags (chips that filter), status. */
  function fillRow(row, upload, { showOwner }) {
    const part = (id) => row.querySelector(`[data-testid="${id}"]`);
    const thumbnail = part('thumbnail');
    const icon = part('type-icon');
    const src = typeof upload.thumbnail === 'string' && upload.thumbnail.startsWith('data:image/')
      ? upload.thumbnail
      : null;
    thumbnail.hidden = !src;
    if (src) thumbnail.src = src;
    else thumbnail.removeAttribute('src');
    icon.hidden = Boolean(src);
    icon.textContent = typeIcon(upload.filetype);
    part('type').textContent = upload.filetype || '—';
    const tags = Array.isArray(upload.tags) ? upload.tags : [];
    part('tags').replaceChildren(
      ...tags.map((tag) => h(
        'button',
        {
          type: 'button',
          class: 'chip',
          dataset: { testid: 'tag-chip', tag },
          'aria-label': `Show files tagged ${tag}`,
          onclick: () => addTagFilter(tag),
        },
        `#${tag}`,
      )),
    );
    const status = part('status');
    status.textContent = upload.complete ? 'Complete' : 'Incomplete';
    status.className = upload.complete ? 'status-complete' : 'status-incomplete';
    table.querySelector('#owner-column').hidden = !showOwner;
  }

  return { query, fillRow, isFiltered, addTagFilter };
}
