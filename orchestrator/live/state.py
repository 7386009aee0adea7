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

``LiveState`` holds the fields, the memories and sessions and the introspection; it inherits
request resolution from ``requests``, job outcomes from ``outcomes`` and planning from
``planning`` (over the change record of ``changes``).

Invariants (property-tested in ``tests/unit/live``): a chunk key has at most one node per memory;
a node is ``running`` iff a job generates it and ``pending`` iff a demand waits for it; no job
or demand for a ready chunk; running jobs never exceed the pool once the shell has carried out a
plan; every waiting request is answered exactly once by a ``job_ended``; the bucket stays within
``[0, burst_gpu_s]``; state is bounded by the live sessions (evicted memories hold nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from orchestrator.core.gpu_time import GpuTimeEstimate
from orchestrator.core.roster import Roster
from orchestrator.core.tree import Key
from orchestrator.core.types import (
    BucketState,
    Budget,
    DemandRequest,
    NodeState,
    SessionView,
    Timing,
)
from orchestrator.live.build import builder
from orchestrator.live.changes import LiveSession, _Memory
from orchestrator.live.outcomes import Outcomes
from orchestrator.live.planning import Planner
from orchestrator.live.proposals import ProposalCache, Proposer
from orchestrator.live.records import LiveJob, Producer, UnknownMemory
from orchestrator.live.tree import KnownNode, KnownTree, LiveLookup
from orchestrator.live.upkeep import allow_all
from orchestrator.live.viewers import ThinkStats, gone_after_s, think_estimate

_session_view = builder(SessionView)  # per request and answer (``_set_viewer``)


class LiveState(Outcomes, Planner):
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
