"""Restarts, orphans, deployment health and the warm pool, at the Modal client boundary.

The container side is the real ``WorldPlay`` class run with ``.local()`` and the CPU pipeline
(its claim code is the production path, with the in-process claim store); the client side is the
real ``ModalGpuPool`` driven through stand-ins for modal's objects (``modal_fakes``).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import modal.exception as mx
import pytest

from gpu.claims import CANCELLED, ClaimsClient, MemoryClaims
from gpu.modal_app import WorldPlay
from gpu.protocol import GenerationError, GenerationRequest
from tests.conftest import photo_png
from tests.integration.adapters.modal_fakes import FakeCall, FakeMethod, FakeModal, make_pool
from tests.videoutil import probe

pytestmark = pytest.mark.filterwarnings("ignore:The WorldPlay.generate function is executing")


@functools.cache
def _photo() -> bytes:
    return photo_png(size=(320, 240))


def _request(job_id: str) -> GenerationRequest:
    return GenerationRequest(
        job_id=job_id, image_png=_photo(), pose="w-8", frames=33, width=160, height=96,
        model="local-cpu", prompt="a harbour",
    )  # fmt: skip


@pytest.fixture
def container(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The deployed class with the CPU pipeline and a fresh claim store."""
    monkeypatch.setenv("REWIND_PIPELINE", "cpu")
    monkeypatch.setattr("gpu.modal_app._LOCAL_CLAIMS", MemoryClaims())
    return WorldPlay()


def _kwargs(request: GenerationRequest) -> dict[str, Any]:
    return {
        "image_png": request.image_png, "pose": request.pose, "frames": request.frames,
        "steps": request.steps, "seed": request.seed, "prompt": request.prompt,
        "model": request.model, "width": request.width, "height": request.height,
        "fps": request.fps, "job_id": request.job_id,
    }  # fmt: skip


def test_the_container_runs_a_job_once(container: Any) -> None:
    kwargs = _kwargs(_request("job-A"))
    first = container.generate.local(**kwargs)
    assert probe(first["video_mp4"]).frames == 33 and first["job_id"] == "job-A"
    again = container.generate.local(**kwargs)  # a second start of the same job
    assert set(again) == {"duplicate_of", "job_id"}
    assert again["duplicate_of"].startswith("local-")
    assert container.calls == 1  # no second render


