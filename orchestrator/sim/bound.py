"""Honest bounds on speculation: schedules that know every viewer's whole future (seconds).

The ``oracle`` *policy* (``policies.oracle``) runs through the live state like any other: it
proposes only from each session's own cursor, within ``max_depth``, the speculative share of
the slots and the token bucket. On a shared memory that is far from the limit: a chunk a later
viewer will need can be started long before that viewer arrives. The bounds here are computed
over the whole trace instead, outside the live state (they are not policies: no service can run
them):

- ``serial_chain``: the **lower bound**. Unlimited warm slots; every chunk any viewer will ever
  request starts the moment its parent is ready (a chunk needs its parent's last frame), the
  root when the memory's first viewer arrives. Generation times are the world's
  (``GpuPool.generation_s``, the same per chunk for every policy). No schedule has any chunk
  ready earlier, so no viewer's walk can end earlier: each session's total wait (root included)
  is the least possible. (A step's own wait can be smaller elsewhere only because an earlier
  step was slower, which makes that walk longer.)
- ``clairvoyant``: the **honest oracle**. The same knowledge on the regime's real pool: at most
  ``max_containers`` jobs at once (all of them, not just the speculative share), containers
  warm, booting and scaling down as in ``GpuPool`` (cold starts included, billed idle time
  included). Whenever a slot is free it starts, among the needed chunks whose parent is ready,
  the one needed soonest (earliest-need-first list scheduling, non-preemptive), where a chunk's
  need time is projected from each viewer's current position plus their future viewing and
  think times. Two variants are computed and the one with the lower mean wait is kept: one
  boots a container whenever none is warm and idle (more capacity, paid in cold starts), the
  other boots only if no running job frees its container sooner than the boot would take (the
  k-th chunk waiting compares with the k-th container to free up): the first wins when G is of
  the order of a cold start (a100, crowd), the second when G is much shorter (short). Each
  needed chunk is generated exactly once and nothing else is.
- ``arrived_clairvoyant`` (``clairvoyant-arrived``): ``clairvoyant`` that may start a chunk only
  once some viewer who will need it has arrived. It knows each present viewer's whole future
  (deeper than any cursor, across viewers) but nothing of viewers still to come: about what a
  causal scheduler with perfect prediction of the viewers it has could reach (the same list
  heuristic, so a policy may beat it on some traces). The gap between it and ``clairvoyant`` is
  what knowing future arrivals buys (on many-viewer memories, most of it).

What ``clairvoyant`` is not: an optimal schedule. Earliest-need-first list scheduling on
parallel slots with chain precedence is a strong heuristic, not a proof of optimality (an
optimal schedule could hold a slot idle for a later, more urgent chunk, or boot containers
ahead of a burst); it does not pre-boot containers. So it is a bound that no policy is expected
to beat, and ``serial_chain`` is the bound none *can* beat. ``honest_oracle`` picks, by mean
wait, the better of ``clairvoyant`` and the oracle policy's own run, so that a share of "the
oracle's reduction" is never computed against a weaker reference than one we have measured.

Each returns a ``SimResult`` (requests and jobs as the engine records them), so
``orchestrator.sim.metrics.summarize`` reports them like any policy.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.core.poses import ACTION_NAMES, action_to_pose
from orchestrator.sim.pool import GpuPool, chunk_id
from orchestrator.sim.records import JobRecord, RequestRecord, SimResult
from orchestrator.sim.regime import Regime
from orchestrator.sim.trace import SessionTrace, Trace

__all__ = [
    "ARRIVED", "CLAIRVOYANT", "SERIAL_CHAIN", "arrived_clairvoyant", "clairvoyant", "honest_oracle",
    "serial_chain",
]  # fmt: skip

SERIAL_CHAIN = "serial-chain"
CLAIRVOYANT = "clairvoyant"
ARRIVED = "clairvoyant-arrived"
_DONE, _ARRIVE, _REQUEST = 0, 1, 2


@dataclass(slots=True)
class _Walk:
    """One session's path: chunk ids (index 0 = root) and cumulative viewing + think times."""

    trace: SessionTrace
    chunks: list[str]
    parents: list[str | None]
    offset: list[float]  # offset[k]: seconds from serving the root to requesting chunk k
    position: int = 0  # index of the chunk requested last (0 = root)
    served: bool = False
    anchor: float = 0.0  # when chunks[position] was requested (waiting) or served
    records: list[RequestRecord] = field(default_factory=list)


