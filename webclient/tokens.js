// API tokens: create (the secret is shown once), list, revoke.

import { copyText } from './clipboard.js';
import { h } from './dom.js';
import { TOKEN_LIFETIMES, formatDate } from './format.js';

const $ = (id) => document.getElementById(id);

/** Scopes as a reader sees them: the list, or "all" for a token with its owner's full rights. */
export function scopesText(scopes) {
  return scopes?.length ? scopes.join(', ') : 'all';
}

export function createTokensPanel({ api, showError, announce }) {
  const els = {
    form: $('token-form'),
    label: $('token-label'),
    lifetime: $('token-lifetime'),
    created: $('token-created'),
    value: $('token-value'),
    copy: $('token-copy'),
    dismiss: $('token-dismiss'),
    status: $('tokens-status'),
    table: $('tokens-table'),
    body: $('tokens-body'),
  };
  els.lifetime.replaceChildren(
    ...TOKEN_LIFETIMES.map(({ label, seconds }) => new Option(label, seconds === null ? '' : String(seconds))),
  );

  async function load() {
    try {
      render(await api.tokens());
    } catch (error) {
      els.status.textContent = 'Could not load your tokens.';
      if (error.status !== 401) showError(`Could not load your tokens: ${error.message}`);
    }
  }

  function render(tokens) {
    els.body.replaceChildren(...tokens.map(row));
    els.table.hidden = tokens.length === 0;
    els.status.textContent = tokens.length === 0
      ? 'No tokens yet.'
      : `${tokens.length} ${tokens.length === 1 ? 'token' : 'tokens'}.`;
  }

  function row(token) {
    const label = token.label || '(no label)';
    const revoke = h('button', {
      type: 'button',
      class: 'button small danger',
      'aria-label': `Revoke token ${label}`,
      dataset: { testid: 'token-revoke' },
      onclick: () => revokeToken(token, label, revoke),
    }, 'Revoke');
    return h('tr', { dataset: { testid: 'token-row', id: token.id } },
      h('td', { dataset: { label: 'Label', testid: 'token-label-cell' } }, label),
      h('td', { dataset: { label: 'Created' } }, formatDate(token.created)),
      h('td', { dataset: { label: 'Expires' } }, formatDate(token.expires, 'never')),
      h('td', { dataset: { label: 'Last used' } }, formatDate(token.last_used, 'never')),
      h('td', { dataset: { label: 'Scopes', testid: 'token-scopes-cell' } }, scopesText(token.scopes)),
      h('td', { class: 'cell-actions' }, revoke),
    );
  }

  async function revokeToken(token, label, button) {
    button.disabled = true;
    try {
      await api.revokeToken(token.id);
      announce(`Token ${label} revoked.`);
      await load();
      els.label.focus();
    } catch (error) {
      showError(`Could not revoke token “${label}”: ${error.message}`);
      button.disabled = false;
    }
  }

  els.form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const label = els.label.value.trim();
    if (!label) {
      showError('Give the token a label, so you know later what it is for.');
      els.label.focus();
      return;
    }
    const seconds = els.lifetime.value ? Number(els.lifetime.value) : null;
    const scopes = [...els.form.querySelectorAll('input[name=scope]:checked')].map((box) => box.value);
    const submit = els.form.querySelector('button[type=submit]');
    submit.disabled = true;
    try {
      const created = await api.createToken(label, seconds, scopes);
      els.value.value = created.token;
      els.created.hidden = false;
      els.value.focus();
      els.value.select();
      els.label.value = '';
      for (const box of els.form.querySelectorAll('input[name=scope]')) box.checked = false;
      announce(`Token ${label} created. Copy it now: it is shown only once.`);
      await load();
    } catch (error) {
      showError(`Could not create the token: ${error.message}`);
    } finally {
      submit.disabled = false;
    }
  });

  els.copy.addEventListener('click', async () => {
    const copied = await copyText(els.value.value);
    els.value.select();
    announce(copied ? 'Token copied.' : 'Copy the selected token with Ctrl+C.');
  });

  els.dismiss.addEventListener('click', () => {
    els.value.value = '';
    els.created.hidden = true;
    els.label.focus();
  });

  return {
    load,
    /** Only an admin's token may carry the admin scope: offer it to admins alone. */
    setAdmin(isAdmin) {
      const label = els.form.querySelector('[data-testid=token-scope-admin-label]');
      label.hidden = !isAdmin;
      if (!isAdmin) label.querySelector('input').checked = false;
    },
    /** Forget everything shown (sign-out): above all the once-shown secret. */
    reset() {
      els.value.value = '';
      els.created.hidden = true;
      els.body.replaceChildren();
      els.table.hidden = true;
      els.status.textContent = '';
    },
  };
}
