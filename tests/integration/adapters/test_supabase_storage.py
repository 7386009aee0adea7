"""SupabaseBlobStore through the real supabase client against a local Storage REST stand-in.

The stand-in keeps objects in memory and answers like storage-api: multipart uploads with
``x-upsert``, downloads, ``DELETE /object/{bucket}`` with ``prefixes``, signed URLs, the bucket
list, and error bodies ``{"statusCode", "error", "message"}`` (a missing object is HTTP 400 with
statusCode "404" on older servers, HTTP 404 on newer ones; both are exercised).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import secrets
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from orchestrator.storage import BUCKETS, BlobNotFound, check_key
from orchestrator.supabase_storage import (
    StorageUnavailable,
    SupabaseBlobStore,
    SupabaseConfigError,
    check_config,
)

KEY = "service-role-SECRET-0123456789"
MEMORY = str(uuid.uuid4())
VIDEO = f"{MEMORY}/{uuid.uuid4()}.mp4"


def _error(status: str, code: str, message: str, http: int = 400) -> JSONResponse:
    return JSONResponse({"statusCode": status, "error": code, "message": message}, http)


def storage_app(state: dict[str, Any]) -> FastAPI:
    """Storage REST under /storage/v1; ``state["fail"]`` makes every call answer HTTP 500."""
    app = FastAPI()
    objects: dict[tuple[str, str], tuple[bytes, str]] = state.setdefault("objects", {})
    buckets: list[str] = state.setdefault("buckets", list(BUCKETS))
    tokens: dict[str, tuple[str, str]] = {}

    @app.middleware("http")
    async def auth(request: Request, call_next: Any) -> Response:
        state.setdefault("requests", []).append(f"{request.method} {request.url.path}")
        if request.url.path.startswith("/storage/v1/object/sign/") and request.method == "GET":
            return await call_next(request)  # a signed URL carries its own token
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return _error("403", "Unauthorized", "invalid signature", 403)
        if state.get("fail"):
            return _error("500", "internal", "database unavailable", 500)
        return await call_next(request)

    @app.post("/storage/v1/object/sign/{bucket}/{path:path}")
    async def sign(bucket: str, path: str, request: Request) -> Response:
        body = await request.json()
        if (bucket, path) not in objects:
            return _error("404", "not_found", "Object not found", state.get("missing_http", 400))
        token = secrets.token_urlsafe(8)
        tokens[token] = (bucket, path)
        state["expires_in"] = body["expiresIn"]
        return JSONResponse({"signedURL": f"/object/sign/{bucket}/{path}?token={token}"})

    @app.get("/storage/v1/object/sign/{bucket}/{path:path}")
    async def signed_download(bucket: str, path: str, token: str) -> Response:
        if tokens.get(token) != (bucket, path):
            return _error("400", "InvalidJWT", "bad token")
        data, content_type = objects[(bucket, path)]
        return Response(data, media_type=content_type)

    @app.api_route("/storage/v1/object/{bucket}/{path:path}", methods=["POST", "PUT"])
    async def upload(bucket: str, path: str, request: Request) -> Response:
        if bucket not in buckets:
            return _error("404", "Bucket not found", "Bucket not found")
        if (bucket, path) in objects and request.headers.get("x-upsert") != "true":
            return _error("409", "Duplicate", "The resource already exists")
        head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            head + await request.body()
        )
        part = next(
            p
            for p in message.iter_parts()
            if p.get_param("name", header="content-disposition") == "file"
        )
        objects[(bucket, path)] = (part.get_payload(decode=True), part.get_content_type())
        return JSONResponse({"Key": f"{bucket}/{path}", "Id": str(uuid.uuid4())})

    @app.get("/storage/v1/object/{bucket}/{path:path}")
    async def download(bucket: str, path: str) -> Response:
        if (bucket, path) not in objects:
            return _error("404", "not_found", "Object not found", state.get("missing_http", 400))
        data, content_type = objects[(bucket, path)]
        return Response(data, media_type=content_type)

    @app.delete("/storage/v1/object/{bucket}")
    async def remove(bucket: str, request: Request) -> Response:
        prefixes = (await request.json())["prefixes"]
        gone = [{"name": p} for p in prefixes if objects.pop((bucket, p), None) is not None]
        return JSONResponse(gone)

    @app.get("/storage/v1/bucket")
    async def list_buckets() -> Response:
        now = "2026-01-01T00:00:00Z"
        return JSONResponse([
            {"id": b, "name": b, "owner": "", "public": False, "created_at": now,
             "updated_at": now, "file_size_limit": None, "allowed_mime_types": None}
            for b in buckets
        ])  # fmt: skip

    @app.post("/storage/v1/bucket")
    async def create_bucket(request: Request) -> Response:
        body = await request.json()
        buckets.append(body["id"])
        return JSONResponse({"name": body["id"]})

    return app


async def test_put_get_sign_delete_over_http(serve: Any) -> None:
    state: dict[str, Any] = {}
    store = SupabaseBlobStore(serve(storage_app(state)), KEY, timeout_s=10)
    check_key("videos", VIDEO)
    await store.put("videos", VIDEO, b"first", "video/mp4")
    await store.put("videos", VIDEO, b"\x00mp4 bytes", "video/mp4")  # upsert replaces
    assert await store.get("videos", VIDEO) == b"\x00mp4 bytes"
    assert state["objects"][("videos", VIDEO)][1] == "video/mp4"
    assert store.local_path("videos", VIDEO) is None

    url = await store.signed_url("videos", VIDEO, 600)
    assert url.startswith(f"{store.url}/storage/v1/object/sign/videos/{VIDEO}?token=")
    assert state["expires_in"] == "600"
    async with httpx.AsyncClient() as client:  # the URL works without the service key
        fetched = await client.get(url)
    assert fetched.content == b"\x00mp4 bytes"
    assert fetched.headers["content-type"] == "video/mp4"

    await store.delete("videos", VIDEO)
    await store.delete("videos", VIDEO)  # absent: no error
    with pytest.raises(BlobNotFound):
        await store.get("videos", VIDEO)
    assert (await store.health())["status"] == "ok"
    await store.close()


@pytest.mark.parametrize("missing_http", [400, 404])
async def test_missing_object_is_blob_not_found(serve: Any, missing_http: int) -> None:
    store = SupabaseBlobStore(serve(storage_app({"missing_http": missing_http})), KEY)
    with pytest.raises(BlobNotFound, match=f"frames/{MEMORY}/x.png"):
        await store.get("frames", f"{MEMORY}/x.png")
    with pytest.raises(BlobNotFound):
        await store.signed_url("frames", f"{MEMORY}/x.png", 60)
    await store.close()


async def test_server_error_is_storage_unavailable_503(serve: Any) -> None:
    state: dict[str, Any] = {}
    store = SupabaseBlobStore(serve(storage_app(state)), KEY)
    assert (await store.health())["status"] == "ok"
    state["fail"] = True
    with pytest.raises(StorageUnavailable) as info:
        await store.put("audio", f"{MEMORY}/soundscape.mp3", b"id3", "audio/mpeg")
    assert info.value.status == 503 and info.value.error == "storage_unavailable"
    assert f"audio/{MEMORY}/soundscape.mp3" in info.value.detail
    assert "HTTP 500" in info.value.detail and "database unavailable" in info.value.detail
    with pytest.raises(StorageUnavailable):
        await store.get("audio", f"{MEMORY}/soundscape.mp3")
    health = await store.health()
    assert health["status"] == "degraded" and "HTTP 500" in str(health["error"])
    assert KEY not in json.dumps(health) and KEY not in info.value.detail
    state["fail"] = False
    await store.put("audio", f"{MEMORY}/soundscape.mp3", b"id3", "audio/mpeg")
    assert (await store.health())["status"] == "ok"  # recovered
    await store.close()


async def test_wrong_key_and_unreachable(serve: Any, closed_port_url: str) -> None:
    wrong = SupabaseBlobStore(serve(storage_app({})), "not-the-key")
    with pytest.raises(StorageUnavailable, match="HTTP 403"):
        await wrong.get("videos", VIDEO)
    await wrong.close()
    down = SupabaseBlobStore(closed_port_url, KEY, timeout_s=5)
    with pytest.raises(StorageUnavailable, match="cannot reach Supabase"):
        await down.put("videos", VIDEO, b"x", "video/mp4")
    assert (await down.health())["status"] == "degraded"
    await down.close()


async def test_missing_buckets_are_reported_and_created(serve: Any) -> None:
    state: dict[str, Any] = {"buckets": ["originals"]}
    store = SupabaseBlobStore(serve(storage_app(state)), KEY)
    health = await store.health()
    assert health["status"] == "degraded"
    assert health["error"] == "missing buckets: videos, frames, audio"
    assert await store.ensure_buckets() == ["videos", "frames", "audio"]
    assert state["buckets"] == list(BUCKETS)
    await store.close()


def test_check_config_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPABASE_URL", raising=False)
    monkeypatch.delenv("SUPABASE_SERVICE_ROLE_KEY", raising=False)
    with pytest.raises(SupabaseConfigError, match="SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY"):
        check_config()
    monkeypatch.setenv("SUPABASE_URL", "https://abc.supabase.co/")
    with pytest.raises(SupabaseConfigError, match="SUPABASE_SERVICE_ROLE_KEY is not set"):
        check_config()
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", KEY)
    assert check_config() == ("https://abc.supabase.co", KEY)
    with pytest.raises(SupabaseConfigError, match="http"):
        check_config("abc.supabase.co", KEY)


async def test_bad_keys_never_reach_the_server(serve: Any) -> None:
    state: dict[str, Any] = {}
    store = SupabaseBlobStore(serve(storage_app(state)), KEY)
    with pytest.raises(ValueError, match="malformed blob key"):
        await store.put("videos", "../etc/passwd", b"x", "text/plain")
    assert "requests" not in state
    await store.close()
