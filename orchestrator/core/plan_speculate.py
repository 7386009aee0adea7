"""Step e of ``plan()``: speculative starts in the slots steps b-d left (pure).

Apart from ``plan`` (the driver) and ``plan_slots`` (steps b-d) because it is the one step that
reads the proposals: with a usable vote index it hands the step to ``admit.admit_indexed`` (the
lazy walk, no ``Candidate`` per key), else it ranks every proposal (``frontier.ranked``) and
admits best first here (``_admit_speculation``'s loop); both give the same plan. The admission
rules (slots, speculation cap, per-session limit, bucket, cold starts) are in ``plan``'s module
doc, step e.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping

from orchestrator.core.admit import admit_indexed
from orchestrator.core.budget import try_spend
from orchestrator.core.build import new_bucket
from orchestrator.core.collect import collect_votes
from orchestrator.core.frontier import Candidate, ranked, revalue
from orchestrator.core.plan_work import _Work
from orchestrator.core.tree import Key
from orchestrator.core.types import StartJob


class _Taken(Collection[Key]):
    """Keys no speculation may start: the running ones (the roster's map) and the demanded."""

    __slots__ = ("_demanded", "_running")

    def __init__(self, running: Mapping[Key, int], demanded: frozenset[Key]) -> None:
        self._running, self._demanded = running, demanded

    def __contains__(self, key: object) -> bool:
        return key in self._running or key in self._demanded

    def __iter__(self) -> Iterator[Key]:
        return iter(self._running.keys() | self._demanded)

    def __len__(self) -> int:
        return len(self._running.keys() | self._demanded)


def _spec_start(c: Candidate, cold: bool) -> StartJob:
    reason = (
        f"spec p={c.probability:.2f} d={c.depth} saves={c.benefit_s:.1f}s "
        f"waste={c.waste_gpu_s:.1f}gpu-s s/gpu={c.score:.2f}" + (" cold" if cold else "")
    )  # ``_reason``'s text
    return StartJob(
        memory_id=c.memory_id,
        parent_id=c.parent_id,
        pose=c.pose,
        action=c.action,
        kind="speculative",
        session_id=c.session_id,
        probability=c.probability,
        depth=c.depth,
        expected_gpu_s=c.expected_gpu_s,
        benefit_s=c.benefit_s,
        reason=reason,
        charged_gpu_s=c.charge_gpu_s,
        cold=cold,
    )


def _admit_speculation(w: _Work) -> None:
    inp, budget = w.inp, w.inp.budget
    cap = w.cap
    # Nothing can start: no slot, the cap reached, or an empty bucket (every candidate that
    # saves any wait has a positive charge). Valuing the proposals would change no decision.
    if w.free_slots() <= 0 or w.spec_live >= cap or not w.bucket.tokens > 0.0:
        return
    if not inp.proposals:
        return
    index = w.vote_index()
    # Without an active session nothing is proposed. A usable index holds only active
    # sessions' votes (``PlanInput.votes``' contract), so then its walk finds nothing and the
    # test (a pass over the sessions until an active one) is left to the other paths.
    if index is None and not w.any_active():
        return
    held: dict[str, int] = {}  # session -> its speculative jobs after this plan's cancels
    base: Mapping[str, int] = held
    taken: Collection[Key]
    # A key a demand waits for is the demand's to start: speculating on it would generate it twice.
    if inp.roster is not None:
        base = inp.roster.held
        for j in w.gone.values():
            if j.session_id is not None:
                held[j.session_id] = held.get(j.session_id, base.get(j.session_id, 0)) - 1
        running = inp.roster.running_keys
        # Without demands the roster's map alone: ``in`` is a dict read, not a method call.
        taken = _Taken(running, w.demanded) if w.demanded else running
    else:
        for j in w.live.values():
            if j.kind == "speculative" and j.session_id is not None and j.job_id not in w.gone:
                held[j.session_id] = held.get(j.session_id, 0) + 1
        taken = {(j.memory_id, j.parent_id, j.pose) for j in inp.jobs} | w.demanded
    if index is not None:
        done = admit_indexed(
            inp, index, held, base, taken, w.free_slots(), cap - w.spec_live - len(w.spec_starts),
            len(w.demand_starts) + len(w.spec_starts), w.bucket.tokens, w.short,
        )  # fmt: skip
        w.spec_starts += done.starts
        w.short = done.short
        if done.starts:
            w.bucket = new_bucket(done.tokens, w.bucket.updated_at)
        return
    bucket, min_score = w.bucket, budget.min_benefit_per_gpu_s
    best = ranked(inp, w.index, collect_votes(inp, w.index, w.active), taken)
    for c in best:
        if w.free_slots() <= 0 or w.spec_live + len(w.spec_starts) >= cap:
            break
        mine = held.get(c.session_id)
        if mine is None:
            mine = base.get(c.session_id, 0)
        if mine >= budget.per_session_inflight:
            continue
        cold = w.cold()
        if cold > 0.0:
            c = revalue(c, inp, cold)
            if not c.score > min_score:
                continue  # worth it on a warm container, not worth booting one
        paid = try_spend(bucket, c.charge_gpu_s)
        if paid is None:
            if w.short is None or c.charge_gpu_s < w.short:
                w.short = c.charge_gpu_s
            continue  # a candidate with less lead time costs less: it may still fit
        bucket = paid
        held[c.session_id] = mine + 1
        w.spec_starts.append(_spec_start(c, cold > 0.0))
    w.bucket = bucket
