"""The one reader of JSON request bodies for the API views: anything malformed is a 400.

Flask's `get_json` lets a deeply nested document raise `RecursionError` (a 500) and accepts
lone surrogates (`"\\ud800"`), which later break every response that carries the text. Here a
body must be a small JSON object of bounded depth whose strings are all Unicode scalar values.
"""

from __future__ import annotations

import json
from typing import Any

from flask import request

from ..errors import BadRequest

MAX_DEPTH = 32
"""Deepest nesting of arrays and objects accepted; our API bodies are one or two levels deep."""


def read_json_object(example: str = '{"name": "value"}') -> dict[str, Any]:
    """The request body as a JSON object, or `BadRequest` naming what a valid body looks like."""
    raw = request.get_data(cache=True)
    problem = f"expected a JSON object like {example}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"{problem}: the body is not UTF-8") from None
    if _depth(text) > MAX_DEPTH:
        raise BadRequest(f"{problem}: nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise BadRequest(problem) from None
    if not isinstance(value, dict):
        raise BadRequest(problem)
    _check_text(value)
    return value


def _depth(text: str) -> int:
    """Deepest bracket nesting, counting only brackets outside strings (an upper bound)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _check_text(value: Any) -> None:
    """Every string (keys included) must encode as UTF-8: no lone surrogates."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise BadRequest("text must be valid Unicode (no lone surrogates)") from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
