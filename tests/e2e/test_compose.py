"""The compose stack is valid and matches the app: checked without a Docker engine.

`docker-compose config` (Debian's `docker-compose` package) renders and validates the file
offline; without it these tests are skipped locally and fail in CI (`.ci/run` installs it).
The Dockerfile and env.example are checked as text against the package itself, so a renamed
setting or a moved folder shows up here rather than in a failed deployment.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.tools import require_executable
from tusserver.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
SETTING_NAMES = {f"TUSSERVER_{field.name.upper()}" for field in dataclasses.fields(Settings)}


def docker_compose(*args: str) -> subprocess.CompletedProcess[str]:
    executable = require_executable("docker-compose", "docker-compose")
    # A clean environment, so the defaults in the file are what gets rendered.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TUSSERVER_", "MINIO_", "APP_", "COMPOSE_"))
    }
    return subprocess.run(
        [executable, "-f", str(COMPOSE / "docker-compose.yml"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def rendered(*args: str) -> dict[str, Any]:
    result = docker_compose(*args, "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def port_pairs(ports: list[Any]) -> set[tuple[int, int]]:
    """(published, target) of each port, rendered as a mapping or as "[ip:]pub:target[/tcp]"."""
    pairs = set()
    for port in ports:
        if isinstance(port, dict):
            pairs.add((int(port["published"]), int(port["target"])))
        else:
            *_, published, target = str(port).split("/")[0].split(":")
            pairs.add((int(published), int(target)))
    return pairs


def test_compose_file_is_valid_and_has_the_three_services() -> None:
    result = docker_compose("config", "--services")

    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == ["app", "minio", "redis"]


def test_app_waits_for_healthy_redis_and_minio_and_uses_s3() -> None:
    services = rendered()["services"]
    app = services["app"]

    assert app["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "minio": {"condition": "service_healthy"},
    }
    assert Path(app["build"]["context"]) == ROOT
    assert app["build"]["dockerfile"] == "compose/Dockerfile"
    assert port_pairs(app["ports"]) == {(8080, 8080)}
    env = app["environment"]
    assert env["TUSSERVER_REDIS_URL"] == "redis://redis:6379/0"
    assert env["TUSSERVER_STORAGE"] == "s3"
    assert env["TUSSERVER_S3_ENDPOINT"] == "minio:9000"
    assert env["TUSSERVER_S3_SECURE"] == "false"
    assert env["TUSSERVER_S3_BUCKET"] == "tusserver"
    assert env["TUSSERVER_S3_ACCESS_KEY"] == services["minio"]["environment"]["MINIO_ROOT_USER"]
    assert env["TUSSERVER_S3_SECRET_KEY"] == services["minio"]["environment"]["MINIO_ROOT_PASSWORD"]
    # An unknown TUSSERVER_* name stops the server at start-up: none may be misspelt.
    assert set(env) <= SETTING_NAMES


def test_redis_keeps_an_append_only_file_and_both_backends_have_health_checks() -> None:
    services = rendered()["services"]

    command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["minio"]["command"] == ["server", "/data", "--console-address", ":9001"]
    assert services["minio"]["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]
    assert port_pairs(services["minio"]["ports"]) == {(9000, 9000), (9001, 9001)}


def test_env_example_values_reach_the_containers() -> None:
    services = rendered("--env-file", str(COMPOSE / "env.example"))

    env = services["services"]["app"]["environment"]
    assert env["TUSSERVER_S3_ACCESS_KEY"] == "minioadmin"
    assert env["TUSSERVER_STORAGE"] == "s3"


def env_example_names() -> list[str]:
    text = (COMPOSE / "env.example").read_text()
    return re.findall(r"^#?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE)


def test_env_example_lists_every_setting_once_with_a_comment() -> None:
    names = env_example_names()
    lines = (COMPOSE / "env.example").read_text().splitlines()

    assert len(names) == len(set(names))
    assert set(names) >= SETTING_NAMES
    for index, line in enumerate(lines):
        if re.match(r"^#?[A-Z][A-Z0-9_]*=", line):
            assert lines[index - 1].startswith("# "), f"no comment above {line!r}"


def test_every_optional_setting_is_passed_through_to_the_app() -> None:
    text = (COMPOSE / "docker-compose.yml").read_text()
    passed = set(re.findall(r"^\s+(TUSSERVER_[A-Z0-9_]+):", text, flags=re.MULTILINE))

    # Fixed by the image, not configurable per deployment.
    assert passed == SETTING_NAMES - {"TUSSERVER_DATA_DIR", "TUSSERVER_WEBCLIENT_DIR"}


def dockerfile_instruction(name: str) -> str:
    text = (COMPOSE / "Dockerfile").read_text().replace("\\\n", " ")
    found = re.findall(rf"^{name}\s+(.+)$", text, flags=re.MULTILINE)
    assert found, f"no {name} in the Dockerfile"
    return found[-1].strip()


def test_dockerfile_runs_tusserver_serve_as_non_root() -> None:
    command = json.loads(dockerfile_instruction("CMD"))

    assert command[:2] == ["tusserver", "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "8080"
    assert dockerfile_instruction("FROM") == "python:3.11-slim"
    assert dockerfile_instruction("USER") not in ("root", "0")
    assert dockerfile_instruction("EXPOSE") == "8080"
    assert "/api/health" in dockerfile_instruction("HEALTHCHECK")


def test_dockerfile_copies_what_exists() -> None:
    text = (COMPOSE / "Dockerfile").read_text()
    sources = [
        source
        for line in re.findall(r"^COPY\s+(.+)$", text, flags=re.MULTILINE)
        for source in line.split()[:-1]
    ]

    assert sources, "no COPY in the Dockerfile"
    for source in sources:
        assert (ROOT / source).exists(), f"COPY source {source} missing from the repository"
    assert "tusserver/" in sources and "webclient/" in sources
