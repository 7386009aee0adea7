"""The Modal deployment's own code, run in-process, and the Modal client pool's error handling.

``WorldPlay().generate.local(...)`` runs the deployed class in this process (``@modal.enter``
included, no credentials) with the CPU pipeline: a real MP4 comes out and is decoded with PyAV.
Modal's servers are unreachable here, so the pool's polling/cancel/error mapping is driven with
stand-ins for modal's client objects (``modal_fakes``) raising the exception types modal itself
raises; the credential check and an unauthenticated spawn use the real modal client.
"""

from __future__ import annotations

import asyncio
import functools
import json
import pickle
import time
from typing import Any

import modal.config
import modal.exception as mx
import numpy as np
import pytest

from gpu.modal_app import WorldPlay, check_request, encode_chunk
from gpu.modal_pool import ModalConfigError, ModalGpuPool, check_credentials, map_modal_error
from gpu.protocol import GenerationError, GenerationRequest
from gpu.worldplay import WorldPlayPipeline
from tests.conftest import photo_png
from tests.integration.adapters.modal_fakes import (
    Aio,
    FakeCall,
    FakeMethod,
    FakeModal,
    make_pool,
)
from tests.videoutil import mean_abs_diff, png_array, probe

pytestmark = pytest.mark.filterwarnings("ignore:The WorldPlay.generate function is executing")


@pytest.fixture
def cpu_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWIND_PIPELINE", "cpu")


@functools.cache
def _photo() -> bytes:
    return photo_png(size=(640, 480))


def run_local(obj: Any, **kwargs: Any) -> dict[str, Any]:
    args = {"image_png": _photo(), "pose": "w-16, right-15", "model": "local-cpu"}
    out: dict[str, Any] = obj.generate.local(**{**args, **kwargs})
    return out


def test_local_class_makes_a_real_chunk(cpu_pipeline: None) -> None:
    obj = WorldPlay()
    out = run_local(obj)  # the default profile: 125 frames, 854 x 480, 24 fps
    video = probe(out["video_mp4"])
    assert (video.frames, video.width, video.height) == (125, 854, 480)
    assert (out["frames"], out["width"], out["height"]) == (125, 854, 480)
    assert video.codec == "h264" and video.pix_fmt == "yuv420p" and round(video.fps) == 24
    # The last frame comes from the rendered pixels; the MP4's last frame is its lossy copy.
    assert mean_abs_diff(png_array(out["last_frame_png"]), video.last) < 4.0
    assert out["pipeline"] == "cpu" and out["model"] == "local-cpu"
    assert out["pose"] == "w-16, right-15" and out["peak_memory_gb"] is None
    assert out["timings"]["method"] >= out["timings"]["render"] > 0
    assert out["container"]["first_call"] is True  # @modal.enter ran for this object
    again = run_local(obj, pose="A-31", frames=125, width=160, height=96)
    assert again["container"]["first_call"] is False
    assert again["container"]["loaded_at"] == out["container"]["loaded_at"]
    assert again["pose"] == "a-31"
    assert probe(again["video_mp4"]).frames == 125


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"pose": "w-20, right-10"}, "steps must sum to 31"),  # the seed's example
        ({"frames": 126}, r"4k \+ 1"),
        ({"model": "worldplay-ar", "frames": 33, "pose": "w-8"}, "divisible by 4"),  # 9 latents
        ({"model": "worldplay-bi", "frames": 97, "pose": "w-24"}, "divisible by 16"),  # 25
        ({"model": "hy-video-9"}, "unknown model variant"),
        ({"width": 855}, "even"),
        ({"image_png": b""}, "empty"),
    ],
)
def test_rules_are_checked_before_the_gpu(
    cpu_pipeline: None, kwargs: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValueError, match=words) as info:
        run_local(WorldPlay(), **kwargs)
    # A plain ValueError: it must survive Modal's pickling back to the client.
    assert type(info.value) is ValueError
    assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)


def test_a_cpu_deployment_refuses_a_worldplay_profile(cpu_pipeline: None) -> None:
    # Placeholder chunks must never be stored under a WorldPlay profile key.
    with pytest.raises(ValueError, match=r"serves local-cpu .*not worldplay-ar-distilled"):
        run_local(WorldPlay(), model="worldplay-ar-distilled", width=832)


