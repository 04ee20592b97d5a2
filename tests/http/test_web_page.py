"""The page's own headers: a strict Content-Security-Policy it can live with."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

POLICY = (
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; object-src 'none'; "
    "base-uri 'none'"
)


class _InlineFinder(HTMLParser):
    """Collects what a `default-src 'self'` policy would block in the page's own markup."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and not names.get("src"):
            self.blocked.append("inline <script>")
        if tag == "style":
            self.blocked.append("<style> element")
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.blocked.append(f"{name}= on <{tag}>")
            if name in ("href", "src") and value and re.match(r"\s*(javascript|data):", value):
                self.blocked.append(f"{name}={value[:30]} on <{tag}>")


@pytest.mark.parametrize("path", ["/", "/index.html", "/app.js", "/style.css"])
def test_the_page_and_its_files_carry_the_policy(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_page_has_nothing_the_policy_would_block(client: Any) -> None:
    finder = _InlineFinder()
    finder.feed(client.get("/").get_data(as_text=True))
    assert finder.blocked == []
