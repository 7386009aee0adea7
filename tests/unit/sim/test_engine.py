"""The simulator on tiny hand-computed cases: one viewer, one slot, fixed times, exact waits."""

from __future__ import annotations

from dataclasses import MISSING, fields, replace
from typing import Any

import pytest

from orchestrator.core.types import Budget, Timing
from orchestrator.sim.engine import SimResult, Simulation
from orchestrator.sim.metrics import summarize
from orchestrator.sim.records import JobRecord, Tally
from orchestrator.sim.regime import Generation, PoolModel, Regime
from orchestrator.sim.run import build_policy
from orchestrator.sim.synth import SynthKnobs, synthesize
from orchestrator.sim.trace import SessionTrace, Step, Trace

D = 5.0  # chunk duration: 125 frames at 25 fps


def regime(
    g: float,
    think: float,
    slots: int = 1,
    warm: int | None = None,
    cold: float = 0.0,
    scaledown: float = 1e9,
    depth: int = 1,
    **params: dict[str, object],
) -> Regime:
    """Fixed generation time ``g``, no cold start unless asked, unlimited speculation budget."""
    budget = Budget(
        max_containers=slots,
        speculative_share=1.0,
        rate_gpu_s_per_s=1e6,
        burst_gpu_s=1e9,
        max_depth=depth,
        per_session_inflight=4,
        min_probability=0.05,
        idle_timeout_s=1e6,
    )
    return Regime(
        name="tiny",
        frames=125,
        fps=25.0,
        generation=Generation("fixed", mean_gpu_s=g, min_gpu_s=g, max_gpu_s=g),
        pool=PoolModel(slots, slots if warm is None else warm, scaledown, cold, cold),
        budget=budget,
        timing=Timing(gpu_s_per_chunk=g, chunk_duration_s=D, think_s=think),
        policy_params=params,
    )


def viewer(
    actions: str, think: float, sid: str = "s1", memory: str = "m1", start: float = 0.0
) -> SessionTrace:
    steps = tuple(Step(a, think) for a in actions.split())
    return SessionTrace(sid, memory, start, steps)


def run(trace: Trace, reg: Regime, policy: str) -> SimResult:
    return Simulation(trace, reg, build_policy(policy, reg, trace), seed=1).run()


def waits(result: SimResult, sid: str = "s1") -> list[float]:
    return [r.wait_s for r in result.requests if r.session_id == sid and r.step >= 0]


def outcomes(result: SimResult, sid: str = "s1") -> list[str]:
    return [r.outcome for r in result.requests if r.session_id == sid and r.step >= 0]


def test_on_demand_every_wait_is_g() -> None:
    trace = Trace((viewer("w w right a", think=2.0),))
    result = run(trace, regime(g=10.0, think=2.0), "none")
    assert waits(result) == [10.0] * 4
    assert outcomes(result) == ["miss"] * 4
    root = result.requests[0]
    assert (root.step, root.requested_at, root.served_at) == (-1, 0.0, 10.0)
    # root ready at 10, request 1 at 10 + 5 + 2 = 17, ready 27, request 2 at 34 ...
    assert [r.requested_at for r in result.requests[1:]] == [17.0, 34.0, 51.0, 68.0]
    m = summarize(result, regime(g=10.0, think=2.0))
    assert m["gpu_s_total"] == 50.0 and m["gpu_s_speculative"] == 0.0
    assert m["viewer_hours"] == pytest.approx(5 * D / 3600)


def test_oracle_hits_when_generation_is_faster_than_a_step() -> None:
    trace = Trace((viewer("w d d left s", think=2.0),))
    result = run(trace, regime(g=4.0, think=2.0), "oracle")
    assert waits(result) == [0.0] * 5
    assert outcomes(result) == ["hit"] * 5
    m = summarize(result, regime(g=4.0, think=2.0))
    assert m["gpu_s_total"] == 24.0  # root + 5 chunks, nothing wasted
    assert m["waste_ratio"] == 0.0 and m["speculative_used"] == 5


def test_oracle_inflight_wait_is_g_minus_step_when_generation_is_slower() -> None:
    trace = Trace((viewer("w a a right", think=2.0),))
    result = run(trace, regime(g=10.0, think=2.0), "oracle")
    # each child starts when its parent is served and is requested W = 5 + 2 s later
    assert waits(result) == pytest.approx([10.0 - 7.0] * 4)
    assert outcomes(result) == ["inflight"] * 4


def test_wrong_guess_is_cancelled_and_counted_as_waste() -> None:
    reg = regime(g=10.0, think=2.0, uniform={"k": 1, "actions": ["w"]})
    trace = Trace((viewer("s s s", think=2.0),))
    result = run(trace, reg, "uniform")
    assert waits(result) == [10.0] * 3  # the guess "w" is abandoned, the demand gets its slot
    m = summarize(result, reg)
    # root 10; per step the wrong guess ran 7 s then the demand 10 s; after the last chunk the
    # guess runs to completion (10 s) since the viewer stays listed until idle.
    assert m["gpu_s_total"] == pytest.approx(10 + 3 * (7 + 10) + 10)
    assert m["gpu_s_wasted"] == pytest.approx(3 * 7 + 10)
    assert m["waste_ratio"] == 1.0
    assert m["cancel_reasons"] == {"abandoned": 3}


