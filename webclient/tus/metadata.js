// Upload-Metadata encoding for tus 1.0.0: comma-separated `key base64(value)` pairs.
// Values are UTF-8 encoded before base64, so non-ASCII file names survive the trip.
// Only TextEncoder/TextDecoder/btoa/atob are used: they exist in browsers and in Node 20.

const KEY_PATTERN = /^[\x21-\x2b\x2d-\x7e]+$/; // printable ASCII except space and comma

/** Base64 of the UTF-8 bytes of `text` (btoa alone only handles Latin-1). */
export function encodeBase64Utf8(text) {
  const bytes = new TextEncoder().encode(String(text));
  let binary = '';
  // Build the binary string in slices: String.fromCharCode(...bigArray) overflows the stack.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Inverse of encodeBase64Utf8; throws on invalid base64 or invalid UTF-8. */
export function decodeBase64Utf8(encoded) {
  const binary = atob(encoded);
  const bytes = Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
  return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
}

/**
 * Encode a plain object as an Upload-Metadata header value.
 * null/undefined values are skipped; an empty string is sent as a bare key, as the spec allows.
 */
export function encodeMetadata(metadata = {}) {
  const pairs = [];
  for (const [key, value] of Object.entries(metadata)) {
    if (value === undefined || value === null) continue;
    if (!KEY_PATTERN.test(key)) {
      throw new TypeError(`Invalid metadata key ${JSON.stringify(key)}: ASCII without spaces or commas`);
    }
    const text = String(value);
    pairs.push(text === '' ? key : `${key} ${encodeBase64Utf8(text)}`);
  }
  return pairs.join(',');
}

/** Decode an Upload-Metadata header value into a plain object (bare keys map to ''). */
export function decodeMetadata(header) {
  const result = {};
  if (!header) return result;
  for (const pair of header.split(',')) {
    const trimmed = pair.trim();
    if (!trimmed) continue;
    const [key, value = ''] = trimmed.split(/\s+/, 2);
    result[key] = value === '' ? '' : decodeBase64Utf8(value);
  }
  return result;
}
