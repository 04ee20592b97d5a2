"""The `tusserver` command: serve, cleanup, rebuild-index, users, tokens."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from .auth.principal import SCOPES
from .auth.scopes import encode_scopes
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
def redis_for(settings: Settings, share: bool = False) -> Iterator[Settings]:
    """The settings with a Redis URL: the configured one, or an embedded server's while open.

    With `share`, a server already running on this data directory lends its embedded Redis
    (admin commands work the same whether or not the server runs).
    """
    if settings.redis_url or settings.redis_mode != "single":
        yield settings
        return
    from .embedded_redis import EmbeddedRedis, EmbeddedRedisError

    if share:
        running = EmbeddedRedis.running_url(settings.redis_dir)
        if running:
            yield settings.replace(redis_url=running)
            return

    server = EmbeddedRedis(settings.redis_dir)
    try:
        server.start()
    except EmbeddedRedisError as exc:
        raise click.ClickException(str(exc)) from None
    server.supervise()  # a Redis that dies is back from its append-only file within a second
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
    _prepare_secret_key(settings)
    if settings.metrics_enabled:
        _prepare_metrics_dir(settings.metrics_dir or settings.data_dir / "metrics")
    _check_storage(settings)
    with redis_for(settings) as running:
        # Workers read their settings from the environment, so pass the embedded server's URL on.
        os.environ["TUSSERVER_REDIS_URL"] = running.redis_url
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '', '::') else host}:{port}"
        _check_access_mode(running, host, url)
        _upgrade_indexes(running)
        click.echo(f"tusserver listening on {url}  (uploads at {url}/files/)", err=True)
        from .gunicorn import run_gunicorn

        run_gunicorn(running, host, port, workers, threads, worker_class)


def _check_access_mode(settings: Settings, host: str, url: str) -> None:
    """Open mode on a public address gets a loud warning; accounts get their first admin."""
    if settings.auth == "none":
        if not _is_loopback(host):
            banner = "!" * 78
            logging.getLogger("tusserver").warning(
                "\n%s\nTUSSERVER_AUTH=none on %s: ANYONE WHO CAN REACH THIS ADDRESS CAN READ, "
                "CHANGE AND DELETE EVERY UPLOAD.\nUse TUSSERVER_AUTH=required (the default) "
                "unless this network is trusted.\n%s",
                banner,
                host,
                banner,
            )
        return
    password = _accounts(settings).bootstrap_admin()
    if password is None:
        return
    source = (
        "the value of TUSSERVER_ADMIN_PASSWORD"
        if settings.admin_password
        else password + "   (shown once: change it after logging in)"
    )
    click.echo(
        "\n  First start: created the admin account.\n"
        f"    login at  {url}/\n"
        "    user      admin\n"
        f"    password  {source}\n",
        err=True,
    )


def _upgrade_indexes(settings: Settings) -> None:
    """Uploads stored by a version without the listing and search indexes get them before the
    first request, so an upgraded server lists every file (what `tusserver reindex` does)."""
    from .state.connect import connect_settings
    from .state.redis import RedisState

    client = connect_settings(settings, max_connections=4)
    try:
        count = RedisState(client, settings.redis_prefix).upgrade_indexes()
    finally:
        client.close()
    if count is not None:
        click.echo(f"Upgrade: indexed {count} upload(s) for listing and search.", err=True)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _prepare_secret_key(settings: Settings) -> None:
    """Make the link/grant signing key before the workers start, so they all load one key.

    Done here because the workers see the embedded Redis as a configured URL and could not tell
    the embedded default (where a generated key is right) from a fleet (where it warns).
    """
    from .auth.signed import load_or_create_secret_key

    load_or_create_secret_key(settings)


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
        counts = {"restored": 0, "kept": 0, "gone": 0}
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


@main.command("reindex")
def reindex_command() -> None:
    """Rebuild the listing and search indexes from the upload state in Redis (after an upgrade
    from a version without them, or to repair them)."""
    settings = _settings()
    _configure_logging(settings)
    from .errors import TusError

    with redis_for(settings) as running:
        try:
            count = _components(running).state.reindex_all()
        except TusError as exc:
            raise click.ClickException(exc.message) from None
    click.echo(f"indexed {count} upload(s)")


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


# -- accounts --------------------------------------------------------------------------------
def _accounts(settings: Settings) -> Any:
    """The account rules on the settings' Redis (no data store needed)."""
    from .auth.accounts import Accounts
    from .state.accounts import AccountStore
    from .state.connect import connect_settings

    return Accounts(AccountStore(connect_settings(settings), settings.redis_prefix), settings)


@contextmanager
def _account_command() -> Iterator[Any]:
    """Accounts on this data directory's Redis; a refusal is one line, not a traceback."""
    from .errors import TusError

    settings = _settings()
    logging.basicConfig(level="WARNING", stream=sys.stderr)
    with redis_for(settings, share=True) as running:
        try:
            yield _accounts(running)
        except TusError as exc:
            raise click.ClickException(exc.message) from None