def _walks(trace: Trace, regime: Regime) -> list[_Walk]:
    poses = {a: str(action_to_pose(a, regime.frames)) for a in ACTION_NAMES}
    d = regime.chunk_duration_s
    out = []
    for s in sorted(trace.sessions, key=lambda s: (s.start_s, s.session_id)):
        chunks = [chunk_id(s.memory, None, regime.root_pose)]
        parents: list[str | None] = [None]
        offset = [0.0]
        for step in s.steps:
            parents.append(chunks[-1])
            chunks.append(chunk_id(s.memory, chunks[-1], poses[step.action]))
            offset.append(offset[-1] + d + step.think_s)
        out.append(_Walk(s, chunks, parents, offset))
    return out


def _request(walk: _Walk, k: int, now: float, outcome: str) -> RequestRecord:
    s = walk.trace
    record = RequestRecord(s.session_id, s.memory, k - 1, walk.chunks[k], now, outcome)  # type: ignore[arg-type]
    walk.records.append(record)
    walk.position, walk.served, walk.anchor = k, False, now
    return record


def serial_chain(trace: Trace, regime: Regime, seed: int = 0) -> SimResult:
    """The lower bound (module doc): unlimited warm slots, each chunk started when its parent is
    ready. Outcomes: ``hit`` when ready at the request, else ``inflight`` (it is always running).
    GPU-seconds: each needed chunk's G once; no idle time, no cold start."""
    pool = GpuPool(regime.pool, regime.generation, seed)
    walks = _walks(trace, regime)
    first: dict[str, float] = {}
    for w in walks:
        first.setdefault(w.trace.memory, w.trace.start_s)
    ready: dict[str, float] = {}
    started: dict[str, tuple[float, str]] = {}
    for w in walks:  # parents come before children along every walk
        for cid, parent in zip(w.chunks, w.parents, strict=True):
            if cid not in ready:
                begin = first[w.trace.memory] if parent is None else ready[parent]
                started[cid] = (begin, w.trace.memory)
                ready[cid] = begin + pool.generation_s(cid)
    for w in walks:
        now = w.trace.start_s
        for k, cid in enumerate(w.chunks):
            if k > 0:
                now = w.records[-1].served_at + w.offset[k] - w.offset[k - 1]  # type: ignore[operator]
            record = _request(w, k, now, "hit" if ready[cid] <= now else "inflight")
            record.served_at = max(now, ready[cid])
    jobs = [_job(cid, mem, begin, pool.generation_s(cid), 0.0, False) for cid, (begin, mem)
            in started.items()]  # fmt: skip
    edges = sorted([(j.started_at, 1) for j in jobs] + [(j.ends_at, -1) for j in jobs])
    peak = max(itertools.accumulate(e[1] for e in edges), default=0)
    return _result(SERIAL_CHAIN, regime, walks, jobs, 0, 0.0, peak)


def _job(cid: str, memory: str, at: float, g: float, startup: float, cold: bool) -> JobRecord:
    job = JobRecord(
        job_id=f"b-{cid}", chunk_id=cid, memory_id=memory, initial_kind="speculative",
        kind="speculative", session_id=None, depth=0, probability=1.0, started_at=at,
        startup_s=startup, generation_s=g, cold=cold, expected_gpu_s=g, used=True,
    )  # fmt: skip
    job.ended_at = job.ends_at
    return job