def test_worldplay_rules_and_variant_guard() -> None:
    job = check_request(b"png", "w-31", 125, 0, 0, "", "worldplay-bi", 0, 0, 24)
    assert job.variant.model_type == "bi"  # 32 latents: divisible by 16
    assert (job.width, job.height, job.steps) == (832, 480, 50)  # upstream run.sh / CLI default
    distilled = check_request(b"png", "w-31", 125, 0, 0, "", "worldplay-ar-distilled", 0, 0, 24)
    assert distilled.steps == 4 and distilled.variant.few_step
    with pytest.raises(ValueError, match="runs at 832 x 480"):
        check_request(b"png", "w-31", 125, 0, 0, "", "worldplay-ar", 854, 480, 24)
    # The adapter refuses another variant before importing torch or touching a GPU.
    with pytest.raises(ValueError, match="serves worldplay-ar, not worldplay-bi"):
        WorldPlayPipeline("worldplay-ar").generate(job)
    with pytest.raises(ValueError, match="not a HY-WorldPlay variant"):
        WorldPlayPipeline("local-cpu")


def test_encoder_resizes_model_frames_to_the_request() -> None:
    # The CPU renderer's path: frames of another size are resized; small here for speed.
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 80, 3), dtype=np.uint8) for _ in range(9)]
    out = encode_chunk(frames, 86, 48, 24, {})
    video = probe(out.video_mp4)
    assert (video.frames, video.width, video.height) == (9, 86, 48)
    assert png_array(out.last_frame_png).shape == (48, 86, 3)
    assert set(out.timings) == {"encode", "png"}


def remote_output(first_call: bool, loaded_at: float, load_s: float = 200.0) -> dict[str, Any]:
    return {
        "video_mp4": b"mp4", "last_frame_png": b"png", "frames": 125, "width": 854,
        "height": 480, "pose": "w-31", "pipeline": "worldplay", "model": "worldplay-ar",
        "timings": {"generate": 140.0, "encode": 1.0, "method": 142.0},
        "container": {"first_call": first_call, "loaded_at": loaded_at, "load_s": load_s,
                      "started_at": loaded_at},
    }  # fmt: skip


REQUEST = GenerationRequest(job_id="job-1", image_png=b"png", pose="w-31", model="worldplay-ar")
CPU_REQUEST = GenerationRequest(
    job_id="job-1", image_png=b"png", pose="w-31", model="local-cpu",
    prompt="a quiet harbour at dawn",
)  # fmt: skip


async def test_pool_polls_until_done_and_reports_the_call_id(cpu_pipeline: None) -> None:
    # The remote answer is the real output of the deployed class, run in-process.
    real = run_local(WorldPlay(), width=160, height=96, job_id="job-1")
    call = FakeCall([TimeoutError(), TimeoutError(), real])
    submitted: list[tuple[str, str]] = []

    async def on_submitted(job_id: str, call_id: str) -> None:
        submitted.append((job_id, call_id))

    method = FakeMethod([call])
    pool = make_pool(method, poll_s=0.01, max_containers=3, on_submitted=on_submitted)
    result = await pool.generate(CPU_REQUEST)
    assert submitted == [("job-1", "fc-01TEST")]
    assert call.polls == [0.01, 0.01, 0.01] and call.cancelled == 0
    sent = method.kwargs[0]
    assert sent["pose"] == "w-31" and sent["model"] == "local-cpu" and sent["job_id"] == "job-1"
    assert sent["prompt"] == "a quiet harbour at dawn"
    assert probe(result.video_mp4).frames == 125 == result.frames
    assert result.last_frame_png == real["last_frame_png"]
    # The container loaded before the call was submitted: warm; gpu_seconds = method seconds.
    assert not result.cold_start
    assert result.gpu_seconds == pytest.approx(real["timings"]["method"])
    assert pool.slots == 3


async def test_cold_start_and_billed_gpu_seconds() -> None:
    later = time.time() + 5  # the container finished loading after the submit: we waited for it
    pool = make_pool(FakeMethod([FakeCall([remote_output(True, later)])]))
    cold = await pool.generate(REQUEST)
    assert cold.cold_start and cold.gpu_seconds == 142.0 + 200.0
    assert cold.timings["load"] == 200.0 and "wait" in cold.timings
    earlier = time.time() - 600  # first call on a pre-warmed (min/buffer) container: no wait
    warm_pool = make_pool(FakeMethod([FakeCall([remote_output(True, earlier)])]))
    warm = await warm_pool.generate(REQUEST)
    assert not warm.cold_start and warm.gpu_seconds == 142.0
    health = await pool.health()
    assert health["cold_starts"] == 1 and health["gpu_seconds"] == 342.0


