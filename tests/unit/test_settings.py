"""`Settings.from_env`: parsing, validation, and refusing what cannot be right."""

from __future__ import annotations

from pathlib import Path

import pytest

from tusserver.settings import HOOK_EVENTS, MiB, Settings, SettingsError, parse_size


def env(**values: str) -> dict[str, str]:
    return {f"TUSSERVER_{k.upper()}": v for k, v in values.items()}


def test_defaults_from_an_empty_environment() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.storage == "local"
    assert settings.fsync is True
    assert settings.max_size == 0
    assert settings.s3_part_size == 8 * MiB
    assert settings.hooks_enabled == HOOK_EVENTS
    assert settings.uploads_dir == Path("data") / "uploads"


def test_other_variables_are_ignored() -> None:
    settings = Settings.from_env({"PATH": "/bin", "TUSSERVERX": "1", "tusserver_fsync": "no"})
    assert settings.fsync is True


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUSSERVER_MAX_SIZE", "2M")
    assert Settings.from_env().max_size == 2 * MiB


@pytest.mark.parametrize("name", ["TUSSERVER_FSNYC", "TUSSERVER_", "TUSSERVER_DATA", "TUSSERVER_X"])
def test_unknown_variable_is_an_error(name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: "1"})


def test_variable_names_are_case_insensitive_after_the_prefix() -> None:
    assert Settings.from_env({"TUSSERVER_max_size": "5"}).max_size == 5


# --- booleans ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "yes", "on", " On "])
def test_true_values(raw: str) -> None:
    assert Settings.from_env(env(behind_proxy=raw)).behind_proxy is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "off"])
def test_false_values(raw: str) -> None:
    assert Settings.from_env(env(fsync=raw)).fsync is False


@pytest.mark.parametrize("raw", ["maybe", "2", "enabled", "y es"])
def test_bad_booleans(raw: str) -> None:
    with pytest.raises(SettingsError, match="TUSSERVER_FSYNC"):
        Settings.from_env(env(fsync=raw))


# --- sizes and integers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("0", 0),
        ("100", 100),
        ("512k", 512 * 1024),
        ("512K", 512 * 1024),
        ("8M", 8 * MiB),
        ("8MB", 8 * MiB),
        ("8MiB", 8 * MiB),
        ("1G", 1024**3),
        ("4GiB", 4 * 1024**3),
        ("2T", 2 * 1024**4),
        ("10b", 10),
        (" 7 ", 7),
    ],
)
def test_sizes(raw: str, value: int) -> None:
    assert parse_size(raw) == value
    assert Settings.from_env(env(max_size=raw)).max_size == value


@pytest.mark.parametrize(
    "raw", ["", "abc", "-1", "1.5M", "0x10", "1e6", "M", "KiB", "8 M", "8X", "١٢", "+5"]
)
def test_bad_sizes(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env(max_size=raw))
    assert "TUSSERVER_MAX_SIZE" in str(caught.value)


def test_plain_integers_accept_suffixes_too() -> None:
    assert Settings.from_env(env(lock_ttl="1k")).lock_ttl == 1024


# --- floats -----------------------------------------------------------------------------------


def test_floats() -> None:
    settings = Settings.from_env(env(lock_wait="0.5", hooks_timeout="2"))
    assert settings.lock_wait == 0.5
    assert settings.hooks_timeout == 2.0


@pytest.mark.parametrize("raw", ["fast", "", "1,5", "nan", "inf", "-inf", "NaN"])
def test_bad_floats(raw: str) -> None:
    with pytest.raises(SettingsError, match="TUSSERVER_LOCK_WAIT"):
        Settings.from_env(env(lock_wait=raw))


# --- paths and lists --------------------------------------------------------------------------


def test_paths() -> None:
    settings = Settings.from_env(env(data_dir="/srv/tus", metrics_dir="/run/metrics"))
    assert settings.data_dir == Path("/srv/tus")
    assert settings.uploads_dir == Path("/srv/tus/uploads")
    assert settings.metrics_dir == Path("/run/metrics")


def test_empty_optional_path_is_none() -> None:
    assert Settings.from_env(env(metrics_dir="")).metrics_dir is None


@pytest.mark.parametrize("name", ["data_dir", "webclient_dir"])
def test_empty_required_path_is_an_error(name: str) -> None:
    with pytest.raises(SettingsError, match=f"TUSSERVER_{name.upper()}"):
        Settings.from_env(env(**{name: " "}))


def test_lists() -> None:
    settings = Settings.from_env(env(cors_origins=" https://a.example, https://b.example,,"))
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert Settings.from_env(env(hooks_enabled="")).hooks_enabled == ()
    assert Settings.from_env(env(hooks_enabled="post-finish")).hooks_enabled == ("post-finish",)


def test_unknown_hook_event() -> None:
    with pytest.raises(SettingsError, match="post-upload"):
        Settings.from_env(env(hooks_enabled="post-finish,post-upload"))