def _result(
    name: str, regime: Regime, walks: list[_Walk], jobs: list[JobRecord], cold: int, idle: float,
    peak: int,
) -> SimResult:  # fmt: skip
    requests = sorted((r for w in walks for r in w.records), key=lambda r: r.requested_at)
    viewing = len(requests) * regime.chunk_duration_s
    end = max((r.served_at or 0.0 for r in requests), default=0.0)
    end = max([end, *(j.ended_at or 0.0 for j in jobs)])
    return SimResult(
        policy=name, requests=tuple(requests), jobs=tuple(jobs), viewing_s=viewing, end_s=end,
        plans=0, peak_running=peak, peak_speculative=peak, cold_starts=cold, idle_gpu_s=idle,
        billed_end_s=end,
    )  # fmt: skip


class _Clairvoyant:
    """The earliest-need-first list schedule over the whole trace (module doc)."""

    def __init__(
        self, trace: Trace, regime: Regime, seed: int, cautious: bool, causal: bool = False
    ) -> None:
        self.regime, self.cautious, self.causal = regime, cautious, causal
        self.walks = _walks(trace, regime)
        start = min((w.trace.start_s for w in self.walks), default=0.0)
        self.pool = GpuPool(regime.pool, regime.generation, seed, start_s=start)
        self.parent: dict[str, str | None] = {}
        self.memory: dict[str, str] = {}
        self.needers: dict[str, list[tuple[_Walk, int]]] = {}
        self.children: dict[str | None, set[str]] = {}
        for w in self.walks:
            for k, (cid, parent) in enumerate(zip(w.chunks, w.parents, strict=True)):
                self.parent[cid], self.memory[cid] = parent, w.trace.memory
                self.needers.setdefault(cid, []).append((w, k))
                self.children.setdefault(parent, set()).add(cid)
        self.ready: dict[str, float] = {}
        self.running: dict[str, JobRecord] = {}
        self.startable: set[str] = set()
        self.opened: set[str] = set()
        self.waiting: dict[str, list[_Walk]] = {}
        self.jobs: list[JobRecord] = []
        self.heap: list[tuple[float, int, int, Any]] = []
        self.seq = itertools.count()
        self.peak = 0
        self.now = start

    def _push(self, at: float, kind: int, ref: Any) -> None:
        heapq.heappush(self.heap, (at, kind, next(self.seq), ref))

    def run(self) -> SimResult:
        for w in self.walks:
            self._push(w.trace.start_s, _ARRIVE, w)
        while self.heap:
            self.now = self.heap[0][0]
            while self.heap and self.heap[0][0] == self.now:
                _, kind, _, ref = heapq.heappop(self.heap)
                if kind == _DONE:
                    self._done(ref)
                elif kind == _ARRIVE:
                    self._arrive(ref)
                else:
                    self._ask(ref, ref.position + 1)
            self._fill()
        end = max([self.now, *(j.ended_at or 0.0 for j in self.jobs)])
        idle = self.pool.close(end)
        name = ARRIVED if self.causal else CLAIRVOYANT
        return _result(name, self.regime, self.walks, self.jobs, self.pool.cold_starts,
                       idle, self.peak)  # fmt: skip

    def _arrive(self, w: _Walk) -> None:
        memory = w.trace.memory
        if memory not in self.opened:  # the photo exists from its first viewer on
            self.opened.add(memory)
            self.startable.add(w.chunks[0])
        self._ask(w, 0)

    def _ask(self, w: _Walk, k: int) -> None:
        cid = w.chunks[k]
        outcome = "hit" if cid in self.ready else "inflight" if cid in self.running else "miss"
        record = _request(w, k, self.now, outcome)
        if outcome == "hit":
            self._serve(w, record)
        else:
            self.waiting.setdefault(cid, []).append(w)

    def _serve(self, w: _Walk, record: RequestRecord) -> None:
        record.served_at = self.now
        w.served, w.anchor = True, self.now
        k = w.position
        if k + 1 < len(w.chunks):
            self._push(self.now + w.offset[k + 1] - w.offset[k], _REQUEST, w)

    def _done(self, cid: str) -> None:
        job = self.running.pop(cid)
        self.pool.release(self.now, job.started_at + job.startup_s)
        self.ready[cid] = self.now
        self.startable.update(c for c in self.children.get(cid, ()) if c not in self.ready)
        for w in self.waiting.pop(cid, []):
            self._serve(w, w.records[-1])

    def _need(self, cid: str) -> float:
        """Projected time the chunk is first requested (seconds), from every viewer's position."""
        best = float("inf")
        for w, k in self.needers[cid]:
            if w.records and (k < w.position or (k == w.position and w.served)):
                continue  # already served to this viewer
            if w.records and k == w.position:
                at = w.anchor  # a viewer is waiting for it: needed since the request
            elif not w.records:  # not arrived: arrival plus viewing and thinking, root wait aside
                at = w.trace.start_s + w.offset[k]
            elif w.served:
                at = w.anchor + w.offset[k] - w.offset[w.position]
            else:
                held = self.running.get(w.chunks[w.position])
                base = max(self.now, held.ends_at if held is not None else self.now)
                at = base + w.offset[k] - w.offset[w.position]
            best = min(best, at)
        return best

    def _fill(self) -> None:
        slots = self.regime.pool.max_containers
        if self.pool.busy >= slots or not self.startable:
            return
        known = self.startable
        if self.causal:  # only chunks some viewer who has arrived will need
            known = {c for c in known if any(w.records for w, _ in self.needers[c])}
        ranked = sorted(known, key=lambda c: (self._need(c), c))
        free_at = sorted(job.ends_at for job in self.running.values())
        queued = 0  # chunks left to wait for a container that frees up sooner than a boot
        for cid in ranked:
            if self.pool.busy >= slots:
                break
            if self.cautious and self.pool.warm_idle(self.now) == 0:
                boot = self.pool.cold_start_s(cid, 1)
                if queued < len(free_at) and free_at[queued] <= self.now + boot:
                    queued += 1
                    continue
            self.startable.discard(cid)
            startup, cold = self.pool.acquire(self.now, cid, 1)
            job = _job(
                cid, self.memory[cid], self.now, self.pool.generation_s(cid), startup, cold
            )  # fmt: skip  (never cancelled: it ends when it completes)
            self.jobs.append(job)
            self.running[cid] = job
            self._push(job.ends_at, _DONE, cid)
            bisect.insort(free_at, job.ends_at)
        self.peak = max(self.peak, self.pool.busy)


