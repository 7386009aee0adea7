"""The planner's share of the event loop: proposals made in slices, plan() timed.

The scheduler shell (``orchestrator.scheduler``) plans on the event loop that also answers
hits. A policy such as ``lookahead`` spends ~1-2 ms of CPU per session whose cursor moved, so a
plan after 100 steps held every request for 100-200 ms. Here the proposals are made ahead of
``LiveState.prepare`` a few sessions at a time, yielding the loop between slices, and both
return the busy seconds so the shell can rest in proportion (its duty cycle).

Actions observed on the request path are queued by the policy host
(``orchestrator.policy_host``); the policies learn them here, in slices, before any proposal is
made. A plan woken only by cache hits (nothing waits on it: no miss, no job end) rests longer,
``HIT_REST_RATIO`` against its busy time and at least ``HIT_PLAN_S``: under a flood of hits the
re-proposals take <= 10 % of the loop instead of 25 % (the periodic tick waits for that plan
too), and the speculation a hit makes worth starting waits at most ``HIT_MAX_REST_S`` (3 s, only
when plans are that slow; ~0.25 s at 75 hits/s) against 2-5 minutes of generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from orchestrator.core.plan import plan
from orchestrator.core.types import Plan, PlanInput
from orchestrator.live import LiveState, Scheduled

# Proposals made per slice before the planner yields the loop (seconds). A request that
# arrives during a slice waits for the rest of it plus one lookahead session (~0.5 ms), and a
# request takes a few loop iterations (read, its task, the write), each of which may queue
# behind a slice: the hit p99 at 75 req/s pays that. 1 ms, not 2 (twice the yields).
SLICE_S = 0.001
OFF_LOOP_SESSIONS = 300  # plan() in a worker thread above this many sessions (> ~5 ms)
REST_RATIO = 3.0  # after a plan that kept the loop busy B s, rest 3 B: <= 25 % of the loop
MAX_REST_S = 1.0  # ... but plan at least about once a second
HIT_PLAN_S = 0.25  # a plan only hits asked for waits at least this long after the last one
HIT_REST_RATIO = 9.0  # ... and 9 B after one that was busy B s: <= 10 % of the loop
HIT_MAX_REST_S = 3.0  # ... but at most this long (the tick waits for it too)


def rest_s(busy_s: float, coalesce_s: float) -> float:
    """Seconds the planner waits before its next plan, after one that kept the loop (or the
    GIL) busy ``busy_s`` seconds: the duty cycle. Sessions that step meanwhile are
    re-proposed once, at the next plan, however often they stepped."""
    return min(MAX_REST_S, max(coalesce_s, REST_RATIO * busy_s))


def hit_rest_s(busy_s: float) -> float:
    """Seconds a plan that only cache hits asked for waits after one that was busy ``busy_s``
    seconds (see the module docstring); a miss or a job's end cuts the wait short."""
    return min(HIT_MAX_REST_S, max(HIT_PLAN_S, HIT_REST_RATIO * busy_s))


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
    busy = 0.0
    drain = getattr(live.proposer, "drain", None)  # the policy host's queued observations
    if drain is not None:
        while True:
            t0 = time.perf_counter()
            left = drain(SLICE_S)
            busy += time.perf_counter() - t0
            if not left:
                break
            await asyncio.sleep(0)
    ids = [s.view.session_id for s in live.sessions()]
    i = 0
    while i < len(ids):
        t0 = time.perf_counter()
        now = clock()
        while i < len(ids) and time.perf_counter() - t0 < SLICE_S:
            # One session a call: lookahead spends 1-2 ms on a session that stepped, so a batch
            # of 8 could hold the loop 8-16 ms past the slice (the hit p99 at 75 req/s).
            live.propose_ahead(ids[i : i + 1], now)
            i += 1
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


class PlanPacer:
    """When the scheduler's planner runs (one per scheduler, on its event loop).

    ``wake()`` (a miss, a job's end, a new session, a reconfiguration): plan after the
    ``coalesce_s`` window, or after ``rest_s`` of the last plan's busy time. ``hit()``: plan no
    sooner than ``hit_rest_s`` after the last plan. At least every ``tick_s`` seconds anyway (or
    at the pending hits' plan, if that is later).
    """

    def __init__(self, tick_s: float, coalesce_s: float) -> None:
        self.tick_s, self.coalesce_s = tick_s, coalesce_s
        self._event = asyncio.Event()
        self._rest = coalesce_s
        self._timer: asyncio.TimerHandle | None = None
        self._hit_at = 0.0  # loop time before which hits alone do not ask for a plan
        self.running = False  # hits schedule plans only while a planner loop waits

    def wake(self) -> None:
        """Plan soon."""
        self._event.set()

    def hit(self) -> None:
        """A cache hit moved a session: plan, but not before the hit rest has passed."""
        if self._timer is None and self.running:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, self._hit_at - loop.time()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._event.set()

    async def wait(self) -> None:
        """Until the next plan is due (a wake, a hit's rest passed, or the tick)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=self.tick_s)
        if not self._event.is_set() and self._timer is not None:
            # The tick came while the hits' plan waits out its rest: that plan is the tick's
            # (at most HIT_MAX_REST_S away); a wake cuts it short.
            await self._event.wait()
        await asyncio.sleep(self._rest)
        self._event.clear()
        if self._timer is not None:  # the plan about to run covers the hits so far
            self._timer.cancel()
            self._timer = None

    def planned(self, busy_s: float) -> None:
        """A plan kept the loop busy ``busy_s`` seconds: pace the next one."""
        self._rest = rest_s(busy_s, self.coalesce_s)  # a flood of steps slows plans, not hits
        self._hit_at = asyncio.get_running_loop().time() + hit_rest_s(busy_s)
