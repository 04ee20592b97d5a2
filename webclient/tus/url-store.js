// Remembers where an unfinished upload lives so that picking the same file again (even after a
// reload) resumes it instead of starting over. Entries are keyed by a fingerprint of the file and
// the endpoint, and are removed once the upload succeeds.
//
// An entry is either { url } for a plain upload or { parts: [url|null, ...] } for a file sent as
// parallel partial uploads (null: that part was not created yet). Both carry createdAt.
//
// Storage is injectable: anything localStorage-like (getItem/setItem/removeItem) or Map-like
// (get/set/delete). Storage failures (quota, private mode, disabled storage) are swallowed:
// remembering URLs is a convenience, never a reason to fail an upload.

/** Identifies "the same file sent to the same server" across page loads. */
export function fingerprint(file, endpoint) {
  // JSON keeps the fields unambiguous even if a file name contains a separator character.
  return JSON.stringify([
    String(endpoint ?? ''),
    file.name ?? '',
    file.size,
    file.type ?? '',
    file.lastModified ?? 0,
  ]);
}

/** Adapts localStorage-like and Map-like objects to one get/set/delete shape. */
function adaptStorage(storage) {
  if (!storage) return null;
  if (typeof storage.getItem === 'function') {
    return {
      get: (key) => storage.getItem(key),
      set: (key, value) => storage.setItem(key, value),
      delete: (key) => storage.removeItem(key),
      keys: () => Array.from({ length: storage.length ?? 0 }, (_, i) => storage.key(i)),
    };
  }
  return {
    get: (key) => storage.get(key) ?? null,
    set: (key, value) => storage.set(key, value),
    delete: (key) => storage.delete(key),
    keys: () => (typeof storage.keys === 'function' ? [...storage.keys()] : []),
  };
}

/** The browser's localStorage if usable; accessing it can throw (e.g. sandboxed iframes). */
function defaultStorage() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}

export class UrlStore {
  /**
   * @param {object} [options]
   * @param {object} [options.storage] localStorage-like or Map-like; defaults to localStorage.
   * @param {string} [options.prefix] namespaces our keys inside a shared storage.
   */
  constructor({ storage = defaultStorage(), prefix = 'tus::' } = {}) {
    this.storage = adaptStorage(storage);
    this.prefix = prefix;
  }

  /** The stored entry for a fingerprint, or null (also null if the stored value is corrupt). */
  get(fp) {
    try {
      const raw = this.storage?.get(this.prefix + fp);
      if (raw === null || raw === undefined) return null;
      const entry = JSON.parse(raw);
      return entry && typeof entry === 'object' ? entry : null;
    } catch {
      return null;
    }
  }

  set(fp, entry) {
    try {
      this.storage?.set(this.prefix + fp, JSON.stringify(entry));
    } catch {
      // Quota exceeded or storage disabled: the upload still works, only without resume.
    }
  }

  remove(fp) {
    try {
      this.storage?.delete(this.prefix + fp);
    } catch {
      // Same as set(): best effort.
    }
  }

  /** All [fingerprint, entry] pairs we own, for diagnostics or a "resumable uploads" view. */
  entries() {
    let keys = [];
    try {
      keys = this.storage?.keys() ?? [];
    } catch {
      return [];
    }
    return keys
      .filter((key) => typeof key === 'string' && key.startsWith(this.prefix))
      .map((key) => [key.slice(this.prefix.length), this.get(key.slice(this.prefix.length))])
      .filter(([, entry]) => entry !== null);
  }
}
