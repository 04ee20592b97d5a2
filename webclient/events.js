/*
 * Live updates: follows the server's file events (GET /api/events, Server-Sent Events) and hands
 * each one to the page, so a file uploaded in another tab, by a script or on another server of
 * the fleet appears without a reload, and its progress moves.
 *
 * EventSource reconnects by itself after a dropped stream (sending Last-Event-ID, so nothing is
 * missed); when the server refuses a stream (503: it holds all it may) the browser gives up, and
 * this module opens a new one after a growing delay, resuming with ?last_event_id=.
 *
 * The page hooks in through two functions (so any file table works): `onEvent(event)` for each
 * event and `onReset()` when events may have been missed (reload the list). `mergeFileEvent`
 * applies an event to a list of uploads for a table that keeps one.
 */

export const EVENT_TYPES = Object.freeze(['created', 'progress', 'finished', 'renamed', 'tagged', 'deleted']);

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30000;

/**
 * Follow the event stream at `url` until `close()`.
 * @param {{url: string, withCredentials?: boolean, onEvent: Function, onReset?: Function,
 *          EventSourceImpl?: typeof EventSource, setTimer?: Function, clearTimer?: Function}} options
 * @returns {{close: () => void}}
 */
export function followFileEvents({
  url,
  withCredentials = false,
  onEvent,
  onReset = () => {},
  EventSourceImpl = globalThis.EventSource,
  setTimer = (fn, ms) => setTimeout(fn, ms),
  clearTimer = (id) => clearTimeout(id),
}) {
  let source = null;
  let closed = false;
  let timer = null;
  let delay = FIRST_RETRY_MS;
  let lastId = '';

  const open = () => {
    const target = new URL(url, globalThis.location?.href);
    if (lastId) target.searchParams.set('last_event_id', lastId);
    source = new EventSourceImpl(target.href, { withCredentials });
    const receive = (message) => {
      delay = FIRST_RETRY_MS;
      if (message.lastEventId) lastId = message.lastEventId;
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return; // not ours: ignore rather than break the page
      }
      if (event && typeof event === 'object') onEvent(event);
    };
    for (const type of EVENT_TYPES) source.addEventListener(type, receive);
    source.addEventListener('reset', () => onReset());
    source.addEventListener('error', () => {
      // CONNECTING: the browser retries by itself. CLOSED: it gave up (a refusal); we retry.
      if (closed || source.readyState !== EventSourceImpl.CLOSED) return;
      source.close();
      timer = setTimer(() => {
        timer = null;
        if (closed) return;
        onReset(); // events may have come and gone meanwhile
        open();
      }, delay);
      delay = Math.min(delay * 2, MAX_RETRY_MS);
    });
  };

  if (typeof EventSourceImpl === 'function') open();
  return {
    close() {
      closed = true;
      if (timer !== null) clearTimer(timer);
      source?.close();
    },
  };
}

/**
 * Apply one event to a list of uploads (the JSON API's objects). Returns the new list, or
 * `null` when the list must be reloaded from the API instead (a new, renamed, retagged or
 * deleted file, or progress of one the list does not show). Progress never moves back: events
 * from different servers may cross, the larger offset wins.
 */
export function mergeFileEvent(uploads, event) {
  if (event?.type !== 'progress' && event?.type !== 'finished') return null;
  const index = uploads.findIndex((upload) => String(upload.id) === String(event.id));
  if (index < 0) return null;
  const current = uploads[index];
  if (event.type === 'finished') return null; // the row changes shape (download, share)
  if (current.complete || !(Number(event.offset) > Number(current.offset ?? 0))) return uploads;
  const updated = { ...current, offset: event.offset, size: event.size ?? current.size };
  return [...uploads.slice(0, index), updated, ...uploads.slice(index + 1)];
}
