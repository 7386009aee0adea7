"""A model world driven at random through plan() (Hypothesis stateful testing).

The machine keeps a few memories with chunk trees, sessions that move their cursors to random
children (hits, in-flight hits promoted to demand, misses queued as demands), proposals drawn
from a seeded generator, jobs that finish or fail at random and a clock that advances. After
every plan() it applies the plan as the shell would and checks the core's invariants
(DESIGN.md, "The decision core").
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import TypeVar

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from orchestrator.core.budget import speculative_slot_cap
from orchestrator.core.plan import plan
from orchestrator.core.poses import action_to_pose
from orchestrator.core.types import (
    BucketState,
    Budget,
    DemandRequest,
    NodeState,
    Plan,
    PlanInput,
    Proposal,
    RunningJob,
    SessionView,
    Timing,
    TreeNode,
)

ACTS = ("w", "a", "d", "w+right")
POSE = {a: str(action_to_pose(a)) for a in ACTS}
ACTION_OF = {p: a for a, p in POSE.items()}
SESSIONS = {"s1": "m1", "s2": "m1", "s3": "m2", "s4": "m2"}  # viewers share memories
BUDGET = Budget(
    max_containers=3,
    speculative_share=0.67,  # cap 2
    rate_gpu_s_per_s=1.0,
    burst_gpu_s=40.0,
    max_depth=2,
    per_session_inflight=2,
    min_probability=0.05,
    idle_timeout_s=30.0,
)
TIMING = Timing(gpu_s_per_chunk=8.0, chunk_duration_s=5.0, think_s=10.0)

Key = tuple[str, str | None, str]
X = TypeVar("X")


def chunk_id(parent: str, action: str) -> str:
    """One id per chunk key, as the database's unique key gives; ids are action paths."""
    return f"{parent}/{action}"


def shuffled(rnd: random.Random, xs: tuple[X, ...]) -> tuple[X, ...]:
    ys = list(xs)
    rnd.shuffle(ys)
    return tuple(ys)


