"""The Modal deployment: HY-WorldPlay on A100-80GB, one chunk per call.

``WorldPlay.generate`` takes the orchestrator's generation request and returns the MP4, the last
frame as PNG (from the decoded frames the pipeline holds, never by re-decoding the MP4), timings
and the model it served. The pose/latent rules of the variant (``orchestrator.core.variants``) are
checked before the GPU is touched, so a bad request costs milliseconds, not a diffusion run.
Before that the call claims its job id (``gpu.claims``): a job runs at most once.

The model sits behind ``Pipeline`` (``load()`` once per container in ``@modal.enter``, then
``generate``); ``REWIND_PIPELINE`` picks it: ``worldplay`` (default, ``gpu.worldplay``) or
``cpu``, the local CPU renderer (``gpu.render``), which serves only the ``local-cpu`` model. The
same class runs in-process with ``WorldPlay().generate.local(...)`` (modal 1.6 runs
``@modal.enter`` there too, no credentials): that is how the tests exercise this file.

Deploy-time settings are environment variables read when ``modal deploy`` imports this module
(Modal bakes them into the deployment); docs/deploy.md lists them. Modal bills a container per
second from start to stop (scaledown window included), so warm containers cost GPU-seconds idle.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import modal

from gpu.claims import CANCELLED, CLAIMS_DICT, ClaimStore, DictClaims, MemoryClaims
from gpu.encode import encode_chunk
from gpu.render import RenderOutput, render_chunk
from gpu.weights import missing_weights
from gpu.worldplay import MEMORY_MIB, REPO_DIR, UPSTREAM_COMMIT, UPSTREAM_REPO, WorldPlayPipeline
from orchestrator.core.poses import parse_pose
from orchestrator.core.variants import ModelVariant, check_frames, variant

__all__ = ["WorldPlay", "check_request", "encode_chunk", "make_pipeline", "run_smoke"]


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


APP_NAME = os.environ.get("REWIND_MODAL_APP", "rewind-worldplay")
CLS_NAME = "WorldPlay"
GPU = os.environ.get("REWIND_MODAL_GPU", "A100-80GB")  # "none": a CPU-only container
MIN_CONTAINERS = _env_int("REWIND_MODAL_MIN_CONTAINERS", 0)  # kept warm even when idle
MAX_CONTAINERS = _env_int("REWIND_MODAL_MAX_CONTAINERS", 2)  # = the orchestrator's GPU slots
BUFFER_CONTAINERS = _env_int("REWIND_MODAL_BUFFER_CONTAINERS", 0)  # extra idle ones while busy
SCALEDOWN_WINDOW_S = _env_int("REWIND_MODAL_SCALEDOWN_WINDOW_S", 300)  # idle seconds before stop
TIMEOUT_S = _env_int("REWIND_MODAL_TIMEOUT_S", 900)  # max seconds of one generate call
STARTUP_TIMEOUT_S = _env_int("REWIND_MODAL_STARTUP_TIMEOUT_S", 1200)  # max seconds of the load
VOLUME_NAME = os.environ.get("REWIND_MODAL_VOLUME", "rewind-worldplay-weights")  # the weights
PIPELINE = os.environ.get("REWIND_PIPELINE", "worldplay")  # "worldplay" or "cpu"
VARIANT = os.environ.get("REWIND_WORLDPLAY_VARIANT", "worldplay-ar-distilled")
WEIGHTS_DIR = "/weights"


@dataclass(frozen=True, slots=True)
class ChunkJob:
    """A validated request: ``pose`` is canonical and its steps sum to latents - 1."""

    image_png: bytes = field(repr=False)
    pose: str
    frames: int
    steps: int
    seed: int
    prompt: str
    variant: ModelVariant
    width: int
    height: int
    fps: int


def check_request(
    image_png: bytes, pose: str, frames: int, steps: int, seed: int, prompt: str, model: str,
    width: int, height: int, fps: int,
) -> ChunkJob:  # fmt: skip
    """Apply the variant's rules (and basic sanity) before any GPU work.

    ``steps``, ``width`` or ``height`` of 0 mean the variant's own (upstream) value.

    Raises:
        ValueError: (PoseError is one) naming the broken rule; the client maps it to a
            non-transient GenerationError.
    """
    if not image_png:
        raise ValueError("image_png is empty")
    v = variant(model)
    canonical = str(parse_pose(pose, frames))  # frames = 4k + 1, steps sum to latents - 1
    check_frames(v, frames)
    steps, width, height = steps or v.steps, width or v.width, height or v.height
    if steps < 1 or not 1 <= fps <= 120:
        raise ValueError(f"steps must be >= 1 and fps within 1..120 (got {steps}, {fps})")
    if v.is_worldplay and (width, height) != (v.width, v.height):
        raise ValueError(f"{v.name} runs at {v.width} x {v.height} (got {width} x {height})")
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"width and height must be even and >= 16 (got {width}x{height})")
    return ChunkJob(image_png, canonical, frames, steps, seed, prompt, v, width, height, fps)


class Pipeline(Protocol):
    """What ``WorldPlay`` runs: loaded once per container, then one ``generate`` per call."""

    name: str
    model: str  # the one model variant it serves

    def load(self) -> None:
        """Load weights / warm up (runs in ``@modal.enter``)."""
        ...

    def generate(self, job: ChunkJob) -> RenderOutput:
        """Generate one chunk. Raises ValueError for a job this pipeline cannot serve."""
        ...

    def peak_memory_gb(self) -> float | None:
        """Peak accelerator memory of the last ``generate`` in GiB (None without a GPU)."""
        ...


class CpuPipeline:
    """The local CPU renderer (``gpu.render``) behind the Pipeline interface: model local-cpu."""

    name = "cpu"
    model = "local-cpu"

    def load(self) -> None:
        """Nothing to load: the renderer is stateless (its imports happened with this module)."""

    def generate(self, job: ChunkJob) -> RenderOutput:
        return render_chunk(job.image_png, job.pose, job.frames, job.width, job.height, job.fps)

    def peak_memory_gb(self) -> float | None:
        return None


def make_pipeline(name: str, model: str = VARIANT) -> Pipeline:
    """The pipeline called ``name`` (``REWIND_PIPELINE``). Raises ValueError if unknown."""
    if name == "cpu":
        return CpuPipeline()
    if name == "worldplay":
        return WorldPlayPipeline(model)
    raise ValueError(f"REWIND_PIPELINE must be 'worldplay' or 'cpu' (got {name!r})")


_LOCAL_CLAIMS = MemoryClaims()


def claims_store() -> ClaimStore:
    """The claims Dict in a Modal container; an in-process store under ``.local()``."""
    if modal.is_local():
        return _LOCAL_CLAIMS
    return DictClaims(modal.Dict.from_name(CLAIMS_DICT, create_if_missing=True))


_RUNTIME = [
    "av>=13",
    "numpy>=1.26",
    "pillow>=10.4",
    "structlog>=24",
    "huggingface_hub[hf_transfer]",
]

if PIPELINE == "cpu":
    image = modal.Image.debian_slim(python_version="3.11").pip_install(*_RUNTIME)
else:
    # CUDA devel base so upstream's CUDA extensions can build; the pinned commit's own
    # requirements.txt (torch>=2.6, diffusers 0.35, transformers 4.56) is installed as it is.
    image = (
        modal.Image.from_registry("nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04", add_python="3.11")
        .apt_install("git", "ffmpeg", "libgl1", "libglib2.0-0")
        .pip_install("torch==2.6.0", "torchvision==0.21.0", "torchaudio==2.6.0",
                     index_url="https://download.pytorch.org/whl/cu124")
        .run_commands(
            f"git clone {UPSTREAM_REPO} {REPO_DIR}",
            f"git -C {REPO_DIR} checkout {UPSTREAM_COMMIT}",
            f"python -m pip install -r {REPO_DIR}/requirements.txt",
        )
        .pip_install(*_RUNTIME)
    )  # fmt: skip
image = image.env({
    "HF_HOME": f"{WEIGHTS_DIR}/hf", "HF_HUB_ENABLE_HF_TRANSFER": "1",
    "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", "TOKENIZERS_PARALLELISM": "false",
}).add_local_python_source("gpu", "orchestrator")  # fmt: skip

app = modal.App(APP_NAME)
weights = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)


@app.cls(
    image=image,
    gpu=None if GPU.lower() == "none" else GPU,
    memory=MEMORY_MIB if PIPELINE == "worldplay" else None,
    volumes={WEIGHTS_DIR: weights},
    env={"REWIND_PIPELINE": PIPELINE, "REWIND_WORLDPLAY_VARIANT": VARIANT},
    min_containers=MIN_CONTAINERS,
    max_containers=MAX_CONTAINERS,
    buffer_containers=BUFFER_CONTAINERS or None,
    scaledown_window=SCALEDOWN_WINDOW_S,
    timeout=TIMEOUT_S,
    startup_timeout=STARTUP_TIMEOUT_S,
)
class WorldPlay:
    """One pipeline per container; one ``generate`` at a time (seed: 1 request per container)."""

    @modal.enter()
    def load(self) -> None:
        """Load the pipeline once per container; remember how long it took (a cold start)."""
        t0 = time.perf_counter()
        self.pipeline = make_pipeline(
            os.environ.get("REWIND_PIPELINE", "worldplay"),
            os.environ.get("REWIND_WORLDPLAY_VARIANT", VARIANT),
        )
        self.pipeline.load()
        self.claims = claims_store()
        self.load_s = time.perf_counter() - t0
        self.loaded_at = time.time()
        self.calls = 0

    @modal.method()  # sync on purpose: modal 1.6's .local() runs @modal.enter for sync methods only
    def generate(
        self, image_png: bytes, pose: str, frames: int = 125, steps: int = 0, seed: int = 0,
        prompt: str = "", model: str = VARIANT, width: int = 0, height: int = 0, fps: int = 24,
        job_id: str = "",
    ) -> dict[str, Any]:  # fmt: skip
        """Generate one chunk; a plain dict so the client needs none of this module's classes.

        Returns ``video_mp4``, ``last_frame_png`` (bytes), ``frames``, ``width``, ``height``,
        ``pose`` (canonical), ``pipeline``, ``model`` (the variant served), ``timings`` (seconds
        per phase; ``method`` is this call's wall time in the container, the GPU-seconds it
        billed), ``peak_memory_gb`` and ``container``: ``first_call``, ``loaded_at`` (epoch s),
        ``load_s`` (s of ``@modal.enter``), ``started_at`` (epoch s). With a ``job_id`` another
        call already claimed: ``{"duplicate_of": call_id}``; one the client cancelled:
        ``{"cancelled": True}``. Raises ValueError for a request breaking a rule, or for a
        model this deployment does not serve.
        """
        started_at, t0 = time.time(), time.perf_counter()
        if job_id:
            me = modal.current_function_call_id() or f"local-{id(self)}-{self.calls}"
            owner = self.claims.claim(job_id, me)
            if owner == CANCELLED:
                return {"cancelled": True, "job_id": job_id}
            if owner != me:
                return {"duplicate_of": owner, "job_id": job_id}
        try:
            job = check_request(
                image_png, pose, frames, steps, seed, prompt, model, width, height, fps
            )
            if job.variant.name != self.pipeline.model:
                raise ValueError(
                    f"this deployment serves {self.pipeline.model} (REWIND_PIPELINE="
                    f"{self.pipeline.name}), not {job.variant.name}"
                )
            out = self.pipeline.generate(job)
        except ValueError as exc:  # a plain ValueError: PoseError does not survive Modal's pickle
            raise ValueError(str(exc)) from None
        first_call, self.calls = self.calls == 0, self.calls + 1
        return {
            "video_mp4": out.video_mp4, "last_frame_png": out.last_frame_png,
            "frames": out.frames, "width": out.width, "height": out.height, "pose": job.pose,
            "pipeline": self.pipeline.name, "model": self.pipeline.model, "job_id": job_id,
            "timings": {**out.timings, "method": time.perf_counter() - t0},
            "peak_memory_gb": self.pipeline.peak_memory_gb(),
            "container": {"first_call": first_call, "loaded_at": self.loaded_at,
                          "load_s": self.load_s, "started_at": started_at},
        }  # fmt: skip


@app.function(
    image=image,
    volumes={WEIGHTS_DIR: weights},
    secrets=[modal.Secret.from_name("huggingface", required_keys=["HF_TOKEN"])],
    timeout=4 * 3600,
)
def download_weights() -> None:
    """Fill the Volume: ``modal run gpu/modal_app.py::download_weights`` (once, ~100 GB).

    Runs the pinned upstream's ``download_models.py`` with HF_HOME inside the Volume, then checks
    every file the pipeline opens (that script prints and carries on when the gated SigLIP
    download fails); commits the Volume only when all are there.

    Raises:
        RuntimeError: naming each missing path.
    """
    import subprocess

    from huggingface_hub import snapshot_download  # type: ignore[import-not-found]

    script = f"{REPO_DIR}/download_models.py"
    token = os.environ["HF_TOKEN"]
    subprocess.run([sys.executable, script, "--hf_token", token], cwd=WEIGHTS_DIR, check=True)
    base = snapshot_download("tencent/HunyuanVideo-1.5", local_files_only=True)
    actions = snapshot_download("tencent/HY-WorldPlay", local_files_only=True)
    missing = missing_weights(base, actions)
    if missing:
        raise RuntimeError(
            "the weights are incomplete after download_models.py (SigLIP needs the HF_TOKEN "
            "account to accept black-forest-labs/FLUX.1-Redux-dev's licence): missing "
            + ", ".join(missing)
        )
    weights.commit()
    print(json.dumps({"base": base, "actions": actions, "complete": True}))


def run_smoke(generate: Any, photo: bytes, model: str, frames: int = 125) -> dict[str, Any]:
    """One chunk through ``generate`` (``.remote`` on Modal, ``.local`` in tests), checked.

    Returns the JSON report: frames and size, load / generation / method seconds, peak GPU
    memory. Raises RuntimeError when frames or size differ from the model's profile.
    """
    from orchestrator.core.variants import profile_for

    profile = profile_for(model, frames=frames)
    t0 = time.perf_counter()
    out = generate(image_png=photo, pose="w-31", frames=profile.frames, model=model,
                   prompt="A smoke test of the deployment.", job_id="")  # fmt: skip
    t = out["timings"]
    report = {
        "pipeline": out["pipeline"], "model": out["model"], "frames": out["frames"],
        "width": out["width"], "height": out["height"], "load_s": out["container"]["load_s"],
        "generate_s": t.get("generate", t.get("render")), "method_s": t["method"],
        "round_trip_s": time.perf_counter() - t0, "peak_memory_gb": out["peak_memory_gb"],
    }  # fmt: skip
    wanted = (profile.frames, profile.width, profile.height, model)
    got = (out["frames"], out["width"], out["height"], out["model"])
    if got != wanted:
        raise RuntimeError(f"smoke test failed: got {got}, the profile wants {wanted}")
    return report


def smoke_photo(path: str = "") -> bytes:
    """The photo the smoke test starts from (default: the bundled ``astronaut.jpg``), as the
    service normalises uploads (``orchestrator.media.decode_photo``): RGB PNG bytes."""
    import base64
    from pathlib import Path

    from orchestrator.media import decode_photo

    bundled = Path(__file__).resolve().parent.parent / "orchestrator" / "assets" / "astronaut.jpg"
    raw = (Path(path) if path else bundled).read_bytes()
    return decode_photo(base64.b64encode(raw).decode(), max_bytes=1 << 26, max_pixels=1 << 26).png


@app.local_entrypoint()
def smoke(photo: str = "", model: str = "", deployed: bool = False) -> None:
    """``modal run gpu/modal_app.py::smoke``: one chunk of the bundled photo on the real GPU.

    With ``--deployed`` the call goes to the deployed ``APP_NAME``/``WorldPlay`` (what the
    service calls); without, to this run's ephemeral copy of the app.
    """
    chosen = model or ("local-cpu" if PIPELINE == "cpu" else VARIANT)
    target = modal.Cls.from_name(APP_NAME, CLS_NAME)() if deployed else WorldPlay()
    report = run_smoke(target.generate.remote, smoke_photo(photo), chosen)
    print(json.dumps(report, indent=2))
