"""Steps b-d of ``plan()``: the slots before speculation (pure).

b. ``_cancel_unreachable``: cancel the speculative jobs no active session can reach;
c. ``_trim_to_limits``: cancel the least valuable ones over the speculation cap or the pool;
d. ``_admit_demands``: start the demands FIFO, preempting the least valuable job for a slot.

Apart from ``plan`` (the driver) and ``plan_speculate`` (step e) because these steps only take
slots back from speculation and give them to the users who wait; they read the jobs, the
cursors and the demands, never the proposals except for the P of a preemptible job's key
(``plan_work._victim_heap``). The rules and their cost are in ``plan``'s module doc.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection

from orchestrator.core.build import new_start_job
from orchestrator.core.cursors import Cursors, RosterCursors
from orchestrator.core.plan_work import _Work, demand_key, job_key
from orchestrator.core.tree import Key, TreeIndex
from orchestrator.core.types import RunningJob
from orchestrator.core.valuation import warm_gpu_s


def _chains(index: TreeIndex, jobs: list[RunningJob], depth: int) -> dict[str, list[str]]:
    """Job id -> the job's parent, grandparent, ... up to ``depth`` ids. A chain ends early at a
    root or at a node missing from the snapshot (its ancestry is unknown). Each level's nodes are
    fetched with one filtered scan."""
    chains = {
        j.job_id: [j.parent_id] if j.parent_id is not None and depth > 0 else [] for j in jobs
    }
    for level in range(1, depth):
        tips = [c for c in chains.values() if len(c) == level]
        node_of = index.reader(c[-1] for c in tips)
        for chain in tips:
            node = node_of(chain[-1])
            if node is not None and node.parent_id is not None:
                chain.append(node.parent_id)
    return chains


def _cancel_unreachable(w: _Work) -> None:
    """Step b: a job is reachable when its chunk or one of its ancestors up to ``max_depth``
    levels is a cursor on its memory (the chunk lies in that session's subtree)."""
    if not w.pool:
        return
    inp = w.inp
    depth = inp.budget.max_depth
    roster = inp.roster
    cursors: Cursors | RosterCursors = (
        Cursors(list(w.active.values())) if roster is None
        else RosterCursors(roster, inp.now, inp.budget, True)
    )  # fmt: skip
    if w.vote_index() is not None:
        # Victims are valued from the index, which needs no ``want``: a job whose chunk or
        # parent is a cursor is reachable without walking its ancestry, and one that is not
        # (``far``) only by an ancestor above its parent.
        rest = cursors.far(w.pool, depth)
        if not rest:
            return
        chains = _chains(w.index, rest, depth)
        reaches = cursors.reaches
        lost = [j for j in rest if not reaches(j, itertools.islice(chains[j.job_id], 1, None))]
    else:
        chains = _chains(w.index, w.pool, depth)
        survey = cursors.survey
        lost = [j for j in w.pool if not survey(j, chains[j.job_id], w.want)]
    if not lost:
        return
    idle = (
        Cursors([s for s in inp.sessions if s.session_id not in w.active]) if roster is None
        else RosterCursors(roster, inp.now, inp.budget, False)
    ).reaches  # fmt: skip
    for j in sorted(lost, key=lambda j: j.job_id) if len(lost) > 1 else lost:
        w.cancel(j, "idle" if idle(j, (j.chunk_id, *chains[j.job_id])) else "abandoned")
    gone = {j.job_id for j in lost}
    w.pool = [j for j in w.pool if j.job_id not in gone]


def _trim_to_limits(w: _Work) -> None:
    cap = w.cap
    while w.preemptible() > cap or w.live_count() > w.inp.budget.max_containers:
        victim = w.least_valuable()
        if victim is None:
            return
        w.cancel(victim, "budget")


def _admit_demands(w: _Work) -> None:
    if not w.inp.demands:
        return
    running: Collection[Key]
    if w.inp.roster is not None:
        running = w.inp.roster.running_keys
    else:
        parents = {key[1] for key in w.demanded}
        running = {job_key(j) for j in w.inp.jobs if j.parent_id in parents}  # those that matter
    demands = sorted(w.inp.demands, key=lambda d: (d.requested_at, d.request_id))
    existing = w.index.by_keys(w.demanded)
    e = warm_gpu_s(w.inp)
    seen: set[Key] = set()
    for d in demands:
        key = demand_key(d)
        if key in seen or key in running:
            continue
        seen.add(key)
        node = existing.get(key)
        if node is not None and node.state == "ready":
            continue
        if d.parent_id is not None and not w.index.is_ready(d.parent_id):
            continue
        reason = "demand"
        if w.free_slots() <= 0:
            victim = w.least_valuable()
            if victim is None:
                return  # FIFO: every later demand waits too
            w.cancel(victim, "preempted")
            reason = f"demand (preempted job {victim.job_id})"
        cold = w.cold()
        # Positional, in the field order, through the slots (``core.build``).
        start = new_start_job(d.memory_id, d.parent_id, d.pose, d.action, "demand", d.session_id,
                              1.0, 0, e + cold, 0.0, reason, d.request_id, 0.0,
                              cold > 0.0)  # fmt: skip
        w.demand_starts.append(start)