def test_a_blocked_job_never_runs(container: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import gpu.modal_app

    container.generate.local(**_kwargs(_request("warm-up")))  # @modal.enter ran
    gpu.modal_app._LOCAL_CLAIMS.cancel("job-B")  # what ClaimsClient.cancel puts in the Dict
    out = container.generate.local(**_kwargs(_request("job-B")))
    assert out == {"cancelled": True, "job_id": "job-B"} and container.calls == 1


async def test_a_timed_out_submission_that_started_is_adopted(container: Any) -> None:
    fake = FakeModal()
    request = _request("job-1")
    # The spawn reached Modal (the call claims the job) but the client's wait timed out.
    orphan = FakeCall([], object_id="fc-ORPHAN")

    async def lost_answer(**kwargs: Any) -> Any:
        fake.dict.data[kwargs["job_id"]] = "fc-ORPHAN"  # the container's claim
        orphan.outcomes.append(container.generate.local(**{**kwargs, "job_id": ""}))
        await asyncio.Event().wait()

    method = FakeMethod([lost_answer])
    pool = make_pool(method, fake, call_from_id={"fc-ORPHAN": orphan}.__getitem__,
                     submit_timeout_s=0.05, poll_s=0.01)  # fmt: skip
    result = await pool.generate(request)
    assert len(method.kwargs) == 1  # adopted, not spawned again
    assert probe(result.video_mp4).frames == 33 and pool.adopted == 1


async def test_a_timed_out_submission_not_yet_started_is_spawned_once_more(
    container: Any,
) -> None:
    fake = FakeModal()
    calls: dict[str, FakeCall] = {}
    late: list[dict[str, Any]] = []

    async def lost(**kwargs: Any) -> Any:
        late.append(kwargs)  # queued on Modal; it starts after the retry
        await asyncio.Event().wait()

    async def second(**kwargs: Any) -> Any:
        out = container.generate.local(**kwargs)  # runs and claims the job
        calls["fc-2"] = FakeCall([out], object_id="fc-2")
        return calls["fc-2"]

    method = FakeMethod([lost, second])
    pool = make_pool(method, fake, call_from_id=calls.__getitem__, submit_timeout_s=0.05,
                     submit_backoff_s=0.001, poll_s=0.01)  # fmt: skip
    result = await pool.generate(_request("job-2"))
    assert result.frames == 33 and len(method.kwargs) == 2
    # The queued first spawn finally starts: its claim check refuses a second render.
    dup = container.generate.local(**late[0])
    assert dup == {"duplicate_of": dup["duplicate_of"], "job_id": "job-2"}
    assert container.calls == 1


async def test_a_duplicate_answer_is_followed_to_the_owner() -> None:
    from tests.integration.adapters.test_modal import remote_output

    owner = FakeCall([remote_output(False, 0.0)], object_id="fc-OWNER")
    dup = FakeCall([{"duplicate_of": "fc-OWNER", "job_id": "job-3"}], object_id="fc-DUP")
    pool = make_pool(FakeMethod([dup]), call_from_id={"fc-OWNER": owner}.__getitem__)
    request = GenerationRequest(job_id="job-3", image_png=b"png", pose="w-31", model="worldplay-ar")
    result = await pool.generate(request)
    assert result.gpu_seconds == 142.0 and pool.adopted == 1 and owner.polls


async def test_cancelled_during_the_spawn_blocks_or_cancels_the_job() -> None:
    fake = FakeModal()
    never = FakeMethod([lambda **kw: asyncio.Event().wait()])
    pool = make_pool(never, fake)
    task = asyncio.create_task(pool.generate(_request("job-4")))
    while not never.kwargs:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake.dict.data == {"job-4": CANCELLED}  # a late start finds the block
    # Already claimed by a running call: that call is cancelled instead.
    running = FakeCall([], object_id="fc-RUNNING")
    fake.dict.data["job-5"] = "fc-RUNNING"
    pool2 = make_pool(FakeMethod([lambda **kw: asyncio.Event().wait()]), fake,
                      call_from_id={"fc-RUNNING": running}.__getitem__)  # fmt: skip
    task = asyncio.create_task(pool2.generate(_request("job-5")))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert running.cancelled == 1


async def test_resume_reattaches_by_stored_id_or_claim_never_resubmits(container: Any) -> None:
    request = _request("job-6")
    out = container.generate.local(**_kwargs(request))
    fake = FakeModal()
    stored = FakeCall([TimeoutError(), out], object_id="fc-STORED")
    method = FakeMethod([])  # any spawn would fail the test (empty list)
    pool = make_pool(method, fake, call_from_id={"fc-STORED": stored}.__getitem__, poll_s=0.01)
    result = await pool.resume(request, "fc-STORED")
    assert result.frames == 33 and method.kwargs == [] and stored.polls == [0.01, 0.01]
    # No id stored (the process died between spawn and on_submitted): the claim finds it.
    fake.dict.data["job-7"] = "fc-CLAIMED"
    claimed = FakeCall([out], object_id="fc-CLAIMED")
    pool = make_pool(method, fake, call_from_id={"fc-CLAIMED": claimed}.__getitem__)
    assert (await pool.resume(_request("job-7"), None)).frames == 33 and method.kwargs == []
    # Nothing ever claimed it: spawned now (and still at most once).
    fresh = FakeCall([out], object_id="fc-NEW")
    pool = make_pool(FakeMethod([fresh]), fake)
    assert (await pool.resume(_request("job-8"), None)).frames == 33


async def test_a_result_from_another_model_is_refused(container: Any) -> None:
    out = container.generate.local(**_kwargs(_request("job-9")))  # model local-cpu
    pool = make_pool(FakeMethod([FakeCall([out])]))
    wants_worldplay = GenerationRequest(
        job_id="job-9", image_png=b"png", pose="w-31", model="worldplay-ar-distilled"
    )
    with pytest.raises(GenerationError, match="serving model 'local-cpu'") as info:
        await pool.generate(wants_worldplay)
    assert not info.value.transient and pool.calls == 0
    with pytest.raises(GenerationError, match="not the profile's"):
        await make_pool(FakeMethod([]), call_from_id=lambda _id: FakeCall([out])).reattach(
            "fc-X", "job-9", model="worldplay-ar"
        )


async def test_health_reports_the_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-test")
    missing = FakeModal(deployed=False)
    pool = make_pool(FakeMethod([]), missing)
    health = await pool.health()
    assert health["status"] == "unhealthy" and health["deployed"] is False
    assert "modal deploy gpu/modal_app.py" in str(health["error"])
    assert missing.lookups == [("rewind-worldplay", "WorldPlay", None)]
    await pool.health()
    assert len(missing.lookups) == 1  # cached for ttl_s: /api/health polling stays cheap
    missing.deployed = True
    assert (await pool.deployment.probe(force=True)).found is True
    assert (await pool.health())["status"] == "ok"


async def test_warm_pool_control_calls_update_autoscaler() -> None:
    fake = FakeModal()
    pool = make_pool(FakeMethod([]), fake, max_containers=3)
    assert await pool.set_warm(2, buffer_containers=1) is True
    assert await pool.set_warm(2, buffer_containers=1) is False  # unchanged: no call
    assert await pool.set_warm(9) is True  # capped at max_containers
    assert await pool.set_warm(0, buffer_containers=0) is True  # sessions ended: scale down
    assert fake.autoscaler == [
        {"min_containers": 2, "buffer_containers": 1},
        {"min_containers": 3},
        {"min_containers": 0, "buffer_containers": 0},
    ]
    assert (await pool.health())["warm"] == [0, 0]
    with pytest.raises(ValueError):
        await pool.set_warm(-1)
    gone = make_pool(FakeMethod([]), FakeModal(deployed=False))
    with pytest.raises(GenerationError, match="modal deploy") as info:
        await gone.set_warm(1)
    assert not info.value.transient


async def test_claims_client_treats_no_answer_as_unknown() -> None:
    class Down:
        def __init__(self) -> None:
            self.get = self.put = type("A", (), {"aio": staticmethod(self._fail)})()

        async def _fail(self, *args: Any, **kwargs: Any) -> Any:
            raise mx.ConnectionError("unreachable")

    client = ClaimsClient(Down(), timeout_s=0.5)
    assert await client.owner("job") is None and await client.cancel("job") is None


async def test_idle_warm_containers_from_modal_stats() -> None:
    from modal.types import FunctionCurrentStats

    stats = FunctionCurrentStats(
        backlog=0, num_total_runners=3, num_running_inputs=1, input_headroom=2
    )
    assert await make_pool(FakeMethod([], stats=stats)).warm_idle() == 2
    queued = FunctionCurrentStats(
        backlog=4, num_total_runners=2, num_running_inputs=2, input_headroom=0
    )
    assert await make_pool(FakeMethod([], stats=queued)).warm_idle() == 0
    down = FakeMethod([], stats=mx.ConnectionError("unreachable"))
    assert await make_pool(down).warm_idle() is None
