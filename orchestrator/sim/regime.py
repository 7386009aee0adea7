"""Regimes: named, editable TOML files describing the world the simulator replays traces in.

``load_regime("a100")`` reads ``regimes/a100.toml`` from the repository (or the current folder's
``regimes/``); ``load_regime(path=Path("my.toml"))`` any file. The shipped files (``a100``,
``short``, ``crowd``) carry their sources in comments; an operator copies one and edits it.
Unknown keys are errors, so a typo is reported rather than silently ignored.

Tables (every key optional unless marked; units in the names):

- top level: ``name``, ``description``.
- ``[chunk]``: ``frames`` (4k + 1), ``fps``: chunk duration = frames / fps seconds; ``root_action``.
- ``[generation]``: warm generation time G per chunk in GPU-seconds: ``distribution`` (``fixed``,
  ``uniform`` between ``min_gpu_s`` and ``max_gpu_s``, or ``lognormal`` with ``mean_gpu_s`` and
  coefficient of variation ``cv``, clipped to [min, max]).
- ``[pool]``: ``max_containers`` (GPU slots), ``warm_containers`` (always-warm minimum, Modal's
  ``min_containers``), ``initial_warm`` (containers up at the start, default the minimum),
  ``scaledown_window_s`` (idle seconds before an extra container stops),
  ``cold_start_min_s`` / ``cold_start_max_s`` (uniform extra seconds on a cold container).
- ``[valuation]``: what the core is told (``Timing``): ``gpu_s_per_chunk`` (default: the mean of
  G), ``cold_start_s`` (expected extra seconds, default 0), ``think_s`` (default: synth mean).
- ``[budget]``: ``orchestrator.core.types.Budget`` fields except ``max_containers`` (from pool).
- ``[price]``: ``usd_per_gpu_s``.
- ``[policies.NAME]``: default parameters for policy NAME (``policies.make_policy`` params).
- ``[synth]``: default knobs of synthetic traces for this regime (``SynthKnobs`` fields).
- ``[sweep]``: ``rate_gpu_s_per_s`` (list: the speculative refill rates of ``--sweep-budget``),
  ``burst_s`` (burst = max(2 E, rate x burst_s) at each sweep point).
- ``[sim]``: ``tick_s`` (re-plan at least this often while sessions are active; 0 = only on
  events, bucket refills and idle timeouts).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from orchestrator.core.poses import action_to_pose, normalize_action
from orchestrator.core.types import Budget, Timing
from orchestrator.sim.synth import SynthKnobs, knobs_from

__all__ = [
    "Generation",
    "PoolModel",
    "Regime",
    "RegimeError",
    "apply_budget_overrides",
    "load_regime",
    "regime_dirs",
]

REPO_REGIMES = Path(__file__).resolve().parents[2] / "regimes"
"""The ``regimes/`` folder shipped at the repository root."""


DEFAULT_SWEEP: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
"""Speculative refill rates (GPU-s per second) swept when a regime has no ``[sweep]`` list."""


class RegimeError(ValueError):
    """A regime file is missing or malformed; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class Generation:
    """Warm generation time G of one chunk, GPU-seconds (one slot busy for that long)."""

    distribution: str = "uniform"
    mean_gpu_s: float = 210.0
    min_gpu_s: float = 120.0
    max_gpu_s: float = 300.0
    cv: float = 0.3

    @property
    def mean(self) -> float:
        """Expected G in GPU-seconds (the clip of the lognormal is ignored)."""
        if self.distribution == "uniform":
            return (self.min_gpu_s + self.max_gpu_s) / 2
        return self.mean_gpu_s

    def sample(self, u1: float, u2: float) -> float:
        """G for two uniform draws in [0, 1) (inverse transform / Box-Muller), seconds."""
        if self.distribution == "fixed":
            return self.mean_gpu_s
        if self.distribution == "uniform":
            return self.min_gpu_s + u1 * (self.max_gpu_s - self.min_gpu_s)
        sigma = math.sqrt(math.log(1.0 + self.cv**2))
        z = math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)
        value = self.mean_gpu_s * math.exp(sigma * z - sigma**2 / 2)
        return min(self.max_gpu_s, max(self.min_gpu_s, value))


@dataclass(frozen=True, slots=True)
class PoolModel:
    """The GPU pool: slots, warm minimum, scale-down and cold starts (seconds).

    ``warm_containers`` is Modal's ``min_containers`` (kept up even when idle); ``initial_warm``
    containers are up when the run starts (default: the minimum; at most ``max_containers``);
    those above the minimum stop after ``scaledown_window_s`` idle seconds like any other.
    """

    max_containers: int = 8
    warm_containers: int = 0
    scaledown_window_s: float = 300.0
    cold_start_min_s: float = 0.0
    cold_start_max_s: float = 0.0
    initial_warm: int | None = None

    @property
    def warm_at_start(self) -> int:
        """Containers up when the run starts (``initial_warm``, default ``warm_containers``)."""
        return self.warm_containers if self.initial_warm is None else self.initial_warm


