"""Supabase Storage as the blob store: buckets ``originals``, ``videos``, ``frames``, ``audio``.

Production counterpart of ``LocalBlobStore`` (DESIGN.md "Real parts and their embedded
defaults"). It talks to the Storage REST API through supabase-py's async client (supabase 2.34,
storage3): ``(await acreate_client(url, key)).storage.from_(bucket)`` with ``upload(path, bytes,
{"content-type": ..., "upsert": "true"})``, ``download``, ``remove`` and ``create_signed_url``
(DESIGN.md "Facts checked on this machine").

Errors never leak as library exceptions: a missing object is ``BlobNotFound`` (what the
BlobStore protocol promises), anything else (HTTP 5xx, refused connection, timeout, bad key) is
``StorageUnavailable``, an ``ApiError`` the API answers with 503. Messages name the bucket and
key, never the service-role key.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
from storage3.exceptions import StorageApiError
from storage3.types import FileOptions
from storage3.utils import StorageException
from supabase import AsyncClient, AsyncClientOptions, acreate_client

from orchestrator.errors import ApiError
from orchestrator.storage import BUCKETS, BlobNotFound, Bucket, check_key

ENV_URL = "SUPABASE_URL"
ENV_KEY = "SUPABASE_SERVICE_ROLE_KEY"

DEFAULT_TIMEOUT_S = 30.0
"""Per-request HTTP timeout, seconds (a 480p chunk MP4 is a few MB; uploads finish well within)."""
HEALTH_TTL_S = 30.0
"""``health()`` probes the bucket list at most once per this many seconds."""


class StorageUnavailable(ApiError):
    """503: Supabase Storage failed or could not be reached; the request may be retried."""

    def __init__(self, detail: str) -> None:
        super().__init__(503, "storage_unavailable", detail)


class SupabaseConfigError(RuntimeError):
    """Supabase Storage is selected but its URL or key is missing; the message names which."""


def check_config(url: str | None = None, key: str | None = None) -> tuple[str, str]:
    """The (url, service-role key) to use, from the arguments or the environment.

    Called at startup so a half-configured deployment fails at once with one clear message.

    Raises:
        SupabaseConfigError: SUPABASE_URL and/or SUPABASE_SERVICE_ROLE_KEY are missing, or the URL
            is not http(s).
    """
    url = url or os.environ.get(ENV_URL) or None
    key = key or os.environ.get(ENV_KEY) or None
    missing = [name for name, value in ((ENV_URL, url), (ENV_KEY, key)) if not value]
    if missing:
        raise SupabaseConfigError(
            f"Supabase Storage is selected but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set: use the project URL "
            "(https://<ref>.supabase.co) and the service-role key from the Supabase dashboard, "
            "Project Settings -> API"
        )
    assert url is not None and key is not None
    if not url.startswith(("http://", "https://")):
        raise SupabaseConfigError(f"{ENV_URL} must start with http:// or https:// (got {url!r})")
    return url.rstrip("/"), key


class SupabaseBlobStore:
    """BlobStore on Supabase Storage. Buckets must exist (``ensure_buckets`` creates them).

    The async client is created lazily on first use (``acreate_client`` is a coroutine), with our
    own httpx client so the timeout is ours and ``close()`` releases the connections.
    """

    name = "supabase"

    def __init__(
        self, url: str, service_role_key: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.url = url.rstrip("/")
        self._key = service_role_key
        self.timeout_s = timeout_s
        self._client: AsyncClient | None = None
        self._http: httpx.AsyncClient | None = None
        self._lock = asyncio.Lock()
        self._last_error: str | None = None
        self._health: tuple[float, dict[str, object]] | None = None

    @classmethod
    def from_env(cls, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> SupabaseBlobStore:
        """A store configured from SUPABASE_URL / SUPABASE_SERVICE_ROLE_KEY.

        Raises:
            SupabaseConfigError: as ``check_config``.
        """
        url, key = check_config()
        return cls(url, key, timeout_s=timeout_s)

    async def _supabase(self) -> AsyncClient:
        async with self._lock:
            if self._client is None:
                http = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=True)
                try:
                    options = AsyncClientOptions(httpx_client=http)
                    self._client = await acreate_client(self.url, self._key, options)
                except Exception as exc:  # e.g. SupabaseException("Invalid URL")
                    await http.aclose()
                    raise self._failure("client setup", "*", "", exc) from exc
                self._http = http
            return self._client

    async def put(self, bucket: Bucket, key: str, data: bytes, content_type: str) -> None:
        """Upload ``data`` (bytes) under ``key``, replacing any previous blob (``x-upsert``).

        Raises:
            ValueError: unknown bucket or malformed key.
            StorageUnavailable: Supabase refused or could not be reached.
        """
        check_key(bucket, key)
        client = await self._supabase()
        options: FileOptions = {"content-type": content_type, "upsert": "true"}
        try:
            await client.storage.from_(bucket).upload(key, data, options)
        except Exception as exc:
            raise self._failure("upload", bucket, key, exc) from exc
        self._succeeded()

    async def get(self, bucket: Bucket, key: str) -> bytes:
        """The blob's bytes.

        Raises:
            BlobNotFound: no object under ``key``.
            StorageUnavailable: Supabase failed or could not be reached.
        """
        check_key(bucket, key)
        client = await self._supabase()
        try:
            data = await client.storage.from_(bucket).download(key)
        except Exception as exc:
            if _is_not_found(exc):
                raise BlobNotFound(f"{bucket}/{key}") from exc
            raise self._failure("download", bucket, key, exc) from exc
        self._succeeded()
        return data

    async def delete(self, bucket: Bucket, key: str) -> None:
        """Remove the blob if present (the Storage API's remove ignores absent keys).

        Raises:
            StorageUnavailable: Supabase failed or could not be reached.
        """
        check_key(bucket, key)
        client = await self._supabase()
        try:
            await client.storage.from_(bucket).remove([key])
        except Exception as exc:
            if _is_not_found(exc):
                return
            raise self._failure("remove", bucket, key, exc) from exc
        self._succeeded()

    def local_path(self, bucket: Bucket, key: str) -> Path | None:
        """Always None: blobs are remote; the API serves them through ``signed_url``."""
        return None

    async def signed_url(self, bucket: Bucket, key: str, expires_s: int) -> str:
        """A time-limited URL to download the blob (``video_url`` in production).

        ``expires_s`` is the URL's lifetime in seconds. Supabase signs the URL even when the
        object is missing on some versions; others answer 404, which becomes BlobNotFound.

        Raises:
            BlobNotFound: no object under ``key``.
            StorageUnavailable: Supabase failed or could not be reached.
        """
        check_key(bucket, key)
        if expires_s < 1:
            raise ValueError(f"expires_s must be at least 1 second (got {expires_s})")
        client = await self._supabase()
        try:
            signed = await client.storage.from_(bucket).create_signed_url(key, expires_s)
        except Exception as exc:
            if _is_not_found(exc):
                raise BlobNotFound(f"{bucket}/{key}") from exc
            raise self._failure("sign", bucket, key, exc) from exc
        url = signed.get("signedURL") or signed.get("signedUrl")
        if not url:
            raise self._failure("sign", bucket, key, ValueError("no signedURL in the answer"))
        self._succeeded()
        return url

    async def ensure_buckets(self) -> list[str]:
        """Create the missing private buckets; returns the names it created (deploy helper).

        Raises:
            StorageUnavailable: Supabase failed or could not be reached.
        """
        client = await self._supabase()
        try:
            existing = {b.id for b in await client.storage.list_buckets()}
            created: list[str] = [b for b in BUCKETS if b not in existing]
            for bucket in created:
                await client.storage.create_bucket(bucket, options={"public": False})
        except Exception as exc:
            raise self._failure("create buckets", "*", "", exc) from exc
        return created

    async def health(self) -> dict[str, object]:
        """ok when the four buckets exist; degraded (with the error) otherwise.

        Probes the bucket list at most every ``HEALTH_TTL_S`` seconds so a polled
        ``/api/health`` does not hammer Supabase. Never includes the key.
        """
        now = time.monotonic()
        if self._health is not None and now - self._health[0] < HEALTH_TTL_S:
            return self._report(self._health[1])
        try:
            client = await self._supabase()
            names = {b.id for b in await client.storage.list_buckets()}
        except Exception as exc:
            probe: dict[str, object] = {"status": "degraded", "error": _describe(exc)}
        else:
            missing = [b for b in BUCKETS if b not in names]
            probe = (
                {"status": "degraded", "error": f"missing buckets: {', '.join(missing)}"}
                if missing
                else {"status": "ok"}
            )
        self._health = (now, probe)
        return self._report(probe)

    def _report(self, probe: dict[str, object]) -> dict[str, object]:
        report: dict[str, object] = {"backend": "supabase", "url": self.url, **probe}
        if self._last_error and report["status"] == "ok":
            report["status"] = "degraded"
            report["error"] = self._last_error
        return report

    async def close(self) -> None:
        """Release the HTTP connections."""
        if self._http is not None:
            await self._http.aclose()
        self._client = None
        self._http = None

    def _succeeded(self) -> None:
        self._last_error = None
        if self._health is not None and self._health[1]["status"] != "ok":
            self._health = None  # probe again rather than keep reporting a past failure

    def _failure(self, op: str, bucket: str, key: str, exc: Exception) -> StorageUnavailable:
        where = f"{bucket}/{key}" if key else bucket
        message = f"Supabase Storage {op} of {where} failed: {_describe(exc)}"
        self._last_error = message
        self._health = None  # the next health() probes again instead of trusting a stale "ok"
        return StorageUnavailable(message)


def _is_not_found(exc: Exception) -> bool:
    # Storage answers a missing object with HTTP 404, or (older storage-api) HTTP 400 carrying
    # {"statusCode": "404", "error": "not_found"}; storage3 keeps the body's statusCode.
    if isinstance(exc, StorageApiError):
        return str(exc.status) == "404" or str(exc.code).lower() in {"not_found", "nosuchkey"}
    return False


def _describe(exc: Exception) -> str:
    """A short, key-free description of a storage failure."""
    if isinstance(exc, StorageApiError):
        return f"HTTP {exc.status} {exc.code}: {exc.message}"[:300]
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.TransportError):
        return f"cannot reach Supabase ({type(exc).__name__}: {exc})"[:300]
    if isinstance(exc, StorageException):
        return f"storage error: {exc}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]
