"""An identity provider for JWT tests: RSA keys made here, a JWKS served on a local port."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "tusserver-tests"
ISSUER = "https://idp.test/"


class Provider:
    """An identity provider: RSA keys by kid, and the JWKS document it publishes."""

    def __init__(self) -> None:
        self.private: dict[str, rsa.RSAPrivateKey] = {}
        self.published: list[str] = []
        self.fetches = 0
        self.status = 200

    def add_key(self, kid: str, publish: bool = True) -> None:
        self.private[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            public = self.private[kid].public_key()
            data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
            keys.append({**data, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": keys}

    def token(self, kid: str, algorithm: str = "RS256", **claims: Any) -> str:
        payload = {
            "sub": "alice",
            "aud": AUDIENCE,
            "iss": ISSUER,
            "exp": int(time.time()) + 300,
            **claims,
        }
        return jwt.encode(payload, self.private[kid], algorithm=algorithm, headers={"kid": kid})


@contextmanager
def serve_jwks(state: Provider) -> Iterator[str]:
    """Serve `state`'s JWKS on 127.0.0.1 (a free port); yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.fetches += 1
            body = json.dumps(state.jwks()).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()
