"""A 1 GiB upload in one PATCH and its download keep the server's memory flat."""

from __future__ import annotations

import pytest

from tests.support.live import LiveServer
from tests.support.roundtrip import RSS_GROWTH_LIMIT, GiB, round_trip


@pytest.mark.slow
def test_one_gib_upload_and_download_keep_memory_flat(server: LiveServer) -> None:
    result = round_trip(server, GiB)
    print(f"\nlocal store, 1 GiB: {result.describe()}")
    assert result.upload_peak_rss - result.idle_rss < RSS_GROWTH_LIMIT
    assert result.download_peak_rss - result.idle_rss < RSS_GROWTH_LIMIT
