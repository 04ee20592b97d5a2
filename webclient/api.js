// The JSON API under /api: one small client for the page, no DOM, so it runs under `node --test`
// with a fake `fetch`. Every method resolves with the parsed JSON (null for 204) or rejects with
// an ApiError carrying the server's {"error": {"code", "message"}}.

/** An HTTP error answer from the API (or no answer at all: status 0). */
export class ApiError extends Error {
  constructor(status, code, message, { retryAfter = null } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** The server's error message, or whatever text came back, or the status line. */
async function errorFrom(response) {
  const text = await response.text().catch(() => '');
  let code = `http-${response.status}`;
  let message = '';
  try {
    const error = JSON.parse(text)?.error;
    if (error?.message) message = String(error.message);
    if (error?.code) code = String(error.code);
  } catch {
    // not JSON: fall back to the text
  }
  if (!message) message = text.trim().slice(0, 300) || `HTTP ${response.status} ${response.statusText}`.trim();
  const retryAfter = Number.parseInt(response.headers.get('Retry-After') ?? '', 10);
  return new ApiError(response.status, code, message, {
    retryAfter: Number.isFinite(retryAfter) ? retryAfter : null,
  });
}

export class ApiClient {
  /**
   * @param {object} options
   * @param {string} options.base         absolute URL of the API root, ending in `/` (…/api/)
   * @param {Function} [options.fetch]    the fetch to use (tests pass a fake)
   * @param {string} [options.credentials] 'same-origin' or 'include' (API on another origin)
   * @param {Function} [options.onUnauthorized] called with the ApiError of any 401 except a
   *                                      failed login, e.g. to show the login form again
   */
  constructor({ base, fetch = (...args) => globalThis.fetch(...args), credentials = 'same-origin', onUnauthorized = null }) {
    this.base = base;
    this.fetch = fetch;
    this.credentials = credentials;
    this.onUnauthorized = onUnauthorized;
  }

  url(path, query = {}) {
    const url = new URL(path, this.base);
    for (const [name, value] of Object.entries(query)) {
      if (Array.isArray(value)) {
        for (const each of value) url.searchParams.append(name, String(each)); // e.g. tag=a&tag=b
      } else if (value !== undefined && value !== null && value !== '') {
        url.searchParams.set(name, String(value));
      }
    }
    return url.href;
  }

  async request(method, path, { body, query } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await this.fetch(this.url(path, query), {
        method,
        headers,
        credentials: this.credentials,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError(0, 'network', `the server could not be reached (${error.message})`);
    }
    if (!response.ok) {
      const error = await errorFrom(response);
      if (error.status === 401 && path !== 'session' && this.onUnauthorized) this.onUnauthorized(error);
      throw error;
    }
    return response.status === 204 ? null : response.json();
  }

  // ---- session ----
  me() {
    return this.request('GET', 'me');
  }

  login(name, password) {
    return this.request('POST', 'session', { body: { name, password } });
  }

  logout() {
    return this.request('DELETE', 'session');
  }

  // ---- uploads ----
  uploads({ limit, offset, owner } = {}) {
    return this.request('GET', 'uploads', { query: { limit, offset, owner } });
  }

  renameUpload(id, filename) {
    return this.request('PATCH', `uploads/${encodeURIComponent(id)}`, { body: { filename } });
  }

  setTags(id, tags) {
    return this.request('PATCH', `uploads/${encodeURIComponent(id)}`, { body: { tags } });
  }

  deleteUpload(id) {
    return this.request('DELETE', `uploads/${encodeURIComponent(id)}`);
  }

  /** A complete upload from one JSON request (small files and text): POST /api/files. */
  createFile({ filename, text, contentBase64, filetype, tags, previous }) {
    const body = { filename };
    if (text !== undefined) body.text = text;
    else body.content_base64 = contentBase64;
    if (filetype) body.filetype = filetype;
    if (tags?.length) body.tags = tags;
    if (previous) body.previous = previous;
    return this.request('POST', 'files', { body });
  }

  /** A small complete upload's content: `encoding` 'text' (UTF-8) or 'base64'. */
  uploadContent(id, encoding = 'text') {
    return this.request('GET', `uploads/${encodeURIComponent(id)}/content`, { query: { encoding } });
  }

  createLink(id, expiresIn) {
    return this.request('POST', `uploads/${encodeURIComponent(id)}/links`, { body: { expires_in: expiresIn } });
  }

  // ---- tokens ----
  async tokens() {
    return (await this.request('GET', 'tokens'))?.tokens ?? [];
  }

  /** `scopes`: a list of 'upload', 'read', 'manage', 'admin'; null or empty: full rights. */
  createToken(label, expiresIn = null, scopes = null) {
    const body = { label };
    if (expiresIn) body.expires_in = expiresIn;
    if (scopes?.length) body.scopes = scopes;
    return this.request('POST', 'tokens', { body });
  }

  revokeToken(id) {
    return this.request('DELETE', `tokens/${encodeURIComponent(id)}`);
  }

  // ---- users (admins) ----
  async users() {
    return (await this.request('GET', 'users'))?.users ?? [];
  }

  createUser({ name, password, role = 'user', quota = null }) {
    const body = { name, password, role };
    if (quota !== null) body.quota = quota;
    return this.request('POST', 'users', { body });
  }

  updateUser(name, changes) {
    return this.request('PATCH', `users/${encodeURIComponent(name)}`, { body: changes });
  }
}