@pytest.mark.parametrize(
    ("exc", "transient", "words"),
    [
        (mx.AuthError("Token missing"), False, "MODAL_TOKEN_ID"),
        (mx.PermissionDeniedError("no"), False, "rejected the credentials"),
        (mx.NotFoundError("App 'rewind-worldplay' not found"), False, "modal deploy"),
        (mx.FunctionTimeoutError("300s"), False, "REWIND_MODAL_TIMEOUT_S"),
        (mx.OutputExpiredError(), True, "expired"),
        (mx.RemoteError("container crashed (OOM)"), True, "OOM"),
        (mx.InternalFailure("retry me"), True, "InternalFailure"),
        (mx.ConnectionError("reset"), True, "ConnectionError"),
        (mx.ServiceError("unavailable"), True, "ServiceError"),
        (mx.ExecutionError("could not deserialize"), False, "ExecutionError"),
        (TimeoutError(), True, "did not answer in time"),
        (ValueError("steps must sum to 31"), False, "rejected the request: steps must sum"),
        (RuntimeError("CUDA error"), False, "RuntimeError: CUDA error"),
    ],
)
def test_modal_errors_map_to_generation_errors(
    exc: BaseException, transient: bool, words: str
) -> None:
    error = map_modal_error(exc, where="rewind-worldplay/WorldPlay")
    assert isinstance(error, GenerationError)
    assert error.transient is transient
    assert words in str(error)


@pytest.mark.parametrize(
    ("outcome", "transient"),
    [(mx.OutputExpiredError(), True), (mx.FunctionTimeoutError("900s"), False)],
)
async def test_pool_maps_errors_while_waiting(outcome: BaseException, transient: bool) -> None:
    pool = make_pool(FakeMethod([FakeCall([TimeoutError(), outcome])]), poll_s=0.01)
    with pytest.raises(GenerationError) as info:
        await pool.generate(REQUEST)
    assert info.value.transient is transient
    health = await pool.health()
    assert health["status"] in ("degraded", "not configured")
    assert health["failures"] == 1


