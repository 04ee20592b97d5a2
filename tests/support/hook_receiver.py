"""A small HTTP hook receiver on a free local port that records every event it gets."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[dict[str, Any]], tuple[int, dict[str, Any] | None]]


class HookReceiver:
    """Records events; `answer(event)` decides the status and JSON body of each reply."""

    def __init__(self, answer: Answer | None = None):
        self.events: list[dict[str, Any]] = []
        self.answer: Answer = answer or (lambda event: (200, None))
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                event = json.loads(self.rfile.read(length))
                with receiver._lock:
                    receiver.events.append(event)
                status, body = receiver.answer(event)
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def events_for(self, upload_id: str) -> list[dict[str, Any]]:
        """The events received for one upload, in arrival order."""
        with self._lock:
            return [e for e in self.events if e["upload"]["id"] == upload_id]

    def types(self, upload_id: str | None = None) -> list[str]:
        with self._lock:
            return [
                e["type"]
                for e in self.events
                if upload_id is None or e["upload"]["id"] == upload_id
            ]


@contextmanager
def hook_receiver(answer: Answer | None = None) -> Iterator[HookReceiver]:
    receiver = HookReceiver(answer)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