def test_cold_start_then_warm_within_the_scaledown_window() -> None:
    trace = Trace((viewer("w w", think=2.0),))
    warm_later = run(trace, regime(g=10.0, think=2.0, warm=0, cold=30.0), "none")
    assert warm_later.requests[0].wait_s == 40.0  # root pays the cold start
    assert waits(warm_later) == [10.0, 10.0]
    assert warm_later.cold_starts == 1
    always_cold = run(trace, regime(g=10.0, think=2.0, warm=0, cold=30.0, scaledown=1.0), "none")
    assert waits(always_cold) == [40.0, 40.0]  # 7 s idle > 1 s window: every job boots
    assert always_cold.cold_starts == 3


def test_a_later_viewer_on_the_same_memory_hits_every_chunk() -> None:
    first = viewer("w d d", think=2.0, sid="a")
    second = viewer("w d d", think=3.0, sid="b", start=100.0)
    result = run(Trace((first, second)), regime(g=10.0, think=2.0), "none")
    assert waits(result, "a") == [10.0] * 3
    assert waits(result, "b") == [0.0] * 3 and outcomes(result, "b") == ["hit"] * 3
    assert sum(j.gpu_s for j in result.jobs) == 40.0  # b generated nothing


def test_identical_concurrent_requests_share_one_job() -> None:
    first = viewer("w", think=2.0, sid="a")
    second = viewer("w", think=2.0, sid="b", start=1.0)
    result = run(Trace((first, second)), regime(g=10.0, think=2.0, slots=2), "none")
    # b arrives while the root runs: an in-flight hit on a's demand, served at 10 as a is
    assert [r.outcome for r in result.requests if r.step < 0] == ["miss", "inflight"]
    assert waits(result, "a") == [10.0] and waits(result, "b") == [10.0]
    assert len(result.jobs) == 2  # one root, one shared child


def test_demand_preempts_speculation_for_another_viewer() -> None:
    # a's guess "w" holds the only slot when b (other memory) asks for its root at t = 12
    reg = regime(g=10.0, think=2.0, uniform={"k": 1, "actions": ["w"]})
    a = viewer("w", think=2.0, sid="a")
    b = viewer("", think=2.0, sid="b", memory="m2", start=12.0)
    result = run(Trace((a, b)), reg, "uniform")
    preempted = [j for j in result.jobs if j.cancel_reason == "preempted"]
    assert len(preempted) == 1 and preempted[0].started_at == 10.0
    assert preempted[0].ended_at == 12.0
    b_root = next(r for r in result.requests if r.session_id == "b")
    assert b_root.wait_s == 10.0
    # a's request at 17 finds its chunk cancelled (failed): a miss, started when b's root ends
    assert waits(result, "a") == [22.0 - 17.0 + 10.0]


def test_depth_two_speculation_waits_for_its_parent() -> None:
    # G = 4 < W = 7: with depth 2 the oracle starts the grandchild as soon as the child is ready
    trace = Trace((viewer("w w w", think=2.0),))
    result = run(trace, regime(g=4.0, think=2.0, slots=2, depth=2), "oracle")
    assert waits(result) == [0.0] * 3
    starts = sorted(j.started_at for j in result.jobs)
    assert starts == [0.0, 4.0, 8.0, 12.0]  # root, child at root ready, grandchild at child ready


def test_jobs_never_exceed_the_pool_and_gpu_is_slot_time() -> None:
    trace = Trace(tuple(viewer("w d d a", 1.0, f"s{i}", f"m{i}", float(i)) for i in range(4)))
    reg = regime(g=10.0, think=1.0, slots=2)
    result = run(trace, reg, "oracle")
    assert result.peak_running <= 2
    events = sorted(
        [(j.started_at, 1) for j in result.jobs] + [(j.ended_at or 0.0, -1) for j in result.jobs]
    )
    running = 0
    for _, delta in events:
        running += delta
        assert running <= 2
    assert all(r.served_at is not None for r in result.requests)
    assert summarize(result, reg)["gpu_s_total"] == pytest.approx(
        sum((j.ended_at or 0.0) - j.started_at for j in result.jobs)
    )


def test_the_world_is_the_same_for_every_policy() -> None:
    reg = replace(regime(g=10.0, think=2.0), generation=Generation("uniform", 0, 5.0, 50.0))
    trace = Trace((viewer("w d d a s", 2.0),))
    by_policy = {p: run(trace, reg, p) for p in ("none", "oracle", "markov")}
    times = [{j.chunk_id: j.generation_s for j in r.jobs} for r in by_policy.values()]
    shared = set(times[0]) & set(times[1]) & set(times[2])
    assert len(shared) == 6
    assert all(times[0][c] == times[1][c] == times[2][c] for c in shared)


