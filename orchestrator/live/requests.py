"""Request resolution of the live state: a chunk request becomes a hit, an in-flight hit or a
miss (``LiveState`` inherits it; see ``state``).

Split from ``state`` to keep each module about one thing: this module answers ``request`` (and
the start-up ``resume``) from the known tree, the running jobs and the queued demands, moves the
session's cursor and feeds its policy the action; ``state`` holds the fields, the memories and
sessions, and ``outcomes`` takes the jobs' results back.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.core.budget import refill, refund
from orchestrator.core.tree import Key
from orchestrator.core.types import ActionObserved, BucketState, DemandRequest, Timing
from orchestrator.live.build import builder
from orchestrator.live.changes import Changes, LiveSession, _Memory
from orchestrator.live.records import Claim, LiveJob, ParentNotReady, Resolution
from orchestrator.live.tree import KnownNode, known_node
from orchestrator.live.viewers import ThinkStats, think_observation

_demand_request = builder(DemandRequest)  # per miss
_resolution = builder(Resolution)  # per request


class Requests(Changes):
    """Request resolution over the live state's fields (declared here, set by
    ``LiveState.__init__``)."""

    timing: Timing
    new_chunk_id: Callable[[Key], str]
    bucket: BucketState
    think_all: ThinkStats
    _job_changes: dict[str, LiveJob | None]
    _demand_seq: int
    _waiting: dict[str, list[tuple[str, str | None]]]
    _pending_refund: float

    def _memory(self, memory_id: str) -> _Memory:
        raise NotImplementedError  # LiveState's

    def node(self, memory_id: str, chunk_id: str | None) -> KnownNode | None:
        raise NotImplementedError  # LiveState's

    def _set_viewer(
        self, s: LiveSession, *, served: bool, at: float | None = None,
        cursor: str | None = None, history: tuple[str, ...] | None = None,
    ) -> None:  # fmt: skip
        raise NotImplementedError  # LiveState's

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
