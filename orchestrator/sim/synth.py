"""Synthetic viewer traces with documented knobs (``rewind traces synth``).

A viewer's next action is drawn as follows (every probability is a knob of ``SynthKnobs``):

1. With probability ``persistence`` (not on the first step) the viewer repeats the previous
   action: someone walking forward tends to keep walking forward.
2. Otherwise the viewer makes a *fresh* choice: with probability ``memory_affinity`` from the
   memory's favourites (3 actions drawn once per memory, weighted 0.6 / 0.3 / 0.1: what is
   interesting in that photo, shared by all its viewers), else from the base distribution.
3. Base distribution: with probability ``combo_share`` a combination (a move key then a camera
   key, each drawn by its weight), else with probability ``turn_bias`` a camera key, else a move
   key. Move weights w 6, a 2, d 2, s 1; camera weights left 3, right 3, up 1, down 1: walking
   forward and looking sideways dominate (a judgement, not a measurement; the root chunk is
   ``w-31``).
4. ``uniform_actions = True`` replaces all of the above by a uniform draw over the 24 actions:
   unpredictable viewers, the case where speculation cannot help.

``viewer = "human"`` is a second model, closer to how people are reported to walk these worlds
(the team's rule of thumb for real traces: mostly forward, turns 10-15 % each side, think
0.5-2 s, many viewers per memory; a description, not a measurement): with probability
``persistence`` the viewer repeats the previous action, otherwise draws afresh ``w`` with
probability ``forward_share``, ``left`` and ``right`` with ``turn_share`` each, and otherwise one
of the other moves (a 2, d 2, s 1, up 1, down 1, w+left 1, w+right 1). Repeating keeps the
marginal shares (it is a Markov chain whose stationary law is the fresh draw), so persistence
only adds streaks. Think times are uniform in [``think_min_s``, ``think_max_s``]. No memory
favourites: viewers of one photo share the forward walk, not a hidden script.

Think times (``viewer = "persistent"``, the default) are lognormal with mean ``think_mean_s``
seconds and coefficient of variation ``think_cv`` (0 = always the mean). Sessions arrive as a
Poisson process of ``arrival_rate_per_s`` sessions per second (the first at 0 s; rate 0 = all
at 0 s), take ``steps_min``..``steps_max`` steps (uniform) and are assigned to memories
round-robin, ``sessions_per_memory`` viewers each on average. Every random stream is seeded
from ``seed`` and the session or memory index, so the same knobs always give the same trace.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from orchestrator.core.poses import ACTION_NAMES, CAMERA_KEYS, MOVE_KEYS
from orchestrator.sim.trace import SessionTrace, Step, write_trace

__all__ = ["SynthKnobs", "knobs_from", "next_action_law", "synthesize", "write_synthetic"]

MOVE_WEIGHTS: dict[str, float] = {"w": 6.0, "a": 2.0, "d": 2.0, "s": 1.0}
CAMERA_WEIGHTS: dict[str, float] = {"left": 3.0, "right": 3.0, "up": 1.0, "down": 1.0}
FAVOURITE_WEIGHTS: tuple[float, ...] = (0.6, 0.3, 0.1)
HUMAN_OTHER_WEIGHTS: dict[str, float] = {"a": 2.0, "d": 2.0, "s": 1.0, "up": 1.0, "down": 1.0,
                                         "w+left": 1.0, "w+right": 1.0}  # fmt: skip
VIEWERS = ("persistent", "human")
assert set(MOVE_WEIGHTS) == set(MOVE_KEYS) and set(CAMERA_WEIGHTS) == set(CAMERA_KEYS)


@dataclass(frozen=True, slots=True)
class SynthKnobs:
    """The generator's knobs (module doc gives the model).

    Attributes:
        sessions: number of sessions (viewers).
        sessions_per_memory: mean viewers per memory (memories = ceil(sessions / this)).
        arrival_rate_per_s: Poisson arrival rate, sessions per second (0: all arrive at 0 s).
        steps_min, steps_max: steps per session, drawn uniformly in [min, max].
        persistence: P(repeat the previous action), in [0, 1].
        turn_bias: share of base choices that are camera turns rather than moves, in [0, 1].
        combo_share: share of base choices that are move+camera combinations, in [0, 1].
        memory_affinity: P(a fresh choice comes from the memory's favourites), in [0, 1].
        think_mean_s: mean think time, seconds (> 0 unless think_cv is 0, then >= 0).
        think_cv: coefficient of variation of the lognormal think time (>= 0; 0 = fixed).
        uniform_actions: draw every action uniformly from the 24 (ignores the four above).
        seed: seed of every random stream.
        viewer: ``"persistent"`` (the model above) or ``"human"`` (module doc).
        forward_share, turn_share: ``human``: P(fresh draw = w), P(= left) = P(= right).
        think_min_s, think_max_s: ``human``: think time uniform in this range, seconds.
    """

    sessions: int = 40
    sessions_per_memory: float = 1.0
    arrival_rate_per_s: float = 0.02
    steps_min: int = 8
    steps_max: int = 16
    persistence: float = 0.6
    turn_bias: float = 0.35
    combo_share: float = 0.1
    memory_affinity: float = 0.5
    think_mean_s: float = 4.0
    think_cv: float = 0.6
    uniform_actions: bool = False
    seed: int = 0
    viewer: str = "persistent"
    forward_share: float = 0.7
    turn_share: float = 0.125
    think_min_s: float = 0.5
    think_max_s: float = 2.0

    def __post_init__(self) -> None:
        for name in ("sessions", "steps_min", "steps_max", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"synth knob {name} must be an integer >= 0 (got {value!r})")
        if self.steps_max < self.steps_min:
            raise ValueError("synth knob steps_max must be >= steps_min")
        for name in ("persistence", "turn_bias", "combo_share", "memory_affinity"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"synth knob {name} must be in [0, 1] (got {value!r})")
        for name in ("arrival_rate_per_s", "think_mean_s", "think_cv"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"synth knob {name} must be a finite number >= 0 (got {value!r})")
        if not isinstance(self.sessions_per_memory, int | float) or self.sessions_per_memory < 1:
            raise ValueError("synth knob sessions_per_memory must be >= 1")
        if not isinstance(self.uniform_actions, bool):
            raise ValueError("synth knob uniform_actions must be true or false")
        if self.viewer not in VIEWERS:
            raise ValueError(f"synth knob viewer must be one of {', '.join(VIEWERS)}")
        for name in ("forward_share", "turn_share", "think_min_s", "think_max_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"synth knob {name} must be a finite number >= 0 (got {value!r})")
        if self.forward_share + 2 * self.turn_share > 1.0:
            raise ValueError("synth knobs need forward_share + 2 x turn_share <= 1")
        if self.think_max_s < self.think_min_s:
            raise ValueError("synth knob think_max_s must be >= think_min_s")


def knobs_from(base: SynthKnobs | None = None, **overrides: Any) -> SynthKnobs:
    """``base`` (default ``SynthKnobs()``) with ``overrides``; None values are ignored.

    Raises:
        ValueError: an unknown knob name (the message lists the known ones) or a bad value.
    """
    known = {f.name for f in fields(SynthKnobs)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown synth knob(s) {unknown}; known: {', '.join(sorted(known))}")
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(base or SynthKnobs(), **given)


def _pick(rng: random.Random, weights: Mapping[str, float]) -> str:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _base_choice(rng: random.Random, k: SynthKnobs) -> str:
    roll = rng.random()
    if roll < k.combo_share:
        return f"{_pick(rng, MOVE_WEIGHTS)}+{_pick(rng, CAMERA_WEIGHTS)}"
    if rng.random() < k.turn_bias:
        return _pick(rng, CAMERA_WEIGHTS)
    return _pick(rng, MOVE_WEIGHTS)


def _favourites(k: SynthKnobs, memory_index: int) -> dict[str, float]:
    rng = random.Random(f"{k.seed}|memory|{memory_index}")
    favourites: dict[str, float] = {}
    while len(favourites) < len(FAVOURITE_WEIGHTS):
        action = _base_choice(rng, k)
        favourites.setdefault(action, FAVOURITE_WEIGHTS[len(favourites)])
    return favourites


def _human_choice(rng: random.Random, k: SynthKnobs) -> str:
    roll = rng.random()
    if roll < k.forward_share:
        return "w"
    if roll < k.forward_share + k.turn_share:
        return "left"
    if roll < k.forward_share + 2 * k.turn_share:
        return "right"
    return _pick(rng, HUMAN_OTHER_WEIGHTS)


def _normalised(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {a: w / total for a, w in weights.items()}


def _fresh_law(k: SynthKnobs, favourites: Mapping[str, float]) -> dict[str, float]:
    """P(action) of a fresh choice (module doc, steps 2-3 and ``human``)."""
    law: dict[str, float] = {}

    def add(action: str, p: float) -> None:
        law[action] = law.get(action, 0.0) + p

    if k.viewer == "human":
        add("w", k.forward_share)
        add("left", k.turn_share)
        add("right", k.turn_share)
        for a, p in _normalised(HUMAN_OTHER_WEIGHTS).items():
            add(a, (1.0 - k.forward_share - 2 * k.turn_share) * p)
        return law
    moves, cams = _normalised(MOVE_WEIGHTS), _normalised(CAMERA_WEIGHTS)
    base = 1.0 - k.memory_affinity
    for a, p in _normalised(favourites).items():
        add(a, k.memory_affinity * p)
    for m, pm in moves.items():
        for c, pc in cams.items():
            add(f"{m}+{c}", base * k.combo_share * pm * pc)
    for c, pc in cams.items():
        add(c, base * (1.0 - k.combo_share) * k.turn_bias * pc)
    for m, pm in moves.items():
        add(m, base * (1.0 - k.combo_share) * (1.0 - k.turn_bias) * pm)
    return law


def next_action_law(k: SynthKnobs, memory_index: int, previous: str | None) -> dict[str, float]:
    """The generator's own probability of each next action (``ACTION_NAMES`` spelling; absent
    = 0) for a viewer of memory ``memory_index`` whose previous action was ``previous`` (None on
    the first step): what ``synthesize`` draws from, so the best any causal predictor of a
    synthetic trace can know (``orchestrator.sim.bayes``). Sums to 1.
    """
    if k.uniform_actions:
        return {a: 1.0 / len(ACTION_NAMES) for a in ACTION_NAMES}
    favourites = _favourites(k, memory_index) if k.viewer != "human" else {}
    fresh = _fresh_law(k, favourites)
    if previous is None:
        return fresh
    law = {a: (1.0 - k.persistence) * p for a, p in fresh.items()}
    law[previous] = law.get(previous, 0.0) + k.persistence
    return law


def _think(rng: random.Random, k: SynthKnobs) -> float:
    if k.viewer == "human":
        return rng.uniform(k.think_min_s, k.think_max_s)
    if k.think_cv == 0 or k.think_mean_s == 0:
        return k.think_mean_s
    sigma2 = math.log(1.0 + k.think_cv**2)
    return rng.lognormvariate(math.log(k.think_mean_s) - sigma2 / 2, math.sqrt(sigma2))


def _steps(k: SynthKnobs, index: int, favourites: Mapping[str, float]) -> tuple[Step, ...]:
    rng = random.Random(f"{k.seed}|session|{index}")
    count = rng.randint(k.steps_min, k.steps_max)
    steps: list[Step] = []
    previous: str | None = None
    for _ in range(count):
        if k.uniform_actions:
            action = rng.choice(ACTION_NAMES)
        elif previous is not None and rng.random() < k.persistence:
            action = previous
        elif k.viewer == "human":
            action = _human_choice(rng, k)
        elif rng.random() < k.memory_affinity:
            action = _pick(rng, favourites)
        else:
            action = _base_choice(rng, k)
        steps.append(Step(action, _think(rng, k)))
        previous = action
    return tuple(steps)


def synthesize(knobs: SynthKnobs) -> list[SessionTrace]:
    """Generate ``knobs.sessions`` sessions (deterministic for the knobs, seed included)."""
    memories = max(1, math.ceil(knobs.sessions / knobs.sessions_per_memory))
    favourites = {m: _favourites(knobs, m) for m in range(min(memories, knobs.sessions))}
    arrivals = random.Random(f"{knobs.seed}|arrivals")
    out: list[SessionTrace] = []
    start = 0.0
    for i in range(knobs.sessions):
        if i > 0 and knobs.arrival_rate_per_s > 0:
            start += arrivals.expovariate(knobs.arrival_rate_per_s)
        m = i % memories
        out.append(SessionTrace(f"s{i:05d}", f"m{m:04d}", start, _steps(knobs, i, favourites[m])))
    return out


def write_synthetic(out: Path | str, knobs: SynthKnobs) -> int:
    """Write a synthetic trace with a meta line recording the knobs; returns sessions written."""
    meta = {"generator": "rewind traces synth", "knobs": asdict(knobs)}
    return write_trace(out, synthesize(knobs), meta)
