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

import pytest
import yaml

from tests.support.tools import require_executable
from tusserver.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
SETTING_NAMES = {f"TUSSERVER_{field.name.upper()}" for field in dataclasses.fields(Settings)}


PASSWORDS = {"MINIO_ROOT_PASSWORD": "root-secret-1", "TUSSERVER_S3_SECRET_KEY": "app-secret-1"}
"""What an operator must set before the stack starts (no default passwords)."""


def docker_compose(
    *args: str, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    executable = require_executable("docker-compose", "docker-compose")
    # A clean environment, so the defaults in the file are what gets rendered.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TUSSERVER_", "MINIO_", "APP_", "NGINX_", "COMPOSE_"))
    }
    env.update(PASSWORDS if extra_env is None else extra_env)
    return subprocess.run(
        [executable, "-f", str(COMPOSE / "docker-compose.yml"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def rendered(*args: str, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    result = docker_compose(*args, "config", extra_env=extra_env)
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


def test_compose_file_is_valid_and_has_its_services() -> None:
    result = docker_compose("config", "--services")

    assert result.returncode == 0, result.stderr
    assert {"app", "minio", "minio-setup", "nginx", "redis"} <= set(result.stdout.split())


def test_app_waits_for_healthy_redis_and_set_up_minio_and_uses_s3() -> None:
    services = rendered()["services"]
    app = services["app"]

    assert app["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "minio": {"condition": "service_healthy"},
        "minio-setup": {"condition": "service_completed_successfully"},
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
    # An unknown TUSSERVER_* name stops the server at start-up: none may be misspelt.
    assert set(env) <= SETTING_NAMES


def host_ip(port: Any) -> str:
    return port.get("host_ip", "") if isinstance(port, dict) else str(port).split(":")[0]


def test_every_published_port_is_on_localhost_by_default() -> None:
    services = rendered()["services"]
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}

    assert {"app", "minio"} <= set(published)
    for name, ports in published.items():
        for port in ports:
            assert host_ip(port) == "127.0.0.1", (name, port)
    exposed = rendered(extra_env={**PASSWORDS, "APP_BIND_ADDRESS": "0.0.0.0"})
    assert host_ip(exposed["services"]["app"]["ports"][0]) == "0.0.0.0"


@pytest.mark.parametrize("missing", sorted(PASSWORDS))
def test_compose_stops_with_a_clear_message_without_each_password(missing: str) -> None:
    env = {name: value for name, value in PASSWORDS.items() if name != missing}
    result = docker_compose("config", extra_env=env)

    assert result.returncode != 0
    assert f"set {missing} in compose/.env" in result.stderr
    empty = docker_compose("config", extra_env={**env, missing: ""})
    assert empty.returncode != 0, "an empty password is no password"


def test_the_app_uses_its_own_minio_user_never_the_root_user() -> None:
    services = rendered()["services"]
    app_env = services["app"]["environment"]
    minio_env = services["minio"]["environment"]
    setup_env = services["minio-setup"]["environment"]

    assert app_env["TUSSERVER_S3_ACCESS_KEY"] != minio_env["MINIO_ROOT_USER"]
    assert app_env["TUSSERVER_S3_SECRET_KEY"] == PASSWORDS["TUSSERVER_S3_SECRET_KEY"]
    assert PASSWORDS["MINIO_ROOT_PASSWORD"] not in json.dumps(services["app"])
    assert setup_env["APP_ACCESS_KEY"] == app_env["TUSSERVER_S3_ACCESS_KEY"]
    assert setup_env["APP_SECRET_KEY"] == app_env["TUSSERVER_S3_SECRET_KEY"]
    assert setup_env["BUCKET"] == app_env["TUSSERVER_S3_BUCKET"]
    assert setup_env["MINIO_ROOT_PASSWORD"] == PASSWORDS["MINIO_ROOT_PASSWORD"]
    assert services["minio-setup"]["depends_on"] == {"minio": {"condition": "service_healthy"}}
    assert services["minio-setup"]["restart"] == "no"


def test_the_setup_script_limits_the_app_user_to_its_bucket() -> None:
    script = (COMPOSE / "minio-setup.sh").read_text()
    mounted = rendered()["services"]["minio-setup"]["volumes"]
    sources = {Path(v["source"] if isinstance(v, dict) else v.split(":")[0]) for v in mounted}

    assert COMPOSE / "minio-setup.sh" in {COMPOSE / s.name for s in sources}
    assert script.startswith("#!/bin/sh") and "set -eu" in script
    assert "mc mb --ignore-existing" in script
    assert '"arn:aws:s3:::$BUCKET"' in script and '"arn:aws:s3:::$BUCKET/*"' in script
    assert "s3:*" not in script, "the policy names each action the S3 store needs"
    assert 'mc admin policy attach local tusserver-bucket --user "$APP_ACCESS_KEY"' in script
    assert (
        subprocess.run(["sh", "-n", str(COMPOSE / "minio-setup.sh")], check=False).returncode == 0
    )


def test_every_image_is_pinned_to_a_release() -> None:
    services = rendered()["services"]
    pulled = {name: s["image"] for name, s in services.items() if "build" not in s}

    assert pulled, "the stack pulls redis and minio images"
    for name, image in pulled.items():
        repository, _, tag = image.rpartition(":")
        assert repository and tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d+\.\d+|RELEASE\.\d{4}-", tag), f"{name}: {image}"
    base = dockerfile_instruction("FROM")
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), base
    assert services["app"]["image"] != "tusserver:latest"


def test_the_first_admin_password_is_passed_through() -> None:
    env = rendered(extra_env={**PASSWORDS, "TUSSERVER_ADMIN_PASSWORD": "first-admin-pw"})
    assert env["services"]["app"]["environment"]["TUSSERVER_ADMIN_PASSWORD"] == "first-admin-pw"


def test_redis_keeps_an_append_only_file_and_both_backends_have_health_checks() -> None:
    services = rendered()["services"]

    command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["minio"]["command"] == ["server", "/data", "--console-address", ":9001"]
    assert services["minio"]["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]
    assert port_pairs(services["minio"]["ports"]) == {(9000, 9000), (9001, 9001)}


def test_env_example_values_reach_the_containers() -> None:
    services = rendered("--env-file", str(COMPOSE / "env.example"), extra_env=PASSWORDS)

    env = services["services"]["app"]["environment"]
    assert env["TUSSERVER_S3_ACCESS_KEY"] == "tusserver"
    assert env["TUSSERVER_STORAGE"] == "s3"
    assert services["services"]["minio"]["environment"]["MINIO_ROOT_USER"] == "minioadmin"


def test_env_example_as_copied_does_not_start_without_passwords() -> None:
    result = docker_compose("--env-file", str(COMPOSE / "env.example"), "config", extra_env={})
    assert result.returncode != 0
    assert "in compose/.env" in result.stderr


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
    assert dockerfile_instruction("FROM").startswith("python:3.11.")
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
