"""LocalGpuPool: slots, delay, cancellation and worker failures, with real renders in processes."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import cache

import av
import numpy as np
import pytest
from PIL import Image
from skimage import data

from gpu.local import LocalGpuPool
from gpu.protocol import GenerationError, GenerationRequest, GenerationResult, GpuPool

SMALL = {"frames": 33, "width": 160, "height": 96}


@cache
def photo_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buf, format="PNG")
    return buf.getvalue()


def request(job_id: str = "job-1", pose: str = "w-8", **profile: int) -> GenerationRequest:
    size = {**SMALL, **profile}
    return GenerationRequest(job_id=job_id, image_png=photo_png(), pose=pose, **size)


async def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``condition`` until true; the timeout only guards against a hung test."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


@pytest.fixture
async def make_pool() -> AsyncIterator[Callable[..., LocalGpuPool]]:
    pools: list[LocalGpuPool] = []

    def make(**kwargs: object) -> LocalGpuPool:
        pool = LocalGpuPool(**kwargs)  # type: ignore[arg-type]
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.close()


async def test_generate_returns_a_real_chunk(make_pool: Callable[..., LocalGpuPool]) -> None:
    pool = make_pool(slots=1)
    assert isinstance(pool, GpuPool)
    result = await pool.generate(request())
    assert (result.frames, result.width, result.height) == (33, 160, 96)
    assert result.cold_start is False
    assert result.gpu_seconds > 0
    assert {"render", "encode", "delay", "worker"} <= set(result.timings)
    with av.open(io.BytesIO(result.video_mp4)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 33
    last = np.asarray(Image.open(io.BytesIO(result.last_frame_png)))
    assert last.shape == (96, 160, 3)
    assert pool.busy == 0


async def test_one_slot_runs_generations_one_after_another(
    make_pool: Callable[..., LocalGpuPool],
) -> None:
    pool = make_pool(slots=1, delay_s=0.2, workers=2)
    max_busy = 0
    finished: list[str] = []

    async def run(job: str) -> GenerationResult:
        result = await pool.generate(request(job))
        finished.append(job)
        return result

    async def watch() -> None:
        nonlocal max_busy
        while True:
            max_busy = max(max_busy, pool.busy)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    start = time.perf_counter()
    first, second = await asyncio.gather(run("a"), run("b"))
    elapsed = time.perf_counter() - start
    watcher.cancel()
    assert max_busy == 1
    assert finished == ["a", "b"]
    # Serial slot periods are disjoint intervals inside [start, end]: they cannot sum to more.
    assert elapsed >= first.gpu_seconds + second.gpu_seconds
    assert second.timings["queue"] > 0.2  # it waited at least for the first one's delay


async def test_delay_is_billed_as_gpu_seconds(make_pool: Callable[..., LocalGpuPool]) -> None:
    pool = make_pool(slots=1, delay_s=0.3)
    result = await pool.generate(request())
    assert result.timings["delay"] >= 0.3
    assert result.gpu_seconds >= 0.3
    assert result.gpu_seconds >= result.timings["worker"] + result.timings["delay"] - 1e-6


async def test_cancelling_frees_the_slot(make_pool: Callable[..., LocalGpuPool]) -> None:
    pool = make_pool(slots=1, delay_s=60.0)
    holder = asyncio.create_task(pool.generate(request("holder")))
    await wait_for(lambda: pool.busy == 1)
    queued = asyncio.create_task(pool.generate(request("queued")))
    await asyncio.sleep(0.05)
    queued.cancel()  # cancelled while waiting for the slot: takes nothing
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert pool.busy == 1
    holder.cancel()  # cancelled while rendering or in its delay
    with pytest.raises(asyncio.CancelledError):
        await holder
    assert pool.busy == 0
    # The slot really is free again: a new generation acquires it.
    again = asyncio.create_task(pool.generate(request("again")))
    await wait_for(lambda: pool.busy == 1)
    again.cancel()
    with pytest.raises(asyncio.CancelledError):
        await again
    assert pool.busy == 0
    assert (await pool.health())["busy"] == 0


@pytest.mark.parametrize(
    ("pose", "profile"),
    [("w-30", {}), ("jump-8", {}), ("w-8", {"width": 161}), ("w-7", {"frames": 30})],
)
async def test_invalid_requests_are_permanent_errors(
    make_pool: Callable[..., LocalGpuPool], pose: str, profile: dict[str, int]
) -> None:
    pool = make_pool(slots=1)
    with pytest.raises(GenerationError) as info:
        await pool.generate(request(pose=pose, **profile))
    assert info.value.transient is False
    assert "job-1" in str(info.value)
    assert pool.busy == 0
    # The worker survived: the pool still renders.
    assert (await pool.generate(request())).frames == 33


async def test_a_dead_worker_is_transient_and_the_pool_recovers(
    make_pool: Callable[..., LocalGpuPool],
) -> None:
    pool = make_pool(slots=1)
    await pool.generate(request())  # start the worker processes
    executor = pool._executor
    assert executor is not None
    big = request(pose="w-31", frames=125, width=854, height=480)
    task = asyncio.create_task(pool.generate(big))
    await wait_for(lambda: pool.busy == 1)
    for process in list(executor._processes.values()):  # type: ignore[attr-defined]
        process.kill()
    with pytest.raises(GenerationError) as info:
        await task
    assert info.value.transient is True
    assert pool.busy == 0
    result = await pool.generate(request())
    assert result.frames == 33
    assert pool._executor is not executor


async def test_health_reports_slots_and_load(make_pool: Callable[..., LocalGpuPool]) -> None:
    pool = make_pool(slots=3, delay_s=1.5)
    assert pool.name == "local"
    assert pool.slots == 3
    health = await pool.health()
    assert {k: health[k] for k in ("status", "backend", "slots", "busy", "delay_s")} == {
        "status": "ok",
        "backend": "local",
        "slots": 3,
        "busy": 0,
        "delay_s": 1.5,
    }


async def test_closed_pool_refuses_work(make_pool: Callable[..., LocalGpuPool]) -> None:
    pool = make_pool(slots=1)
    await pool.generate(request())
    await pool.close()
    with pytest.raises(GenerationError) as info:
        await pool.generate(request())
    assert info.value.transient is False
    assert (await pool.health())["status"] != "ok"


@pytest.mark.parametrize(
    "kwargs", [{"slots": 0}, {"slots": 1, "delay_s": -1.0}, {"slots": 1, "workers": 0}]
)
def test_constructor_rejects_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LocalGpuPool(**kwargs)  # type: ignore[arg-type]


async def test_concurrent_slots_overlap(make_pool: Callable[..., LocalGpuPool]) -> None:
    pool = make_pool(slots=2, delay_s=0.5)
    seen_two = False

    async def watch() -> None:
        nonlocal seen_two
        while True:
            seen_two = seen_two or pool.busy == 2
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    jobs: list[Awaitable[GenerationResult]] = [pool.generate(request(j)) for j in ("a", "b")]
    await asyncio.gather(*jobs)
    watcher.cancel()
    assert seen_two