def test_a_plan_breaking_the_core_contract_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import orchestrator.sim.engine as engine
    from orchestrator.core.types import Plan, PlanInput, StartJob
    from orchestrator.sim.records import SimulationError

    trace = Trace((viewer("w", think=2.0),))
    monkeypatch.setattr(engine, "plan", lambda inp: Plan(bucket=inp.bucket))
    with pytest.raises(SimulationError, match="demands never started"):
        run(trace, regime(g=10.0, think=2.0), "none")

    def below_unready_parent(inp: PlanInput) -> Plan:
        start = StartJob("m1", "nope", "w-31", "w", "speculative", "s1", 0.5, 1, 10.0, 1.0, "x")
        return Plan(starts=(start,), bucket=inp.bucket)

    monkeypatch.setattr(engine, "plan", below_unready_parent)
    with pytest.raises(SimulationError, match="could not carry out"):
        run(trace, regime(g=10.0, think=2.0), "none")


def test_idle_warm_time_is_billed_and_the_bill_ends_with_the_last_chunk() -> None:
    # two warm slots, one viewer on demand: root 0..10, steps 17..27 and 34..44; one container
    # is idle the whole 44 s, the other between jobs (10..17, 27..34)
    trace = Trace((viewer("w w", think=2.0),))
    reg = regime(g=10.0, think=2.0, slots=2)
    result = run(trace, reg, "none")
    assert result.billed_end_s == 44.0
    assert result.idle_gpu_s == pytest.approx(44.0 + 7.0 + 7.0)
    m = summarize(result, reg)
    assert m["gpu_s_billed"] == pytest.approx(30.0 + 58.0)
    assert m["gpu_s_idle_warm"] == pytest.approx(58.0)


@pytest.mark.parametrize("policy", ["markov", "lookahead", "oracle"])
def test_the_policy_forgets_viewers_who_left(policy: str) -> None:
    """The live state tells the policy about evicted sessions and cold memories
    (``policies.base.Forgetting``): after the replay it keeps nothing per session, and what it
    keeps per memory is in markov's bounded cold store."""
    trace = Trace(tuple(
        viewer("w d w", think=2.0, sid=f"s{i}", memory=f"m{i % 2}", start=40.0 * i)
        for i in range(6)
    ))  # fmt: skip
    reg = replace(regime(g=3.0, think=2.0), budget=replace(regime(3.0, 2.0).budget,
                                                           idle_timeout_s=5.0))  # fmt: skip
    sim = Simulation(trace, reg, build_policy(policy, reg, trace), seed=1)
    sim.run()
    sim.live.prepare(sim.now + 1e3)  # evicts the last viewer too
    base: Any = getattr(sim.policy, "base", sim.policy)
    if policy == "oracle":
        assert base.future == {}
    else:
        assert len(base._session) == 0 and len(base._memory) == 0
        assert set(base._cold) == {"m0", "m1"}
    assert sim.steps == {}
    books = sim.books  # every memory's last viewer left: nothing kept for a next visit
    assert books.attempts == {} and books.made == {} and books.open == {}
    assert books.stored.memories_in_ram == books.stored.memories_on_disk == 0


@pytest.mark.parametrize("policy", ["none", "uniform", "markov", "lookahead", "oracle"])
def test_streamed_figures_are_the_records_figures(policy: str) -> None:
    """Without records the metrics come from the streamed tally: the same, field by field."""
    sessions = synthesize(SynthKnobs(sessions=12, sessions_per_memory=3.0, arrival_rate_per_s=0.2,
                                     steps_min=3, steps_max=8, seed=3))  # fmt: skip
    trace = Trace(tuple(sessions))
    reg = regime(9.0, 2.0, slots=4, warm=2, cold=30.0, scaledown=60.0, depth=2)
    reg = replace(reg, budget=replace(reg.budget, rate_gpu_s_per_s=0.5, burst_gpu_s=40.0))
    kept = Simulation(trace, reg, build_policy(policy, reg, trace), seed=1).run()
    streamed = Simulation(trace, reg, build_policy(policy, reg, trace), seed=1,
                          records=False).run()  # fmt: skip
    assert streamed.requests == () and streamed.jobs == ()
    assert kept.requests and kept.jobs
    from_records = replace(kept, tally=None)
    assert summarize(streamed, reg) == summarize(from_records, reg) == summarize(kept, reg)
    assert isinstance(from_records.figures(), Tally)


def test_job_record_fields_are_those_the_engine_passes() -> None:
    # If this fails, pass the new field (in order) in Simulation._start (sim/engine.py).
    assert [f.name for f in fields(JobRecord) if f.default is MISSING] == [
        "job_id", "chunk_id", "memory_id", "initial_kind", "kind", "session_id", "depth",
        "probability", "started_at", "startup_s", "generation_s", "cold", "expected_gpu_s",
    ]  # fmt: skip