async def test_cancelling_the_task_cancels_the_remote_call() -> None:
    call = FakeCall([])  # never finishes
    pool = make_pool(FakeMethod([call]), poll_s=10)
    task = asyncio.create_task(pool.generate(REQUEST))
    while not call.polls:
        await asyncio.sleep(0.01)
    assert (await pool.health())["inflight"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert call.cancelled == 1
    assert (await pool.health())["inflight"] == 0


async def test_detached_pool_leaves_remote_calls_for_reattachment() -> None:
    call = FakeCall([])
    ids: list[str] = []

    async def on_submitted(job_id: str, call_id: str) -> None:
        ids.append(call_id)

    pool = make_pool(FakeMethod([call]), poll_s=10, on_submitted=on_submitted)
    task = asyncio.create_task(pool.generate(REQUEST))
    while not call.polls:
        await asyncio.sleep(0.01)
    pool.detach()  # shutdown: the scheduler is about to cancel its job tasks
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await pool.close()
    assert call.cancelled == 0 and ids == ["fc-01TEST"]  # still running, id stored


async def test_cancelled_while_reporting_the_id_still_cancels_the_call() -> None:
    call = FakeCall([])

    async def slow_store(job_id: str, call_id: str) -> None:
        await asyncio.Event().wait()

    pool = make_pool(FakeMethod([call]), on_submitted=slow_store)
    task = asyncio.create_task(pool.generate(REQUEST))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert call.cancelled == 1 and call.polls == []


async def test_giving_up_after_max_wait_cancels_the_call() -> None:
    call = FakeCall([TimeoutError()] * 100)
    pool = make_pool(FakeMethod([call]), poll_s=0.01, max_wait_s=0.0)
    with pytest.raises(GenerationError, match="no result") as info:
        await pool.generate(REQUEST)
    assert info.value.transient and call.cancelled == 1


async def test_transient_submit_failures_are_retried() -> None:
    call = FakeCall([remote_output(False, 0.0)])
    method = FakeMethod([mx.ConnectionError("reset"), mx.ServiceError("503"), call])
    pool = make_pool(method, submit_attempts=3, submit_backoff_s=0.001)
    result = await pool.generate(REQUEST)
    assert len(method.kwargs) == 3 and result.frames == 125


async def test_permanent_submit_failures_are_not_retried() -> None:
    method = FakeMethod([mx.AuthError("Token missing"), FakeCall([])])
    pool = make_pool(method, submit_attempts=3, submit_backoff_s=0.001)
    with pytest.raises(GenerationError, match="credentials") as info:
        await pool.generate(REQUEST)
    assert not info.value.transient and len(method.kwargs) == 1


async def test_a_hanging_submit_times_out_as_transient() -> None:
    class Hanging(FakeMethod):
        async def _spawn(self, **kwargs: Any) -> Any:
            self.kwargs.append(kwargs)
            await asyncio.Event().wait()

    method = Hanging([])
    method.spawn = Aio(method._spawn)
    fake = FakeModal()
    pool = make_pool(method, fake, submit_timeout_s=0.02, submit_attempts=2, submit_backoff_s=0.001)
    with pytest.raises(GenerationError, match="did not answer the submission in time") as info:
        await pool.generate(REQUEST)
    assert info.value.transient and len(method.kwargs) == 2
    # Given up: a spawn that reaches Modal later finds the job blocked and does not run.
    assert fake.dict.data == {"job-1": "cancelled"}


async def test_reattach_by_function_call_id() -> None:
    calls: dict[str, FakeCall] = {"fc-OLD": FakeCall([TimeoutError(), remote_output(True, 0.0)])}
    pool = make_pool(FakeMethod([]), call_from_id=calls.__getitem__, poll_s=0.01)
    result = await pool.reattach("fc-OLD", "job-9")
    # Submit time unknown after a restart: the container's first call counts as the cold start.
    assert result.cold_start and result.gpu_seconds == 342.0


async def test_health_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-SECRET-value")
    check_credentials()  # resolved by modal's own config (env first, then ~/.modal.toml)
    pool = make_pool(FakeMethod([FakeCall([mx.RemoteError("preempted")])]))
    assert (await pool.health())["status"] == "ok"
    with pytest.raises(GenerationError):
        await pool.generate(REQUEST)
    health = await pool.health()
    assert health["status"] == "degraded" and "preempted" in str(health["error"])
    assert "as-SECRET-value" not in json.dumps(health)

    settings: dict[str, str | None] = {"token_id": None, "token_secret": None}
    monkeypatch.setattr(modal.config.config, "get", settings.get)
    with pytest.raises(ModalConfigError) as info:
        check_credentials()
    message = str(info.value)
    assert "MODAL_TOKEN_ID and MODAL_TOKEN_SECRET are not set" in message
    assert "~/.modal.toml" in message and "modal token new" in message
    settings["token_id"] = "ak-test"
    with pytest.raises(ModalConfigError, match="MODAL_TOKEN_SECRET is not set"):
        check_credentials()
    assert (await pool.health())["status"] == "not configured"


async def test_real_modal_client_without_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODAL_TOKEN_ID", raising=False)
    monkeypatch.delenv("MODAL_TOKEN_SECRET", raising=False)
    if modal.config.config.get("token_id"):
        pytest.skip("this machine has a Modal profile in ~/.modal.toml")
    # modal's real client refuses before any network I/O (AuthError: "Token missing").
    pool = ModalGpuPool(submit_timeout_s=20)
    with pytest.raises(GenerationError, match="credentials") as info:
        await pool.generate(REQUEST)
    assert not info.value.transient
    with pytest.raises(GenerationError, match="credentials"):
        await pool.check_deployment(timeout_s=20)


def test_smoke_entry_point_runs_one_chunk_through_the_class(cpu_pipeline: None) -> None:
    from gpu.modal_app import run_smoke, smoke_photo

    photo = smoke_photo()  # the bundled astronaut.jpg, normalised like an upload
    assert png_array(photo).shape[2] == 3
    report = run_smoke(WorldPlay().generate.local, photo, "local-cpu")
    assert (report["frames"], report["width"], report["height"]) == (125, 854, 480)
    assert report["pipeline"] == "cpu" and report["model"] == "local-cpu"
    assert report["load_s"] >= 0 and report["method_s"] >= report["generate_s"] > 0
    assert report["peak_memory_gb"] is None  # no GPU here; a float on Modal
    json.dumps(report)  # printed as JSON by `modal run gpu/modal_app.py::smoke`

    def short(**kwargs: Any) -> dict[str, Any]:
        out: dict[str, Any] = WorldPlay().generate.local(**kwargs)
        return {**out, "frames": 121}

    with pytest.raises(RuntimeError, match="smoke test failed"):
        run_smoke(short, photo, "local-cpu")
