// Signing in and out, and what the page shows to whom: the login form for a visitor, the uploads
// and tokens for a user, the users table and everyone's files for an admin. On a server without
// accounts (TUSSERVER_AUTH=none, or one older than accounts) the page is open, as before.

import { createTokensPanel } from './tokens.js';
import { createUsersPanel } from './users.js';
import { formatUsage } from './format.js';

const $ = (id) => document.getElementById(id);

/**
 * @param {object} ctx
 * @param {import('./api.js').ApiClient} ctx.api
 * @param {(message: string) => void} ctx.showError
 * @param {(message: string) => void} ctx.announce
 * @param {() => void} ctx.onSignedIn   someone may use the page now (also: accounts are off)
 * @param {() => void} ctx.onSignedOut  nobody is signed in any more
 */
export function createAccount({ api, showError, announce, onSignedIn, onSignedOut }) {
  const els = {
    loginSection: $('login-section'),
    loginHeading: $('login-heading'),
    loginForm: $('login-form'),
    loginName: $('login-name'),
    loginPassword: $('login-password'),
    loginError: $('login-error'),
    loginSubmit: $('login-submit'),
    signedIn: $('signed-in'),
    bar: $('account-bar'),
    name: $('account-name'),
    role: $('account-role'),
    usage: $('account-usage'),
    logout: $('logout'),
    ownerFilter: $('owner-filter'),
    tokensSection: $('tokens-section'),
    usersSection: $('users-section'),
    skipLink: document.querySelector('.skip-link'),
  };
  const state = { user: null, accountsOn: true };
  const tokens = createTokensPanel({ api, showError, announce });
  const users = createUsersPanel({
    api,
    showError,
    announce,
    currentUser: () => state.user?.name ?? null,
    onUsersLoaded: (names) => {
      $('owner-names').replaceChildren(...names.map((name) => new Option(name)));
    },
  });

  function showLogin(message = '') {
    state.user = null;
    els.skipLink.hidden = true; // its target, the file list, is not shown
    els.signedIn.hidden = true;
    els.bar.hidden = true;
    els.usage.hidden = true;
    els.loginSection.hidden = false;
    els.loginError.textContent = message;
    els.loginPassword.value = '';
  }

  function enter(me) {
    state.user = me;
    state.accountsOn = me.auth !== 'none';
    const admin = me.role === 'admin';
    els.loginSection.hidden = true;
    els.skipLink.hidden = false;
    els.loginError.textContent = '';
    els.signedIn.hidden = false;
    els.bar.hidden = !state.accountsOn;
    els.name.textContent = me.name ?? '';
    els.role.textContent = me.role ?? '';
    renderUsage(me);
    els.ownerFilter.hidden = !(admin && state.accountsOn);
    els.tokensSection.hidden = !state.accountsOn;
    els.usersSection.hidden = !(admin && state.accountsOn);
    document.getElementById('files-heading').textContent =
      admin && state.accountsOn ? 'All files' : state.accountsOn ? 'My files' : 'Uploaded files';
    tokens.setAdmin(admin);
    if (state.accountsOn) tokens.load();
    if (admin && state.accountsOn) users.load();
    onSignedIn();
  }

  function renderUsage(me) {
    const show = state.accountsOn && me.role !== 'admin';
    els.usage.hidden = !show;
    if (show) els.usage.textContent = `Storage used: ${formatUsage(me.usage, me.quota)}`;
  }

  function leave(message) {
    tokens.reset();
    users.reset();
    onSignedOut();
    showLogin(message);
  }

  async function start() {
    try {
      enter(await api.me());
    } catch (error) {
      if (error.status === 401) {
        showLogin();
        return;
      }
      // 404: a server without accounts, where the page works as it always did. Anything else
      // (unreachable, 5xx): show the page anyway, so each action reports what goes wrong.
      if (error.status !== 404) showError(`Could not ask the server who you are: ${error.message}`);
      enter({ name: null, role: 'admin', auth: 'none' });
    }
  }

  els.loginForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = els.loginName.value.trim();
    els.loginSubmit.disabled = true;
    els.loginError.textContent = '';
    try {
      await api.login(name, els.loginPassword.value);
      els.loginPassword.value = '';
      enter(await api.me());
      announce(`Signed in as ${name}.`);
      document.getElementById('drop-zone').focus();
    } catch (error) {
      els.loginError.textContent = loginProblem(error);
      els.loginPassword.value = '';
      els.loginPassword.focus();
    } finally {
      els.loginSubmit.disabled = false;
    }
  });

  els.logout.addEventListener('click', async () => {
    els.logout.disabled = true;
    try {
      await api.logout();
      leave('');
      announce('Signed out.');
      els.loginName.focus();
    } catch (error) {
      showError(`Could not sign out: ${error.message}`);
    } finally {
      els.logout.disabled = false;
    }
  });

  return {
    start,
    get signedIn() {
      return state.user !== null;
    },
    get isAdmin() {
      return state.user?.role === 'admin';
    },
    get accountsOn() {
      return state.accountsOn;
    },
    /** A request was refused as unauthenticated: the session is gone (logout elsewhere, expiry). */
    sessionEnded() {
      if (state.user && state.accountsOn) leave('Your session has ended: please sign in again.');
    },
    /** Refresh the storage line (after uploads or deletions). */
    async refreshUsage() {
      if (!state.user || !state.accountsOn) return;
      try {
        const me = await api.me();
        state.user = me;
        renderUsage(me);
      } catch {
        // the next action will report a real problem
      }
    },
  };
}

function loginProblem(error) {
  if (error.status === 401) return 'Wrong user name or password.';
  if (error.status === 429) {
    const wait = error.retryAfter ? ` in ${error.retryAfter} s` : ' later';
    return `Too many attempts: try again${wait}.`;
  }
  return `Could not sign in: ${error.message}`;
}
