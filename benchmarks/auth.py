"""What the door costs per request: token verification, the ownership check, media URL signing.

Usage::

    uv run python benchmarks/auth.py [--calls 3000] [--out benchmarks/results/auth.json]

Measured in-process (no HTTP), with keys generated here and a JWKS served on 127.0.0.1 (read
once, then cached, as in the service):

- ``principal_first_us``: ``Authenticator.principal(header)`` for a token it has not seen,
  microseconds, for RS256 (RSA 2048), ES256 (P-256) and HS256 tokens shaped like Supabase
  access tokens: signature and claims verified (``--calls`` distinct tokens each);
- ``principal_repeat_us``: the same for a token seen before (a browser sends one token for an
  hour): answered from the verified-token cache;
- ``ownership_cached_us``: ``Ownership.readable_memory`` answered from its LRU (the cache-hit
  path: no database round trip); a cache miss is one primary-key SELECT on top;
- ``sign_us`` / ``verify_us``: one signed media URL made / checked (HMAC-SHA256).

Reports the median and p90 over ``--calls`` calls after a warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.auth import Authenticator, Principal
from orchestrator.config import AuthConfig
from orchestrator.ownership import MediaSigner, Ownership
from tests.authutil import (
    HS_SECRET,
    ISSUER,
    claims,
    ec_key,
    jwks_server,
    rsa_key,
    sign,
    sign_hs,
)


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_us": round(statistics.median(ordered) * 1e6, 2),
        "p90_us": round(ordered[int(len(ordered) * 0.9)] * 1e6, 2),
    }


async def _time(fn: Callable[[], Awaitable[Any]], calls: int) -> dict[str, float]:
    for _ in range(min(200, calls)):
        await fn()
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - t0)
    return _stats(samples)


async def run(calls: int) -> dict[str, Any]:
    """Every measurement of the module docstring."""
    rsa, ec = rsa_key("rsa"), ec_key("ec")
    user = uuid.uuid4()
    results: dict[str, Any] = {}
    with jwks_server(rsa, ec) as server:
        auth = Authenticator(
            AuthConfig(mode="supabase", jwks_url=server.url, jwt_secret=HS_SECRET, issuer=ISSUER)
        )
        makers: dict[str, Callable[[], str]] = {
            "RS256": lambda: sign(rsa, claims(user)),
            "ES256": lambda: sign(ec, claims(user)),
            "HS256": lambda: sign_hs(claims(user)),
        }
        results["principal_first_us"] = {}
        results["principal_repeat_us"] = {}
        for alg, make in makers.items():
            fresh = iter([f"Bearer {make()}" for _ in range(calls + min(200, calls))])
            results["principal_first_us"][alg] = await _time(
                lambda f=fresh: auth.principal(next(f)), calls
            )
            same = f"Bearer {make()}"
            results["principal_repeat_us"][alg] = await _time(
                lambda h=same: auth.principal(h), calls
            )
        results["jwks_fetches"] = server.hits
    own = Ownership()
    memory = uuid.uuid4()
    own.remember_memory(memory, user, False)
    caller = Principal(user, is_operator=False)
    results["ownership_cached_us"] = await _time(
        lambda: own.readable_memory(None, caller, memory),  # type: ignore[arg-type]
        calls,
    )
    signer = MediaSigner(b"k" * 32, 300, enabled=True)
    url = signer.sign(f"/api/chunks/{memory}/video", caller)
    path, _, sig = url.partition("?sig=")

    async def do_sign() -> None:
        signer.sign(path, caller)

    async def do_verify() -> None:
        assert signer.verify(path, sig)

    results["sign_us"] = await _time(do_sign, calls)
    results["verify_us"] = await _time(do_verify, calls)
    return results


def main() -> None:
    """Parse arguments, measure, print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/auth.json"))
    args = parser.parse_args()
    results = asyncio.run(run(args.calls))
    report = {
        "benchmark": "auth",
        "calls": args.calls,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
