"""The honest bounds: hand-computed waits, shared chunks, slots, and their order with policies."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.sim.bound import clairvoyant, honest_oracle, serial_chain
from orchestrator.sim.metrics import summarize
from orchestrator.sim.records import SimResult
from orchestrator.sim.regime import load_regime
from orchestrator.sim.run import run_policies
from orchestrator.sim.synth import synthesize
from orchestrator.sim.trace import Trace
from tests.unit.sim.test_engine import regime, viewer


def step_waits(result: SimResult, sid: str = "s1") -> list[float]:
    return [r.wait_s for r in result.requests if r.session_id == sid and r.step >= 0]


def test_one_viewer_waits_what_the_serial_chain_allows() -> None:
    # root ready at 10; step 1 asked at 10 + 5 + 2 = 17, ready at 20 (started when the root was)
    trace = Trace((viewer("w w right", think=2.0),))
    reg = regime(g=10.0, think=2.0, slots=1)
    for bound in (serial_chain, clairvoyant):
        result = bound(trace, reg, 0)
        assert step_waits(result) == [3.0, 3.0, 3.0]
        assert [r.outcome for r in result.requests] == [
            "miss" if bound is clairvoyant else "inflight"
        ] + ["inflight"] * 3
        assert sum(j.gpu_s for j in result.jobs) == 40.0  # 4 chunks, each once


def test_a_later_viewer_hits_what_an_earlier_one_needed() -> None:
    first = viewer("w d", think=2.0, sid="s1")
    later = viewer("w d", think=2.0, sid="s2", start=100.0)
    result = clairvoyant(Trace((first, later)), regime(g=10.0, think=2.0, slots=2), 0)
    assert step_waits(result, "s2") == [0.0, 0.0]
    assert len(result.jobs) == 3  # root, w, w/d: shared, generated once
    lead = summarize(result, regime(g=10.0, think=2.0, slots=2))["lead"]
    assert lead == {"before_arrival": 0.5, "steps_2_plus": 0.0, "step_1": 0.5, "on_request": 0.0}


def test_clairvoyant_starts_a_future_viewers_branch_before_they_arrive() -> None:
    # s2 arrives at 100 and turns "a" at its first step (asked at 107): the bound starts that
    # chunk when the root is ready (40, ready at 80), the per-cursor oracle only when s2 watches
    # the root (100, ready at 140: a 33 s wait)
    s1 = viewer("w w", think=2.0, sid="s1")
    s2 = viewer("a", think=2.0, sid="s2", start=100.0)
    trace = Trace((s1, s2))
    reg = regime(g=40.0, think=2.0, slots=4)
    per = run_policies(trace, reg, ["none", "oracle", "clairvoyant", "serial-chain"])
    assert step_waits(clairvoyant(trace, reg, 0), "s2") == [0.0]
    assert per["clairvoyant"]["wait_mean_s"] < per["oracle"]["wait_mean_s"]
    assert per["oracle"]["oracle_reference"] == "clairvoyant"


def test_slots_bind_the_clairvoyant_schedule_not_the_serial_chain() -> None:
    trace = Trace(tuple(viewer("w w w", think=1.0, sid=f"s{i}", memory=f"m{i}") for i in range(3)))
    reg = regime(g=10.0, think=1.0, slots=1)
    fast, slow = serial_chain(trace, reg, 0), clairvoyant(trace, reg, 0)
    assert slow.peak_running == 1 and fast.peak_running == 3
    total = {r.policy: sum(x.wait_s for x in r.requests) for r in (fast, slow)}
    assert total["serial-chain"] < total["clairvoyant"]


@pytest.mark.parametrize(("name", "seed"), [("crowd", 0), ("short", 1), ("a100", 2)])
def test_bounds_order_on_synthetic_traces(name: str, seed: int) -> None:
    r = load_regime(name)
    r = replace(r, pool=replace(r.pool, warm_containers=r.pool.max_containers, initial_warm=None))
    knobs = replace(r.synth, sessions=10, seed=seed, steps_min=4, steps_max=6)
    trace = Trace(tuple(synthesize(knobs)))
    per = run_policies(trace, r, ["none", "oracle", "clairvoyant", "serial-chain"], seed)
    lower, bound = serial_chain(trace, r, seed), clairvoyant(trace, r, seed)

    def end(result: SimResult, sid: str) -> float:
        return max(x.served_at or 0.0 for x in result.requests if x.session_id == sid)

    for s in trace.sessions:  # the serial chain ends every walk no later than the schedule
        assert end(lower, s.session_id) <= end(bound, s.session_id) + 1e-9
    assert per["clairvoyant"]["waste_ratio"] == 0.0
    assert per["clairvoyant"]["wait_mean_s"] <= per["none"]["wait_mean_s"] + 1e-9
    assert per["clairvoyant"]["peak_running"] <= r.pool.max_containers
    reference = honest_oracle(per)
    assert per["markov" if "markov" in per else "none"]["oracle_reference"] == reference
    assert summarize(bound, r)["gpu_s_total"] == pytest.approx(per["none"]["gpu_s_total"])


def test_when_chunks_are_short_waiting_for_a_warm_container_beats_a_boot() -> None:
    # one warm container, G = 2 s, a boot 100 s: the second viewer's chunks wait for the warm
    # container (seconds) rather than boot a second one (a 100 s cold start)
    trace = Trace((viewer("w w", think=1.0, sid="s1", memory="m1"),
                   viewer("d d", think=1.0, sid="s2", memory="m2")))  # fmt: skip
    reg = regime(g=2.0, think=1.0, slots=2, warm=1, cold=100.0, scaledown=1e9)
    result = clairvoyant(trace, reg, 0)
    assert result.cold_starts == 0
    assert max(r.wait_s for r in result.requests) <= 4.0
