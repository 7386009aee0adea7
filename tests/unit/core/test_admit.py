"""``admit.admit_indexed`` (step e from the vote index, its walk written out) against the plain
loop over ``VoteIndex.walk`` it replaced, and its warm valuation against ``frontier.value``.

The loop below is ``admit_indexed`` as it was before the walk was inlined: it takes each key
``walk`` yields, in order, and refuses or starts it. Both must give the same starts, tokens
and smallest refused charge, and leave ``held`` alike, for any slots, room, bucket, earlier
starts and per-session counts (random inputs of ``test_plan``, warm and cold pools).
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core.admit import Admitted, _indexed_start, _reason, _warm_value, admit_indexed
from orchestrator.core.budget import cold_start_s
from orchestrator.core.frontier import value, warm_gpu_s
from orchestrator.core.plan import demand_key, job_key
from orchestrator.core.tree import Key, TreeIndex
from orchestrator.core.types import PlanInput, StartJob
from orchestrator.core.votes import VoteIndex
from tests.unit.core.test_plan import random_input


def walked(
    inp: PlanInput, index: VoteIndex, held: dict[str, int], base: Mapping[str, int],
    taken: Collection[Key], free: int, room: int, before: int, tokens: float,
    short: float | None,
) -> Admitted:  # fmt: skip
    """``admit_indexed`` over ``VoteIndex.walk`` (its former body)."""
    budget = inp.budget
    limit, min_score, now = budget.per_session_inflight, budget.min_benefit_per_gpu_s, inp.now
    warm_idle, cold_s = inp.warm_idle, inp.timing.cold_start_s
    e = warm_gpu_s(inp)
    dropped: set[tuple[float, int, float, float]] = set()
    starts: list[StartJob] = []
    cold = cold_start_s(warm_idle, before, cold_s)
    for key, run, v in index.walk(inp, e, taken, dropped):
        if free <= 0 or room <= 0:
            break
        lead = index.lead(key)
        sid = lead[0]
        mine = held.get(sid)
        if mine is None:
            mine = base.get(sid, 0)
        if mine >= limit:
            continue
        if cold > 0.0:
            p, depth, t, step = run
            v = value(p, (t if t > now else now) - now, depth, step, e, cold)
            if not v.score > min_score:
                dropped.add(run)
                continue
        charge = v.charge_gpu_s
        cost = charge if charge > 0.0 else 0.0
        if tokens < cost:
            if short is None or charge < short:
                short = charge
            dropped.add(run)
            continue
        tokens -= cost
        held[sid] = mine + 1
        reason = _reason(run[0], run[1], v, cold > 0.0)
        starts.append(_indexed_start(key, lead, run, v, e + cold, reason, cold > 0.0))
        free, room = free - 1, room - 1
        cold = cold_start_s(warm_idle, before + len(starts), cold_s)
    return Admitted(starts, tokens, short)


@settings(max_examples=400, deadline=None)
@given(
    st.randoms(use_true_random=False),
    st.integers(0, 6),
    st.integers(0, 6),
    st.integers(0, 4),
    st.sampled_from([0.0, 0.5, 3.0, 9.0, 25.0, 1e9]),
    st.sampled_from([None, 0.1, 4.0, 50.0]),
    st.integers(0, 3),
)
def test_admit_indexed_is_the_loop_over_walk(
    rnd: random.Random, free: int, room: int, before: int, tokens: float,
    short: float | None, full: int,
) -> None:  # fmt: skip
    inp = random_input(rnd)
    tree = TreeIndex(inp.nodes)
    index = VoteIndex.of(inp, tree.node, lambda k: tree.by_key(*k))
    e = warm_gpu_s(inp)
    if not (index.fits(inp) and index.safe(inp.now, e)):
        return
    taken = {job_key(j) for j in inp.jobs} | {demand_key(d) for d in inp.demands}
    sessions = sorted({s.session_id for s in inp.sessions})
    base = {sid: rnd.randint(0, inp.budget.per_session_inflight) for sid in sessions[:full]}
    held = {sid: rnd.randint(0, 2) for sid in sessions[full : full + 1]}
    held_walked = dict(held)
    got = admit_indexed(inp, index, held, base, taken, free, room, before, tokens, short)
    want = walked(inp, index, held_walked, base, taken, free, room, before, tokens, short)
    assert got == want
    assert repr(got.tokens) == repr(want.tokens)
    assert held == held_walked


_floats = st.floats() | st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, 1e-300])


@given(
    p=st.floats(0.0, 1.0) | st.sampled_from([0.0, 1.0, 1e-300]),
    lead=st.floats(0.0) | st.sampled_from([0.0, math.inf]),
    depth=st.integers(1, 4),
    step=_floats,
    e=_floats,
)
def test_warm_value_is_value_without_a_cold_start(
    p: float, lead: float, depth: int, step: float, e: float
) -> None:
    """Bit for bit (signed zeros, infinities and NaN included), and a ``Value``."""
    got, want = _warm_value(p, lead, depth, step, e), value(p, lead, depth, step, e)
    assert type(got) is type(want)
    assert repr(got) == repr(want)
