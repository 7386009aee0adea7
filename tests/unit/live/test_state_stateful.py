"""The live state driven at random (Hypothesis ``RuleBasedStateMachine``).

Viewers on two shared memories open sessions, request children of their cursors (hits,
in-flight hits promoted to demand, misses), the machine schedules, jobs finish, fail or report
late, sessions leave and are evicted, and the clock advances. After every step the live state's
invariants hold, and every plan made from the live state's neighbourhood input equals the plan
made from the whole known tree (the shortcut never changes a decision). Issue 11: a viewer silent
for ``gone_after_gaps`` of their own gaps gets no speculation and keeps none running; a guess
whose chunk is requested gives its whole charge back to the bucket, exactly once.

``prepare`` looks only at what moved since the last one (``orchestrator.live.upkeep``): every
input it makes must equal the one ``prepare(full=True)`` makes at the same moment by visiting
every session, job and demand (what every prepare did before), its evictions and next idle time
those of a pass over every session. Policies run both time-free (cached) and asked every plan,
under the default speculation gate and a custom one that viewers move in and out of, and the
operator reconfigures the budget.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from orchestrator.core.budget import refill, refund, speculative_slot_cap
from orchestrator.core.frontier import idle_after_s, is_idle
from orchestrator.core.plan import plan
from orchestrator.core.poses import action_to_pose
from orchestrator.core.tree import TreeIndex
from orchestrator.core.types import Budget, PlanInput, Timing
from orchestrator.core.votes import VoteIndex
from orchestrator.live import LiveState, SinglePolicy
from orchestrator.live.tree import core_nodes
from policies import make_policy

ACTS = ("w", "a", "d", "w+right")
POSE = {a: str(action_to_pose(a)) for a in ACTS}
ROOT = str(action_to_pose("w"))
BUDGET = Budget(
    max_containers=3, speculative_share=0.67, rate_gpu_s_per_s=1.0, burst_gpu_s=40.0,
    max_depth=2, per_session_inflight=2, min_probability=0.05, idle_timeout_s=30.0,
    min_benefit_per_gpu_s=0.0, gone_after_gaps=1.5,
)  # fmt: skip
TIMING = Timing(gpu_s_per_chunk=8.0, chunk_duration_s=5.0, think_s=10.0)


class LiveMachine(RuleBasedStateMachine):
    """Drives one LiveState; ``answered`` / ``waiting`` track every waiting request."""

    @initialize(policy=st.sampled_from(["uniform", "markov", "lookahead"]),
                cached=st.booleans(), gated=st.booleans())  # fmt: skip
    def setup(self, policy: str, cached: bool, gated: bool) -> None:
        ids = itertools.count()
        # cached False: the policy counts as reading the time, so it is asked every plan.
        self.live = LiveState(
            budget=BUDGET, timing=TIMING, frames=125,
            proposer=SinglePolicy(make_policy(policy), cache=cached),
            new_chunk_id=lambda key: f"{key[0]}:{key[1]}/{key[2]}",
            new_job_id=lambda: f"j{next(ids)}", evict_after_s=200.0,
        )  # fmt: skip
        self.blocked: set[str] = set()  # sessions the custom speculation gate refuses
        self.gated, self.cached = gated, cached
        if gated:
            self.live.speculation_allowed = lambda sid: sid not in self.blocked
        self.budget = BUDGET
        self.now = 0.0
        self.requests = itertools.count()
        self.waiting: set[str] = set()
        self.answered: set[str] = set()
        self.stale_jobs: list[tuple[str, str, str]] = []  # (job, chunk, memory) cancelled
        self.sessions = 0

    # ---- viewers ----------------------------------------------------------------------------

    @rule(memory=st.sampled_from(["m1", "m2"]))
    def open_session(self, memory: str) -> None:
        if not self.live.has_memory(memory):
            self.live.load_memory(memory)
        sid = f"s{self.sessions}"
        self.sessions += 1
        root = f"{memory}:None/{ROOT}"
        self.live.open_session(sid, memory, root, policy="p", arm="p", now=self.now)
        self._request(sid, memory, None, ROOT, None)

    def _request(self, sid: str, memory: str, parent: str | None, pose: str,
                 action: str | None) -> None:  # fmt: skip
        rid = f"r{next(self.requests)}"
        tree = self.live.tree(memory)
        target = tree.by_key((memory, parent, pose)) if tree is not None else None
        charge = 0.0  # what this request should give back: a guess's charge, at first use
        if target is not None and (job := self.live.job(target.chunk_id)) is not None:
            charge = job.charged_gpu_s
        elif target is not None and (made := self.live.producer(memory, target.chunk_id)):
            charge = made.charged_gpu_s if not made.used else 0.0
        before = self.live.bucket
        res = self.live.request(memory, parent, pose, action, request_id=rid, session_id=sid,
                                now=self.now, record_history=action is not None)  # fmt: skip
        if charge > 0.0:
            assert self.live.bucket == refund(
                refill(before, self.budget, self.now), self.budget, charge
            )
        else:
            assert self.live.bucket == before
        node = self.live.node(memory, res.chunk_id)
        assert node is not None
        if res.outcome == "hit":
            assert node.state == "ready"
        else:
            assert node.state in ("running", "pending")
            self.waiting.add(rid)
        session = self.live.session(sid)
        assert session is not None and session.view.cursor_chunk_id == res.chunk_id

    @rule(data=st.data(), action=st.sampled_from(ACTS))
    def step(self, data: st.DataObject, action: str) -> None:
        ready = [s for s in self.live.sessions() if not s.ended and self._cursor_ready(s)]
        if not ready:
            return
        s = data.draw(st.sampled_from(sorted(ready, key=lambda s: s.view.session_id)))
        v = s.view
        self._request(v.session_id, v.memory_id, v.cursor_chunk_id, POSE[action], action)

    def _cursor_ready(self, s: object) -> bool:
        v = s.view  # type: ignore[attr-defined]
        node = self.live.node(v.memory_id, v.cursor_chunk_id)
        return node is not None and node.state == "ready"

    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        live = sorted(s.view.session_id for s in self.live.sessions() if not s.ended)
        if live:
            self.live.close_session(data.draw(st.sampled_from(live)))

    @rule(dt=st.floats(0.5, 60.0))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(dt=st.floats(0.0, 40.0))
    def look(self, dt: float) -> None:
        """Time passes and the shell prepares without carrying the plan out (a plan in a worker
        thread, or one that changed nothing): idle deadlines pass with nothing else moving."""
        self.now += dt
        asked = self.live.proposals.asked
        self._same_as_visiting_everything(self.live.prepare(self.now), asked)
        self._evicted_as_a_full_pass_would()

    @precondition(lambda self: self.gated)
    @rule(data=st.data())
    def gate(self, data: st.DataObject) -> None:
        """A viewer near its GPU cap loses speculation (or gets it back): only the gate knows."""
        ids = sorted(s.view.session_id for s in self.live.sessions())
        if ids:
            self.blocked ^= {data.draw(st.sampled_from(ids))}

    @rule(idle=st.sampled_from([10.0, 30.0, 90.0]), depth=st.sampled_from([1, 2]))
    def reconfigure(self, idle: float, depth: int) -> None:
        self.budget = replace(self.budget, idle_timeout_s=idle, max_depth=depth)
        self.live.configure(budget=self.budget)

    # ---- scheduling and jobs ----------------------------------------------------------------

    @rule()
    def schedule(self) -> None:
        asked = self.live.proposals.asked
        inp = self.live.prepare(self.now)
        self._evicted_as_a_full_pass_would()
        self._same_as_visiting_everything(inp, asked)
        everything = [n for m in ("m1", "m2") if (t := self.live.tree(m)) for n in t]
        # The plain path: the whole known tree as a snapshot, no vote index, no lookups into
        # the live trees, no roster; each shortcut alone must not change the plan either.
        whole = replace(inp, nodes=core_nodes(everything), votes=None, lookup=None, roster=None)
        assert inp.roster is not None and inp.roster.matches(inp)
        assert inp.lookup is not None
        want = plan(whole)
        assert plan(inp) == want
        assert plan(replace(inp, votes=None)) == want
        assert plan(replace(inp, lookup=None, roster=None)) == want
        assert plan(replace(whole, roster=inp.roster)) == want
        # The incremental vote index holds what resolving every proposal afresh gives.
        assert inp.votes is not None and inp.votes.fits(inp)
        fresh = TreeIndex(whole.nodes)
        afresh = VoteIndex.of(whole, fresh.node, lambda k: fresh.by_key(*k))
        assert inp.votes.contents() == afresh.contents()
        scheduled = self.live.apply(plan(inp), self.now)
        assert scheduled.stale == 0
        views = {v.session_id: v for v in inp.sessions}
        for st_ in scheduled.starts:
            if st_.job.kind == "speculative":
                assert st_.job.session_id is not None
                assert not is_idle(views[st_.job.session_id], self.now, self.budget)  # not gone
        self._speculation_only_for_present_viewers()
        for c in scheduled.cancels:
            self.stale_jobs.append((c.job_id, c.chunk_id, c.memory_id))
        jobs = list(self.live.running())
        assert len(jobs) <= BUDGET.max_containers
        assert sum(j.kind == "speculative" for j in jobs) <= speculative_slot_cap(BUDGET)

    def _same_as_visiting_everything(self, inp: PlanInput, asked_before: int) -> None:
        """The input prepare made from what moved equals the one made by visiting everything
        (``full=True``) at the same moment, and so do the next idle time and the plan."""
        assert inp.votes is not None
        votes, wake = inp.votes.contents(), self.live.next_wake()
        idle_at = min((t for s in self.live.sessions()
                       if self.now <= (t := s.view.last_active_at
                                       + idle_after_s(s.view, self.budget))),
                      default=float("inf"))  # fmt: skip
        asked = self.live.proposals.asked
        again = self.live.prepare(self.now, full=True)
        # Visiting everything asks the policies nothing more (a time-free one: every signature
        # is as the last prepare left it), or exactly what it asks every plan (one reading time).
        again_asked = self.live.proposals.asked - asked
        assert again_asked == (0 if self.cached else asked - asked_before)
        assert again.votes is inp.votes and inp.votes.contents() == votes
        assert set(again.nodes) == set(inp.nodes) and len(again.nodes) == len(inp.nodes)
        assert again.sessions == inp.sessions
        assert again.proposals == inp.proposals
        assert again.jobs == inp.jobs and again.demands == inp.demands
        assert self.live.next_wake() == wake
        assert self.live._next_idle_at == idle_at
        assert plan(again) == plan(inp)

    def _evicted_as_a_full_pass_would(self) -> None:
        """No session left that the eviction rule takes, no memory left holding nothing."""
        idle_s = self.budget.idle_timeout_s
        for s in self.live.sessions():
            quiet = self.now - s.view.last_active_at
            assert not (s.waiting == 0 and quiet > idle_s and (s.ended or quiet > 200.0)), s
        busy = {j.memory_id for j in self.live.running()}
        busy.update(d.memory_id for d in self.live.demands())
        for memory in ("m1", "m2"):
            if self.live.has_memory(memory):
                assert memory in busy or any(
                    s.view.memory_id == memory for s in self.live.sessions()
                ), memory

    def _speculation_only_for_present_viewers(self) -> None:
        """Every speculative job left running lies in the subtree (to max_depth) of the cursor
        of a session that is neither idle nor gone."""
        present = [
            s.view for s in self.live.sessions() if not is_idle(s.view, self.now, self.budget)
        ]
        for job in self.live.running():
            if job.kind != "speculative":
                continue
            tree = self.live.tree(job.memory_id)
            assert tree is not None
            chain = {n.chunk_id for n in tree.ancestors(job.chunk_id, self.budget.max_depth)}
            assert any(v.memory_id == job.memory_id and v.cursor_chunk_id in chain
                       for v in present), job  # fmt: skip

    @precondition(lambda self: any(True for _ in self.live.running()))
    @rule(data=st.data(), ok=st.booleans())
    def end_job(self, data: st.DataObject, ok: bool) -> None:
        jobs = sorted(self.live.running(), key=lambda j: j.job_id)
        job = data.draw(st.sampled_from(jobs))
        ended = self.live.job_ended(job.job_id, job.chunk_id, job.memory_id, ok=ok,
                                    now=self.now, gpu_s=8.0)  # fmt: skip
        assert ended.state == ("ready" if ok else "failed")
        self._answered(ended.requests)

    @precondition(lambda self: bool(self.stale_jobs))
    @rule(ok=st.booleans())
    def late_report(self, ok: bool) -> None:
        job_id, chunk_id, memory_id = self.stale_jobs.pop(0)
        ended = self.live.job_ended(job_id, chunk_id, memory_id, ok=ok, now=self.now)
        self._answered(ended.requests)

    def _answered(self, requests: tuple[str, ...]) -> None:
        for rid in requests:
            assert rid in self.waiting and rid not in self.answered
            self.waiting.discard(rid)
            self.answered.add(rid)

    # ---- invariants -------------------------------------------------------------------------

    @invariant()
    def nodes_agree_with_jobs_and_demands(self) -> None:
        running = {j.chunk_id for j in self.live.running()}
        demanded = {d.request_id.partition("/")[2] for d in self.live.demands()}
        for memory in ("m1", "m2"):
            tree = self.live.tree(memory)
            if tree is None:
                continue
            keys = [n.key for n in tree]
            assert len(keys) == len(set(keys))
            for n in tree:
                assert (n.state == "running") == (n.chunk_id in running), n
                assert (n.state == "pending") == (n.chunk_id in demanded), n
        assert not running & demanded

    @invariant()
    def waiting_requests_are_counted(self) -> None:
        assert self.live.waiting_requests() == len(self.waiting)

    @invariant()
    def viewer_models_are_set(self) -> None:
        for s in self.live.sessions():
            think = s.view.think_s
            assert think is not None and think >= 0.0
            # A session waiting for a chunk is never gone; a watching one has a gone time.
            assert (s.view.idle_after_s is None) == (s.waiting > 0)
            if s.view.idle_after_s is not None:
                gap = TIMING.chunk_duration_s + think
                assert abs(s.view.idle_after_s - BUDGET.gone_after_gaps * gap) < 1e-9
        for j in self.live.running():
            if j.kind == "demand":
                assert j.charged_gpu_s == 0.0  # promoted guesses were refunded

    @invariant()
    def bucket_within_bounds(self) -> None:
        assert 0.0 <= self.live.bucket.tokens <= BUDGET.burst_gpu_s + 1e-9

    @invariant()
    def evicted_memories_hold_nothing(self) -> None:
        size = self.live.size()
        assert size["sessions"] == sum(1 for _ in self.live.sessions())
        assert size["proposal_cache"] <= size["sessions"]


TestLiveState = LiveMachine.TestCase
TestLiveState.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
