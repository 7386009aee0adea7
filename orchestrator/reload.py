"""Live configuration: re-read rewind.toml, validate it, apply what can change without a restart.

Applied live: ``[speculation]`` and ``[experiments]`` whole, and ``[gpu]`` expected_gpu_s,
cold_start_s, price_per_gpu_s and demand_retries. Everything else (database, storage, the
generation profile, pool size, listen address...) needs a restart: such changes are listed in
the answer and the running values are kept. Running jobs are never dropped; an invalid file
changes nothing.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator.config import Settings
from orchestrator.errors import ApiError

LIVE_SECTIONS = ("speculation", "experiments")
LIVE_KEYS = {"gpu": ("expected_gpu_s", "cold_start_s", "price_per_gpu_s", "demand_retries")}


class ConfigRefused(ApiError):
    """422: the new configuration is invalid; ``errors`` lists each problem (loc, msg)."""

    def __init__(self, detail: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(422, "invalid_config", detail, field="config")
        self.errors = errors

    def to_json(self) -> dict[str, object]:
        """The error body plus ``errors``."""
        return {**super().to_json(), "errors": self.errors}


@dataclass(frozen=True, slots=True)
class Merged:
    """The settings to run with and the keys whose change waits for a restart."""

    settings: Settings
    restart_required: list[str]


def merge_live(old: Settings, new: Settings) -> Merged:
    """Take the live-changeable parts of ``new``, keep the rest of ``old``."""
    updates: dict[str, Any] = {}
    restart: list[str] = []
    for section in type(old).model_fields:
        before: BaseModel = getattr(old, section)
        after: BaseModel = getattr(new, section)
        if section in LIVE_SECTIONS:
            updates[section] = after
            continue
        live = LIVE_KEYS.get(section, ())
        changed: dict[str, Any] = {}
        for key in type(before).model_fields:
            if getattr(before, key) == getattr(after, key):
                continue
            if key in live:
                changed[key] = getattr(after, key)
            else:
                restart.append(f"{section}.{key}")
        if changed:
            updates[section] = before.model_copy(update=changed)
    return Merged(old.model_copy(update=updates), restart)


def refused_from(exc: Exception) -> ConfigRefused:
    """A ConfigRefused naming every problem of a failed load (validation, TOML, policy)."""
    if isinstance(exc, ValidationError):
        errors = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()
        ]
        detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors)
        return ConfigRefused(f"configuration refused: {detail}", errors)
    if isinstance(exc, tomllib.TOMLDecodeError):
        return ConfigRefused(
            f"configuration refused: TOML syntax: {exc}", [{"loc": "", "msg": str(exc)}]
        )
    return ConfigRefused(f"configuration refused: {exc}", [{"loc": "", "msg": str(exc)}])
