"""orchestrator.auth with real keys: a JWKS served on 127.0.0.1 (RS256, ES256) and HS256."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.auth import Authenticator, AuthUnavailable, Principal, Unauthorized
from orchestrator.config import AuthConfig
from tests.authutil import (
    AUDIENCE,
    HS_SECRET,
    ISSUER,
    JwksServer,
    SigningKey,
    claims,
    ec_key,
    jwks_server,
    rsa_key,
    sign,
    sign_hs,
    unsigned,
)

USER = uuid.uuid4()
RSA = rsa_key("rsa-1")
EC = ec_key("ec-1")


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with jwks_server(RSA, EC) as server:
        yield server


def make(jwks: JwksServer | None, **over: Any) -> Authenticator:
    values: dict[str, Any] = {
        "mode": "supabase",
        "issuer": ISSUER,
        "jwks_url": jwks.url if jwks else None,
        "jwt_secret": HS_SECRET,
        "operator_token": "scrape-me-0123456789",
        "jwks_min_refresh_s": 0.0,
    }
    values.update(over)
    return Authenticator(AuthConfig(**values))


async def refused(auth: Authenticator, header: str | None) -> Unauthorized:
    with pytest.raises(Unauthorized) as info:
        await auth.principal(header)
    assert info.value.status == 401
    assert info.value.field == "authorization"
    assert info.value.headers["www-authenticate"].startswith("Bearer")
    return info.value


@pytest.mark.parametrize("key", [RSA, EC], ids=["RS256", "ES256"])
async def test_jwks_tokens_give_the_user(jwks: JwksServer, key: SigningKey) -> None:
    auth = make(jwks)
    principal = await auth.principal(f"Bearer {sign(key, claims(USER))}")
    assert principal == Principal(USER, is_operator=False)
    # The set is cached: a second token does not fetch it again.
    await auth.principal(f"Bearer {sign(key, claims(USER))}")
    assert jwks.hits == 1


async def test_hs256_legacy_secret() -> None:
    auth = make(None)
    assert (await auth.principal(f"Bearer {sign_hs(claims(USER))}")).user_id == USER
    err = await refused(auth, f"Bearer {sign_hs(claims(USER), 'another-secret-of-32-chars!!!!!!')}")
    assert "signature" in err.detail


async def test_refusals_name_the_rule(jwks: JwksServer) -> None:
    auth = make(jwks)
    now = int(time.time())
    cases = {
        "this service needs": None,
        "must be 'Bearer": "Basic dXNlcjpwdw==",
        "not a JWT": "Bearer not-a-jwt",
        "expired": f"Bearer {sign(RSA, claims(USER, iat=now - 7200, exp=now - 120))}",
        "not valid yet": f"Bearer {sign(RSA, claims(USER, nbf=now + 600))}",
        "aud": f"Bearer {sign(RSA, claims(USER, aud='someone-else'))}",
        "iss": f"Bearer {sign(RSA, claims(USER, iss='https://evil.example/auth/v1'))}",
        "no 'exp'": f"Bearer {sign(RSA, claims(USER, exp=None))}",
        "no 'sub'": f"Bearer {sign(RSA, claims(None))}",
        "not a UUID": f"Bearer {sign(RSA, claims(None, sub='user-7'))}",
        "alg 'none'": f"Bearer {unsigned(claims(USER), kid=RSA.kid)}",
        "signature": f"Bearer {sign(rsa_key('rsa-1'), claims(USER))}",  # same kid, other key
        "RS256 key, not ES256": f"Bearer {sign(EC, claims(USER), kid=RSA.kid)}",
    }
    for rule, header in cases.items():
        err = await refused(auth, header)
        assert rule in err.detail, (rule, err.detail)
    assert (await refused(auth, None)).error == "unauthenticated"


async def test_leeway_tolerates_small_skew(jwks: JwksServer) -> None:
    auth = make(jwks, leeway_s=30)
    now = int(time.time())
    assert await auth.principal(f"Bearer {sign(RSA, claims(USER, exp=now - 20))}")
    assert await auth.principal(f"Bearer {sign(RSA, claims(USER, nbf=now + 20))}")
    with pytest.raises(ValidationError):
        AuthConfig(mode="supabase", issuer=ISSUER, jwt_secret=HS_SECRET, leeway_s=31)


async def test_unknown_kid_refreshes_once_then_refuses(jwks: JwksServer) -> None:
    auth = make(jwks, jwks_min_refresh_s=60)
    await auth.principal(f"Bearer {sign(RSA, claims(USER))}")
    assert jwks.hits == 1
    rotated = ec_key("ec-2")
    jwks.keys.append(rotated.jwk)  # Supabase publishes a new key before signing with it
    # min_refresh_s (60 s) has not passed since the first read: no fetch for an unknown kid.
    err = await refused(auth, f"Bearer {sign(rotated, claims(USER))}")
    assert "kid 'ec-2'" in err.detail and jwks.hits == 1

    auth = make(jwks)  # min_refresh_s 0: an unknown kid re-reads the set
    await auth.principal(f"Bearer {sign(RSA, claims(USER))}")
    assert jwks.hits == 2
    newer = rsa_key("rsa-2")
    jwks.keys.append(newer.jwk)
    assert (await auth.principal(f"Bearer {sign(newer, claims(USER))}")).user_id == USER
    assert jwks.hits == 3
    err = await refused(auth, f"Bearer {sign(rsa_key('ghost'), claims(USER))}")
    assert "kid 'ghost'" in err.detail and jwks.hits == 4


async def test_operators() -> None:
    auth = make(None)
    assert await auth.principal("Bearer scrape-me-0123456789") == Principal(None, True)
    service = sign_hs(claims(None, role="service_role"))
    assert await auth.principal(f"Bearer {service}") == Principal(None, True)
    assert not (await auth.principal(f"Bearer {sign_hs(claims(USER))}")).is_operator


async def test_mode_none_is_the_local_operator() -> None:
    auth = Authenticator(AuthConfig())
    p = await auth.principal(None)
    assert p.is_operator and p.user_id == AuthConfig().local_user_id
    assert await auth.principal("Bearer garbage") == p  # no header is read
    assert auth.describe()["mode"] == "none"


async def test_unreachable_jwks_is_503() -> None:
    with jwks_server(RSA) as server:
        url = server.url
    auth = make(None, jwks_url=url, jwks_timeout_s=2)
    with pytest.raises(AuthUnavailable) as info:
        await auth.principal(f"Bearer {sign(RSA, claims(USER))}")
    assert info.value.status == 503


def test_config_rules() -> None:
    with pytest.raises(ValidationError, match="jwks_url or jwt_secret"):
        AuthConfig(mode="supabase", issuer=ISSUER)
    with pytest.raises(ValidationError, match="needs issuer"):
        AuthConfig(mode="supabase", jwt_secret=HS_SECRET)
    with pytest.raises(ValidationError, match="no wildcard"):
        AuthConfig(cors_origins=["*"])
    assert AuthConfig().audience == AUDIENCE


async def test_a_verified_token_is_remembered_until_its_exp() -> None:
    wall = [time.time()]
    auth = Authenticator(make(None).config, wall_clock=lambda: wall[0])
    calls = []
    verify = auth.verify

    async def counting(token: str) -> dict[str, Any]:
        calls.append(token)
        return await verify(token)

    auth.verify = counting  # type: ignore[method-assign]
    token = f"Bearer {sign_hs(claims(USER, exp=int(wall[0]) + 600))}"
    for _ in range(3):
        assert (await auth.principal(token)).user_id == USER
    assert len(calls) == 1  # verified once, then answered from memory
    wall[0] += 61  # after VERIFIED_CACHE_S it is verified again
    await auth.principal(token)
    assert len(calls) == 2
    wall[0] += 600  # past its exp: never reused (and refused by PyJWT's own clock later)
    await auth.principal(token)
    assert len(calls) == 3
