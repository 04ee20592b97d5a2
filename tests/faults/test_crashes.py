"""Crashes of real processes: a gunicorn worker, the embedded Valkey, the whole server.

Each scenario (tests/support/recovery.py) checks the sha256 of the finished upload and that no
offset the server acknowledged went backwards; the times they return are reported by the benchmark,
not asserted here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.recovery import SCENARIOS


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_upload_resumes_intact_after(tmp_path: Path, scenario: str) -> None:
    SCENARIOS[scenario](tmp_path / "data")
