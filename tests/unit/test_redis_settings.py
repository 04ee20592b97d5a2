"""`TUSSERVER_REDIS_*`: the topology settings are parsed, checked, and never echoed."""

from __future__ import annotations

import pytest

from tusserver.settings import Settings, SettingsError
from tusserver.state.connect import parse_sentinels


def env(**values: str) -> dict[str, str]:
    return {f"TUSSERVER_{k.upper()}": v for k, v in values.items()}


def test_single_is_the_default() -> None:
    assert Settings.from_env({}).redis_mode == "single"


def test_sentinel_settings() -> None:
    settings = Settings.from_env(
        env(
            redis_mode="sentinel",
            redis_sentinels="10.0.0.1:26379, 10.0.0.2:26379,[::1]:26380",
            redis_sentinel_master="mymaster",
            redis_sentinel_password="s-pass",
            redis_password="d-pass",
        )
    )
    assert settings.redis_sentinels == ("10.0.0.1:26379", "10.0.0.2:26379", "[::1]:26380")
    assert parse_sentinels(settings.redis_sentinels) == [
        ("10.0.0.1", 26379),
        ("10.0.0.2", 26379),
        ("::1", 26380),
    ]
    # Passwords stay out of any log line that prints the settings.
    assert "s-pass" not in repr(settings)
    assert "d-pass" not in repr(settings)


@pytest.mark.parametrize(
    ("values", "mentions"),
    [
        ({"redis_mode": "ring"}, "TUSSERVER_REDIS_MODE"),
        ({"redis_mode": "cluster"}, "TUSSERVER_REDIS_URL"),
        ({"redis_mode": "sentinel", "redis_sentinel_master": "m"}, "TUSSERVER_REDIS_SENTINELS"),
        ({"redis_mode": "sentinel", "redis_sentinels": "h:1"}, "SENTINEL_MASTER"),
        (
            {"redis_mode": "sentinel", "redis_sentinels": "h", "redis_sentinel_master": "m"},
            "'h' is not host:port",
        ),
        (
            {"redis_mode": "sentinel", "redis_sentinels": "h:x", "redis_sentinel_master": "m"},
            "TUSSERVER_REDIS_SENTINELS",
        ),
    ],
)
def test_unusable_topologies_are_refused(values: dict[str, str], mentions: str) -> None:
    with pytest.raises(SettingsError, match=mentions):
        Settings.from_env(env(**values))


def test_cluster_needs_only_one_node() -> None:
    settings = Settings.from_env(env(redis_mode="cluster", redis_url="redis://10.0.0.5:7000"))
    assert settings.redis_mode == "cluster"


def test_several_urls_only_for_a_cluster() -> None:
    urls = "redis://10.0.0.5:7000,redis://10.0.0.6:7000"
    assert Settings.from_env(env(redis_mode="cluster", redis_url=urls)).redis_url == urls
    with pytest.raises(SettingsError, match="only with TUSSERVER_REDIS_MODE=cluster"):
        Settings.from_env(env(redis_url=urls))
