// The page's configuration, and the URL rules that keep it from being turned against the user.
// Pure (no DOM, no window), so it runs under `node --test`.
//
// Anyone can send a user a link to this page with a query string of their choosing, so a URL in
// the query string is accepted only when it stays on the page's own origin: `/?endpoint=https://
// evil.example/` would otherwise send the user's files (and cookies) elsewhere, and `/?api=` would
// feed the page a file list whose links are `javascript:` URLs. The `data-` attributes on <body>
// are written by whoever deploys the page, so they may name another origin (a copy of the page
// hosted elsewhere, with CORS on the server), but only over http(s).
//
//   query string        <body> attribute         default         meaning
//   ?endpoint=/files/   data-endpoint            /files/         tus creation URL
//   ?api=/api/uploads   data-api                 /api/uploads    JSON API of the file list; the
//                                                                account API is its sibling /api/
//   ?chunkSize=1048576  data-chunk-size          5242880 (5 MiB) bytes per PATCH request
//   ?parallel=3         data-parallel            1               initial "parallel parts per file" (1-6)
//   ?concurrency=2      data-concurrency         2               initial concurrent uploads (1-10)
//   ?retryDelays=0,500  data-retry-delays        0,1000,3000,5000,10000   ms before each retry

import { DEFAULT_CHUNK_SIZE, DEFAULT_RETRY_DELAYS } from './tus/upload.js';

export const DEFAULTS = Object.freeze({ endpoint: '/files/', api: '/api/uploads' });

const WEB_SCHEMES = new Set(['http:', 'https:']);

/** `value` resolved against `base` if the result is an http(s) URL, else null. */
export function httpUrl(value, base) {
  if (typeof value !== 'string' || value.trim() === '') return null;
  let url;
  try {
    url = new URL(value, base);
  } catch {
    return null;
  }
  return WEB_SCHEMES.has(url.protocol) ? url : null;
}

/** `value` resolved against `base` if it stays on `base`'s origin, else null. */
export function sameOriginUrl(value, base) {
  const url = httpUrl(value, base);
  return url && url.origin === new URL(base).origin ? url : null;
}

/**
 * What may go into an `href` that the server (or anyone) handed us: http(s) URLs only, so a
 * `javascript:` or `data:` URL can never become a link the user clicks. Null for anything else.
 */
export function safeHref(value, base) {
  return httpUrl(value, base)?.href ?? null;
}

export function parseInteger(text, min, max, fallback) {
  const value = Number.parseInt(text ?? '', 10);
  return Number.isFinite(value) ? Math.min(max, Math.max(min, value)) : fallback;
}

export function parseDelays(text) {
  if (text === null || text === undefined) return null;
  const delays = String(text).split(',').filter((s) => s.trim() !== '').map(Number);
  return delays.every((d) => Number.isFinite(d) && d >= 0) ? delays : null;
}

/**
 * Read the configuration.
 * @param {object} source
 * @param {string} source.search   the page's query string (`location.search`)
 * @param {object} source.dataset  <body>'s data attributes (`document.body.dataset`)
 * @param {string} source.baseURI  the page's URL (`document.baseURI`)
 * @returns the settings, plus `ignored`: messages about query parameters that were refused.
 */
export function readConfig({ search = '', dataset = {}, baseURI }) {
  const query = new URLSearchParams(search);
  const ignored = [];
  const pick = (name) => query.get(name) ?? dataset[name] ?? null;

  const url = (name) => {
    const fromQuery = query.get(name);
    if (fromQuery !== null) {
      const accepted = sameOriginUrl(fromQuery, baseURI);
      if (accepted) return accepted.href;
      ignored.push(`Ignored “${name}” in the address: only addresses on this server are accepted.`);
    }
    const fromPage = httpUrl(dataset[name] ?? '', baseURI);
    return (fromPage ?? new URL(DEFAULTS[name], baseURI)).href;
  };

  const endpoint = url('endpoint');
  const api = url('api');
  return {
    endpoint,
    api,
    apiBase: new URL('./', api).href,
    chunkSize: parseInteger(pick('chunkSize'), 1, Number.MAX_SAFE_INTEGER, DEFAULT_CHUNK_SIZE),
    parallel: parseInteger(pick('parallel'), 1, 6, 1),
    concurrency: parseInteger(pick('concurrency'), 1, 10, 2),
    retryDelays: parseDelays(pick('retryDelays')) ?? [...DEFAULT_RETRY_DELAYS],
    pageOrigin: new URL(baseURI).origin,
    ignored,
  };
}

/** True when requests to `url` leave the page's origin (so cookies need `credentials`). */
export function isCrossOrigin(url, pageOrigin) {
  return new URL(url).origin !== pageOrigin;
}
