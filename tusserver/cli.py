"""The `tusserver` command: serve, cleanup, rebuild-index."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from .settings import Settings, SettingsError


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
    )


@contextmanager
def redis_for(settings: Settings) -> Iterator[Settings]:
    """The settings with a Redis URL: the configured one, or an embedded server's while open."""
    if settings.redis_url:
        yield settings
        return
    from .embedded_redis import EmbeddedRedis, EmbeddedRedisError

    server = EmbeddedRedis(settings.redis_dir)
    try:
        server.start()
    except EmbeddedRedisError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        yield settings.replace(redis_url=server.url)
    finally:
        server.stop()


@click.group()
@click.version_option(package_name="tusserver")
def main() -> None:
    """tusserver: resumable uploads (tus 1.0.0) with Redis state and local or S3 storage."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=2, show_default=True, type=int, help="Worker processes.")
@click.option(
    "--threads", default=8, show_default=True, type=int, help="Threads per worker (gthread only)."
)
@click.option(
    "--worker-class",
    type=click.Choice(["gevent", "gthread"]),
    default=None,
    help="gunicorn worker class (default: TUSSERVER_WORKER_CLASS, gevent).",
)
def serve(host: str, port: int, workers: int, threads: int, worker_class: str | None) -> None:
    """Run the server under gunicorn (gevent workers by default)."""
    settings = _settings()
    worker_class = worker_class or settings.worker_class
    if worker_class == "gevent":
        # Before anything imports ssl, socket users or threading (the app, redis, urllib3):
        # modules that took a reference to an unpatched class would block the event loop.
        from gevent import monkey

        monkey.patch_all()
    _configure_logging(settings)
    from .worker_limits import raise_open_file_limit

    raise_open_file_limit()  # before the fork: the workers and the embedded Redis inherit it
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.metrics_enabled:
        _prepare_metrics_dir(settings.metrics_dir or settings.data_dir / "metrics")
    _check_storage(settings)
    with redis_for(settings) as running:
        # Workers read their settings from the environment, so pass the embedded server's URL on.
        os.environ["TUSSERVER_REDIS_URL"] = running.redis_url
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
        click.echo(f"tusserver listening on {url}  (uploads at {url}/files/)", err=True)
        from .gunicorn import run_gunicorn

        run_gunicorn(running, host, port, workers, threads, worker_class)


def _prepare_metrics_dir(directory: Path) -> None:
    """prometheus_client's multiprocess mode: one empty folder for all workers' samples.

    Must run before anything imports prometheus_client (it picks its value class at import),
    which is why it lives here and not in `tusserver.metrics`. Stale files would add old counts.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory.resolve())


def _check_storage(settings: Settings) -> None:
    """Fail fast, in one line, when the data store cannot be used."""
    from .app import make_store
    from .errors import TusError

    try:
        make_store(settings).check()
    except TusError as exc:
        raise click.ClickException(exc.message) from None


@main.command()
def cleanup() -> None:
    """Remove expired uploads (state and data) once, now."""
    settings = _settings()
    _configure_logging(settings)
    with redis_for(settings) as running:
        service = _service(running)
        removed = service.cleanup()
    click.echo(f"removed {len(removed)} expired upload(s)")
    for upload_id in removed:
        click.echo(f"  {upload_id}")


@main.command("rebuild-index")
def rebuild_index_command() -> None:
    """Restore Redis state of every upload from the S3 bucket (after losing Redis)."""
    settings = _settings()
    _configure_logging(settings)
    if settings.storage != "s3":
        raise click.ClickException(
            "rebuild-index needs TUSSERVER_STORAGE=s3: the local store "
            "keeps no copy of upload state"
        )
    import time

    from .errors import TusError
    from .maintenance import rebuild_index
    from .storage.s3 import contiguous_parts

    with redis_for(settings) as running:
        components = _components(running)
        counts = {"restored": 0, "kept": 0}
        try:
            for result in rebuild_index(
                running, components.state, components.store, contiguous_parts, time.time
            ):
                counts[result.action] += 1
                click.echo(result.describe())
        except TusError as exc:  # a backend went away mid-scan: say so in one line
            raise click.ClickException(
                f"{exc.message} (after restoring {counts['restored']} upload(s))"
            ) from None
    click.echo(f"restored {counts['restored']} upload(s), kept {counts['kept']} already indexed")


def _components(settings: Settings) -> Any:
    """The app's components; a backend that cannot be used is one line, not a traceback."""
    from .app import create_app
    from .errors import TusError

    try:
        return create_app(settings).extensions["tusserver"]
    except TusError as exc:  # e.g. the S3 endpoint is unreachable (StorageConfigError)
        raise click.ClickException(exc.message) from None


def _service(settings: Settings) -> Any:
    return _components(settings).service


if __name__ == "__main__":  # pragma: no cover
    main()
