"""The records the live state rebuilds field by field on its hot paths keep every field.

``LiveState._set_viewer`` builds a ``SessionView`` and ``KnownTree.set_state`` a ``KnownNode``
positionally, naming every field (``dataclasses.replace`` cost twice as much per event). A field
added to either would be reset to its default there without a word: these tests fail first, and
say where to add it. The rebuilt records equal what ``replace`` gives.
"""

from __future__ import annotations

import itertools
from dataclasses import fields, replace

from orchestrator.core.types import Budget, PlanInput, RunningJob, SessionView, Timing
from orchestrator.live import KnownNode, KnownTree, LiveJob, LiveState, SinglePolicy
from policies import make_policy


def test_session_view_fields_are_those_set_viewer_passes() -> None:
    # If this fails, pass the new field in LiveState._set_viewer (orchestrator/live/state.py).
    assert [f.name for f in fields(SessionView)] == [
        "session_id", "memory_id", "cursor_chunk_id", "watch_started_at", "last_active_at",
        "history", "policy", "think_s", "idle_after_s",
    ]  # fmt: skip


def test_known_node_fields_are_those_set_state_passes() -> None:
    # If this fails, pass the new field in KnownTree.set_state (orchestrator/live/tree.py).
    assert [f.name for f in fields(KnownNode) if f.init] == [
        "chunk_id", "memory_id", "parent_id", "pose", "action", "state", "depth", "ready_at",
    ]  # fmt: skip


def test_set_state_equals_replace() -> None:
    tree = KnownTree("m")
    node = tree.put(KnownNode("c", "m", None, "p", "w", "pending", 0))
    for t, state in enumerate(("running", "ready", "failed", "running", "ready")):
        moved = tree.set_state("c", state, float(t))  # type: ignore[arg-type]
        want = replace(node, state=state, ready_at=float(t) if state == "ready" else None)
        assert moved == want and moved.core == want.core and tree.get("c") is moved
        node = moved


def test_a_request_and_its_answer_move_the_view_as_replace_would() -> None:
    budget = Budget(max_containers=2, speculative_share=0.5, rate_gpu_s_per_s=1.0,
                    burst_gpu_s=10.0, max_depth=2, idle_timeout_s=30.0)  # fmt: skip
    ids = itertools.count()
    live = LiveState(
        budget=budget, timing=Timing(gpu_s_per_chunk=8.0, chunk_duration_s=5.0, think_s=10.0),
        frames=125, proposer=SinglePolicy(make_policy("uniform")),
        new_chunk_id=lambda key: f"c{key[1]}-{key[2]}", new_job_id=lambda: f"j{next(ids)}",
    )  # fmt: skip
    live.load_memory("m")
    live.open_session("s", "m", "c-root", policy="uniform", arm="uniform", now=0.0)
    before = live.session("s")
    assert before is not None
    res = live.request("m", None, "root", "w", request_id="r0", session_id="s", now=1.0)
    assert res.outcome == "miss" and (res.policy, res.arm) == ("uniform", "uniform")
    s = live.session("s")
    assert s is not None
    # Waiting: not gone (idle_after_s None); cursor, history and times moved to the request.
    assert s.view == replace(before.view, cursor_chunk_id=res.chunk_id, history=("w",),
                             watch_started_at=1.0, last_active_at=1.0, idle_after_s=None,
                             think_s=s.view.think_s)  # fmt: skip
    scheduled = live.schedule(2.0)
    (started,) = scheduled.starts
    ended = live.job_ended(started.job.job_id, res.chunk_id, "m", ok=True, now=9.0)
    assert ended.requests == ("r0",)
    after = live.session("s")
    assert after is not None and after.view.idle_after_s is not None
    assert after.view == replace(s.view, watch_started_at=9.0, last_active_at=9.0,
                                 idle_after_s=after.view.idle_after_s)  # fmt: skip


def test_running_job_fields_are_those_as_core_passes() -> None:
    # If this fails, pass the new field in LiveJob.as_core (orchestrator/live/records.py).
    assert [f.name for f in fields(RunningJob)] == [
        "job_id", "chunk_id", "memory_id", "parent_id", "pose", "kind", "started_at",
        "expected_gpu_s", "probability", "session_id", "depth", "charged_gpu_s",
    ]  # fmt: skip
    job = LiveJob("j", "c", "m", "p", "x", "w", "speculative", "speculative", "s", 0.4, 2, 9.0, 3.0,
                  charged_gpu_s=4.5)  # fmt: skip
    assert job.as_core() == RunningJob(
        job_id="j", chunk_id="c", memory_id="m", parent_id="p", pose="x", kind="speculative",
        started_at=3.0, expected_gpu_s=9.0, probability=0.4, session_id="s", depth=2,
        charged_gpu_s=4.5,
    )  # fmt: skip
    assert job.as_core() is job.as_core()  # built once until a field it holds changes


def test_plan_input_fields_are_those_prepare_passes() -> None:
    # If this fails, pass the new field (in order) in Planner.prepare (live/planning.py).
    assert [f.name for f in fields(PlanInput)] == [
        "now", "nodes", "sessions", "jobs", "demands", "proposals", "budget", "bucket",
        "timing", "frames", "warm_idle", "votes", "lookup", "roster",
    ]  # fmt: skip
