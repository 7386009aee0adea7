"""When the live state asks a policy again: the children's states count only for a policy that
reads them (``orchestrator.live.proposals``, ``policies.registry.children_free``)."""

from __future__ import annotations

import itertools

from orchestrator.core.poses import action_to_pose
from orchestrator.core.types import Budget, PolicyContext, Proposal, Timing
from orchestrator.live import LiveState, SinglePolicy
from policies import make_policy
from policies.base import Policy
from policies.lookahead import LookaheadPolicy
from policies.registry import children_free
from policies.uniform import UniformPolicy

ROOT = str(action_to_pose("w"))
BUDGET = Budget(
    max_containers=6, speculative_share=0.75, rate_gpu_s_per_s=10.0, burst_gpu_s=100.0,
    max_depth=1, per_session_inflight=3, min_probability=0.05, idle_timeout_s=60.0,
    min_benefit_per_gpu_s=0.0, gone_after_gaps=1.5,
)  # fmt: skip
TIMING = Timing(gpu_s_per_chunk=8.0, chunk_duration_s=5.0, think_s=10.0)


class NotReadyChildren:
    """An operator's policy reading the children: it proposes the cursor's children that are
    not ready yet (among w, left, right), each with P 0.3. Time-free (the test forces it)."""

    name = "not-ready"

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    def propose(self, ctx: PolicyContext) -> list[Proposal]:
        self.seen.append(dict(ctx.children))
        return [
            Proposal(ctx.session.session_id, (a,), 0.3)
            for a in ("w", "left", "right")
            if ctx.children.get(a) != "ready"
        ]

    def observe(self, event: object) -> None:
        return None


def _live(policy: Policy) -> LiveState:
    ids = itertools.count()
    return LiveState(
        budget=BUDGET, timing=TIMING, frames=125,
        proposer=SinglePolicy(policy, cache=True),
        new_chunk_id=lambda key: f"{key[0]}:{key[1]}/{key[2]}",
        new_job_id=lambda: f"j{next(ids)}", evict_after_s=500.0,
    )  # fmt: skip


def _watch_root(live: LiveState) -> None:
    """Session s0 on m1, its cursor (the root) generated and ready."""
    live.load_memory("m1")
    live.open_session("s0", "m1", f"m1:None/{ROOT}", policy="p", arm="p", now=0.0)
    live.request("m1", None, ROOT, None, request_id="r0", session_id="s0", now=0.0,
                 record_history=False)  # fmt: skip
    live.schedule(0.0)
    job = live.job(f"m1:None/{ROOT}")
    assert job is not None
    live.job_ended(job.job_id, job.chunk_id, "m1", ok=True, now=1.0)


def _finish_speculation(live: LiveState, now: float) -> int:
    """Plan at ``now`` (speculation starts below the cursor), then end every job it started:
    the cursor's children go queued -> generating -> ready. Returns how many ended."""
    live.schedule(now)
    jobs = [j for j in live.running() if j.kind == "speculative"]
    for job in jobs:
        live.job_ended(job.job_id, job.chunk_id, job.memory_id, ok=True, now=now + 1.0)
    return len(jobs)


def test_a_children_free_policy_is_not_asked_again_when_only_children_change() -> None:
    live = _live(make_policy("uniform", {"k": 3}))
    _watch_root(live)
    live.prepare(2.0)
    asked = live.proposals.asked
    assert _finish_speculation(live, 3.0) == 3
    live.prepare(5.0)  # its children are ready now; nothing it reads moved
    assert live.proposals.asked == asked


def test_a_policy_reading_children_is_asked_again_and_its_new_answer_used() -> None:
    policy = NotReadyChildren()
    live = _live(policy)
    _watch_root(live)
    first = live.prepare(2.0)
    assert {p.path for p in first.proposals} == {("w",), ("left",), ("right",)}
    assert _finish_speculation(live, 3.0) == 3
    again = live.prepare(5.0)
    assert policy.seen[-1] == {"w": "ready", "left": "ready", "right": "ready"}
    assert again.proposals == ()  # the fresh answer, not the cached one


def test_children_free_reads_the_builtins_and_assumes_an_operators_policy_reads_them() -> None:
    for name in ("none", "uniform", "markov", "lookahead"):
        assert children_free(make_policy(name))
    assert children_free(make_policy("oracle", {"future": {"s0": ["w"]}}))
    assert not children_free(NotReadyChildren())  # type: ignore[arg-type]
    # lookahead hands the children only to a base that offers no full distribution.
    assert not children_free(LookaheadPolicy(base=NotReadyChildren()))  # type: ignore[arg-type]
    assert children_free(LookaheadPolicy(base=UniformPolicy()))
