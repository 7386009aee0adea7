"""Who is calling: Supabase Auth access tokens (PyJWT) or the embedded single local user.

``[auth] mode = "none"`` (the embedded default): no header is read; every request is the local
user (``[auth] local_user_id``), who is also the operator. ``mode = "supabase"``: the request
carries ``Authorization: Bearer <token>`` where the token is

- a Supabase access token (a JWT; the user is ``sub``, a UUID) signed with an asymmetric key
  published at ``jwks_url`` (``RS256`` / ``ES256``, chosen by the token's ``kid``) or with the
  project's legacy shared secret (``HS256``, ``jwt_secret``); ``aud``, ``iss`` and ``exp`` are
  required and checked, ``nbf`` when present, with ``leeway_s`` of clock skew (at most 30 s);
  any other ``alg`` (``none`` included) is refused before a key is even looked up. A token whose
  ``role`` claim is ``service_role`` is an operator;
- or exactly ``[auth] operator_token`` (for Prometheus scrapers): an operator with no user.

Supabase facts (supabase.com/docs/guides/auth/jwts, .../jwt-fields): access tokens carry
``aud = "authenticated"``, ``iss = https://<ref>.supabase.co/auth/v1``, ``role``
(``authenticated`` / ``anon`` / ``service_role``), ``sub`` = ``auth.users.id``; the JWKS lives at
``https://<ref>.supabase.co/auth/v1/.well-known/jwks.json``. The legacy ``service_role`` API
key has no ``aud`` and a different ``iss``, so it is not accepted here: give operators
``operator_token`` or a service-role token minted with the project's claims.

Every refusal is a 401 ``{error, detail, field: "authorization"}`` with
``WWW-Authenticate: Bearer`` (RFC 6750); an unreachable JWKS endpoint is a 503.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from orchestrator.config import AuthConfig
from orchestrator.errors import ApiError
from orchestrator.lru import Lru

ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "ES256"})
"""The JWKS algorithms Supabase signs with (RSA and P-256 ECDSA keys)."""

_REQUIRED_CLAIMS = ["exp", "aud", "iss"]

VERIFIED_CACHE_SIZE = 4096
"""Tokens whose verification is remembered (a browser sends the same token for an hour)."""
VERIFIED_CACHE_S = 60.0
"""A remembered token is verified again after this long (and never used past its exp), so a
key withdrawn from the JWKS stops working within a minute plus ``jwks_cache_s``."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request.

    Attributes:
        user_id: the Supabase user (``sub``), the local user in mode none, or None for the
            operator token (an operator acting as no user).
        is_operator: may call ``/api/admin/*``, ``/api/analytics/*`` and ``/metrics``, sees every
            memory (as the database's service role does), and is not rate-limited.
    """

    user_id: uuid.UUID | None
    is_operator: bool

    def can_read(self, owner: uuid.UUID | None, shared: bool) -> bool:
        """May this caller see a memory owned by ``owner`` (shared read-only if ``shared``)?"""
        return self.is_operator or shared or (owner is not None and owner == self.user_id)

    def owns(self, owner: uuid.UUID | None) -> bool:
        """May this caller change a memory or use a session owned by ``owner``?"""
        return self.is_operator or (owner is not None and owner == self.user_id)


class Unauthorized(ApiError):
    """401: no usable credentials; ``detail`` says which rule the token broke."""

    def __init__(self, detail: str, *, error: str = "invalid_token") -> None:
        challenge = 'Bearer realm="rewind"'
        if error == "invalid_token":
            challenge += ', error="invalid_token"'
        super().__init__(
            401, error, detail, field="authorization", headers={"www-authenticate": challenge}
        )


class Forbidden(ApiError):
    """403: authenticated, but the route needs the operator role."""

    def __init__(self, detail: str) -> None:
        super().__init__(403, "forbidden", detail, field="authorization")


class AuthUnavailable(ApiError):
    """503: the JWKS endpoint could not be read, so no asymmetric token can be checked."""

    def __init__(self, detail: str) -> None:
        super().__init__(503, "auth_unavailable", detail, field="authorization")


class JwksKeys:
    """The signing keys at a JWKS URL, cached, re-read on an unknown ``kid``.

    The set is re-read when older than ``cache_s`` seconds, and when a token names a ``kid``
    that is not in it (Supabase rotates keys by publishing the new one first), but at most once
    per ``min_refresh_s`` seconds so that tokens with invented ``kid``s cannot make the service
    hammer the endpoint. Fetching uses ``jwt.PyJWKClient`` (urllib, blocking) in a thread.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_s: float,
        min_refresh_s: float,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = jwt.PyJWKClient(url, cache_jwk_set=False, timeout=timeout_s)
        self._cache_s = cache_s
        self._min_refresh_s = min_refresh_s
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -math.inf
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many times the set was fetched (tests and /api/health read it)."""

    async def key(self, kid: str) -> jwt.PyJWK:
        """The key named ``kid``.

        Raises:
            Unauthorized: no such key, even after a permitted refresh.
            AuthUnavailable: the endpoint could not be read and no cached set is usable.
        """
        if self._clock() - self._fetched_at > self._cache_s:
            await self._refresh(self._cache_s)
        found = self._keys.get(kid)
        if found is None:
            await self._refresh(self._min_refresh_s)
            found = self._keys.get(kid)
        if found is None:
            raise Unauthorized(f"the token's signing key (kid {kid!r}) is not in the JWKS")
        return found

    async def _refresh(self, older_than_s: float) -> None:
        async with self._lock:
            if self._clock() - self._fetched_at < older_than_s:
                return  # another request refreshed it while this one waited
            try:
                jwk_set = await asyncio.to_thread(self._client.get_jwk_set, True)
            except jwt.PyJWKClientError as exc:
                if self._keys:  # keep serving the last good set; retry after min_refresh_s
                    self._fetched_at = self._clock() - self._cache_s + self._min_refresh_s
                    return
                raise AuthUnavailable(f"cannot read the JWKS: {exc}") from exc
            self.fetches += 1
            self._keys = {k.key_id: k for k in jwk_set.keys if k.key_id}
            self._fetched_at = self._clock()


class Authenticator:
    """Turns an ``Authorization`` header into a Principal, per ``[auth]`` (module docstring)."""

    def __init__(
        self,
        config: AuthConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.local = Principal(config.local_user_id, is_operator=True)
        self._wall = wall_clock
        # token -> (principal, unix time until which it may be reused). Verifying a token
        # costs 0.1-0.2 ms of CPU (benchmarks/auth.py); a repeat costs a dict lookup.
        self._verified: Lru[str, tuple[Principal, float]] = Lru(VERIFIED_CACHE_SIZE)
        self.jwks = (
            JwksKeys(
                config.jwks_url,
                cache_s=config.jwks_cache_s,
                min_refresh_s=config.jwks_min_refresh_s,
                timeout_s=config.jwks_timeout_s,
                clock=clock,
            )
            if config.jwks_url
            else None
        )

    @property
    def enabled(self) -> bool:
        """True when tokens are checked (mode supabase)."""
        return self.config.mode != "none"

    def describe(self) -> dict[str, object]:
        """What /api/health reports: the mode, and the local user or the verifiers in use."""
        if not self.enabled:
            return {"mode": "none", "user": "local", "user_id": str(self.config.local_user_id)}
        return {
            "mode": self.config.mode,
            "jwks": self.config.jwks_url is not None,
            "hs256": self.config.jwt_secret is not None,
            "operator_token": self.config.operator_token is not None,
            "audience": self.config.audience,
            "issuer": self.config.issuer,
        }

    async def principal(self, authorization: str | None) -> Principal:
        """The caller named by an ``Authorization`` header value (None: the header is absent).

        Raises:
            Unauthorized: missing, malformed or invalid credentials (mode supabase only).
            AuthUnavailable: the JWKS could not be read.
        """
        if not self.enabled:
            return self.local
        if not authorization:
            raise Unauthorized(
                "this service needs 'Authorization: Bearer <Supabase access token>'",
                error="unauthenticated",
            )
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        operator = self.config.operator_token
        if operator is not None and hmac.compare_digest(
            token.encode(), operator.get_secret_value().encode()
        ):
            return Principal(None, is_operator=True)
        now = self._wall()
        seen = self._verified.get(token)
        if seen is not None and now < seen[1]:
            return seen[0]
        claims = await self.verify(token)
        principal = principal_from_claims(claims)
        self._verified.put(token, (principal, min(float(claims["exp"]), now + VERIFIED_CACHE_S)))
        return principal

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token. Raises Unauthorized naming the broken rule."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the token is not a JWT: {exc}") from exc
        alg = header.get("alg")
        key: Any
        if alg == "HS256" and self.config.jwt_secret is not None:
            key = self.config.jwt_secret.get_secret_value()
        elif alg in ASYMMETRIC_ALGORITHMS and self.jwks is not None:
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise Unauthorized("the token has no 'kid' header naming its signing key")
            jwk = await self.jwks.key(kid)
            if jwk.algorithm_name != alg:
                raise Unauthorized(f"key {kid!r} is a {jwk.algorithm_name} key, not {alg}")
            key = jwk.key
        else:
            accepted = sorted(
                (ASYMMETRIC_ALGORITHMS if self.jwks else set())
                | ({"HS256"} if self.config.jwt_secret else set())
            )
            raise Unauthorized(f"alg {alg!r} is not accepted here (accepted: {accepted})")
        return self._decode(token, key, alg)

    def _decode(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_s,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the token has expired (exp); sign in again") from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthorized("the token is not valid yet (nbf / iat in the future)") from exc
        except jwt.InvalidAudienceError as exc:
            raise Unauthorized(f"the token's aud is not {self.config.audience!r}") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthorized(f"the token's iss is not {self.config.issuer!r}") from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthorized("the token's signature does not verify") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"the token has no {exc.claim!r} claim") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the token is invalid: {exc}") from exc
        return claims


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """The Principal of verified claims: ``sub`` (a UUID) and ``role`` (service_role = operator).

    Raises:
        Unauthorized: no ``sub`` on a non-operator token, or a ``sub`` that is not a UUID.
    """
    is_operator = claims.get("role") == "service_role"
    sub = claims.get("sub")
    if sub is None or sub == "":
        if is_operator:
            return Principal(None, is_operator=True)
        raise Unauthorized("the token has no 'sub' claim (the user id)")
    try:
        user_id = uuid.UUID(str(sub))
    except ValueError as exc:
        raise Unauthorized("the token's 'sub' is not a UUID (a Supabase user id)") from exc
    return Principal(user_id, is_operator=is_operator)
