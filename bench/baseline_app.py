"""The baselines: a minimal WSGI app that only writes request bodies to files.

It answers the same requests as a tus server so the same client code path drives it: POST makes
an empty file and answers 201 with its Location; PATCH writes the body at Upload-Offset, 1 MiB
at a time, and answers 204 with the new offset; GET sends the file through `wsgi.file_wrapper`
(sendfile); HEAD and OPTIONS answer at once. No Redis, no locks, no checks. With `--fsync`
each PATCH is fsync'd before its answer.

`--reader` says where the body comes from:
- `wsgi-input`: gunicorn's `wsgi.input`, as a plain WSGI app reads it. Not a ceiling for
  tusserver, which does not read through gunicorn's reader.
- `socket`: the socket, read directly into one buffer per 1 MiB by `tusserver.wsgi_input`, the
  same reader tusserver uses. Everything tusserver does on top of that (HTTP parsing by Flask,
  Redis, locks, checks) is what the "socket app" leaves out, so it is the real ceiling for
  tusserver under the same gunicorn settings.

    python bench/baseline_app.py --port 8081 --workers 2 --threads 8 --dir DATA_DIR \\
        [--reader socket] [--fsync]
"""

from __future__ import annotations

import argparse
import os
import uuid
from typing import Any

from gunicorn.app.base import BaseApplication

from tusserver.wsgi_input import body_stream

CHUNK = 1024 * 1024


def make_app(directory: str, fsync: bool, reader: str) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        method = environ["REQUEST_METHOD"]
        path = environ["PATH_INFO"]
        if method == "POST":
            upload_id = uuid.uuid4().hex
            os.close(os.open(os.path.join(directory, upload_id), os.O_WRONLY | os.O_CREAT, 0o640))
            start_response(
                "201 Created",
                [
                    ("Location", f"/files/{upload_id}"),
                    ("Upload-Offset", "0"),
                    ("Content-Length", "0"),
                ],
            )
            return [b""]
        upload_id = path.rsplit("/", 1)[-1]
        file_path = os.path.join(directory, upload_id)
        if method == "PATCH":
            offset = int(environ["HTTP_UPLOAD_OFFSET"])
            remaining = int(environ.get("CONTENT_LENGTH") or 0)
            stream = body_stream(environ) if reader == "socket" else environ["wsgi.input"]
            fd = os.open(file_path, os.O_WRONLY)
            try:
                os.lseek(fd, offset, os.SEEK_SET)
                while remaining > 0:
                    chunk = stream.read(min(CHUNK, remaining))
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
                    remaining -= len(chunk)
                    offset += len(chunk)
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            start_response("204 No Content", [("Upload-Offset", str(offset))])
            return [b""]
        if method == "GET":
            handle = open(file_path, "rb")  # noqa: SIM115 - the server closes it
            size = os.fstat(handle.fileno()).st_size
            start_response("200 OK", [("Content-Length", str(size))])
            return environ["wsgi.file_wrapper"](handle, CHUNK)
        start_response("204 No Content", [("Tus-Resumable", "1.0.0")])
        return [b""]

    return app


class Baseline(BaseApplication):  # type: ignore[misc]
    def __init__(self, app: Any, options: dict[str, Any]):
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--fsync", action="store_true")
    parser.add_argument("--reader", choices=("wsgi-input", "socket"), default="wsgi-input")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    # The same gunicorn settings as tusserver/gunicorn.py's run_gunicorn (minus its hooks).
    options = {
        "bind": f"127.0.0.1:{args.port}",
        "workers": args.workers,
        "threads": args.threads,
        "worker_class": "gthread",
        "timeout": 60,
        "keepalive": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "limit_request_field_size": 16384,
        "proc_name": "bench-baseline",
    }
    Baseline(make_app(args.dir, args.fsync, args.reader), options).run()


if __name__ == "__main__":
    main()
