"""``bayes``: the best a causal policy can predict on a synthetic trace (simulation only).

The ``oracle`` knows each viewer's future; no policy can, so its saving is not a share a
learned policy could reach. This policy knows what a policy could at best: the law the
synthetic viewers are drawn from (``orchestrator.sim.synth.next_action_law``: persistence, the
memory's favourites, the base or human distribution), and nothing of any draw. Its proposals
are the Bayes-optimal next-action probabilities given the history, so its share of the oracle's
saving is the *predictive ceiling* of a trace and regime: a learned policy (markov, lookahead)
can approach it, never pass it except by chance. ``benchmarks/policies.py`` reports it beside
the learned policies, so a gap to the oracle that is the viewers' own randomness is told apart
from one a better predictor could close.

It needs the trace's generator knobs (``Trace.meta["knobs"]``, written by
``rewind traces synth`` and ``write_synthetic``) and memory ids as ``synthesize`` names them
(``m0003`` is memory index 3; a memory id of another shape is read as index 0, whose favourites
are then the wrong ones); ``orchestrator.sim.run.build_policy`` passes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from orchestrator.core.types import ActionObserved, PolicyContext, Proposal
from orchestrator.sim.synth import SynthKnobs, next_action_law

__all__ = ["BayesPolicy", "knobs_of"]


def knobs_of(meta: Mapping[str, Any] | None) -> SynthKnobs:
    """The generator knobs recorded in a trace's meta object.

    Raises:
        ValueError: the trace carries no ``{"knobs": {...}}`` meta (not a synthetic trace), or
            knobs ``SynthKnobs`` does not know.
    """
    knobs = meta.get("knobs") if meta is not None else None
    if not isinstance(knobs, Mapping):
        raise ValueError(
            "the 'bayes' policy needs a synthetic trace: its meta line must hold the generator's "
            '"knobs" (as `rewind traces synth` writes them)'
        )
    known = {f.name for f in fields(SynthKnobs)}
    unknown = sorted(set(knobs) - known)
    if unknown:
        raise ValueError(f"unknown synth knob(s) in the trace meta: {unknown}")
    return SynthKnobs(**dict(knobs))


def memory_index(memory_id: str) -> int | None:
    """``synthesize``'s memory index from its id (``m0003`` -> 3); None for another id."""
    digits = memory_id[1:]
    return int(digits) if memory_id.startswith("m") and digits.isdigit() else None


class BayesPolicy:
    """Propose the generator's most probable paths with their true probabilities.

    Per level, the ``top_k`` most probable next actions below each kept path (ties by the order
    of ``ctx.actions``), to ``min(depth, ctx.max_depth)`` levels; P of a path is the product of
    its steps' probabilities (the law is Markov in the previous action). Learns nothing.

    Args:
        knobs: the trace's generator knobs (``knobs_of``).
        depth: levels proposed at most (default 2, as the shipped regimes' ``lookahead``).
        top_k: next actions kept per path and level (default 6, as lookahead's beam).

    Raises:
        ValueError: ``depth`` or ``top_k`` below 1.
    """

    name: str = "bayes"

    def __init__(self, knobs: SynthKnobs, depth: int = 2, top_k: int = 6) -> None:
        if depth < 1 or top_k < 1:
            raise ValueError("bayes: depth and top_k must be >= 1")
        self.knobs, self.depth, self.top_k = knobs, depth, top_k
        self._laws: dict[tuple[int | None, str | None], list[tuple[str, float]]] = {}

    def _ranked(self, memory: int | None, previous: str | None,
                order: Mapping[str, int]) -> list[tuple[str, float]]:  # fmt: skip
        key = (memory, previous)
        ranked = self._laws.get(key)
        if ranked is None:
            law = next_action_law(self.knobs, memory if memory is not None else 0, previous)
            offered = [(a, p) for a, p in law.items() if a in order and p > 0.0]
            offered.sort(key=lambda ap: (-ap[1], order[ap[0]]))
            ranked = self._laws[key] = offered
        return ranked

    def propose(self, ctx: PolicyContext) -> list[Proposal]:
        """The most probable paths below the cursor (class doc)."""
        sid, history = ctx.session.session_id, ctx.session.history
        memory = memory_index(ctx.session.memory_id)
        order = {a: i for i, a in enumerate(ctx.actions)}
        out: list[Proposal] = []
        frontier: list[tuple[tuple[str, ...], float]] = [((), 1.0)]
        for _ in range(min(self.depth, ctx.max_depth)):
            nxt: list[tuple[tuple[str, ...], float]] = []
            for path, p_path in frontier:
                previous = path[-1] if path else (history[-1] if history else None)
                for action, p in self._ranked(memory, previous, order)[: self.top_k]:
                    nxt.append(((*path, action), p_path * p))
            out.extend(Proposal(sid, path, p) for path, p in nxt)
            frontier = nxt
        return out

    def observe(self, event: ActionObserved) -> None:
        """Nothing to learn: the law is known."""
