"""Viewer models (orchestrator.live.viewers) and G per generation profile in the live state."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.poses import action_to_pose
from orchestrator.core.types import Budget, Timing
from orchestrator.live import LiveState, SinglePolicy
from orchestrator.live.viewers import (
    GLOBAL_PRIOR_N,
    SESSION_PRIOR_N,
    ThinkStats,
    gone_after_s,
    think_estimate,
    think_observation,
)
from policies import make_policy

ROOT = str(action_to_pose("w"))
TIMING = Timing(gpu_s_per_chunk=8.0, chunk_duration_s=5.0, think_s=10.0)


def live(**kw: object) -> LiveState:
    ids = itertools.count()
    state = LiveState(
        budget=Budget(idle_timeout_s=120.0, gone_after_gaps=3.0), timing=TIMING, frames=125,
        proposer=SinglePolicy(make_policy("markov")),
        new_chunk_id=lambda key: f"{key[0]}:{key[1]}/{key[2]}",
        new_job_id=lambda: f"j{next(ids)}", **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    state.load_memory("m")
    return state


def test_observation_and_estimate_by_hand() -> None:
    assert think_observation(8.0, 5.0, 120.0) == 3.0
    assert think_observation(4.0, 5.0, 120.0) == 0.0  # asked before the chunk ended
    assert think_observation(500.0, 5.0, 120.0) is None  # a pause, not a decision
    own, everyone = ThinkStats(), ThinkStats()
    for t in (1.0, 1.0):
        own.add(t)
        everyone.add(t)
    # global: (2 + 4 * 10) / (2 + 4) = 7; session: (2 + 2 * 7) / (2 + 2) = 4
    assert think_estimate(own, everyone, 10.0) == pytest.approx(4.0)
    assert think_estimate(ThinkStats(), ThinkStats(), 10.0) == 10.0
    assert gone_after_s(4.0, 5.0, 3.0) == 27.0 and gone_after_s(4.0, 5.0, 0.0) is None


@given(
    st.lists(st.floats(0, 60), max_size=20), st.lists(st.floats(0, 60), max_size=20),
    st.floats(0, 60),
)  # fmt: skip
def test_estimate_lies_between_the_evidence_and_the_prior(
    own_obs: list[float], other_obs: list[float], configured: float
) -> None:
    own, everyone = ThinkStats(), ThinkStats()
    for t in own_obs:
        own.add(t)
        everyone.add(t)
    for t in other_obs:
        everyone.add(t)
    est = think_estimate(own, everyone, configured)
    values = [configured, *own_obs, *other_obs]
    assert min(values) - 1e-9 <= est <= max(values) + 1e-9
    assert SESSION_PRIOR_N > 0 and GLOBAL_PRIOR_N > 0


def test_live_state_learns_a_quick_viewer_and_declares_them_gone() -> None:
    state = live()
    state.open_session("s", "m", "m:None/" + ROOT, policy="markov", arm="markov", now=0.0)
    res = state.request("m", None, ROOT, None, request_id="r0", session_id="s", now=0.0,
                        record_history=False)  # fmt: skip
    assert res.outcome == "miss"
    s = state.session("s")
    assert s is not None and s.view.idle_after_s is None  # waiting: never gone
    sched = state.schedule(0.0)
    [start] = sched.starts
    state.job_ended(start.job.job_id, start.job.chunk_id, "m", ok=True, now=8.0)
    cursor, now = res.chunk_id, 8.0
    for i in range(6):  # watch 5 s, think 1 s, each next chunk a miss answered at once
        now += 6.0
        r = state.request("m", cursor, ROOT, "w", request_id=f"r{i + 1}", session_id="s",
                          now=now)  # fmt: skip
        state.schedule(now)  # a miss's demand starts
        job = state.job(r.chunk_id)
        if job is not None:
            state.job_ended(job.job_id, job.chunk_id, "m", ok=True, now=now)
        cursor = r.chunk_id
    s = state.session("s")
    assert s is not None and s.view.think_s is not None
    assert s.view.think_s < 5.0  # learned: much quicker than the configured 10 s
    gone = s.view.idle_after_s
    assert gone is not None and gone == pytest.approx(3.0 * (5.0 + s.view.think_s))
    # Silent for longer than that: no proposals, the plan wakes up for it.
    state.schedule(now)
    assert state.next_wake() == pytest.approx(now + gone)
    assert state.needs_plan(now + gone + 0.1)
    assert state.prepare(now + gone + 0.1).proposals == ()


def test_g_is_learned_per_generation_profile() -> None:
    state = live(learn_gpu_time=True, profile_key="ar")
    assert state.timing.gpu_s_per_chunk == 8.0  # the prior until a sample arrives
    state.job_ended("x", "nope", "m", ok=True, now=0.0, gpu_s=100.0)
    assert state.timing.gpu_s_per_chunk == 100.0
    state.job_ended("y", "nope", "m", ok=True, now=0.0, gpu_s=400.0, cold_start=True, load_s=200.0)
    assert state.timing.gpu_s_per_chunk == pytest.approx(0.7 * 100 + 0.3 * 200)
    assert state.timing.cold_start_s == 200.0
    state.configure(profile_key="distilled")  # another model: its own G, not the AR model's
    assert state.timing.gpu_s_per_chunk == 8.0 and state.timing.cold_start_s == 0.0
    state.job_ended("z", "nope", "m", ok=True, now=0.0, gpu_s=9.0, profile_key="distilled")
    assert state.timing.gpu_s_per_chunk == 9.0
    state.configure(profile_key="ar")
    assert state.timing.gpu_s_per_chunk == pytest.approx(130.0)
    # A reconfigured prior keeps what was learned.
    state.configure(timing=Timing(gpu_s_per_chunk=50.0, chunk_duration_s=5.0, think_s=2.0))
    assert state.timing.gpu_s_per_chunk == pytest.approx(130.0) and state.timing.think_s == 2.0
    fixed = live(learn_gpu_time=False)
    fixed.job_ended("x", "nope", "m", ok=True, now=0.0, gpu_s=100.0)
    assert fixed.timing.gpu_s_per_chunk == 8.0


def test_warm_idle_reaches_the_core() -> None:
    state = live()
    assert state.prepare(0.0, warm_idle=2).warm_idle == 2
    assert state.prepare(0.0).warm_idle is None
