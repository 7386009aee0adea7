"""Signed media URLs and the ownership cache."""

from __future__ import annotations

import uuid

from orchestrator.auth import Principal
from orchestrator.lru import Lru
from orchestrator.ownership import MediaSigner

ALICE = Principal(uuid.uuid4(), is_operator=False)


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_signed_url_opens_one_path_until_it_expires() -> None:
    clock = Clock()
    signer = MediaSigner(b"k" * 32, 300, enabled=True, clock=clock)
    url = signer.sign("/api/chunks/abc/video", ALICE)
    path, _, query = url.partition("?")
    sig = query.removeprefix("sig=")
    assert path == "/api/chunks/abc/video" and ALICE.user_id is not None
    assert ALICE.user_id.hex in sig
    assert signer.verify(path, sig)
    assert not signer.verify("/api/chunks/abd/video", sig)  # another blob
    assert not signer.verify(path, sig[:-2] + "xx")  # tampered
    exp, user, mac = sig.split(".")
    assert not signer.verify(path, f"{int(exp) + 3600}.{user}.{mac}")  # extended
    assert not MediaSigner(b"j" * 32, 300, enabled=True, clock=clock).verify(path, sig)
    clock.t += 301
    assert not signer.verify(path, sig)
    assert not signer.verify(path, None) and not signer.verify(path, "garbage")
    assert MediaSigner(None, 300, enabled=False).sign(path, ALICE) == path  # auth off


def test_lru_evicts_and_expires() -> None:
    clock = Clock()
    lru: Lru[str, int] = Lru(2, ttl_s=30, clock=clock)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1
    lru.put("c", 3)  # evicts b, the least recently used
    assert lru.get("b") is None and lru.get("a") == 1 and lru.get("c") == 3
    clock.t += 31
    assert lru.get("a") is None
