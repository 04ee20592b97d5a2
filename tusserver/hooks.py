"""Hook points: what the service tells the outside world, and what it lets the outside veto.

The service calls `before(event, info)` for blocking events (pre-create, pre-terminate): a hook
may reject (`HookRejected`, with its own status and message) or, for pre-create, return new
metadata; a hook that cannot be reached rejects with `HookFailed` (502), because letting an
upload through that a policy hook never saw would be worse than a retry. The service calls
`after(event, info)` for the post-* events: they are queued and delivered by a background
thread, in order, so they never slow down or fail a client request.

Transports: HTTP (a JSON POST to `TUSSERVER_HOOKS_URL`) and Python (a callable named by
`TUSSERVER_HOOKS_PYTHON`, as `package.module:function`).
"""

from __future__ import annotations

import importlib
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import urllib3

from . import backend_status
from .errors import HookFailed, HookRejected
from .models import UploadInfo
from .settings import Settings

log = logging.getLogger(__name__)


class Hooks(Protocol):
    """Receives upload events."""

    def before(self, event: str, info: UploadInfo) -> dict[str, str] | None:
        """A blocking event; returns replacement metadata or None, raises to reject."""

    def after(self, event: str, info: UploadInfo) -> None:
        """A notification; must not raise."""


class NoHooks:
    """The default: nothing listens."""

    def before(self, event: str, info: UploadInfo) -> dict[str, str] | None:
        return None

    def after(self, event: str, info: UploadInfo) -> None:
        return None


def event_payload(event: str, info: UploadInfo, event_id: str | None = None) -> dict[str, Any]:
    """The JSON document a hook receives. `id` is stable across retries, for deduplication."""
    return {
        "id": event_id or uuid.uuid4().hex,
        "type": event,
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "upload": {
            "id": info.id,
            "size": info.length,
            "offset": info.offset,
            "complete": info.is_complete,
            "metadata": info.metadata,
            "filename": info.filename,
            "concat": info.concat,
            "members": list(info.members),
            "owner": info.owner,
            "created": info.created,
        },
    }


Deliver = Callable[[dict[str, Any]], "Mapping[str, Any] | None"]


class HookDispatcher:
    """Sends enabled events to one transport; blocking ones inline, the rest from a queue."""

    def __init__(
        self,
        deliver: Deliver,
        enabled: Iterable[str],
        on_result: Callable[[str, bool], None] | None = None,
        flush_timeout: float = 5.0,
    ):
        self.deliver = deliver
        self.enabled = frozenset(enabled)
        self.on_result = on_result or (lambda event, ok: None)
        self.flush_timeout = flush_timeout
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=10000)
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()

    def before(self, event: str, info: UploadInfo) -> dict[str, str] | None:
        if event not in self.enabled:
            return None
        # Notifications already queued go first, so a receiver sees events in the order they
        # happened (post-finish before pre-terminate); bounded, as a stuck receiver must not
        # hold up requests forever.
        self.flush(timeout=self.flush_timeout)
        try:
            answer = self.deliver(event_payload(event, info))
        except (HookRejected, HookFailed):
            self.on_result(event, False)
            raise
        except Exception as exc:
            self.on_result(event, False)
            log.error("%s hook failed: %s", event, exc)
            raise HookFailed(f"the {event} hook failed; try again later") from exc
        self.on_result(event, True)
        return _metadata_from(answer) if event == "pre-create" else None

    def after(self, event: str, info: UploadInfo) -> None:
        if event not in self.enabled:
            return
        try:
            self._queue.put_nowait(event_payload(event, info))
        except queue.Full:
            self.on_result(event, False)
            log.error("hook queue full; dropped %s for %s", event, info.id)
            return
        self._ensure_thread()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued notification was delivered (or given up); for tests."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def _ensure_thread(self) -> None:
        with self._mutex:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="hooks", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            payload = self._queue.get()
            try:
                self.deliver(payload)
                self.on_result(payload["type"], True)
                backend_status.ok(backend_status.HOOKS)
            except HookFailed as exc:  # the receiver is unreachable: once per outage
                self.on_result(payload["type"], False)
                backend_status.failed(backend_status.HOOKS, exc.message)
            except Exception as exc:  # a notification never affects anyone: log and go on
                self.on_result(payload["type"], False)
                log.error(
                    "%s hook for %s failed: %s", payload["type"], payload["upload"]["id"], exc
                )
            finally:
                self._queue.task_done()


