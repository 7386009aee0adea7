"""``plan(inp) -> Plan``: the decision core's one entry point (pure, deterministic).

Shaped like vLLM v1's ``Scheduler.schedule()`` (DESIGN.md, "Codebases worth imitating"): one
call spends a budget over in-memory state and returns a plain ``Plan``; the shell carries it out
and reports outcomes back through the next ``PlanInput``. No I/O, no clock (``inp.now``), no
randomness; every decision iterates sorted values, so the same input (in any tuple order) gives
the same plan.

Order of work (DESIGN.md, "The decision core", "The value of a speculative chunk"):

a. Refill the token bucket to ``now`` (``budget.refill``).
b. Cancel speculative jobs no active session can reach: a job is kept while its chunk is an
   active (non-idle) session's cursor on its memory or lies at most ``budget.max_depth`` levels
   below one. Otherwise it is cancelled as "idle" (only idle sessions' cursors reach it) or
   "abandoned" (none), in job-id order. Demand jobs, and speculative jobs whose key a demand
   waits for, are never cancelled.
c. Trim speculation over its limits (the operator lowered the share, the pool shrank): cancel
   the least valuable speculative jobs, reason "budget", until speculative jobs <=
   ``speculative_slot_cap`` and all jobs <= ``max_containers``.
d. Demands, FIFO by (requested_at, request_id). Requests for one chunk key share one start (the
   first request's ``request_id``; the shell attaches the other waiters to it). Skipped
   defensively: a key already running (the shell should have made it an in-flight hit), already
   ready (a hit), or whose parent is not ready (the shell only accepts requests below a ready
   chunk). Each demand takes a free slot, else preempts the least valuable running speculative
   job (CancelJob "preempted"), else waits with every later demand. Demands cost no tokens.
e. Speculation: candidates (``frontier.ranked``) best score first (seconds of wait saved per
   expected wasted GPU-second, ``valuation`` module doc); admit while a slot is free,
   speculative jobs < ``speculative_slot_cap``, the attributed session holds fewer than
   ``per_session_inflight`` speculative jobs (a full session is skipped, not the rest), and the
   bucket pays the candidate's ``charge_gpu_s`` (a candidate it cannot pay is skipped: charges
   differ by lead time). Cold starts: with ``PlanInput.warm_idle`` known, the starts of this
   plan beyond it (demands first) land on cold containers; such a candidate is valued again
   with the cold start (``frontier.revalue``) and admitted only if it still clears
   ``min_benefit_per_gpu_s``.
f. Return ``Plan(starts=demand starts then speculative starts, cancels, bucket,
   bucket_short_gpu_s)``.

Refunds: every cancel in b, c and d gives the job's unspent charge back to the bucket,
``max(0, job.charge - (now - job.started_at))`` (``budget.unspent_gpu_s``), capped at
``burst_gpu_s`` (``budget.refund``); time run counts from 0 if the clock went backwards, so a
refund never exceeds the charge. Refunds land before e, so a slot and the GPU-seconds a wrong
guess did not use can go to a better guess in the same plan. The bucket stays within [0, burst].
Demand jobs are never cancelled, and never charged. (The live state refunds the whole charge
when a speculative chunk is requested: a correct guess is not waste.)

"Least valuable" speculative job: lowest current P (the combined P of current proposals for its
key, else the P it was admitted with), then the most recently started (it has the most work left
and the least work lost), then job id.

Cost. With 10^4 sessions a snapshot holds ~10^5 nodes and ~10^5 proposals, and in pure Python
touching each once is already milliseconds, so a plan only reads what can change its decisions:

- sessions: with ``PlanInput.roster`` (the shell's sessions by id and by cursor, jobs by id and
  key, speculative jobs per session, kept as they change) none: step b reads the sessions on a
  job's chunk and ancestors from the roster's cursor map and tests each one's idleness there,
  step e reads the roster's running keys and per-session counts. Without it, two passes (who
  is idle; who watches which chunk) and one over the jobs;
- nodes: with ``PlanInput.lookup`` (the shell's per-memory dicts) every read is one call and
  nothing is scanned. Without it, no index over the whole snapshot: one filtered scan fetches
  the parents of the speculative jobs and of the demands and the children of the demands'
  parents (``TreeIndex.prefetch``); each deeper level of ancestors (``max_depth`` > 2) costs
  one more;
- reachability: at most ``max_depth`` ancestors per speculative job, each a dict read;
- "least valuable": a heap, built on the first preemption or trim. Its P values come from the
  vote index when ``PlanInput.votes`` is usable (one dict read per preemptible job's key,
  ``VoteIndex.victims``; when the plan can take at most k jobs off it, trim plus one per demand,
  and k is under a quarter of the pool, only the k least valuable are kept); without it, from
  only the proposals that can name a preemptible job's key: those of sessions whose cursor is
  the key's parent or its ancestor d - 1 levels up, of length d, whose last step has the key's
  pose (noted by ``Cursors.survey`` in step b; a necessary condition, then the same resolution
  as for every proposal, ``frontier.collect_votes``). With the index, step b also checks a job's
  parent and chunk first (``Cursors.far``, one loop over the pool) and walks the ancestry of the
  other jobs only;
- speculation is skipped outright when it cannot start anything (no free slot, the speculative
  cap reached, or an empty bucket): with 10^4 sessions on a pool of tens to hundreds of slots
  that is the common case, and it saves valuing every proposal. Otherwise, with
  ``PlanInput.votes`` usable (``VoteIndex.fits``, ``safe`` and ``holds``, or with a roster
  ``holds_roster``: an identity check per session changed since its last check), candidates
  come best first from the index's lazy walk (``VoteIndex.walk``, ``admit.admit_indexed``), which
  values only the runs of equal-valued keys it must to fill the free slots: O((r + k) log r)
  for r runs valued and k keys taken, no proposal read. A start is built from its key's lead
  vote and its run's value (no ``Candidate``), and a run whose keys would all be refused
  without effect (the bucket cannot pay its charge, its cold value misses the threshold) is
  dropped after its first: a plan whose bucket is short costs one key per run.
  Without the index every proposal is resolved and valued once (full indexes over the nodes are
  built then) and candidates come off a heap best first (``frontier.ranked``).

The upkeep is the shell's, outside ``plan()``: ``Planner.prepare`` visits only the sessions its
change log says moved (``orchestrator.live.upkeep``), compares their proposals, view and cursor
subtree by identity with what they were last voted on, and only for those that moved calls
``VoteIndex.update`` (which resolves again when the signature differs, ~10-50
us with 10 proposals) and ``Roster.set_session``; jobs enter and leave the roster as they start,
are promoted and end. The index re-combines each changed key at the plan's first read of it and
orders keys only when a walk needs the order (``vote_runs`` module doc). ``benchmarks/core.py``
times the upkeep beside ``plan()``. What is left at 10^4 sessions is proportional to the jobs,
not the sessions: one reachability check per speculative job (step b: two dict reads when a
session watches the job's chunk or parent), the P of each preemptible job when a demand needs a
slot, and the starts themselves.

Every shortcut gives the very decisions the plain algorithm gives: ``test_plan.reference_plan``
values every proposal, sorts every list and scans for the least valuable job, and must return
the same ``Plan`` on random inputs (duplicated ids, shared cursors, idle sessions, full pools).
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.core.budget import refill, speculative_slot_cap
from orchestrator.core.build import new_plan
from orchestrator.core.plan_slots import _admit_demands, _cancel_unreachable, _trim_to_limits
from orchestrator.core.plan_slots import _chains as _chains
from orchestrator.core.plan_speculate import _admit_speculation
from orchestrator.core.plan_work import _Work
from orchestrator.core.plan_work import demand_key as demand_key
from orchestrator.core.plan_work import job_key as job_key
from orchestrator.core.tree import Key, TreeIndex
from orchestrator.core.types import Plan, PlanInput, RunningJob

_NO_KEYS: frozenset[Key] = frozenset()


def _live_jobs(jobs: tuple[RunningJob, ...]) -> dict[str, RunningJob]:
    """Jobs by id; of duplicated ids the last in (job_id, started_at, chunk_id) order counts."""
    live = {j.job_id: j for j in jobs}
    if len(live) != len(jobs):
        live = {
            j.job_id: j for j in sorted(jobs, key=lambda j: (j.job_id, j.started_at, j.chunk_id))
        }
    return live


def plan(inp: PlanInput) -> Plan:
    """Decide which jobs to start and cancel now (see the module docstring for the order).

    Args:
        inp: the snapshot (times in seconds, costs in GPU-seconds).

    Returns:
        A ``Plan`` whose ``starts`` are demand starts (FIFO) then speculative starts (best
        first), whose ``cancels`` only name speculative jobs, and whose ``bucket`` is the token
        bucket refilled to ``inp.now``, plus the unspent charge of every cancelled job (capped
        at ``burst_gpu_s``), minus the speculative starts' expected GPU-seconds.

    Raises:
        Nothing for well-typed input: invalid proposals (unknown actions, non-finite P) are
        ignored rather than allowed to stall demand scheduling.
    """
    demanded = frozenset(demand_key(d) for d in inp.demands) if inp.demands else _NO_KEYS
    demand_parents = {key[1] for key in demanded} if demanded else set()
    roster = inp.roster
    live: Mapping[str, RunningJob]
    if roster is not None:  # the shell's maps: no pass over every job
        live = roster.jobs
        spec = roster.speculative.values()
        spec_live = len(roster.speculative)
        running = roster.running_keys
        if any(k in running for k in demanded):
            pool = [j for j in spec if j.parent_id not in demand_parents
                    or (j.memory_id, j.parent_id, j.pose) not in demanded]  # fmt: skip
        else:
            pool = list(spec)
    else:
        live = _live_jobs(inp.jobs)
        spec_jobs = [j for j in live.values() if j.kind == "speculative"]
        spec_live = len(spec_jobs)
        pool = [
            j
            for j in spec_jobs
            if j.parent_id not in demand_parents
            or (j.memory_id, j.parent_id, j.pose) not in demanded
        ]
    w = _Work(
        inp=inp,
        index=TreeIndex(inp.nodes, inp.lookup),
        live=live,
        demanded=demanded,
        bucket=refill(inp.bucket, inp.budget, inp.now),
        spec_live=spec_live,
        cap=speculative_slot_cap(inp.budget),
        pool=pool,
    )
    # The parents of the jobs and demands are the snapshot's only nodes steps b-d read (e reads
    # them all): one filtered scan instead of an index over every node.
    if inp.lookup is None:
        w.index.prefetch({j.parent_id for j in w.pool} | demand_parents,
                         children_of=demand_parents)  # fmt: skip
    _cancel_unreachable(w)
    _trim_to_limits(w)
    _admit_demands(w)
    _admit_speculation(w)
    return new_plan((*w.demand_starts, *w.spec_starts), tuple(w.cancels), w.bucket, w.short)
