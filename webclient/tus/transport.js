// HTTP transport over XMLHttpRequest. XHR rather than fetch because only XHR reports upload
// progress (xhr.upload.onprogress), which the progress bars need within a large chunk.
//
// Contract (the fake transport in the tests implements the same one):
//   request({ method, url, headers, body, signal, onUploadProgress })
//     -> Promise<{ status, headers, body }>   for ANY HTTP status, 4xx/5xx included
//     -> rejects with TransportError           when no HTTP response arrived
// `headers` in the response is a plain object with lower-case names; `body` is the text.
// TransportError.kind is 'network' | 'timeout' | 'abort', so callers can tell a lost
// connection from a deliberate abort and from an HTTP error status.

/** A request that produced no HTTP response. */
export class TransportError extends Error {
  constructor(kind, message, options) {
    super(message, options);
    this.name = 'TransportError';
    this.kind = kind;
  }
}

// Headers a tus client reads. getAllResponseHeaders would also work, but reading names one by one
// is what CORS exposes (Access-Control-Expose-Headers) and keeps the parsing trivial.
export const RESPONSE_HEADERS = [
  'Location',
  'Upload-Offset',
  'Upload-Length',
  'Upload-Expires',
  'Upload-Metadata',
  'Upload-Concat',
  'Tus-Resumable',
  'Tus-Version',
  'Tus-Extension',
  'Tus-Max-Size',
  'Content-Type',
];

export class XhrTransport {
  /**
   * @param {object} [options]
   * @param {number} [options.timeout] ms without completion before a request fails (0 = none).
   * @param {boolean} [options.withCredentials] send cookies on cross-origin requests.
   */
  constructor({ timeout = 0, withCredentials = false } = {}) {
    this.timeout = timeout;
    this.withCredentials = withCredentials;
  }

  request({ method, url, headers = {}, body = null, signal, onUploadProgress }) {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(new TransportError('abort', `${method} ${url} aborted`));
        return;
      }
      const xhr = new XMLHttpRequest();
      const onAbortSignal = () => xhr.abort();
      const settle = (fn, value) => {
        signal?.removeEventListener('abort', onAbortSignal);
        fn(value);
      };

      xhr.open(method, url, true);
      xhr.timeout = this.timeout;
      xhr.withCredentials = this.withCredentials;
      for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, String(value));

      // Only listen when there is a body: an upload listener forces a CORS preflight.
      if (body && onUploadProgress) {
        xhr.upload.onprogress = (event) => {
          if (event.lengthComputable) onUploadProgress(event.loaded, event.total);
        };
      }
      xhr.onload = () => {
        // Status 0 means the browser got no usable response (e.g. blocked by CORS).
        if (xhr.status === 0) {
          settle(reject, new TransportError('network', `${method} ${url}: no response`));
          return;
        }
        settle(resolve, { status: xhr.status, headers: readHeaders(xhr), body: xhr.responseText ?? '' });
      };
      xhr.onerror = () =>
        settle(reject, new TransportError('network', `${method} ${url}: network error`));
      xhr.ontimeout = () =>
        settle(reject, new TransportError('timeout', `${method} ${url}: timed out`));
      xhr.onabort = () => settle(reject, new TransportError('abort', `${method} ${url} aborted`));

      signal?.addEventListener('abort', onAbortSignal, { once: true });
      xhr.send(body);
    });
  }
}

function readHeaders(xhr) {
  const headers = {};
  for (const name of RESPONSE_HEADERS) {
    const value = xhr.getResponseHeader(name);
    if (value !== null) headers[name.toLowerCase()] = value;
  }
  return headers;
}
