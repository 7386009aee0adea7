"""The door of the API: one ``Gate`` per service (authentication, limits, ownership, media
URLs) and the FastAPI dependencies routes declare.

- ``User``: the authenticated caller (``Principal``), rate-limited (429 when over
  ``[auth] requests_per_minute``). Every ``/api`` route except ``/api/health`` takes it.
- ``Operator``: a ``User`` with the operator role, else 403 (``/api/admin/*``,
  ``/api/analytics/*``, ``/metrics``).
- ``MediaCaller``: for blob routes a browser element opens (``<video src>``): a valid ``sig``
  query parameter for this exact path (``orchestrator.ownership.MediaSigner``) stands in for the
  header, and then yields None (the URL was issued to someone allowed to read it); otherwise
  the same as ``User``.
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Query, Request

from orchestrator.auth import Authenticator, Forbidden, Principal
from orchestrator.config import AuthConfig
from orchestrator.ownership import MediaSigner, Ownership
from orchestrator.quotas import GpuUsage, RequestLimiter

log = structlog.get_logger(__name__)


class Gate:
    """Everything that decides who may do what, built from ``[auth]``.

    Attributes:
        auth: token verification (``orchestrator.auth``).
        limiter: requests per minute per user.
        usage: GPU-seconds per user today, ``allow_speculation`` for the scheduler.
        ownership: owner / share cache and the 404 checks.
        signer: short-lived media URLs (a no-op with auth off).
    """

    def __init__(self, config: AuthConfig) -> None:
        self.config = config
        self.auth = Authenticator(config)
        self.limiter = RequestLimiter(config.requests_per_minute)
        self.usage = GpuUsage(config, enabled=self.auth.enabled)
        self.ownership = Ownership()
        secret = config.media_url_secret
        self.signer = MediaSigner(
            secret.get_secret_value().encode() if secret is not None else None,
            config.media_url_ttl_s,
            enabled=self.auth.enabled,
        )

    def log_mode(self) -> None:
        """Log, once at start, who the service believes its callers are."""
        if self.auth.enabled:
            log.info("auth_enabled", **self.auth.describe())
        else:
            log.info(
                "auth_disabled",
                detail='[auth] mode = "none": every request is the one local user (operator)',
                user_id=str(self.config.local_user_id),
            )


def gate_of(request: Request) -> Gate:
    """The running service's Gate."""
    gate: Gate = request.app.state.service.gate
    return gate


async def current_user(request: Request) -> Principal:
    """The authenticated caller, after spending one request of their per-minute budget.

    Raises:
        Unauthorized (401), AuthUnavailable (503), TooManyRequests (429).
    """
    gate = gate_of(request)
    principal = await gate.auth.principal(request.headers.get("authorization"))
    gate.limiter.take(principal)
    return principal


User = Annotated[Principal, Depends(current_user)]


async def require_operator(principal: User) -> Principal:
    """The caller, if an operator. Raises Forbidden (403) otherwise."""
    if not principal.is_operator:
        raise Forbidden(
            "this route is for operators: a token whose role is service_role, "
            "or [auth] operator_token"
        )
    return principal


Operator = Annotated[Principal, Depends(require_operator)]

Sig = Annotated[str | None, Query(description="signed media URL token (from the API's *_url)")]


async def media_caller(request: Request, sig: Sig = None) -> Principal | None:
    """None when ``sig`` signs this path; else the authenticated caller (see module doc)."""
    gate = gate_of(request)
    if gate.auth.enabled and gate.signer.verify(request.url.path, sig):
        return None
    return await current_user(request)


MediaCaller = Annotated[Principal | None, Depends(media_caller)]
