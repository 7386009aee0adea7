"""The live state: one synchronous state machine for the service and the simulator.

It holds what the orchestrator knows right now (DESIGN.md, "The decision core and the live
state"): live sessions and their cursors, the known part of each live memory's chunk tree, queued
demands, running jobs and the speculation token bucket. No asyncio, no database, no clock: every
method takes ``now`` (seconds on the caller's clock) and returns plain values
(``orchestrator.live.records``) that the shell carries out. Driven like vLLM's v1 scheduler:

- ``request(...) -> Resolution``: resolve one chunk request (hit / in-flight hit / miss), move
  the session's cursor, feed the policies the action;
- ``schedule(now) -> Scheduled`` = ``apply(plan(prepare(now)), now)``: build the core's input from
  the neighbourhoods that can change a plan and apply the core's decision to the state; a shell
  may run the pure ``plan()`` elsewhere (a thread) and ``apply`` validates each action against
  the state as it is then;
- ``job_ended(...) -> Ended``: take a job's outcome back; ``open_session`` / ``close_session``
  take session events. Ended sessions and cold memories are evicted by ``prepare``.

Invariants (property-tested in ``tests/unit/live``): a chunk key has at most one node per memory;
a node is ``running`` iff a job generates it and ``pending`` iff a demand waits for it; no job
or demand for a ready chunk; running jobs never exceed the pool once the shell has carried out a
plan; every waiting request is answered exactly once by a ``job_ended``; the bucket stays within
``[0, burst_gpu_s]``; state is bounded by the live sessions (evicted memories hold nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from orchestrator.core.budget import refill, refund
from orchestrator.core.gpu_time import GpuTimeEstimate, expected_times, observe
from orchestrator.core.roster import Roster
from orchestrator.core.tree import Key
from orchestrator.core.types import (
    ActionObserved,
    BucketState,
    Budget,
    DemandRequest,
    JobKind,
    NodeState,
    SessionView,
    Timing,
)
from orchestrator.live.build import builder
from orchestrator.live.changes import LiveSession, _Memory
from orchestrator.live.planning import Planner
from orchestrator.live.proposals import ProposalCache, Proposer
from orchestrator.live.records import (
    Claim,
    Ended,
    LiveJob,
    ParentNotReady,
    Producer,
    Resolution,
    UnknownMemory,
)
from orchestrator.live.tree import KnownNode, KnownTree, LiveLookup, known_node
from orchestrator.live.upkeep import allow_all
from orchestrator.live.viewers import (
    ThinkStats,
    gone_after_s,
    think_estimate,
    think_observation,
)

_session_view = builder(SessionView)  # per request and answer (``_set_viewer``)
_demand_request = builder(DemandRequest)  # per miss
_resolution = builder(Resolution)  # per request
_ended = builder(Ended)  # per job end


class LiveState(Planner):
    """The orchestrator's in-memory state machine (see the module docstring).

    Args:
        budget: operator limits (``Budget.max_containers`` is the pool's slot count).
        timing: the regime estimate candidates are valued with; ``gpu_s_per_chunk`` and
            ``cold_start_s`` are the priors of G and of the cold start when ``learn_gpu_time``,
            and ``think_s`` the prior of every viewer's think time (``live.viewers``).
        frames: frames per chunk of the generation profile.
        proposer: the policies (``PolicyHost`` in the service, ``SinglePolicy`` in the simulator).
        new_chunk_id: the id a new chunk key gets (``uuid4`` text in the service; a hash of the
            key in the simulator, so every policy sees the same world).
        new_job_id: the id of a new job.
        seed: ``PolicyContext.seed``.
        learn_gpu_time: value candidates with G (and the cold start) learned from finished
            jobs, per generation profile (``core.gpu_time``: an exponentially weighted mean of
            each profile's GPU-seconds; until a profile has a sample its prior holds).
        evict_after_s: a session inactive this long (seconds) is evicted even if it never said it
            left; it is loaded again by the shell when it comes back.
        profile_key: the active generation profile (``GenerationProfile.key()``): the G the
            core values candidates with is this profile's (``configure(profile_key=...)``).
    """

    def __init__(
        self,
        *,
        budget: Budget,
        timing: Timing,
        frames: int,
        proposer: Proposer,
        new_chunk_id: Callable[[Key], str],
        new_job_id: Callable[[], str],
        seed: int = 0,
        learn_gpu_time: bool = False,
        evict_after_s: float = 3600.0,
        profile_key: str = "default",
    ) -> None:
        self.budget, self.timing, self.frames = budget, timing, frames
        self.prior_timing = timing  # configured G / cold start / think: the learners' priors
        self.profile_key = profile_key
        self.gpu_times: dict[str, GpuTimeEstimate] = {}  # profile key -> learned times
        self.think_all = ThinkStats()  # every session's observed think times
        self.proposer, self.seed = proposer, seed
        self.new_chunk_id, self.new_job_id = new_chunk_id, new_job_id
        self.learn_gpu_time, self.evict_after_s = learn_gpu_time, evict_after_s
        self.bucket = BucketState(budget.burst_gpu_s, 0.0)
        self.proposals = ProposalCache()
        # Per-session veto on speculation (a user near the daily GPU cap loses it first): a
        # pure predicate of the session id, consulted on every plan.
        self.speculation_allowed: Callable[[str], bool] = allow_all
        self.host_epoch = 0
        self._memories: dict[str, _Memory] = {}
        self._trees: dict[str, KnownTree] = {}  # memory id -> its tree (``LiveLookup``)
        self._chunk_tree: dict[str, KnownTree] = {}  # chunk id -> its tree (``LiveLookup``)
        self._lookup = LiveLookup(self._chunk_tree, self._trees)
        self._roster = Roster()  # sessions and jobs as the core reads them (``PlanInput.roster``)
        # Jobs started, promoted or ended since the last prepare (None: ended): the roster takes
        # them at the next prepare, so a plan running in a worker thread reads a roster that
        # does not change under it (``Planner.prepare``).
        self._job_changes: dict[str, LiveJob | None] = {}
        self._voted: dict[str, tuple[object, object, object]] = {}  # sid -> what it was voted on
        self._sessions: dict[str, LiveSession] = {}
        self._running: dict[str, LiveJob] = {}  # chunk id -> job
        self._job_chunk: dict[str, str] = {}  # job id -> chunk id (running jobs)
        self._demands: dict[str, DemandRequest] = {}  # chunk id -> queued demand
        self._demand_seq = 0
        # session id -> ((cursor, tree version, depth), cursor subtree, cursor children states)
        self._subtrees: dict[str, tuple[tuple[str, int, int], tuple[KnownNode, ...],
                                        dict[str, NodeState]]] = {}  # fmt: skip
        self._dirty = True  # something a plan reads changed since the last one
        self._next_idle_at = float("inf")  # when the next active session goes idle
        self._bucket_at = float("inf")  # when the bucket pays one more job, if it was short
        self.plans_skipped = 0
        self._waiting: dict[str, list[tuple[str, str | None]]] = {}  # chunk -> (request, session)
        self._pending_refund = 0.0  # refunded between prepare() and apply(): apply keeps it
        self._init_changes()  # what moved since the last prepare (``changes``)

    # ---- memories and sessions ---------------------------------------------------------------

    def has_memory(self, memory_id: str) -> bool:
        """True when the memory's tree is loaded."""
        return memory_id in self._memories

    def load_memory(
        self, memory_id: str, nodes: Iterable[tuple[KnownNode, Producer | None]] = ()
    ) -> None:
        """Load a memory's known chunks (parents first), each with the job that made it if ready.

        Already-loaded memories are left as they are (the live state is ahead of the database).
        """
        self._dirty = True
        if memory_id in self._memories:
            return
        tree = self._trees[memory_id] = KnownTree(memory_id, self._chunk_tree, self._tree_moved)
        self._cold.add(memory_id)  # evicted at the next prepare if nobody comes
        mem = self._memories[memory_id] = _Memory(tree)
        for node, producer in nodes:
            mem.tree.put(node)
            if producer is not None and node.state == "ready":
                mem.producers[node.chunk_id] = producer

    def node(self, memory_id: str, chunk_id: str | None) -> KnownNode | None:
        """A known chunk of a loaded memory, or None."""
        mem = self._memories.get(memory_id)
        return mem.tree.get(chunk_id) if mem is not None else None

    def open_session(
        self,
        session_id: str,
        memory_id: str,
        cursor: str,
        *,
        policy: str,
        arm: str,
        now: float,
        history: tuple[str, ...] = (),
    ) -> LiveSession:
        """Register (or re-register) a live session watching ``cursor``.

        Raises:
            UnknownMemory: the memory is not loaded.
        """
        self._dirty = True
        mem = self._memory(memory_id)
        view = SessionView(session_id, memory_id, cursor, now, now, history, policy)
        old = self._sessions.get(session_id)
        live = LiveSession(view, arm, waiting=old.waiting if old else 0)
        if old is not None:
            live.think = old.think  # the same viewer thinks as before
        self._sessions[session_id] = live
        self._entered(session_id)
        self._set_viewer(live, served=False)
        mem.sessions.add(session_id)
        self._bump(mem)
        return live

    def session(self, session_id: str | None) -> LiveSession | None:
        """The live session, or None (unknown, or evicted)."""
        return self._sessions.get(session_id) if session_id is not None else None

    def sessions(self) -> Iterator[LiveSession]:
        """Every live session."""
        return iter(self._sessions.values())

    def set_arm(self, session_id: str, arm: str, policy: str) -> None:
        """Move a session to another arm (configuration reload)."""
        self._dirty = True
        s = self._sessions[session_id]
        s.arm, s.view = arm, replace(s.view, policy=policy)
        self._touch(session_id)

    def close_session(self, session_id: str) -> None:
        """The viewer left: the session is evicted once idle with nothing to wait for."""
        self._dirty = True
        s = self._sessions.get(session_id)
        if s is not None:
            s.ended = True
            self._touch(session_id)

    def configure(
        self, *, budget: Budget | None = None, timing: Timing | None = None,
        profile_key: str | None = None,
    ) -> None:  # fmt: skip
        """New limits, regime estimate (the priors of the learned G and think times) or active
        generation profile for the next plans; every cached proposal is renewed. With
        ``learn_gpu_time`` the new profile's learned G replaces the prior once it has samples."""
        self._dirty = True
        if budget is not None:
            self.budget = budget
        if timing is not None:
            self.prior_timing = self.timing = timing
        if profile_key is not None:
            self.profile_key = profile_key
        self._retime()
        self.host_epoch += 1

    # ---- requests ----------------------------------------------------------------------------

    def request(
        self,
        memory_id: str,
        parent_id: str | None,
        pose: str,
        action: str | None,
        *,
        request_id: str,
        session_id: str | None,
        now: float,
        record_history: bool = True,
    ) -> Resolution:
        """Resolve a request for chunk key (memory, parent, pose) and move the session there.

        ready -> hit; running -> in-flight hit (the job becomes demand); pending -> miss joining
        the queued demand; absent / failed -> miss, a new demand (``claim`` says what to write).
        Unless a hit, the request waits: a later ``job_ended`` names ``request_id``.

        Raises:
            UnknownMemory: the memory is not loaded.
            ParentNotReady: ``parent_id`` is not a ready chunk of the memory.
        """
        self._dirty = True
        mem = self._memory(memory_id)
        parent = mem.tree.get(parent_id)
        if parent_id is not None and (parent is None or parent.state != "ready"):
            raise ParentNotReady(f"chunk {parent_id} is not a ready chunk of {memory_id}")
        node = mem.tree.by_key((memory_id, parent_id, pose))
        session = self._sessions.get(session_id) if session_id is not None else None
        # The Resolution names the session's policy and arm as they are before the move (the
        # move keeps both): built once with them instead of built and replaced.
        policy, arm = (session.view.policy, session.arm) if session is not None else (None, None)
        if node is not None and node.state == "ready":
            res = self._hit(mem, node, now, policy, arm)
        elif node is not None and node.state == "running":
            res = self._inflight(node, now, policy, arm)
        else:
            res = self._miss(mem, node, parent, pose, action, session_id, now, policy, arm)
        if session is not None:
            self._observe_think(session, now)
        if res.outcome != "hit":
            self._waiting.setdefault(res.chunk_id, []).append((request_id, session_id))
            if session is not None:
                session.waiting += 1
        if session is not None:
            history = self._move(session, mem, action if record_history else None)
            self._set_viewer(session, served=res.outcome == "hit", at=now,
                             cursor=res.chunk_id, history=history)  # fmt: skip
        return res

    def _observe_think(self, s: LiveSession, now: float) -> None:
        """One think-time observation when a watching viewer asks for the next chunk."""
        if not s.watching or s.waiting:
            return
        think = think_observation(now - s.view.watch_started_at, self.timing.chunk_duration_s,
                                  self.budget.idle_timeout_s)  # fmt: skip
        if think is not None:
            s.think.add(think)
            self.think_all.add(think)

    def _set_viewer(
        self, s: LiveSession, *, served: bool, at: float | None = None,
        cursor: str | None = None, history: tuple[str, ...] | None = None,
    ) -> None:  # fmt: skip
        """The session's think estimate and gone time into its view (``live.viewers``); a
        session waiting for a chunk is never gone.

        ``at``: the viewer starts watching and is active then (``watch_started_at`` and
        ``last_active_at``); ``cursor`` / ``history``: its new cursor chunk and history. Left
        None, the view's own are kept. One view is built for all of it (a request or an answer
        used to build two or three in turn, each through ``dataclasses.replace``).
        """
        s.watching = served or (s.watching and not s.waiting)
        think = think_estimate(s.think, self.think_all, self.prior_timing.think_s)
        gone = gone_after_s(think, self.timing.chunk_duration_s, self.budget.gone_after_gaps)
        v = s.view
        # Positional, every field named (``tests/unit/live/test_records.py`` fails when
        # SessionView gains one, so that it is not silently reset to its default here).
        s.view = _session_view(
            v.session_id, v.memory_id, v.cursor_chunk_id if cursor is None else cursor,
            v.watch_started_at if at is None else at, v.last_active_at if at is None else at,
            v.history if history is None else history, v.policy, think,
            gone if s.waiting == 0 else None,
        )  # fmt: skip
        self._touched.add(v.session_id)

    def _refund(self, gpu_s: float, now: float) -> None:
        """Give a speculation's charge back to the bucket: its chunk was wanted (not waste)."""
        if gpu_s > 0.0:
            self.bucket = refund(refill(self.bucket, self.budget, now), self.budget, gpu_s)
            self._pending_refund += gpu_s
            self._dirty = True

    def _hit(
        self, mem: _Memory, node: KnownNode, now: float, policy: str | None, arm: str | None
    ) -> Resolution:
        made = mem.producers.get(node.chunk_id)
        spec = made is not None and made.initial_kind == "speculative"
        first_use = spec and made is not None and not made.used
        if made is not None and spec:
            made.used = True
            self._refund(made.charged_gpu_s, now)  # a correct guess is not waste
            made.charged_gpu_s = 0.0
        return _resolution(
            "hit", node.chunk_id, node.depth, made.job_id if made else None,
            made.depth if spec and made else None, made.probability if spec and made else None,
            "none", False, first_use, policy, arm,
        )  # fmt: skip

    def _inflight(
        self, node: KnownNode, now: float, policy: str | None, arm: str | None
    ) -> Resolution:
        job = self._running[node.chunk_id]
        promote = job.kind == "speculative"
        job.kind = "demand"  # the planner must never cancel it now
        self._refund(job.charged_gpu_s, now)  # a correct guess is not waste
        job.charged_gpu_s = 0.0
        job.core = None  # its core view changed
        self._job_changes[job.job_id] = job
        spec = job.initial_kind == "speculative"
        return _resolution(
            "inflight", node.chunk_id, node.depth, job.job_id,
            job.depth if spec else None, job.probability if spec else None,
            "none", promote, promote, policy, arm,
        )  # fmt: skip

    def _miss(
        self,
        mem: _Memory,
        node: KnownNode | None,
        parent: KnownNode | None,
        pose: str,
        action: str | None,
        session_id: str | None,
        now: float,
        policy: str | None,
        arm: str | None,
    ) -> Resolution:
        claim: Claim = "none"
        if node is None or node.state == "failed":
            claim = "reclaim" if node is not None else "insert"
            key = (mem.tree.memory_id, parent.chunk_id if parent else None, pose)
            chunk_id = node.chunk_id if node is not None else self.new_chunk_id(key)
            depth = parent.depth + 1 if parent is not None else 0
            node = mem.tree.put(known_node(chunk_id, key[0], key[1], pose, action, "pending",
                                           depth))  # fmt: skip
        if node.chunk_id not in self._demands:
            self._put_demand(self._demand(node, session_id, now), node.chunk_id)
        return _resolution(
            "miss", node.chunk_id, node.depth, None, None, None, claim, False, False, policy, arm
        )

    def _move(self, s: LiveSession, mem: _Memory, action: str | None) -> tuple[str, ...]:
        """Feed the policies the session's ``action`` (None: not recorded); its new history."""
        history = s.view.history
        if action is not None:
            self.proposer.observe(ActionObserved(s.view.session_id, mem.tree.memory_id, history,
                                                 action))  # fmt: skip
            history = (*history, action)
            self._bump(mem)
        return history

    def resume(self, memory_id: str, chunk_id: str, session_id: str | None, now: float) -> bool:
        """Queue a demand for a pending chunk a previous process accepted (start-up recovery).

        Returns False (and changes nothing) unless the chunk is known and pending.
        """
        self._dirty = True
        node = self.node(memory_id, chunk_id)
        if node is None or node.state != "pending":
            return False
        if chunk_id not in self._demands:
            self._put_demand(self._demand(node, session_id, now), chunk_id)
        return True

    def _demand(self, node: KnownNode, session_id: str | None, now: float) -> DemandRequest:
        # The core serves demands FIFO by (requested_at, request_id): numbering them keeps ties
        # in arrival order, whatever ids the shell's chunks have (UUIDs, hashes).
        self._demand_seq += 1
        return _demand_request(
            f"{self._demand_seq:012d}/{node.chunk_id}", node.memory_id, node.parent_id,
            node.pose, node.action, session_id, now,
        )  # fmt: skip

    # ---- outcomes ----------------------------------------------------------------------------

    def job_ended(
        self, job_id: str, chunk_id: str, memory_id: str, *, ok: bool, now: float,
        gpu_s: float | None = None, made_by: str | None = None,
        profile_key: str | None = None, cold_start: bool = False, load_s: float = 0.0,
    ) -> Ended:  # fmt: skip
        """A job finished (``ok``: its chunk is stored and ready) or failed / was stopped.

        A report for a job the state no longer runs (cancelled by a plan) still makes a stored
        chunk ready: its files and row exist. ``gpu_s`` (GPU-seconds it took, the load included
        on a cold start) feeds the learned G of ``profile_key`` (default: the active profile);
        ``cold_start`` and ``load_s`` (``GenerationResult.cold_start``, ``timings["load"]``)
        let the cold start be learned apart (``core.gpu_time.observe``). ``made_by`` is the
        attempt that produced the chunk when the shell retried under new ids (default
        ``job_id``).
        """
        self._dirty = True
        made_by = made_by or job_id
        job = self._running.get(chunk_id)
        current = job is not None and job.job_id == job_id
        mem = self._memories.get(memory_id)
        node = mem.tree.get(chunk_id) if mem is not None else None
        kind: JobKind = job.kind if job is not None and current else "speculative"
        if ok and gpu_s is not None:
            self._learn(gpu_s, profile_key or self.profile_key, cold_start, load_s)
        if mem is None or node is None or (not current and (not ok or node.state == "ready")):
            return _ended(chunk_id, memory_id, "unchanged", (), kind)
        if job is not None and current:
            self._release(job, "ready" if ok else "failed", now)
            if ok:
                used = job.initial_kind == "speculative" and job.kind == "demand"
                mem.producers[chunk_id] = Producer(made_by, job.initial_kind, job.depth,
                                                   job.probability, used,
                                                   job.charged_gpu_s)  # fmt: skip
        elif ok:  # a cancelled job that stored its chunk anyway
            if chunk_id in self._running:
                return _ended(chunk_id, memory_id, "unchanged", (), kind)
            self._take_demand(chunk_id)
            mem.tree.set_state(chunk_id, "ready", now)
            mem.producers[chunk_id] = Producer(made_by, "speculative", None, None, False)
        return _ended(chunk_id, memory_id, "ready" if ok else "failed",
                     self._answer(chunk_id, now), kind)  # fmt: skip

    def _release(self, job: LiveJob, state: str, now: float) -> None:
        del self._running[job.chunk_id]
        self._job_chunk.pop(job.job_id, None)
        self._job_changes[job.job_id] = None
        self._cold.add(job.memory_id)  # perhaps its memory's last job
        tree = self._memories[job.memory_id].tree
        tree.set_state(job.chunk_id, "ready" if state == "ready" else "failed", now)

    def _answer(self, chunk_id: str, now: float) -> tuple[str, ...]:
        answered: list[str] = []
        for request_id, session_id in self._waiting.pop(chunk_id, []):
            answered.append(request_id)
            s = self._sessions.get(session_id) if session_id is not None else None
            if s is not None:
                s.waiting -= 1
                # Watching starts now; so does activity (a long wait must not make them idle).
                self._set_viewer(s, served=s.waiting == 0, at=now)
        return tuple(answered)

    def _learn(self, gpu_s: float, profile_key: str, cold_start: bool, load_s: float) -> None:
        if not self.learn_gpu_time:
            return
        est = self.gpu_times.get(profile_key) or GpuTimeEstimate(profile_key)
        self.gpu_times[profile_key] = observe(est, gpu_s, cold_start=cold_start, load_s=load_s)
        self._retime()

    def _retime(self) -> None:
        """``timing`` = the priors with the active profile's learned G and cold start."""
        if not self.learn_gpu_time:
            return
        prior = self.prior_timing
        g, cold = expected_times(self.gpu_times.get(self.profile_key),
                                 prior_gpu_s=prior.gpu_s_per_chunk,
                                 prior_cold_s=prior.cold_start_s)  # fmt: skip
        self.timing = replace(prior, gpu_s_per_chunk=g, cold_start_s=cold)

    # ---- proposals ahead of a plan -----------------------------------------------------------

    def propose_ahead(self, session_ids: Iterable[str], now: float) -> None:
        """Bring these sessions' cached proposals up to date now, as ``prepare(now)`` would.

        Lets a shell spread the policies' work over several slices (awaiting in between) before
        the ``prepare`` that reads them: a session whose signature did not change since is a
        cache hit there. Unknown ids, and sessions whose policy is not time-free (asked afresh
        by every ``prepare`` anyway), are skipped; nothing else changes.
        """
        for sid in session_ids:
            s = self._sessions.get(sid)
            if s is not None and self.proposer.time_free(s.arm):
                self._propose(s, now)

    # ---- eviction and introspection ----------------------------------------------------------

    def _memory(self, memory_id: str) -> _Memory:
        mem = self._memories.get(memory_id)
        if mem is None:
            raise UnknownMemory(f"memory {memory_id} is not loaded")
        return mem

    def producer(self, memory_id: str, chunk_id: str) -> Producer | None:
        """The job that made ready chunk ``chunk_id``, if known."""
        mem = self._memories.get(memory_id)
        return mem.producers.get(chunk_id) if mem is not None else None

    def running(self) -> Iterator[LiveJob]:
        """Jobs holding a slot."""
        return iter(self._running.values())

    def job(self, chunk_id: str) -> LiveJob | None:
        """The job generating ``chunk_id``, or None."""
        return self._running.get(chunk_id)

    def waiting_requests(self) -> int:
        """Requests waiting for a chunk."""
        return sum(len(w) for w in self._waiting.values())

    def demands(self) -> tuple[DemandRequest, ...]:
        """Queued demands (misses waiting for a slot)."""
        return tuple(self._demands.values())

    def tree(self, memory_id: str) -> KnownTree | None:
        """A loaded memory's known tree."""
        mem = self._memories.get(memory_id)
        return mem.tree if mem is not None else None

    def size(self) -> dict[str, int]:
        """How much the state holds: memories, nodes, sessions, jobs, demands, cached proposals."""
        return {
            "memories": len(self._memories),
            "nodes": sum(len(m.tree) for m in self._memories.values()),
            "sessions": len(self._sessions),
            "jobs": len(self._running),
            "demands": len(self._demands),
            "proposal_cache": len(self.proposals),
        }