@dataclass(frozen=True, slots=True)
class Regime:
    """Everything the simulator needs besides the trace (module doc lists the TOML tables)."""

    name: str
    description: str = ""
    source: str = ""
    frames: int = 125
    fps: float = 24.0
    root_action: str = "w"
    generation: Generation = field(default_factory=Generation)
    pool: PoolModel = field(default_factory=PoolModel)
    budget: Budget = field(default_factory=Budget)
    timing: Timing = field(default_factory=lambda: Timing(gpu_s_per_chunk=210.0))
    usd_per_gpu_s: float = 0.000694
    policy_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    synth: SynthKnobs = field(default_factory=SynthKnobs)
    sweep_rates: tuple[float, ...] = DEFAULT_SWEEP
    sweep_burst_s: float = 600.0
    tick_s: float = 0.0

    @property
    def chunk_duration_s(self) -> float:
        """Playback length of one chunk, seconds (frames / fps)."""
        return self.frames / self.fps

    @property
    def root_pose(self) -> str:
        """Canonical pose of a memory's root chunk."""
        return str(action_to_pose(self.root_action, self.frames))

    def params_for(self, policy: str) -> dict[str, Any]:
        """Default parameters for ``policy`` from ``[policies.NAME]`` (a copy; {} if none)."""
        return dict(self.policy_params.get(policy.strip().lower(), {}))


def regime_dirs() -> tuple[Path, ...]:
    """Where ``--regime NAME`` looks, in order: ``./regimes``, then the repository's."""
    return (Path.cwd() / "regimes", REPO_REGIMES)


