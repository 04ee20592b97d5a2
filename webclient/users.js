// The admin's users table: create, change role, set quota, disable, reset password.

import { h } from './dom.js';
import { formatBytes, formatUsage, parseSize } from './format.js';

const $ = (id) => document.getElementById(id);

const QUOTA_HELP = 'Write a size such as 10G or 500M, 0 for no limit, or leave it empty for the default.';

export function createUsersPanel({ api, showError, announce, currentUser, onUsersLoaded }) {
  const els = {
    form: $('user-form'),
    name: $('user-name'),
    password: $('user-password'),
    role: $('user-role'),
    quota: $('user-quota'),
    status: $('users-status'),
    table: $('users-table'),
    body: $('users-body'),
  };

  async function load() {
    try {
      const users = await api.users();
      render(users);
      onUsersLoaded(users.map((user) => user.name));
    } catch (error) {
      els.status.textContent = 'Could not load the users.';
      if (error.status !== 401) showError(`Could not load the users: ${error.message}`);
    }
  }

  function render(users) {
    els.body.replaceChildren(...users.map(row));
    els.table.hidden = users.length === 0;
    els.status.textContent = `${users.length} ${users.length === 1 ? 'user' : 'users'}.`;
  }

  /** PATCH one user; on success reload the table and say what happened. */
  async function change(user, changes, done, control) {
    if (control) control.disabled = true;
    try {
      await api.updateUser(user.name, changes);
      announce(done);
      await load();
      return true;
    } catch (error) {
      showError(`Could not change user “${user.name}”: ${error.message}`);
      await load(); // put the controls back to what the server holds
      return false;
    } finally {
      if (control) control.disabled = false;
    }
  }

  function row(user) {
    const self = user.name === currentUser();
    const name = user.name;

    const role = h('select', {
      'aria-label': `Role of ${name}`,
      dataset: { testid: 'user-role-select' },
      disabled: self, // an admin cannot demote itself
    },
    new Option('user', 'user', false, user.role === 'user'),
    new Option('admin', 'admin', false, user.role === 'admin'));
    role.addEventListener('change', () => change(user, { role: role.value }, `${name} is now ${role.value}.`, role));

    const quotaInput = h('input', {
      type: 'text',
      'aria-label': `Quota of ${name}`,
      placeholder: user.quota_override === null || user.quota_override === undefined ? 'default' : '',
      value: user.quota_override === null || user.quota_override === undefined ? '' : sizeText(user.quota_override),
      autocomplete: 'off',
      dataset: { testid: 'user-quota-input' },
    });
    const quotaForm = h('form', { class: 'quota-form', dataset: { testid: 'user-quota-form' } },
      quotaInput,
      h('button', { type: 'submit', class: 'button small', 'aria-label': `Set quota of ${name}` }, 'Set'));
    quotaForm.addEventListener('submit', (event) => {
      event.preventDefault();
      const quota = parseSize(quotaInput.value);
      if (quota === undefined) {
        showError(`Quota of ${name}: ${QUOTA_HELP}`);
        quotaInput.focus();
        return;
      }
      const said = quota === null ? 'the default quota' : quota === 0 ? 'no quota' : `a quota of ${formatBytes(quota)}`;
      change(user, { quota }, `${name} now has ${said}.`);
    });

    const disabled = h('input', {
      type: 'checkbox',
      checked: Boolean(user.disabled),
      disabled: self, // nor disable itself
      dataset: { testid: 'user-disabled' },
    });
    disabled.addEventListener('change', () =>
      change(user, { disabled: disabled.checked }, `${name} ${disabled.checked ? 'disabled' : 'enabled'}.`, disabled));

    const resetForm = passwordForm(user);
    const reset = h('button', {
      type: 'button',
      class: 'button small',
      'aria-label': `Reset the password of ${name}`,
      'aria-expanded': 'false',
      dataset: { testid: 'user-reset-password' },
    }, 'Reset password');
    reset.addEventListener('click', () => {
      resetForm.hidden = !resetForm.hidden;
      reset.setAttribute('aria-expanded', String(!resetForm.hidden));
      if (!resetForm.hidden) resetForm.querySelector('input').focus();
    });

    return h('tr', { dataset: { testid: 'user-row', name }, class: user.disabled ? 'is-disabled' : null },
      h('th', { scope: 'row', dataset: { label: 'Name', testid: 'user-name-cell' } }, name, self ? ' (you)' : ''),
      h('td', { dataset: { label: 'Role' } }, role),
      h('td', { dataset: { label: 'Storage' } },
        h('span', { class: 'usage', dataset: { testid: 'user-usage' } }, formatUsage(user.usage, user.quota)),
        quotaForm),
      h('td', { dataset: { label: 'Status' } },
        h('label', { class: 'check' }, disabled, ` Disabled`, h('span', { class: 'visually-hidden' }, ` (${name})`))),
      h('td', { class: 'cell-actions', dataset: { label: 'Password' } }, reset, resetForm),
    );
  }

  function passwordForm(user) {
    const input = h('input', {
      type: 'password',
      autocomplete: 'new-password',
      required: true,
      'aria-label': `New password for ${user.name}`,
      dataset: { testid: 'user-new-password' },
    });
    const form = h('form', { class: 'quota-form', hidden: true, dataset: { testid: 'user-password-form' } },
      input,
      h('button', { type: 'submit', class: 'button small primary', 'aria-label': `Save the new password of ${user.name}` }, 'Save'));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (!input.value) return;
      change(user, { password: input.value }, `Password of ${user.name} changed; their sessions have ended.`);
    });
    return form;
  }

  els.form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const quota = parseSize(els.quota.value);
    if (quota === undefined) {
      showError(`Quota: ${QUOTA_HELP}`);
      els.quota.focus();
      return;
    }
    const name = els.name.value.trim();
    const submit = els.form.querySelector('button[type=submit]');
    submit.disabled = true;
    try {
      await api.createUser({ name, password: els.password.value, role: els.role.value, quota });
      els.form.reset();
      announce(`User ${name} created.`);
      await load();
      els.name.focus();
    } catch (error) {
      showError(`Could not create user “${name}”: ${error.message}`);
    } finally {
      submit.disabled = false;
    }
  });

  return {
    load,
    reset() {
      els.body.replaceChildren();
      els.table.hidden = true;
      els.status.textContent = '';
      els.form.reset();
    },
  };
}

/** Bytes as something parseSize reads back: whole GiB/MiB/KiB when exact, else bytes. */
function sizeText(bytes) {
  for (const [unit, size] of [['T', 1024 ** 4], ['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]]) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}