def test_strings_are_stripped() -> None:
    assert Settings.from_env(env(s3_bucket="  uploads ")).s3_bucket == "uploads"


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "mentions"),
    [
        ({"storage": "ftp"}, "TUSSERVER_STORAGE"),
        ({"storage": "S3"}, "TUSSERVER_STORAGE"),
        ({"storage": "s3"}, "TUSSERVER_S3_ENDPOINT"),
        ({"expire_after": "0"}, "TUSSERVER_EXPIRE_AFTER"),
        ({"read_chunk_size": "0"}, "TUSSERVER_READ_CHUNK_SIZE"),
        ({"lock_ttl": "0"}, "TUSSERVER_LOCK_TTL"),
        ({"max_metadata_size": "0"}, "TUSSERVER_MAX_METADATA_SIZE"),
        ({"hooks_timeout": "0"}, "TUSSERVER_HOOKS_TIMEOUT"),
        ({"lock_wait": "-1"}, "TUSSERVER_LOCK_WAIT"),
        ({"log_level": "LOUD"}, "TUSSERVER_LOG_LEVEL"),
        ({"storage": "s3", "s3_endpoint": "minio:9000", "s3_part_size": "4k"}, "5 KiB"),
    ],
)
def test_invalid_combinations(values: dict[str, str], mentions: str) -> None:
    with pytest.raises(SettingsError, match=mentions):
        Settings.from_env(env(**values))


def test_log_level_is_case_insensitive() -> None:
    assert Settings.from_env(env(log_level="debug")).log_level == "debug"


def test_s3_settings() -> None:
    settings = Settings.from_env(
        env(storage="s3", s3_endpoint="minio:9000", s3_secure="false", s3_part_size="5M")
    )
    assert settings.storage == "s3"
    assert settings.s3_secure is False
    assert settings.s3_part_size == 5 * MiB


def test_overrides_win_and_are_validated() -> None:
    assert Settings.from_env(env(max_size="5"), max_size=7).max_size == 7
    with pytest.raises(SettingsError):
        Settings.from_env({}, max_size=-1)


def test_replace_validates_again() -> None:
    settings = Settings()
    assert settings.replace(max_size=10).max_size == 10
    with pytest.raises(SettingsError):
        settings.replace(expire_after=0)


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().max_size = 5  # type: ignore[misc]


def test_error_quotes_the_raw_value() -> None:
    with pytest.raises(SettingsError, match="'12abc'"):
        Settings.from_env(env(max_size="12abc"))


@pytest.mark.parametrize(
    ("env", "sends"),
    [
        ({}, True),
        ({"TUSSERVER_BEHIND_PROXY": "true"}, False),
        ({"TUSSERVER_BEHIND_PROXY": "true", "TUSSERVER_INTERIM_RESPONSES": "yes"}, True),
        ({"TUSSERVER_INTERIM_RESPONSES": "false"}, False),
        ({"TUSSERVER_INTERIM_RESPONSES": "AUTO"}, True),
    ],
)
def test_interim_responses_auto_off_behind_a_proxy(env: dict[str, str], sends: bool) -> None:
    assert Settings.from_env(env).sends_interim_responses is sends


def test_interim_responses_setting_is_validated() -> None:
    with pytest.raises(SettingsError, match="INTERIM_RESPONSES"):
        Settings.from_env({"TUSSERVER_INTERIM_RESPONSES": "sometimes"})


# --- CORS origins -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origins",
    [
        "*",
        "https://a.example",
        "http://127.0.0.1:8080",
        "https://uploads.example.com,http://localhost:3000",
        "http://[::1]:8080",
    ],
)
def test_exact_origins_are_accepted(origins: str) -> None:
    settings = Settings.from_env(env(cors_origins=origins))
    assert ",".join(settings.cors_origins) == origins


@pytest.mark.parametrize(
    ("origin", "mentions"),
    [
        ("https://*.example.com", "wildcard"),
        ("*.example.com", "wildcard"),
        ("https://a.example/", "path"),
        ("https://a.example/upload", "path"),
        ("https://a.example?x=1", "path"),
        ("a.example", "http"),
        ("ftp://a.example", "http"),
        ("javascript:alert(1)", "http"),
        ("https://user@a.example", "user name"),
        ("https://", "host"),
        ("https://a.example:443", "default port"),
        ("http://a.example:80", "default port"),
        ("HTTPS://A.example", "https://a.example"),
        ("https://a.example:99999", "origin"),
        ("https://a.example|evil", "host"),
        ("https://a.example.(com|net)", "host"),
    ],
)
def test_patterns_and_non_origins_are_refused_at_start_up(origin: str, mentions: str) -> None:
    with pytest.raises(SettingsError, match="TUSSERVER_CORS_ORIGINS") as refused:
        Settings.from_env(env(cors_origins=f"https://ok.example,{origin}"))
    assert mentions in str(refused.value)
