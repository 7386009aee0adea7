"""The planner's share of the event loop: proposals made in slices, plan() timed.

The scheduler shell (``orchestrator.scheduler``) plans on the event loop that also answers
hits. A policy such as ``lookahead`` spends ~1-2 ms of CPU per session whose cursor moved, so a
plan after 100 steps held every request for 100-200 ms. Here the proposals are made ahead of
``LiveState.prepare`` a few sessions at a time, yielding the loop between slices, and both
return the busy seconds so the shell can rest in proportion (its duty cycle).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from orchestrator.core.plan import plan
from orchestrator.core.types import Plan, PlanInput
from orchestrator.live import LiveState, Scheduled

SLICE_S = 0.002  # proposals made per slice before the planner yields the loop (seconds)
SLICE_SESSIONS = 8  # sessions per propose_ahead call within a slice
OFF_LOOP_SESSIONS = 300  # plan() in a worker thread above this many sessions (> ~5 ms)
REST_RATIO = 3.0  # after a plan that kept the loop busy B s, rest 3 B: <= 25 % of the loop
MAX_REST_S = 1.0  # ... but plan at least about once a second


def rest_s(busy_s: float, coalesce_s: float) -> float:
    """Seconds the planner waits before its next plan, after one that kept the loop (or the
    GIL) busy ``busy_s`` seconds: the duty cycle. Sessions that step meanwhile are
    re-proposed once, at the next plan, however often they stepped."""
    return min(MAX_REST_S, max(coalesce_s, REST_RATIO * busy_s))


async def sliced_plan(
    live: LiveState, clock: Callable[[], float], warm_idle: int | None
) -> tuple[Scheduled, float]:
    """``live.schedule(now)`` with the proposals made first in slices, ``plan()`` in a worker
    thread above ``OFF_LOOP_SESSIONS`` sessions; returns it and the busy seconds."""
    busy = await propose_in_slices(live, clock)
    t0 = time.perf_counter()
    inp = live.prepare(clock(), warm_idle=warm_idle)
    busy += time.perf_counter() - t0
    off_loop = len(inp.sessions) > OFF_LOOP_SESSIONS
    decision, cpu_s = await asyncio.to_thread(timed_plan, inp) if off_loop else timed_plan(inp)
    return live.apply(decision, clock()), busy + cpu_s


async def propose_in_slices(live: LiveState, clock: Callable[[], float]) -> float:
    """Refresh every live session's proposals (``LiveState.propose_ahead``) in slices of about
    ``SLICE_S`` seconds, yielding the loop between slices. Returns the busy seconds (wall,
    slices only)."""
    ids = [s.view.session_id for s in live.sessions()]
    busy, i = 0.0, 0
    while i < len(ids):
        t0 = time.perf_counter()
        while i < len(ids) and time.perf_counter() - t0 < SLICE_S:
            live.propose_ahead(ids[i : i + SLICE_SESSIONS], clock())
            i += SLICE_SESSIONS
        busy += time.perf_counter() - t0
        if i < len(ids):
            await asyncio.sleep(0)
    return busy


def timed_plan(inp: PlanInput) -> tuple[Plan, float]:
    """``plan(inp)`` and the CPU-seconds it took on the calling thread (a worker thread's
    CPU is what it takes from the loop's GIL)."""
    t0 = time.thread_time()
    decision = plan(inp)
    return decision, time.thread_time() - t0