def clairvoyant(trace: Trace, regime: Regime, seed: int = 0, causal: bool = False) -> SimResult:
    """The honest oracle's schedule (module doc): earliest-need-first on the regime's pool, the
    better (by mean step wait; ties by all waits, then GPU) of the eager-boot and the
    cautious-boot variant. ``causal``: a chunk may start only once a viewer who will need it has
    arrived (``ARRIVED``): what knowing each present viewer's whole future, but nothing of viewers
    still to come, can reach. The gap between the two is what only pre-arrival knowledge buys."""
    runs = [_Clairvoyant(trace, regime, seed, cautious, causal).run()
            for cautious in (False, True)]  # fmt: skip

    def rank(result: SimResult) -> tuple[float, float, float]:
        """Mean step wait, then every wait (roots too), then billed GPU-seconds."""
        steps = [r.wait_s for r in result.requests if r.step >= 0]
        every = sum(r.wait_s for r in result.requests)
        billed = sum(j.gpu_s for j in result.jobs) + result.idle_gpu_s
        return (sum(steps) / len(steps) if steps else 0.0, every, billed)

    return min(runs, key=rank)


def arrived_clairvoyant(trace: Trace, regime: Regime, seed: int = 0) -> SimResult:
    """``clairvoyant(..., causal=True)``: the schedule knows only viewers who have arrived."""
    return clairvoyant(trace, regime, seed, causal=True)


def honest_oracle(per_policy: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Which of ``clairvoyant`` and ``oracle`` (the policy) has the lower mean wait: the name
    of the run shares of the oracle's reduction are computed against (None if neither ran)."""
    runs = [n for n in (CLAIRVOYANT, "oracle") if n in per_policy]
    return min(runs, key=lambda n: per_policy[n]["wait_mean_s"]) if runs else None
