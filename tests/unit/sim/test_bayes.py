"""The generator's own law (``synth.next_action_law``) and the ``bayes`` ceiling policy."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.poses import ACTION_NAMES
from orchestrator.core.types import PolicyContext, SessionView
from orchestrator.sim.bayes import BayesPolicy, knobs_of, memory_index
from orchestrator.sim.engine import Simulation
from orchestrator.sim.regime import load_regime
from orchestrator.sim.run import build_policy
from orchestrator.sim.synth import SynthKnobs, next_action_law, synthesize
from orchestrator.sim.trace import Trace

knobs_st = st.builds(
    SynthKnobs,
    persistence=st.floats(0.0, 1.0),
    turn_bias=st.floats(0.0, 1.0),
    combo_share=st.floats(0.0, 1.0),
    memory_affinity=st.floats(0.0, 1.0),
    uniform_actions=st.booleans(),
    seed=st.integers(0, 50),
    viewer=st.sampled_from(["persistent", "human"]),
)


@settings(max_examples=200, deadline=None)
@given(knobs_st, st.integers(0, 5), st.sampled_from([None, *ACTION_NAMES]))
def test_law_is_a_distribution_over_offered_actions(
    k: SynthKnobs, memory: int, previous: str | None
) -> None:
    law = next_action_law(k, memory, previous)
    assert set(law) <= set(ACTION_NAMES)
    assert all(p >= 0.0 for p in law.values())
    assert math.isclose(sum(law.values()), 1.0, rel_tol=1e-9)
    if previous is not None and not k.uniform_actions:
        assert law[previous] >= k.persistence - 1e-12


@pytest.mark.parametrize("viewer", ["persistent", "human"])
def test_law_matches_what_synthesize_draws(viewer: str) -> None:
    """Pooled over many viewers of one memory, each (previous -> next) frequency is within
    four standard errors of the law's probability (deterministic: seeded)."""
    k = SynthKnobs(sessions=1500, sessions_per_memory=1500.0, steps_min=8, steps_max=8,
                   viewer=viewer, arrival_rate_per_s=0.0)  # fmt: skip
    pairs: dict[str | None, Counter[str]] = {}
    for s in synthesize(k):
        previous: str | None = None
        for step in s.steps:
            pairs.setdefault(previous, Counter())[step.action] += 1
            previous = step.action
    checked = 0
    for previous, seen in pairs.items():
        n = sum(seen.values())
        if n < 400:
            continue
        law = next_action_law(k, 0, previous)
        for action in ACTION_NAMES:
            p = law.get(action, 0.0)
            se = math.sqrt(max(p * (1 - p), 1e-6) / n)
            assert abs(seen[action] / n - p) <= 4 * se + 1e-9, (previous, action)
            checked += 1
    assert checked >= 2 * len(ACTION_NAMES)


def _ctx(history: tuple[str, ...], memory: str = "m0002", depth: int = 2) -> PolicyContext:
    view = SessionView("s1", memory, "c", 0.0, 0.0, history, "bayes")
    return PolicyContext(view, (), {}, ACTION_NAMES, depth, 0.0)


def test_proposals_carry_the_true_probabilities() -> None:
    k = SynthKnobs(seed=3)
    policy = BayesPolicy(k, depth=2, top_k=3)
    props = policy.propose(_ctx(("left",)))
    law = next_action_law(k, 2, "left")
    firsts = [p for p in props if len(p.path) == 1]
    assert [p.path[0] for p in firsts] == sorted(
        law, key=lambda a: (-law[a], ACTION_NAMES.index(a))
    )[:3]
    for p in firsts:
        assert p.probability == law[p.path[0]]
    for p in props:
        if len(p.path) == 2:
            a, b = p.path
            assert math.isclose(p.probability, law[a] * next_action_law(k, 2, a)[b])
    assert len(props) == 3 + 9
    assert all(len(p.path) == 1 for p in policy.propose(_ctx(("left",), depth=1)))


def test_knobs_come_from_the_trace_meta() -> None:
    k = SynthKnobs(seed=5, persistence=0.3)
    assert knobs_of({"knobs": asdict(k)}) == k
    with pytest.raises(ValueError, match="needs a synthetic trace"):
        knobs_of(None)
    with pytest.raises(ValueError, match="unknown synth knob"):
        knobs_of({"knobs": {"nope": 1}})
    assert memory_index("m0012") == 12 and memory_index("photo-1") is None
    with pytest.raises(ValueError):
        BayesPolicy(k, depth=0)


def test_bayes_runs_in_the_simulator_and_needs_knobs() -> None:
    r = load_regime("short")
    k = replace(r.synth, sessions=6, steps_min=3, steps_max=4)
    trace = Trace(tuple(synthesize(k)), meta={"knobs": asdict(k)})
    result = Simulation(trace, r, build_policy("bayes", r, trace), 0).run()
    assert result.jobs and any(j.initial_kind == "speculative" for j in result.jobs)
    with pytest.raises(ValueError, match="needs a synthetic trace"):
        build_policy("bayes", r, Trace(trace.sessions))
