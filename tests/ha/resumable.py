"""A tus client that resumes like a real one, and remembers every offset it was told.

Used by the failover and chaos tests: each upload creates, PATCHes chunk after chunk and, on
anything but success (a 503 with Retry-After, a 502 from the proxy whose app server died, a
409, a dropped connection), waits a moment, asks HEAD for the offset and goes on from there;
an upload whose state is gone (404, a creation lost in a failover) starts over, as tus-js-client
does. It finally downloads the upload and compares the sha256.

What the server acknowledged is recorded per upload: the `Upload-Offset` of every 204, and of
every HEAD. "An acknowledged offset never goes backwards" is checked on these records: no 204
or HEAD may report less than an earlier 204 did.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests

TUS = {"Tus-Resumable": "1.0.0"}
OCTET = {**TUS, "Content-Type": "application/offset+octet-stream"}
PAUSE = 0.2
"""How long the client waits before trying again (real clients wait longer; tests are short)."""


@dataclass
class Journal:
    """What all uploads of a run saw, for the assertions (thread-safe)."""

    statuses: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    backwards: list[str] = field(default_factory=list)
    patches: int = 0
    _mutex: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, what: str, response: requests.Response | None = None) -> None:
        with self._mutex:
            self.statuses[what] += 1
            if what == "PATCH 204":
                self.patches += 1
            if response is None:
                return
            if response.status_code >= 500 and response.status_code not in (502, 503, 504):
                self.problems.append(f"{what}: {response.text[:200]}")
            if response.status_code == 503 and "Retry-After" not in response.headers:
                self.problems.append(f"{what} without Retry-After")

    def went_backwards(self, text: str) -> None:
        with self._mutex:
            self.backwards.append(text)


class ResumableUpload:
    """One upload of `data` to `base_url`, `chunk` bytes per PATCH."""

    def __init__(self, base_url: str, data: bytes, chunk: int, journal: Journal):
        self.base_url = base_url
        self.data = data
        self.chunk = chunk
        self.journal = journal
        self.session = requests.Session()
        self.url = ""
        self.acknowledged = 0
        self.restarts = 0

    def run(self, deadline: float, pace: float = 0.0) -> bool:
        """Upload until complete (True) or `deadline` (monotonic) passes (False)."""
        try:
            return self._run(deadline, pace)
        finally:
            self.session.close()

    def _run(self, deadline: float, pace: float) -> bool:
        offset: int | None = None
        while time.monotonic() < deadline:
            if not self.url:
                self._create()
                offset = 0 if self.url else None
                continue
            if offset is None:
                offset = self._head()
                continue
            if offset >= len(self.data):
                return True
            offset = self._patch(offset)
            time.sleep(pace)
        return False

    def _send(self, method: str, url: str, **kwargs: object) -> requests.Response | None:
        try:
            response = self.session.request(method, url, timeout=20, **kwargs)  # type: ignore[arg-type]
        except requests.RequestException:
            self.journal.saw(f"{method} dropped")
            time.sleep(PAUSE)
            return None
        self.journal.saw(f"{method} {response.status_code}", response)
        if response.status_code >= 500:
            time.sleep(PAUSE)
        return response

    def _create(self) -> None:
        headers = {**TUS, "Upload-Length": str(len(self.data))}
        response = self._send("POST", f"{self.base_url}/files/", headers=headers)
        if response is not None and response.status_code == 201:
            location = response.headers["Location"]
            self.url = location if location.startswith("http") else self.base_url + location
            self.acknowledged = 0

    def _head(self) -> int | None:
        response = self._send("HEAD", self.url, headers=TUS)
        if response is None:
            return None
        if response.status_code in (404, 410):
            self._start_over()
            return None
        if response.status_code != 200:
            return None
        offset = int(response.headers["Upload-Offset"])
        self._check(offset, "HEAD")
        return offset

    def _patch(self, offset: int) -> int | None:
        body = self.data[offset : offset + self.chunk]
        headers = {**OCTET, "Upload-Offset": str(offset)}
        response = self._send("PATCH", self.url, data=body, headers=headers)
        if response is None or response.status_code != 204:
            if response is not None and response.status_code in (404, 410):
                self._start_over()
            return None
        new_offset = int(response.headers["Upload-Offset"])
        self._check(new_offset, "PATCH")
        self.acknowledged = max(self.acknowledged, new_offset)
        return new_offset

    def _check(self, offset: int, what: str) -> None:
        if offset < self.acknowledged:
            self.journal.went_backwards(
                f"{self.url}: {what} said {offset} after a 204 said {self.acknowledged}"
            )

    def _start_over(self) -> None:
        if self.acknowledged:
            self.journal.went_backwards(f"{self.url} vanished after a 204 at {self.acknowledged}")
        self.url = ""
        self.restarts += 1

    def stored_sha256(self) -> str | None:
        """The sha256 of what the server sends back (retried through a failover)."""
        for _ in range(20):
            try:
                response = requests.get(self.url, headers=TUS, timeout=30)
            except requests.RequestException:
                time.sleep(PAUSE)
                continue
            if response.status_code == 200:
                return hashlib.sha256(response.content).hexdigest()
            time.sleep(PAUSE)
        return None

    @property
    def expected_sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class Fleet:
    """Uploads running in threads of their own, until each completes or the deadline."""

    def __init__(self, uploads: list[ResumableUpload], timeout: float, pace: float = 0.0):
        self.uploads = uploads
        self.timeout = timeout
        self.results = [False] * len(uploads)
        deadline = time.monotonic() + timeout
        self.threads = [
            threading.Thread(target=self._one, args=(i, deadline, pace), daemon=True)
            for i in range(len(uploads))
        ]
        for thread in self.threads:
            thread.start()

    def _one(self, index: int, deadline: float, pace: float) -> None:
        self.results[index] = self.uploads[index].run(deadline, pace)

    def wait_for_patches(self, journal: Journal, count: int) -> None:
        """Until `count` PATCHes succeeded in all (mid-run), or the uploads ended."""
        while journal.patches < count and any(t.is_alive() for t in self.threads):
            time.sleep(0.02)

    def join(self) -> list[bool]:
        for thread in self.threads:
            thread.join(self.timeout + 30)
        return self.results
