"""Real signing keys, a real JWKS endpoint on 127.0.0.1, and Supabase-shaped tokens for tests.

Keys are generated per test session (RSA 2048 for RS256, P-256 for ES256); the JWKS is served
by ``http.server`` in a thread, as Supabase's ``/auth/v1/.well-known/jwks.json`` would be, and
counts its requests so tests can see the refresh on an unknown ``kid``.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://project-ref.supabase.co/auth/v1"
AUDIENCE = "authenticated"
HS_SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"


@dataclass
class SigningKey:
    """A private key, its kid and algorithm, and its public JWK."""

    kid: str
    alg: str
    private: Any
    jwk: dict[str, Any]


def rsa_key(kid: str) -> SigningKey:
    """A fresh RS256 key."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    return SigningKey(kid, "RS256", private, {**jwk, "kid": kid, "alg": "RS256", "use": "sig"})


def ec_key(kid: str) -> SigningKey:
    """A fresh ES256 (P-256) key."""
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    return SigningKey(kid, "ES256", private, {**jwk, "kid": kid, "alg": "ES256", "use": "sig"})


def claims(user: uuid.UUID | None, **over: Any) -> dict[str, Any]:
    """Claims shaped like a Supabase access token, valid for an hour from now."""
    now = int(time.time())
    base: dict[str, Any] = {
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": now,
        "exp": now + 3600,
        "role": "authenticated",
        "aal": "aal1",
        "session_id": str(uuid.uuid4()),
    }
    if user is not None:
        base["sub"] = str(user)
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: SigningKey, payload: dict[str, Any], kid: str | None = None) -> str:
    """``payload`` signed with ``key`` (header ``kid``: ``kid`` or the key's own)."""
    return jwt.encode(payload, key.private, algorithm=key.alg, headers={"kid": kid or key.kid})


def sign_hs(payload: dict[str, Any], secret: str = HS_SECRET) -> str:
    """``payload`` signed HS256 with ``secret`` (the legacy Supabase JWT secret)."""
    return jwt.encode(payload, secret, algorithm="HS256")


def unsigned(payload: dict[str, Any], kid: str = "any") -> str:
    """An ``alg: none`` token (no signature), built by hand."""

    def part(obj: dict[str, Any]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{part(payload)}."


@dataclass
class JwksServer:
    """The JWKS endpoint: ``keys`` is what it serves, ``hits`` how often it was read."""

    url: str
    keys: list[dict[str, Any]] = field(default_factory=list)
    hits: int = 0


@contextmanager
def jwks_server(*keys: SigningKey) -> Iterator[JwksServer]:
    """Serve ``keys`` as a JWKS on 127.0.0.1 (a free port) until the block ends."""
    state = JwksServer(url="", keys=[k.jwk for k in keys])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits += 1
            body = json.dumps({"keys": state.keys}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/auth/v1/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
