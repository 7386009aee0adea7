"""Users and ownership through HTTP: a service in ``[auth] mode = "supabase"`` with a real JWKS
on 127.0.0.1 (RS256 and ES256 keys generated here) and the HS256 legacy secret.

Every refusal is checked with its status code: 401 for tokens (none, expired, not yet valid,
wrong audience / issuer / signature, unknown kid, alg none), 404 for another user's memory,
chunk, session and journey (the same answer as an unknown id), 403 for operator routes, 429
for the request rate and the daily GPU cap.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from orchestrator.service import Service
from tests.authutil import (
    HS_SECRET,
    ISSUER,
    JwksServer,
    claims,
    ec_key,
    jwks_server,
    rsa_key,
    sign,
    sign_hs,
    unsigned,
)
from tests.conftest import photo_jpeg
from tests.e2e.conftest import client_for

pytestmark = pytest.mark.e2e

RSA = rsa_key("rsa-1")
EC = ec_key("ec-1")
OPERATOR_TOKEN = "prometheus-scrape-token-0123456789"
ALICE, BOB = uuid.uuid4(), uuid.uuid4()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def alice() -> dict[str, str]:
    return bearer(sign(RSA, claims(ALICE)))


def bob() -> dict[str, str]:
    return bearer(sign(EC, claims(BOB)))


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with jwks_server(RSA, EC) as server:
        yield server


def auth_section(jwks: JwksServer, **over: Any) -> dict[str, Any]:
    return {
        "mode": "supabase",
        "jwks_url": jwks.url,
        "jwt_secret": HS_SECRET,
        "issuer": ISSUER,
        "operator_token": OPERATOR_TOKEN,
        "jwks_min_refresh_s": 0.0,
        **over,
    }


@pytest.fixture
async def client(
    service_factory: Callable[..., Any], jwks: JwksServer
) -> AsyncIterator[httpx.AsyncClient]:
    svc = await service_factory(auth=auth_section(jwks))
    async with client_for(svc) as c:
        # Bodyless POST/PUT must say JSON too (the cross-site guard of issue 12).
        c.headers["content-type"] = "application/json"
        c.service = svc  # type: ignore[attr-defined]
        yield c


async def create(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    image = base64.b64encode(photo_jpeg()).decode()
    r = await client.post(
        "/api/memories?inline=false", json={"image_base64": image}, headers=headers
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def same_as_unknown(r: httpx.Response, unknown: httpx.Response, real: str, fake: str) -> None:
    """``r`` (someone else's id) answers exactly as ``unknown`` (a random id) does."""
    assert r.status_code == unknown.status_code == 404, (r.text, unknown.text)
    assert r.json() == {**unknown.json(), "detail": unknown.json()["detail"].replace(fake, real)}


async def test_tokens_each_with_its_status(client: httpx.AsyncClient, jwks: JwksServer) -> None:
    now = int(time.time())
    ok = {
        "RS256": sign(RSA, claims(ALICE)),
        "ES256": sign(EC, claims(ALICE)),
        "HS256": sign_hs(claims(ALICE)),
    }
    for name, token in ok.items():
        r = await client.get("/api/me", headers=bearer(token))
        assert r.status_code == 200, (name, r.text)
        assert r.json()["user_id"] == str(ALICE) and r.json()["is_operator"] is False
    bad = {
        "no token": {},
        "expired": bearer(sign(RSA, claims(ALICE, iat=now - 7200, exp=now - 60))),
        "not yet valid": bearer(sign(RSA, claims(ALICE, nbf=now + 300))),
        "wrong audience": bearer(sign(RSA, claims(ALICE, aud="anon"))),
        "wrong issuer": bearer(sign(RSA, claims(ALICE, iss="https://other.supabase.co/auth/v1"))),
        "wrong signature": bearer(sign(rsa_key("rsa-1"), claims(ALICE))),
        "wrong HS256 secret": bearer(sign_hs(claims(ALICE), "x" * 40)),
        "unknown kid": bearer(sign(rsa_key("rotated-away"), claims(ALICE))),
        "alg none": bearer(unsigned(claims(ALICE), kid="rsa-1")),
        "not bearer": {"authorization": "Token abc"},
    }
    for name, headers in bad.items():
        for path in ["/api/me", f"/api/memories/{uuid.uuid4()}"]:
            r = await client.get(path, headers=headers)
            assert r.status_code == 401, (name, r.text)
            body = r.json()
            assert body["field"] == "authorization" and body["detail"], (name, body)
            assert r.headers["www-authenticate"].startswith("Bearer"), name
    health = await client.get("/api/health")  # public, says how callers are checked
    assert health.status_code == 200
    assert health.json()["auth"]["mode"] == "supabase" and health.json()["auth"]["jwks"]


async def test_another_users_ids_answer_like_unknown_ones(client: httpx.AsyncClient) -> None:
    mine = await create(client, alice())
    memory, session = mine["memory_id"], mine["session_id"]
    chunk = mine["chunk"]["chunk_id"]
    fake = str(uuid.uuid4())
    step = {"parent_chunk_id": chunk, "action": "w"}
    r = await client.post(f"/api/memories/{memory}/chunks?inline=false", json=step, headers=alice())
    assert r.status_code == 200, r.text
    # Bob, signed in, with every id of Alice's: the answers of ids that do not exist.
    pairs = [
        ("GET", "/api/memories/{}", memory, None),
        ("GET", "/api/memories/{}/image", memory, None),
        ("GET", "/api/memories/{}/audio", memory, None),
        ("GET", "/api/memories/{}/events", memory, None),
        ("GET", "/api/memories/{}/events-url", memory, None),
        ("POST", "/api/memories/{}/sessions", memory, None),
        ("PUT", "/api/memories/{}/share", memory, {"shared": True}),
        ("POST", "/api/memories/{}/chunks", memory, step),
        ("GET", "/api/chunks/{}/video", chunk, None),
        ("GET", "/api/chunks/{}/frame", chunk, None),
        ("GET", "/api/sessions/{}/journey.mp4", session, None),
    ]
    for method, template, real, body in pairs:
        theirs = await client.request(method, template.format(real), json=body, headers=bob())
        unknown = await client.request(method, template.format(fake), json=body, headers=bob())
        same_as_unknown(theirs, unknown, real, fake)
    # Bob's own memory, walked with Alice's session id: 404 as well.
    his = await create(client, bob())
    step = {"parent_chunk_id": his["chunk"]["chunk_id"], "action": "w", "session_id": session}
    r = await client.post(f"/api/memories/{his['memory_id']}/chunks", json=step, headers=bob())
    assert r.status_code == 404 and r.json()["field"] == "session_id"
    # Alice still reads all of hers.
    assert (await client.get(f"/api/memories/{memory}", headers=alice())).status_code == 200
    journey = await client.get(f"/api/sessions/{session}/journey.mp4", headers=alice())
    assert journey.status_code == 200 and journey.content[4:8] == b"ftyp"


async def test_signed_media_urls(client: httpx.AsyncClient) -> None:
    mine = await create(client, alice())
    url = mine["chunk"]["video_url"]
    assert "?sig=" in url and "?sig=" in mine["original_image_url"]
    r = await client.get(url)  # what a <video src> does: no Authorization header
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    ranged = await client.get(url, headers={"range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(ranged.content) == 100
    assert (await client.get(mine["original_image_url"])).status_code == 200
    path, _, sig = url.partition("?sig=")
    assert (await client.get(f"{path}?sig={sig[:-3]}abc")).status_code == 401  # tampered
    assert (await client.get(path)).status_code == 401  # no signature, no header
    other = mine["original_image_url"].replace("/image", "/audio")
    assert (await client.get(other)).status_code == 401  # a signature opens one path only
    events = await client.get(f"/api/memories/{mine['memory_id']}/events-url", headers=alice())
    assert events.status_code == 200 and "?sig=" in events.json()["url"]


async def test_shared_memory_read_only_with_own_sessions(client: httpx.AsyncClient) -> None:
    mine = await create(client, alice())
    memory, root = mine["memory_id"], mine["chunk"]["chunk_id"]
    step = {"parent_chunk_id": root, "action": "w"}
    first = await client.post(f"/api/memories/{memory}/chunks", json=step, headers=alice())
    assert first.status_code == 200 and first.json()["chunk"]["outcome"] == "miss"
    r = await client.put(f"/api/memories/{memory}/share", json={"shared": True}, headers=alice())
    assert r.status_code == 200 and r.json() == {"memory_id": memory, "shared": True}

    seen = await client.get(f"/api/memories/{memory}", headers=bob())
    assert seen.status_code == 200 and len(seen.json()["chunks"]) >= 2
    r = await client.post(f"/api/memories/{memory}/chunks", json=step, headers=bob())
    assert r.status_code == 409 and r.json()["error"] == "session_required"
    opened = await client.post(f"/api/memories/{memory}/sessions", headers=bob())
    assert opened.status_code == 201
    bobs = opened.json()["session_id"]
    walk = {**step, "session_id": bobs}
    r = await client.post(f"/api/memories/{memory}/chunks", json=walk, headers=bob())
    assert r.status_code == 200, r.text
    assert r.json()["chunk"]["outcome"] == "hit"  # Alice's walk fed the shared tree
    assert r.json()["session_id"] == bobs
    # Read-only: Bob cannot unshare, walk in Alice's session, or read her journey.
    r = await client.put(f"/api/memories/{memory}/share", json={"shared": False}, headers=bob())
    assert r.status_code == 404
    r = await client.post(
        f"/api/memories/{memory}/chunks",
        json={**step, "session_id": mine["session_id"]},
        headers=bob(),
    )
    assert r.status_code == 404 and r.json()["field"] == "session_id"
    journey = f"/api/sessions/{mine['session_id']}/journey.mp4"
    assert (await client.get(journey, headers=bob())).status_code == 404
    assert (await client.get(f"/api/sessions/{bobs}/journey.mp4", headers=bob())).status_code == 200
    assert (
        await client.get(f"/api/sessions/{bobs}/journey.mp4", headers=alice())
    ).status_code == 404
    # Unshared again: Bob's view is gone, as if the memory never existed.
    r = await client.put(f"/api/memories/{memory}/share", json={"shared": False}, headers=alice())
    assert r.status_code == 200
    assert (await client.get(f"/api/memories/{memory}", headers=bob())).status_code == 404


async def test_operator_only_routes(client: httpx.AsyncClient) -> None:
    routes = [
        ("GET", "/api/admin/config"),
        ("POST", "/api/admin/config/reload"),
        ("GET", "/api/analytics/hit-rates"),
        ("GET", "/api/analytics/waits"),
        ("GET", "/api/analytics/waste"),
        ("GET", "/metrics"),
    ]
    service_role = bearer(sign(RSA, claims(None, role="service_role")))
    for method, path in routes:
        assert (await client.request(method, path)).status_code == 401, path
        r = await client.request(method, path, headers=alice())
        assert r.status_code == 403 and r.json()["error"] == "forbidden", path
        if method == "GET":
            assert (await client.get(path, headers=service_role)).status_code == 200, path
            assert (await client.get(path, headers=bearer(OPERATOR_TOKEN))).status_code == 200
    config = (await client.get("/api/admin/config", headers=bearer(OPERATOR_TOKEN))).json()
    assert config["auth"]["jwt_secret"] == "**********"
    assert config["auth"]["operator_token"] == "**********"
    assert config["auth"]["requests_per_minute"] == 120
    assert config["auth"]["gpu_usage"]["gpu_seconds_per_day"] == 3600.0
    assert HS_SECRET not in str(config) and OPERATOR_TOKEN not in str(config)
    # The operator sees every memory (as the database's service role does).
    mine = await create(client, alice())
    path = f"/api/memories/{mine['memory_id']}"
    assert (await client.get(path, headers=bearer(OPERATOR_TOKEN))).status_code == 200


async def test_rate_limit_is_429_with_retry_after(
    service_factory: Callable[..., Any], jwks: JwksServer
) -> None:
    svc = await service_factory(auth=auth_section(jwks, requests_per_minute=3))
    async with client_for(svc) as client:
        for _ in range(3):
            assert (await client.get("/api/me", headers=alice())).status_code == 200
        r = await client.get("/api/me", headers=alice())
        assert r.status_code == 429 and r.json()["error"] == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 20  # 3 per minute: one every 20 s
        assert (await client.get("/api/me", headers=bob())).status_code == 200  # per user
        assert (await client.get("/metrics", headers=bearer(OPERATOR_TOKEN))).status_code == 200


async def test_daily_gpu_cap_stops_speculation_then_demand(
    service_factory: Callable[..., Any], jwks: JwksServer
) -> None:
    svc: Service = await service_factory(
        auth=auth_section(jwks, gpu_seconds_per_day=0.001, usage_refresh_s=0.01)
    )
    async with client_for(svc) as client:
        mine = await create(client, alice())  # the root chunk is charged to Alice
        assert svc.gate.usage.allow_speculation_for_session(mine["session_id"])
        used = 0.0
        for _ in range(100):  # the usage is read behind, at most every usage_refresh_s
            me = (await client.get("/api/me", headers=alice())).json()
            used = me["limits"]["gpu_seconds_used_today"]
            if used > 0:
                break
            await asyncio.sleep(0.05)
        assert used > 0 and me["limits"]["speculation"] is False
        assert not svc.gate.usage.allow_speculation_for_session(mine["session_id"])
        step = {"parent_chunk_id": mine["chunk"]["chunk_id"], "action": "w"}
        r = await client.post(
            f"/api/memories/{mine['memory_id']}/chunks", json=step, headers=alice()
        )
        assert r.status_code == 429 and r.json()["error"] == "gpu_quota_exceeded"
        assert 1 <= int(r.headers["retry-after"]) <= 86400
        # Bob has spent nothing: he may still create and walk.
        assert (await create(client, bob()))["chunk"]["outcome"] == "miss"


async def test_mode_none_is_one_local_operator(service_factory: Callable[..., Any]) -> None:
    svc: Service = await service_factory()  # the embedded default: [auth] mode = "none"
    async with client_for(svc) as client:
        health = (await client.get("/api/health")).json()
        local = str(svc.settings.auth.local_user_id)
        assert health["auth"] == {"mode": "none", "user": "local", "user_id": local}
        me = (await client.get("/api/me", headers=bearer("ignored"))).json()
        assert me["user_id"] == local and me["is_operator"] is True
        mine = await create(client, {})
        assert "?sig=" not in mine["chunk"]["video_url"]  # URLs as before
        assert (await client.get("/api/admin/config")).status_code == 200
        async with svc.db.pool.acquire() as conn:
            owner = await conn.fetchval(
                "SELECT user_id FROM memories WHERE id = $1", uuid.UUID(mine["memory_id"])
            )
        assert str(owner) == local  # rows record the local user


async def test_cors_allows_only_the_configured_origins(
    service_factory: Callable[..., Any], jwks: JwksServer
) -> None:
    app_origin = "https://app.example.com"
    svc = await service_factory(auth=auth_section(jwks, cors_origins=[app_origin]))
    async with client_for(svc) as client:
        preflight = {
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization,content-type",
        }
        r = await client.options("/api/memories", headers={"origin": app_origin, **preflight})
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == app_origin
        assert r.headers["access-control-allow-credentials"] == "true"
        assert "authorization" in r.headers["access-control-allow-headers"]
        r = await client.get("/api/me", headers={"origin": app_origin, **alice()})
        assert r.headers["access-control-allow-origin"] == app_origin
        evil = {"origin": "https://evil.example"}
        r = await client.options("/api/memories", headers={**evil, **preflight})
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
        r = await client.get("/api/me", headers={**evil, **alice()})
        assert "access-control-allow-origin" not in r.headers
