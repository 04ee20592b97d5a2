// Small formatting and measuring helpers for the page. Kept apart from app.js because they are
// pure (no DOM) and so can be unit tested under Node.

const UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 -> "1.5 KiB"; bytes below 1 KiB are shown exactly. */
export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return 'unknown size';
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes;
  let unit = -1;
  do {
    value /= 1024;
    unit += 1;
  } while (value >= 1024 && unit < UNITS.length - 1);
  return `${value.toFixed(value < 10 ? 1 : 0)} ${UNITS[unit]}`;
}

/** Whole percent, rounded down so 100% only shows once everything is there. */
export function percentOf(sent, total) {
  if (!total) return sent >= total ? 100 : 0;
  return Math.min(100, Math.floor((sent * 100) / total));
}

/** Seconds as "45 s", "3 min 5 s", "2 h 10 min". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/**
 * Transfer speed over a sliding window, so a burst or a stall does not swing the estimate.
 * Feed it the running byte count; it answers bytes/second and seconds left.
 */
export class SpeedMeter {
  constructor({ windowMs = 5000, minSpanMs = 500 } = {}) {
    this.windowMs = windowMs;
    this.minSpanMs = minSpanMs;
    this.samples = [];
  }

  /** Start measuring from `bytes` (e.g. the resume offset, which was not sent just now). */
  reset(bytes = 0, now = Date.now()) {
    this.samples = [[now, bytes]];
  }

  add(bytes, now = Date.now()) {
    this.samples.push([now, bytes]);
    // Keep one sample older than the window so the span always covers the whole window.
    while (this.samples.length > 2 && now - this.samples[1][0] >= this.windowMs) this.samples.shift();
  }

  /** Bytes per second, or null until there is enough data. */
  get bytesPerSecond() {
    if (this.samples.length < 2) return null;
    const [t0, b0] = this.samples[0];
    const [t1, b1] = this.samples.at(-1);
    if (t1 - t0 < this.minSpanMs) return null;
    return Math.max(0, ((b1 - b0) * 1000) / (t1 - t0));
  }

  /** Seconds until `total` at the current speed, or null if unknown. */
  secondsLeft(sent, total) {
    const speed = this.bytesPerSecond;
    if (!speed) return null;
    return Math.max(0, (total - sent) / speed);
  }
}

const SIZE_UNITS = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/**
 * "10G", "500 MiB", "1.5 g", "1048576" -> bytes; "" -> null (no value); anything else ->
 * undefined, so a form can tell "left empty" from "typed nonsense".
 */
export function parseSize(text) {
  const value = String(text ?? '').trim();
  if (value === '') return null;
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(value);
  if (!match) return undefined;
  const bytes = Number(match[1]) * SIZE_UNITS[match[2].toLowerCase()];
  return Number.isSafeInteger(Math.round(bytes)) ? Math.round(bytes) : undefined;
}

/** An ISO date as a short local date and time, or `fallback`. */
export function formatDate(iso, fallback = 'date unknown') {
  const date = iso ? new Date(iso) : null;
  if (!date || Number.isNaN(date.getTime())) return fallback;
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

const HOUR = 3600;
const DAY = 24 * HOUR;

/** Lifetimes a "Copy link" offers (the server caps them at TUSSERVER_LINK_MAX_LIFETIME). */
export const LINK_LIFETIMES = Object.freeze([
  { label: '1 hour', seconds: HOUR },
  { label: '1 day', seconds: DAY },
  { label: '7 days', seconds: 7 * DAY },
  { label: '30 days', seconds: 30 * DAY },
]);
export const DEFAULT_LINK_LIFETIME = DAY;

/** Lifetimes offered for a new API token; null: until revoked. */
export const TOKEN_LIFETIMES = Object.freeze([
  { label: 'Never (until revoked)', seconds: null },
  { label: '1 day', seconds: DAY },
  { label: '30 days', seconds: 30 * DAY },
  { label: '90 days', seconds: 90 * DAY },
  { label: '1 year', seconds: 365 * DAY },
]);

/** "1.0 GiB of 5.0 GiB", "1.0 GiB (no limit)". */
export function formatUsage(usage, quota) {
  const used = formatBytes(Number.isFinite(usage) ? usage : 0);
  return quota ? `${used} of ${formatBytes(quota)}` : `${used} (no limit)`;
}
