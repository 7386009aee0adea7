"""Errors the API turns into JSON ``{"error": ..., "detail": ..., "field": ...}`` responses."""

from __future__ import annotations


class ApiError(Exception):
    """An error a client can act on.

    Attributes:
        status: HTTP status code (4xx for the client's fault, 5xx for ours).
        error: short machine-readable code, e.g. "invalid_image", "not_found".
        detail: one sentence naming the rule that was broken and how to fix the request.
        field: the request field at fault (e.g. "image_base64", "pose"), or None.
        headers: extra response headers (``WWW-Authenticate`` on 401, ``Retry-After`` on 429).
    """

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.field = field
        self.headers = headers or {}

    def to_json(self) -> dict[str, object]:
        """The response body: {"error", "detail", "field"}."""
        return {"error": self.error, "detail": self.detail, "field": self.field}


class InvalidInput(ApiError):
    """422: the request's content breaks a rule (bad pose, bad image, bad action...)."""

    def __init__(self, error: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(422, error, detail, field=field)


class TooLarge(ApiError):
    """413: the request's payload exceeds a configured size (bytes or pixels)."""

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(413, "too_large", detail, field=field)


class NotFound(ApiError):
    """404: an id names nothing (or nothing the caller may see)."""

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(404, "not_found", detail, field=field)


class Conflict(ApiError):
    """409: the request is valid but the state does not allow it yet (e.g. parent not ready)."""

    def __init__(self, error: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(409, error, detail, field=field)


class DatabaseUnavailable(ApiError):
    """503: the database cannot be reached right now; retry after ``retry_after_s`` seconds.

    The app adds a ``Retry-After`` header (RFC 9110 10.2.3, delay-seconds) from the attribute.
    """

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            503,
            "database_unavailable",
            "the database is unavailable (it is being restarted or reconnected); "
            f"retry in {retry_after_s} s",
        )
        self.retry_after_s = retry_after_s


class SchedulerUnavailable(ApiError):
    """503: no scheduler holds the leader lock (a failover is under way, issue 16); an API
    replica cannot accept a request that needs a GPU. Retry after ``retry_after_s`` seconds."""

    def __init__(self, retry_after_s: int, detail: str | None = None) -> None:
        super().__init__(
            503,
            "scheduler_unavailable",
            detail
            or "no scheduler is running right now (one is being elected); "
            f"retry in {retry_after_s} s",
            headers={"retry-after": str(retry_after_s)},
        )
        self.retry_after_s = retry_after_s