class World(RuleBasedStateMachine):
    """The model: plain dicts the rules mutate, turned into a PlanInput on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.nodes: dict[str, TreeNode] = {}
        self.jobs: dict[str, RunningJob] = {}
        self.demands: dict[str, DemandRequest] = {}
        self.sessions: dict[str, SessionView] = {}
        self.bucket = BucketState(BUDGET.burst_gpu_s, 0.0)
        self.live: set[Key] = set()  # started keys whose node is running or ready
        self.counter = 0
        self.last_plan: Plan | None = None

    @initialize()
    def setup(self) -> None:
        for mem in ("m1", "m2"):
            root = f"{mem}:r"
            self.nodes[root] = TreeNode(root, mem, None, POSE["w"], "w", "ready", 0, 0.0)
            self.live.add((mem, None, POSE["w"]))
        for sid, mem in SESSIONS.items():
            self.sessions[sid] = SessionView(sid, mem, f"{mem}:r", 0.0, 0.0)

    # ---- the world moves -----------------------------------------------------------------

    @rule(dt=st.one_of(st.floats(0.1, 5.0), st.floats(20.0, 60.0)))
    def advance(self, dt: float) -> None:
        self.last_plan = None  # the subtree check holds right after a plan, not as time passes
        self.now += dt

    @rule(sid=st.sampled_from(sorted(SESSIONS)))
    def heartbeat(self, sid: str) -> None:
        self.last_plan = None
        self.sessions[sid] = replace(self.sessions[sid], last_active_at=self.now)

    @rule(pick=st.integers(0, 10), outcome=st.sampled_from(("ready", "failed", "busy", "busy")))
    def job_ends(self, pick: int, outcome: str) -> None:
        self.last_plan = None
        if not self.jobs or outcome == "busy":
            return  # busy: keeps jobs running longer, so demands meet a full pool
        ok = outcome == "ready"
        jid = sorted(self.jobs)[pick % len(self.jobs)]
        job = self.jobs.pop(jid)
        state: NodeState = "ready" if ok else "failed"
        self.nodes[job.chunk_id] = replace(
            self.nodes[job.chunk_id], state=state, ready_at=self.now if ok else None
        )
        if not ok:
            self.live.discard((job.memory_id, job.parent_id, job.pose))
        for sid, s in self.sessions.items():
            if ok and s.cursor_chunk_id == job.chunk_id:
                self.sessions[sid] = replace(s, watch_started_at=self.now)

    @rule(sid=st.sampled_from(sorted(SESSIONS)), action=st.sampled_from(ACTS))
    def viewer_picks(self, sid: str, action: str) -> None:
        self.last_plan = None
        s = self.sessions[sid]
        cursor = self.nodes.get(s.cursor_chunk_id)
        if cursor is None or cursor.state != "ready":
            return  # still waiting for the cursor chunk
        cid = chunk_id(cursor.chunk_id, action)
        child = self.nodes.get(cid)
        if child is not None and child.state == "running":
            for jid, j in self.jobs.items():
                if j.chunk_id == cid:
                    self.jobs[jid] = replace(j, kind="demand")  # in-flight hit
        elif (child is None or child.state == "failed") and cid not in self.demands:
            self.demands[cid] = DemandRequest(
                cid, s.memory_id, cursor.chunk_id, POSE[action], action, sid, self.now
            )
        self.sessions[sid] = replace(
            s,
            cursor_chunk_id=cid,
            watch_started_at=self.now,
            last_active_at=self.now,
            history=(*s.history, action),
        )

    # ---- planning ------------------------------------------------------------------------

    def proposals(self, seed: int) -> tuple[Proposal, ...]:
        out: list[Proposal] = []
        for sid, s in sorted(self.sessions.items()):  # idle ones too: the core must ignore them
            rnd = random.Random(f"{seed}:{sid}:{s.cursor_chunk_id}")
            firsts = rnd.sample(ACTS, rnd.randint(0, 3))
            weights = [rnd.random() + 0.01 for _ in firsts]
            mass = rnd.uniform(0.5, 1.0)
            for a, wt in zip(firsts, weights, strict=True):
                p = mass * wt / sum(weights)
                out.append(Proposal(sid, (a,), p))
                if rnd.random() < 0.6:
                    out.append(Proposal(sid, (a, rnd.choice(ACTS)), p * rnd.random()))
        return tuple(out)

    def plan_input(self, seed: int) -> PlanInput:
        return PlanInput(
            now=self.now,
            nodes=tuple(self.nodes.values()),
            sessions=tuple(self.sessions.values()),
            jobs=tuple(self.jobs.values()),
            demands=tuple(self.demands.values()),
            proposals=self.proposals(seed),
            budget=BUDGET,
            bucket=self.bucket,
            timing=TIMING,
        )

    @rule(seed=st.integers(0, 2**16), rnd=st.randoms(use_true_random=False))
    def schedule(self, seed: int, rnd: random.Random) -> None:
        inp = self.plan_input(seed)
        p = plan(inp)
        assert plan(inp) == p
        other = replace(
            inp,
            nodes=shuffled(rnd, inp.nodes),
            sessions=shuffled(rnd, inp.sessions),
            jobs=shuffled(rnd, inp.jobs),
            demands=shuffled(rnd, inp.demands),
            proposals=shuffled(rnd, inp.proposals),
        )
        assert plan(other) == p
        for what in sorted({s.kind for s in p.starts} | {c.reason for c in p.cancels}):
            event(what)
        if self.demands and len(self.demands) > sum(s.kind == "demand" for s in p.starts):
            event("demand waits")
        self.apply(p)
        self.check_demands_served()

    def apply(self, p: Plan) -> None:
        kinds = [s.kind for s in p.starts]
        assert kinds == sorted(kinds, key=lambda k: k != "demand"), "demand starts come first"
        self.check_bucket(p)
        for c in p.cancels:
            job = self.jobs.pop(c.job_id)
            assert job.kind == "speculative", "demand jobs are never cancelled"
            self.nodes[job.chunk_id] = replace(self.nodes[job.chunk_id], state="failed")
            self.live.discard((job.memory_id, job.parent_id, job.pose))
        for s in p.starts:
            assert s.parent_id is not None
            parent = self.nodes.get(s.parent_id)
            assert parent is not None and parent.state == "ready", "parent must be ready"
            key = (s.memory_id, s.parent_id, s.pose)
            assert key not in self.live, f"chunk key generated twice: {key}"
            self.live.add(key)
            cid = chunk_id(s.parent_id, ACTION_OF[s.pose])
            self.counter += 1
            jid = f"j{self.counter:05d}"
            self.jobs[jid] = RunningJob(
                jid,
                cid,
                s.memory_id,
                s.parent_id,
                s.pose,
                s.kind,
                self.now,
                s.expected_gpu_s,
                s.probability,
                s.session_id,
                s.depth,
                s.charged_gpu_s,
            )
            self.nodes[cid] = TreeNode(
                cid, s.memory_id, s.parent_id, s.pose, s.action, "running", parent.depth + 1
            )
            if s.kind == "demand":
                assert s.request_id is not None
                del self.demands[s.request_id]
            else:
                assert s.probability >= BUDGET.min_probability and s.depth <= BUDGET.max_depth
        self.bucket = p.bucket
        self.last_plan = p

    def check_bucket(self, p: Plan) -> None:
        """Refill, then each cancelled job's unspent charge back (capped at burst), then each
        speculative start's charge: the bucket the plan returns, computed independently."""
        tokens = self.bucket.tokens
        tokens = min(
            BUDGET.burst_gpu_s,
            tokens + BUDGET.rate_gpu_s_per_s * max(0.0, self.now - self.bucket.updated_at),
        )
        for c in p.cancels:
            job = self.jobs[c.job_id]
            ran = max(0.0, self.now - job.started_at)
            tokens = min(BUDGET.burst_gpu_s, tokens + max(0.0, job.charge - ran))
            if c.reason != "abandoned":
                event(f"refund on {c.reason}")
        for s in p.starts:
            if s.kind == "speculative":
                # charged what it runs before the viewer chooses, at most its whole E
                assert 0.0 < s.charged_gpu_s <= s.expected_gpu_s + 1e-9
                tokens -= s.charged_gpu_s
            else:
                assert s.charged_gpu_s == 0.0
        assert p.bucket.tokens == pytest.approx(tokens, abs=1e-9)

    def check_demands_served(self) -> None:
        if self.demands:
            free = BUDGET.max_containers - len(self.jobs)
            spec = [j for j in self.jobs.values() if j.kind == "speculative"]
            assert free <= 0 and not spec, "a demand waits while a slot could be had"

    # ---- invariants ----------------------------------------------------------------------

    @invariant()
    def slots_bounded(self) -> None:
        assert len(self.jobs) <= BUDGET.max_containers
        spec = sum(j.kind == "speculative" for j in self.jobs.values())
        assert spec <= speculative_slot_cap(BUDGET)
        per_session: dict[str | None, int] = {}
        for j in self.jobs.values():
            if j.kind == "speculative":
                per_session[j.session_id] = per_session.get(j.session_id, 0) + 1
        assert all(n <= BUDGET.per_session_inflight for n in per_session.values())

    @invariant()
    def bucket_bounded(self) -> None:
        assert 0.0 <= self.bucket.tokens <= BUDGET.burst_gpu_s

    @invariant()
    def speculation_stays_near_active_cursors(self) -> None:
        if self.last_plan is None:
            return
        cursors = [
            s.cursor_chunk_id
            for s in self.sessions.values()
            if self.now - s.last_active_at <= BUDGET.idle_timeout_s
        ]
        for j in self.jobs.values():
            if j.kind != "speculative":
                continue
            assert any(
                j.chunk_id == c
                or (
                    j.chunk_id.startswith(c + "/")
                    and j.chunk_id[len(c) + 1 :].count("/") < BUDGET.max_depth
                )
                for c in cursors
            ), f"speculative job {j.chunk_id} outside every active subtree"

    @invariant()
    def live_matches_nodes(self) -> None:
        states = {(n.memory_id, n.parent_id, n.pose): n.state for n in self.nodes.values()}
        assert self.live == {k for k, st_ in states.items() if st_ != "failed"}


TestWorld = World.TestCase
TestWorld.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)
