"""The warm-pool loop: tell the GPU pool how many containers to keep up ahead of the viewers.

Every ``interval_s`` the controller reads the live state (active sessions, running jobs), asks
the core how many idle containers are worth keeping warm over the pool's scale-down window
(``core.warm.desired_warm``: idle warm GPU-seconds against cold starts avoided) and sets the
pool's minimum to the busy containers plus that many (Modal's ``min_containers`` counts every
container, busy or idle). When sessions end the predicted rate falls to zero, the minimum to the
busy count and then to zero, and Modal stops the idle containers after their scale-down window.

It also reads how many containers are up and idle now (``warm_idle``), for the scheduler to
value a speculative start that would need a cold start.

Only pools with ``set_warm`` (``gpu.modal_pool.ModalGpuPool``) are controlled; the CPU renderer
has no containers to keep warm.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import structlog

from orchestrator.core.warm import (
    WarmDemand,
    desired_warm,
    predicted_rate,
    session_next_requests,
)
from orchestrator.live.state import LiveState

log = structlog.get_logger(__name__)

SEED_COLD_START_S = 240.0
"""Cold start of one HY-WorldPlay container when none is configured (seconds): the seed's
"+3-5 minutes first request" (shared/seed/rewind-backend-architecture.md), its middle."""


@runtime_checkable
class WarmPool(Protocol):
    """A GPU pool whose warm containers can be set and counted (``ModalGpuPool``)."""

    slots: int

    async def set_warm(self, min_containers: int, buffer_containers: int | None = None) -> bool:
        """Keep ``min_containers`` up; True when the provider was called."""
        ...

    async def warm_idle(self, timeout_s: float = 10.0) -> int | None:
        """Containers up and idle now, None when the provider does not answer."""
        ...


@dataclass(frozen=True, slots=True)
class WarmDecision:
    """One tick's reading and decision.

    Attributes:
        rate_per_s: predicted chunk requests per second (all sessions).
        busy: generations running now (containers in use).
        warm: idle containers worth keeping on top of the busy ones.
        min_containers: what the pool was told to keep (busy + warm, capped at its slots).
        warm_idle: containers up and idle as the provider reported, None when unknown.
    """

    rate_per_s: float
    busy: int
    warm: int
    min_containers: int
    warm_idle: int | None


class WarmController:
    """Drives ``pool.set_warm`` from the live state's predicted demand.

    Args:
        pool: the GPU pool (``WarmPool``).
        live: the scheduler's live state (read only: sessions, running jobs, timing).
        clock: the live state's clock (seconds).
        idle_timeout_s: ``[speculation] idle_timeout_s``: silence that ends a session.
        cold_start_s: expected container boot (seconds); 0 takes ``SEED_COLD_START_S``.
        horizon_s: the deployment's scale-down window (seconds an idle container is kept,
            ``REWIND_MODAL_SCALEDOWN_WINDOW_S``, 300 by default in gpu/modal_app.py).
        interval_s: seconds between ticks.
    """

    def __init__(
        self, pool: WarmPool, live: LiveState, clock: Callable[[], float], *,
        idle_timeout_s: float, cold_start_s: float, horizon_s: float, interval_s: float = 30.0,
    ) -> None:  # fmt: skip
        self.pool, self.live, self.clock = pool, live, clock
        self.idle_timeout_s, self.horizon_s, self.interval_s = idle_timeout_s, horizon_s, interval_s
        self.cold_start_s = cold_start_s or SEED_COLD_START_S
        self.warm_idle: int | None = None
        self._busy_at_read = 0
        self.last: WarmDecision | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def decide(self, now: float) -> tuple[float, int, int]:
        """(predicted requests/s, busy containers, idle containers worth keeping) now."""
        views = [s.view for s in self.live.sessions() if not s.ended]
        rate = predicted_rate(
            session_next_requests(views, self.live.timing, now, self.idle_timeout_s)
        )
        busy = sum(1 for _ in self.live.running())
        warm = desired_warm(
            WarmDemand(
                rate_per_s=rate, gpu_s=self.live.timing.gpu_s_per_chunk,
                cold_start_s=self.cold_start_s, horizon_s=self.horizon_s, busy=busy,
                max_containers=self.pool.slots,
            )
        )  # fmt: skip
        return rate, busy, warm

    async def tick(self) -> WarmDecision:
        """Read the demand, set the pool's minimum, read its idle count.

        Raises:
            GenerationError: the provider refused the setting (``ModalDeployment.set_warm``).
        """
        rate, busy, warm = self.decide(self.clock())
        minimum = min(self.pool.slots, busy + warm)
        await self.pool.set_warm(minimum)
        self.warm_idle = await self.pool.warm_idle()
        self._busy_at_read = sum(1 for _ in self.live.running())
        self.last = WarmDecision(rate, busy, warm, minimum, self.warm_idle)
        return self.last

    def idle_now(self) -> int | None:
        """Warm idle containers now: the last reading less the jobs started since (each took
        one), so plans between ticks do not count one idle container twice. None before the
        first reading or when the provider did not answer (``LiveState.prepare(warm_idle=)``)."""
        if self.warm_idle is None:
            return None
        started = sum(1 for _ in self.live.running()) - self._busy_at_read
        return max(0, self.warm_idle - max(0, started))

    async def _run(self) -> None:
        while not self._stopping:
            try:
                d = await self.tick()
                log.debug("warm_pool", rate=round(d.rate_per_s, 4), busy=d.busy, warm=d.warm,
                          min_containers=d.min_containers, warm_idle=d.warm_idle)  # fmt: skip
            except Exception as exc:  # a failed tick keeps the last setting; the next one retries
                if self._stopping:
                    # close()'s cancel landed inside a Modal client call, which can re-raise it
                    # as an ordinary exception: swallowing it kept the loop (and close) alive.
                    return
                log.warning("warm_pool_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        """Run ticks in the background until ``close``."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="warm-pool")

    async def close(self) -> None:
        """Stop the loop. The pool keeps its last minimum; Modal scales down on its own once
        the next process (or nobody) lowers it."""
        if self._task is not None:
            self._stopping = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task, self._stopping = None, False


def warm_controller(
    pool: object, live: LiveState, clock: Callable[[], float], *, enabled: bool,
    idle_timeout_s: float, cold_start_s: float, horizon_s: float, interval_s: float,
) -> WarmController | None:  # fmt: skip
    """A started controller for a pool that supports warm control, else None."""
    if not enabled or not isinstance(pool, WarmPool):
        return None
    controller = WarmController(
        pool, live, clock, idle_timeout_s=idle_timeout_s, cold_start_s=cold_start_s,
        horizon_s=horizon_s, interval_s=interval_s,
    )  # fmt: skip
    controller.start()
    return controller