def _read_password(from_stdin: bool, name: str) -> tuple[str, bool]:
    """(password, generated?): from stdin, a prompt, or random when nobody can type one."""
    import secrets

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on stdin")
        return password, False
    if sys.stdin.isatty():
        return click.prompt(
            f"Password for {name}", hide_input=True, confirmation_prompt=True
        ), False
    return secrets.token_urlsafe(15), True


def parse_duration(text: str) -> int:
    """Seconds in `90`, `90s`, `15m`, `12h`, `30d` or `2w`."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    value = text.strip().lower()
    multiplier = units.get(value[-1:]) if value else None
    number = value[:-1] if multiplier else value
    if not number.isascii() or not number.isdigit() or int(number) <= 0:
        raise click.BadParameter(f"{text!r} is not a duration like 3600, 90m, 12h or 30d")
    return int(number) * (multiplier or 1)


@main.group()
def users() -> None:
    """Manage users (works whether or not the server runs)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "user"]), default="user", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
def users_add(name: str, role: str, password_stdin: bool) -> None:
    """Create a user (without --password-stdin: prompted, or random and printed)."""
    password, generated = _read_password(password_stdin, name)
    with _account_command() as accounts:
        accounts.create_user(name, password, role)
    click.echo(f"created {role} {name}", err=True)
    if generated:
        click.echo(password)


@users.command("list")
def users_list() -> None:
    """Every user: name, role, state, usage and quota."""
    with _account_command() as accounts:
        rows = [(user, usage, accounts.quota_of(user)) for user, usage in accounts.list_users()]
    click.echo(f"{'NAME':<24} {'ROLE':<6} {'STATE':<9} {'USAGE':>14} {'QUOTA':>14}")
    for user, usage, quota in rows:
        state = "disabled" if user.disabled else "active"
        limit = "-" if quota is None else str(quota)
        click.echo(f"{user.name:<24} {user.role:<6} {state:<9} {usage:>14} {limit:>14}")


@users.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(["admin", "user"]))
def users_set_role(name: str, role: str) -> None:
    """Make a user an admin or a plain user (takes effect on its next request)."""
    with _account_command() as accounts:
        accounts.update_user(name, role=role)
    click.echo(f"{name} is now {role}", err=True)


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
def users_passwd(name: str, password_stdin: bool) -> None:
    """Set a user's password (ends its browser sessions)."""
    password, generated = _read_password(password_stdin, name)
    with _account_command() as accounts:
        accounts.update_user(name, password=password)
    click.echo(f"password of {name} changed; its sessions ended", err=True)
    if generated:
        click.echo(password)


@users.command("remove")
@click.argument("name")
def users_remove(name: str) -> None:
    """Remove a user, its tokens and sessions (its uploads stay, for admins)."""
    with _account_command() as accounts:
        accounts.remove_user(name)
    click.echo(f"removed {name}", err=True)


@main.group()
def tokens() -> None:
    """Manage API tokens (works whether or not the server runs)."""


@tokens.command("create")
@click.argument("name")
@click.option("--label", default="", help="What the token is for.")
@click.option("--expires-in", "expires_in", default=None, help="e.g. 3600, 90m, 12h, 30d.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(SCOPES),
    help="Limit the token (repeatable): upload, read, manage, admin. None: full rights.",
)
def tokens_create(name: str, label: str, expires_in: str | None, scopes: tuple[str, ...]) -> None:
    """Create a token for NAME and print it alone on stdout (it is not shown again)."""
    seconds = parse_duration(expires_in) if expires_in else None
    limited = frozenset(scopes) if scopes else None
    with _account_command() as accounts:
        token, record = accounts.issue_token(name, label, seconds, limited)
    click.echo(f"token {record.id} for {name}", err=True)
    click.echo(token)


@tokens.command("list")
@click.argument("name")
def tokens_list(name: str) -> None:
    """NAME's tokens: id, created, expires, last used, scopes, label."""
    import datetime as dt

    def when(stamp: float | None) -> str:
        if stamp is None:
            return "-"
        return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    with _account_command() as accounts:
        accounts.get_user(name)
        records = accounts.list_tokens(name)
    click.echo(
        f"{'ID':<16}  {'CREATED':<20}  {'EXPIRES':<20}  {'LAST USED':<20}  {'SCOPES':<25}  LABEL"
    )
    for r in records:
        scopes = encode_scopes(r.scopes) or "all"
        click.echo(
            f"{r.id:<16}  {when(r.created):<20}  {when(r.expires):<20}  "
            f"{when(r.last_used):<20}  {scopes:<25}  {r.label}"
        )


@tokens.command("revoke")
@click.argument("token_id")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token by its id (refused at once by every server)."""
    with _account_command() as accounts:
        record = accounts.revoke_token(token_id)
    click.echo(f"revoked token {token_id} of {record.owner}", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
