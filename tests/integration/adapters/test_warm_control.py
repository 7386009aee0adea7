"""The warm-pool loop at the Modal client boundary: live viewers -> ``update_autoscaler``.

The live state is the real one; the pool is the real ``ModalGpuPool`` over stand-ins for modal's
objects (``modal_fakes``), so what is checked is the exact keyword calls Modal would receive.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from modal.types import FunctionCurrentStats

from gpu.local import LocalGpuPool
from gpu.protocol import GenerationError
from orchestrator.core.types import Budget, Timing
from orchestrator.live import LiveState, SinglePolicy
from orchestrator.warm_control import SEED_COLD_START_S, WarmController, warm_controller
from policies import make_policy
from tests.integration.adapters.modal_fakes import FakeMethod, FakeModal, make_pool

IDLE_TIMEOUT_S = 120.0


def live_state() -> LiveState:
    ids = itertools.count()
    live = LiveState(
        budget=Budget(max_containers=4, idle_timeout_s=IDLE_TIMEOUT_S),
        timing=Timing(gpu_s_per_chunk=150.0, chunk_duration_s=125 / 24, think_s=2.0),
        frames=125, proposer=SinglePolicy(make_policy("none")),
        new_chunk_id=lambda key: f"{key[0]}:{key[1]}/{key[2]}", new_job_id=lambda: f"j{next(ids)}",
    )  # fmt: skip
    live.load_memory("m1")
    return live


def controller(live: LiveState, now: list[float], fake: FakeModal, idle: int = 1) -> WarmController:
    stats = FunctionCurrentStats(
        backlog=0, num_total_runners=idle, num_running_inputs=0, input_headroom=idle
    )
    pool = make_pool(FakeMethod([], stats=stats), fake, max_containers=4)
    return WarmController(
        pool, live, lambda: now[0], idle_timeout_s=IDLE_TIMEOUT_S, cold_start_s=240.0,
        horizon_s=300.0, interval_s=30.0,
    )  # fmt: skip


async def test_viewers_warm_the_pool_and_leaving_scales_it_down() -> None:
    live, now, fake = live_state(), [0.0], FakeModal()
    warm = controller(live, now, fake, idle=2)
    first = await warm.tick()
    assert (first.rate_per_s, first.min_containers) == (0.0, 0)  # nobody watching
    for i in range(3):
        live.open_session(f"s{i}", "m1", "c0", policy="none", arm="default", now=now[0])
    busy = await warm.tick()
    # 3 viewers x one chunk per 7.2 s x 150 GPU-s: far more load than 4 containers.
    assert busy.rate_per_s == pytest.approx(3 / (125 / 24 + 2.0))
    assert busy.min_containers == 4 and busy.warm_idle == 2
    assert warm.warm_idle == 2
    now[0] = IDLE_TIMEOUT_S + 1.0  # every viewer silent past the idle timeout
    gone = await warm.tick()
    assert (gone.rate_per_s, gone.min_containers) == (0.0, 0)
    assert fake.autoscaler == [{"min_containers": 0}, {"min_containers": 4}, {"min_containers": 0}]


async def test_unchanged_demand_does_not_call_modal_again() -> None:
    live, now, fake = live_state(), [0.0], FakeModal()
    live.open_session("s0", "m1", "c0", policy="none", arm="default", now=0.0)
    warm = controller(live, now, fake)
    await warm.tick()
    now[0] = 10.0
    await warm.tick()
    assert len(fake.autoscaler) == 1


async def test_missing_deployment_raises_and_the_loop_survives_it() -> None:
    live, now, fake = live_state(), [0.0], FakeModal(deployed=False)
    warm = controller(live, now, fake)
    with pytest.raises(GenerationError, match="modal deploy"):
        await warm.tick()
    warm.interval_s = 0.01
    warm.start()
    await asyncio.sleep(0.1)  # several failing ticks, logged, none fatal
    assert warm._task is not None and not warm._task.done()
    await warm.close()
    assert warm._task is None


async def test_only_pools_with_containers_are_controlled() -> None:
    live = live_state()
    args = {"idle_timeout_s": 1.0, "cold_start_s": 0.0, "horizon_s": 300.0, "interval_s": 30.0}
    local = LocalGpuPool(slots=2)
    try:
        assert warm_controller(local, live, lambda: 0.0, enabled=True, **args) is None
    finally:
        await local.close()
    modal_pool = make_pool(FakeMethod([]), FakeModal())
    assert warm_controller(modal_pool, live, lambda: 0.0, enabled=False, **args) is None
    on = warm_controller(modal_pool, live, lambda: 0.0, enabled=True, **args)
    assert on is not None and on.cold_start_s == SEED_COLD_START_S  # unset: the seed's figure
    await on.close()
