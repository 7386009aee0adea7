"""The simulated pool's bill: idle warm time, scale-down tails, and ``warm_idle``."""

from __future__ import annotations

from orchestrator.sim.pool import GpuPool
from orchestrator.sim.regime import Generation, PoolModel

G = Generation("fixed", mean_gpu_s=10.0, min_gpu_s=10.0, max_gpu_s=10.0)


def test_a_warm_minimum_is_billed_idle_until_the_end() -> None:
    pool = GpuPool(PoolModel(2, 2, 100.0, 30.0, 30.0), G, seed=0, start_s=5.0)
    assert pool.warm_idle(5.0) == 2
    assert pool.acquire(10.0, "c", 1) == (0.0, False)  # warm: no cold start
    assert pool.warm_idle(10.0) == 1
    pool.release(20.0, 10.0)
    # container A idle 5..10 and 20..50, container B 5..50
    assert pool.close(50.0) == 5.0 + 30.0 + 45.0


def test_a_booted_container_is_billed_until_it_scales_down() -> None:
    pool = GpuPool(PoolModel(2, 0, 100.0, 30.0, 30.0), G, seed=0, start_s=0.0)
    assert pool.warm_idle(0.0) == 0
    assert pool.acquire(0.0, "c", 1) == (30.0, True)  # cold start: 30 s load in the job
    pool.release(40.0, 30.0)
    assert pool.warm_idle(50.0) == 1
    assert pool.warm_idle(141.0) == 0  # stopped at 40 + 100
    assert pool.idle_gpu_s == 100.0
    assert pool.close(200.0) == 100.0


def test_initial_warm_containers_scale_down_to_the_minimum() -> None:
    pool = GpuPool(PoolModel(4, 1, 60.0, 30.0, 30.0, initial_warm=3), G, seed=0, start_s=0.0)
    assert pool.warm_idle(0.0) == 3
    assert pool.warm_idle(61.0) == 1  # two stopped at 60, the minimum stays
    assert pool.close(100.0) == 60.0 + 60.0 + 100.0