class HttpTransport:
    """POSTs each event as JSON; retries connection failures and 5xx answers.

    The receiver answers 2xx to accept (for pre-create, optionally `{"metadata": {...}}` to
    replace the metadata), or 4xx to reject: the status and the body's `message` (or its text)
    go back to the client.
    """

    def __init__(self, url: str, timeout: float, retries: int, backoff: float = 0.2):
        self.url = url
        self.retries = retries
        self.backoff = backoff
        self.http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(timeout, 3.0), read=timeout),
            retries=False,
        )

    def __call__(self, payload: dict[str, Any]) -> Mapping[str, Any] | None:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "Hook-Event": payload["type"]}
        last_error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * attempt)
            try:
                response = self.http.request("POST", self.url, body=body, headers=headers)
            except urllib3.exceptions.HTTPError as exc:
                last_error = f"unreachable ({type(exc).__name__})"
                continue
            if response.status >= 500:
                last_error = f"answered {response.status}"
                continue
            if response.status >= 400:
                raise HookRejected(_rejection_message(response.data), status=response.status)
            return _json_or_none(response.data)
        raise HookFailed(f"the {payload['type']} hook {last_error}; try again later")


class PythonTransport:
    """Calls `function(event_type, payload)` in process; it may return a dict or raise."""

    def __init__(self, dotted: str):
        self.function = load_callable(dotted)

    def __call__(self, payload: dict[str, Any]) -> Mapping[str, Any] | None:
        return self.function(payload["type"], payload)


def load_callable(dotted: str) -> Callable[..., Any]:
    """`package.module:function` (or `package.module.function`) to the function itself."""
    module_name, _, attribute = dotted.partition(":") if ":" in dotted else dotted.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"TUSSERVER_HOOKS_PYTHON {dotted!r} is not 'module:function'")
    function = getattr(importlib.import_module(module_name), attribute, None)
    if not callable(function):
        raise ValueError(f"TUSSERVER_HOOKS_PYTHON {dotted!r} is not callable")
    return function


class ChainedHooks:
    """Several receivers in a row: each blocking one may change the metadata for the next."""

    def __init__(self, hooks: Iterable[Hooks]):
        self.hooks = list(hooks)

    def before(self, event: str, info: UploadInfo) -> dict[str, str] | None:
        changed: dict[str, str] | None = None
        for hook in self.hooks:
            metadata = hook.before(event, info)
            if metadata is not None:
                changed = metadata
                info = info.evolve(metadata=metadata)
        return changed

    def after(self, event: str, info: UploadInfo) -> None:
        for hook in self.hooks:
            hook.after(event, info)


def hooks_from_settings(
    settings: Settings, on_result: Callable[[str, bool], None] | None = None
) -> list[Hooks]:
    """The receivers the settings configure (none by default)."""
    found: list[Hooks] = []
    if settings.hooks_url:
        transport = HttpTransport(
            settings.hooks_url, settings.hooks_timeout, settings.hooks_retries
        )
        found.append(
            HookDispatcher(transport, settings.hooks_enabled, on_result, settings.hooks_timeout)
        )
    if settings.hooks_python:
        found.append(
            HookDispatcher(
                PythonTransport(settings.hooks_python),
                settings.hooks_enabled,
                on_result,
                settings.hooks_timeout,
            )
        )
    return found


def _metadata_from(answer: Mapping[str, Any] | None) -> dict[str, str] | None:
    if not isinstance(answer, Mapping) or not isinstance(answer.get("metadata"), Mapping):
        return None
    return {str(key): str(value) for key, value in answer["metadata"].items()}


def _json_or_none(data: bytes) -> Mapping[str, Any] | None:
    try:
        value = json.loads(data) if data.strip() else None
    except ValueError:
        return None
    return value if isinstance(value, Mapping) else None


def _rejection_message(data: bytes) -> str:
    parsed = _json_or_none(data)
    if parsed and isinstance(parsed.get("message"), str):
        text = parsed["message"]
    else:
        text = data.decode("utf-8", "replace")
    text = "".join(ch for ch in text if ch.isprintable()).strip()
    return text[:500] or "rejected by hook"