def _table(doc: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise RegimeError(f"{where}: [{key}] must be a table")
    return dict(value)


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise RegimeError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _build(cls: Any, table: Mapping[str, Any], where: str) -> Any:
    _check_keys(table, {f.name for f in fields(cls)}, where)
    try:
        return cls(**table)
    except (TypeError, ValueError) as err:
        raise RegimeError(f"{where}: {err}") from err


def _validate(r: Regime, where: str) -> None:
    g, p = r.generation, r.pool
    if g.distribution not in ("fixed", "uniform", "lognormal"):
        raise RegimeError(f"{where}: generation.distribution must be fixed, uniform or lognormal")
    if not 0 < g.min_gpu_s <= g.max_gpu_s or g.mean_gpu_s <= 0 or g.cv < 0:
        raise RegimeError(f"{where}: generation needs 0 < min_gpu_s <= max_gpu_s, mean_gpu_s > 0")
    if p.max_containers < 1 or not 0 <= p.warm_containers <= p.max_containers:
        raise RegimeError(f"{where}: pool needs max_containers >= 1, 0 <= warm <= max")
    if not 0 <= p.warm_at_start <= p.max_containers:
        raise RegimeError(f"{where}: pool needs 0 <= initial_warm <= max_containers")
    if not 0 <= p.cold_start_min_s <= p.cold_start_max_s or p.scaledown_window_s < 0:
        raise RegimeError(f"{where}: pool needs 0 <= cold_start_min_s <= cold_start_max_s")
    if r.fps <= 0 or r.usd_per_gpu_s < 0 or r.tick_s < 0:
        raise RegimeError(f"{where}: fps > 0, usd_per_gpu_s >= 0 and tick_s >= 0 required")
    try:
        action_to_pose(r.root_action, r.frames)
    except ValueError as err:
        raise RegimeError(f"{where}: chunk: {err}") from err


def parse_regime(doc: Mapping[str, Any], name: str, source: str = "") -> Regime:
    """Build a ``Regime`` from a parsed TOML document (see the module doc for the tables).

    Raises:
        RegimeError: unknown tables or keys, wrong types, out-of-range values.
    """
    where = source or name
    top = {"name", "description", "chunk", "generation", "pool", "valuation", "budget", "price",
           "policies", "synth", "sweep", "sim"}  # fmt: skip
    _check_keys(doc, top, where)
    chunk = _table(doc, "chunk", where)
    _check_keys(chunk, {"frames", "fps", "root_action"}, f"{where} [chunk]")
    generation: Generation = _build(Generation, _table(doc, "generation", where), f"{where} [gen]")
    pool: PoolModel = _build(PoolModel, _table(doc, "pool", where), f"{where} [pool]")
    budget_table = _table(doc, "budget", where)
    if "max_containers" in budget_table:
        raise RegimeError(f"{where}: set max_containers in [pool], not [budget]")
    budget_table["max_containers"] = pool.max_containers
    budget: Budget = _build(Budget, budget_table, f"{where} [budget]")
    synth = _table(doc, "synth", where)
    try:
        knobs = knobs_from(SynthKnobs(), **synth)
    except (TypeError, ValueError) as err:
        raise RegimeError(f"{where} [synth]: {err}") from err
    frames, fps = int(chunk.get("frames", 125)), float(chunk.get("fps", 24.0))
    valuation = _table(doc, "valuation", where)
    _check_keys(valuation, {"gpu_s_per_chunk", "cold_start_s", "think_s"}, f"{where} [valuation]")
    timing = Timing(
        gpu_s_per_chunk=float(valuation.get("gpu_s_per_chunk", generation.mean)),
        cold_start_s=float(valuation.get("cold_start_s", 0.0)),
        chunk_duration_s=frames / fps,
        think_s=float(valuation.get("think_s", knobs.think_mean_s)),
    )
    price = _table(doc, "price", where)
    _check_keys(price, {"usd_per_gpu_s"}, f"{where} [price]")
    policies = _table(doc, "policies", where)
    for policy, params in policies.items():
        if not isinstance(params, dict):
            raise RegimeError(f"{where}: [policies.{policy}] must be a table of parameters")
    sweep = _table(doc, "sweep", where)
    _check_keys(sweep, {"rate_gpu_s_per_s", "burst_s"}, f"{where} [sweep]")
    sim = _table(doc, "sim", where)
    _check_keys(sim, {"tick_s"}, f"{where} [sim]")
    regime = Regime(
        name=str(doc.get("name", name)),
        description=str(doc.get("description", "")),
        source=source,
        frames=frames,
        fps=fps,
        root_action=normalize_action(str(chunk.get("root_action", "w"))),
        generation=generation,
        pool=pool,
        budget=budget,
        timing=timing,
        usd_per_gpu_s=float(price.get("usd_per_gpu_s", 0.000694)),
        policy_params={k.lower(): dict(v) for k, v in policies.items()},
        synth=knobs,
        sweep_rates=tuple(float(x) for x in sweep.get("rate_gpu_s_per_s", DEFAULT_SWEEP)),
        sweep_burst_s=float(sweep.get("burst_s", 600.0)),
        tick_s=float(sim.get("tick_s", 0.0)),
    )
    _validate(regime, where)
    return regime


def load_regime(name: str | None = None, path: Path | str | None = None) -> Regime:
    """Load ``regimes/NAME.toml`` (``regime_dirs()`` order) or the file at ``path``.

    Raises:
        RegimeError: neither or both given, file not found (the message lists the shipped
            regimes), not valid TOML, or malformed (``parse_regime``).
    """
    if (name is None) == (path is None):
        raise RegimeError("give a regime name (--regime) or a file (--config), not both")
    if path is None:
        assert name is not None
        found = [d / f"{name}.toml" for d in regime_dirs() if (d / f"{name}.toml").is_file()]
        if not found:
            shipped = sorted(p.stem for p in REPO_REGIMES.glob("*.toml"))
            raise RegimeError(f"no regime {name!r}; shipped regimes: {', '.join(shipped)}")
        path = found[0]
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise RegimeError(f"cannot read regime file {path}: {err}") from err
    except tomllib.TOMLDecodeError as err:
        raise RegimeError(f"{path}: not valid TOML: {err}") from err
    return parse_regime(doc, path.stem, str(path))


_INT_FIELDS = {"max_containers", "max_depth", "per_session_inflight"}


def apply_budget_overrides(regime: Regime, overrides: Mapping[str, float] | None) -> Regime:
    """``regime`` with ``Budget`` fields replaced (``--budget rate_gpu_s_per_s=0.5,max_depth=3``).

    ``max_containers`` also resizes the pool (and caps its warm minimum).

    Raises:
        RegimeError: an unknown field (the message lists the known ones) or a non-integer value
            for an integer field.
    """
    if not overrides:
        return regime
    known = {f.name for f in fields(Budget)}
    values: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in known:
            raise RegimeError(f"unknown budget field {key!r}; known: {', '.join(sorted(known))}")
        if key in _INT_FIELDS:
            if float(value) != int(value):
                raise RegimeError(f"budget field {key} must be an integer (got {value})")
            values[key] = int(value)
        else:
            values[key] = float(value)
    budget = replace(regime.budget, **values)
    pool = regime.pool
    if "max_containers" in values:
        if values["max_containers"] < 1:
            raise RegimeError("budget field max_containers must be >= 1")
        count = values["max_containers"]
        initial = None if pool.initial_warm is None else min(pool.initial_warm, count)
        pool = replace(pool, max_containers=count, warm_containers=min(pool.warm_containers, count),
                       initial_warm=initial)  # fmt: skip
    return replace(regime, budget=budget, pool=pool)
