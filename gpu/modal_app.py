"""The Modal deployment: HY-WorldPlay on A100-80GB, one chunk per call.

``WorldPlay.generate`` takes the orchestrator's generation request and returns the MP4, the last
frame as PNG (taken from the decoded frames the pipeline holds, never by re-decoding the MP4) and
timings. The pose/latent rules of DESIGN.md "Poses" are checked before the GPU is touched, so a
bad request costs milliseconds, not a diffusion run. Super-resolution is always off (seed: 480p).

The model sits behind ``Pipeline`` (``load()`` once per container in ``@modal.enter``, then
``generate``); ``REWIND_PIPELINE`` picks it: ``worldplay`` (default) or ``cpu``, the local CPU
renderer (``gpu.render``), which makes the very same class runnable in-process with
``WorldPlay().generate.local(...)`` (modal 1.6 runs ``@modal.enter`` there too, no credentials:
DESIGN.md "Facts checked on this machine"); that is how the tests exercise this file.

Deploy-time settings are environment variables read when ``modal deploy`` imports this module
(Modal bakes them into the deployment); each constant below names its variable and default, and
docs/deploy.md lists them. Modal bills a container per second from start to stop (scaledown
window included), so ``min_containers`` and ``buffer_containers`` cost GPU-seconds even idle.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import av
import modal
import numpy as np
from PIL import Image

from gpu.render import CRF, GOP_FRAMES, PRESET, RenderOutput, render_chunk
from orchestrator.core.poses import latents_for_frames, parse_pose


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


# Modal app name, looked up by the orchestrator with modal.Cls.from_name(APP_NAME, CLS_NAME).
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
VARIANT = os.environ.get("REWIND_WORLDPLAY_VARIANT", "worldplay-ar")  # one of VARIANTS
WORLDPLAY_REF = os.environ.get("REWIND_WORLDPLAY_REF", "main")  # git ref of the HY-WorldPlay repo
WEIGHTS_DIR = "/weights"
REPO_DIR = "/opt/HY-WorldPlay"


@dataclass(frozen=True, slots=True)
class Variant:
    """A model variant (the profile's ``model``). ``latent_multiple``: latents must divide by it."""

    name: str
    checkpoint: str | None  # folder of the tencent/HY-WorldPlay weights; None for the CPU renderer
    model_type: str  # HY-WorldPlay ``--model_type``: "ar" or "bi" ("cpu" for the renderer)
    few_step: bool  # distilled 4-step model (``--few_step true``)
    latent_multiple: int


# HY-WorldPlay's generate.py asserts latents % 4 == 0 for every variant (AR chunks are 4 latents);
# the bidirectional model also needs latents % 16 == 0 (DESIGN.md "Poses").
VARIANTS = {
    v.name: v
    for v in (
        Variant("worldplay-ar", "ar_model", "ar", False, 4),
        Variant("worldplay-ar-distilled", "ar_distilled_action_model", "ar", True, 4),
        Variant("worldplay-bi", "bidirectional_model", "bi", False, 16),
        Variant("local-cpu", None, "cpu", False, 1),
    )
}


@dataclass(frozen=True, slots=True)
class ChunkJob:
    """A validated request: ``pose`` is canonical and its steps sum to latents - 1."""

    image_png: bytes = field(repr=False)
    pose: str
    frames: int
    steps: int
    seed: int
    prompt: str
    variant: Variant
    width: int
    height: int
    fps: int


def check_request(
    image_png: bytes, pose: str, frames: int, steps: int, seed: int, prompt: str, model: str,
    width: int, height: int, fps: int,
) -> ChunkJob:  # fmt: skip
    """Apply DESIGN.md's pose/latent rules (and basic sanity) before any GPU work.

    Raises:
        ValueError: (PoseError is one) naming the broken rule; the client maps it to a
            non-transient GenerationError.
    """
    if not image_png:
        raise ValueError("image_png is empty")
    latents = latents_for_frames(frames)  # frames = 4k + 1
    canonical = str(parse_pose(pose, frames))  # steps sum to latents - 1
    variant = VARIANTS.get(model)
    if variant is None:
        raise ValueError(f"unknown model variant {model!r}; known: {', '.join(VARIANTS)}")
    if latents % variant.latent_multiple:
        raise ValueError(
            f"{model} needs a latent count divisible by {variant.latent_multiple}; "
            f"{frames} frames give {latents} latents"
        )
    if steps < 1 or not 1 <= fps <= 120:
        raise ValueError(f"steps must be >= 1 and fps within 1..120 (got {steps}, {fps})")
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"width and height must be even and >= 16 (got {width}x{height})")
    return ChunkJob(image_png, canonical, frames, steps, seed, prompt, variant, width, height, fps)


class Pipeline(Protocol):
    """What ``WorldPlay`` runs: loaded once per container, then one ``generate`` per call."""

    name: str

    def load(self) -> None:
        """Load weights / warm up (runs in ``@modal.enter``)."""
        ...

    def generate(self, job: ChunkJob) -> RenderOutput:
        """Generate one chunk. Raises ValueError for a job this pipeline cannot serve."""
        ...


class CpuPipeline:
    """The local CPU renderer (``gpu.render``) behind the Pipeline interface; any variant."""

    name = "cpu"

    def load(self) -> None:
        """Nothing to load: the renderer is stateless (its imports happened with this module)."""

    def generate(self, job: ChunkJob) -> RenderOutput:
        return render_chunk(job.image_png, job.pose, job.frames, job.width, job.height, job.fps)


class WorldPlayPipeline:
    """HY-WorldPlay (HunyuanVideo-1.5 + action checkpoint), i2v at 480p, super-resolution off.

    UNTESTED HERE (no GPU, no weights, no network on the machine this was written on). The calls
    follow Tencent-Hunyuan/HY-WorldPlay's ``generate.py``: ``HunyuanVideo_1_5_Pipeline.
    create_pipeline(...)``, ``pose_to_input(pose, latents)`` and ``pipe(..., viewmats, Ks,
    action, chunk_latent_frames=4 | 16, model_type="ar" | "bi")`` returning ``videos`` as a
    float tensor (1, C, F, H, W) in 0..1. Weights are read from the Volume (``download_weights``).
    """

    name = "worldplay"

    def __init__(self, variant: str = VARIANT) -> None:
        if variant not in VARIANTS or VARIANTS[variant].checkpoint is None:
            raise ValueError(f"REWIND_WORLDPLAY_VARIANT={variant!r} is not a HY-WorldPlay variant")
        self.variant = VARIANTS[variant]
        self._pipe: Any = None
        self._pose_to_input: Any = None

    def load(self) -> None:
        import sys
        from argparse import Namespace

        import torch  # type: ignore[import-not-found]
        from huggingface_hub import snapshot_download  # type: ignore[import-not-found]

        sys.path.insert(0, REPO_DIR)
        # The repo's generate.py holds pose_to_input; importing it also sets up the (1-GPU)
        # parallel state, as its own CLI does.
        import generate as hy_generate  # type: ignore[import-not-found]
        from hyvideo.commons.infer_state import (  # type: ignore[import-not-found]
            initialize_infer_state,
        )
        from hyvideo.pipelines.worldplay_video_pipeline import (  # type: ignore[import-not-found]
            HunyuanVideo_1_5_Pipeline,
        )

        # The same inference switches generate.py's argparse defaults give (no sage/fp8/compile).
        initialize_infer_state(Namespace(
            sage_blocks_range="0-53", use_sageattn=False, enable_torch_compile=False,
            use_fp8_gemm=False, quant_type="fp8-per-block", include_patterns="double_blocks",
        ))  # fmt: skip
        # HF_HOME points into the Volume, so these resolve the downloaded snapshots offline.
        base = os.environ.get("WORLDPLAY_MODEL_PATH") or snapshot_download(
            "tencent/HunyuanVideo-1.5", local_files_only=True
        )
        actions = os.environ.get("WORLDPLAY_ACTION_ROOT") or snapshot_download(
            "tencent/HY-WorldPlay", local_files_only=True
        )
        self._pipe = HunyuanVideo_1_5_Pipeline.create_pipeline(
            pretrained_model_name_or_path=base,
            transformer_version="480p_i2v",
            enable_offloading=False,  # 80 GB holds everything; offloading only slows it down
            enable_group_offloading=False,
            create_sr_pipeline=False,
            force_sparse_attn=False,
            transformer_dtype=torch.bfloat16,
            action_ckpt=os.path.join(actions, self.variant.checkpoint or ""),
        )
        self._pose_to_input = hy_generate.pose_to_input

    def generate(self, job: ChunkJob) -> RenderOutput:
        if job.variant != self.variant:
            raise ValueError(f"this deployment serves {self.variant.name}, not {job.variant.name}")
        import torch

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        image = Image.open(io.BytesIO(job.image_png)).convert("RGB")
        viewmats, ks, action = self._pose_to_input(job.pose, latents_for_frames(job.frames))
        timings["prepare"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = self._pipe(
            prompt=job.prompt, negative_prompt="", aspect_ratio="16:9",
            num_inference_steps=job.steps, video_length=job.frames, seed=job.seed,
            reference_image=image, enable_sr=False, sr_num_inference_steps=None,
            return_pre_sr_video=False, prompt_rewrite=False, output_type="pt",
            viewmats=viewmats.unsqueeze(0), Ks=ks.unsqueeze(0), action=action.unsqueeze(0),
            few_step=self.variant.few_step,
            chunk_latent_frames=16 if self.variant.model_type == "bi" else 4,
            model_type=self.variant.model_type,
            # The transformer works on multiples of 16 px; frames are resized to the request below.
            user_width=job.width // 16 * 16, user_height=job.height // 16 * 16,
        )  # fmt: skip
        torch.cuda.synchronize()
        timings["generate"] = time.perf_counter() - t0
        video = out.videos[0] if out.videos.ndim == 5 else out.videos  # (C, F, H, W) in 0..1
        frames = (video.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 3, 0)
        rgb = list(frames.cpu().numpy())
        if len(rgb) != job.frames:
            raise RuntimeError(f"pipeline returned {len(rgb)} frames, expected {job.frames}")
        return encode_chunk(rgb, job.width, job.height, job.fps, timings)


def encode_chunk(
    rgb: list[Any], width: int, height: int, fps: int, timings: dict[str, float]
) -> RenderOutput:
    """Encode RGB uint8 frames (H x W x 3) as H.264 MP4; the last frame as PNG from the array.

    Same encoding as the CPU renderer (``gpu.render``): libx264 yuv420p, CRF 23, a keyframe
    every 24 frames and no scene-cut keyframes (DESIGN.md: a seek then reaches the last frame in
    ~10 ms), ``+faststart``. Frames of another size are resized to ``width`` x ``height``.
    """
    import tempfile

    t0 = time.perf_counter()
    if rgb[0].shape[:2] != (height, width):
        resample = Image.Resampling.LANCZOS
        rgb = [np.asarray(Image.fromarray(f).resize((width, height), resample)) for f in rgb]
    with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp:
        with av.open(tmp.name, "w", container_options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=fps, options={
                "crf": str(CRF), "preset": PRESET,
                "x264-params": f"keyint={GOP_FRAMES}:min-keyint={GOP_FRAMES}:scenecut=0",
            })  # fmt: skip
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for index, frame in enumerate(rgb):
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                video_frame.pts = index
                container.mux(stream.encode(video_frame))
            container.mux(stream.encode(None))
        mp4 = tmp.read()
    timings["encode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    png = io.BytesIO()
    Image.fromarray(rgb[-1]).save(png, format="PNG", compress_level=3)
    timings["png"] = time.perf_counter() - t0
    return RenderOutput(mp4, png.getvalue(), len(rgb), width, height, timings)


def make_pipeline(name: str) -> Pipeline:
    """The pipeline called ``name`` (``REWIND_PIPELINE``). Raises ValueError if unknown."""
    if name == "cpu":
        return CpuPipeline()
    if name == "worldplay":
        return WorldPlayPipeline(os.environ.get("REWIND_WORLDPLAY_VARIANT", VARIANT))
    raise ValueError(f"REWIND_PIPELINE must be 'worldplay' or 'cpu' (got {name!r})")


_TORCH = ("torch==2.6.0", "torchvision==0.21.0")
_RUNTIME = ["av>=13", "numpy>=1.26", "pillow>=10.4", "huggingface_hub[hf_transfer]>=0.30"]

if PIPELINE == "cpu":
    image = modal.Image.debian_slim(python_version="3.11").pip_install(*_RUNTIME)
else:
    # CUDA devel base so HY-WorldPlay's CUDA extensions can build; upstream tests Python 3.10 +
    # conda, the orchestrator's own code needs 3.11 (both are supported by torch 2.6).
    image = (
        modal.Image.from_registry("nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04", add_python="3.11")
        .apt_install("git", "ffmpeg", "libgl1", "libglib2.0-0")
        .pip_install(*_TORCH, index_url="https://download.pytorch.org/whl/cu124")
        .run_commands(
            f"git clone https://github.com/Tencent-Hunyuan/HY-WorldPlay {REPO_DIR}",
            f"git -C {REPO_DIR} checkout {WORLDPLAY_REF}",
            f"python -m pip install -r {REPO_DIR}/requirements.txt",
        )
        .pip_install(*_RUNTIME)
    )
image = image.env({
    "HF_HOME": f"{WEIGHTS_DIR}/hf", "HF_HUB_ENABLE_HF_TRANSFER": "1",
    "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
}).add_local_python_source("gpu", "orchestrator")  # fmt: skip

app = modal.App(APP_NAME)
weights = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)


@app.cls(
    image=image,
    gpu=None if GPU.lower() == "none" else GPU,
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
        self.pipeline = make_pipeline(os.environ.get("REWIND_PIPELINE", "worldplay"))
        self.pipeline.load()
        self.load_s = time.perf_counter() - t0
        self.loaded_at = time.time()
        self.calls = 0

    @modal.method()  # sync on purpose: modal 1.6's .local() runs @modal.enter for sync methods only
    def generate(
        self, image_png: bytes, pose: str, frames: int = 125, steps: int = 30, seed: int = 0,
        prompt: str = "", model: str = "worldplay-ar", width: int = 854, height: int = 480,
        fps: int = 24,
    ) -> dict[str, Any]:  # fmt: skip
        """Generate one chunk; a plain dict so the client needs none of this module's classes.

        Returns ``video_mp4``, ``last_frame_png`` (bytes), ``frames``, ``width``, ``height``,
        ``pose`` (canonical), ``pipeline``, ``timings`` (seconds per phase; ``method`` is this
        call's wall time in the container, the GPU-seconds it billed) and ``container``:
        ``first_call``, ``loaded_at`` (epoch s), ``load_s`` (s of ``@modal.enter``),
        ``started_at`` (epoch s). Raises ValueError for a request breaking a pose/latent rule.
        """
        started_at, t0 = time.time(), time.perf_counter()
        try:
            job = check_request(
                image_png, pose, frames, steps, seed, prompt, model, width, height, fps
            )
            out = self.pipeline.generate(job)
        except ValueError as exc:  # a plain ValueError: PoseError does not survive Modal's pickle
            raise ValueError(str(exc)) from None
        first_call, self.calls = self.calls == 0, self.calls + 1
        return {
            "video_mp4": out.video_mp4, "last_frame_png": out.last_frame_png,
            "frames": out.frames, "width": out.width, "height": out.height, "pose": job.pose,
            "pipeline": self.pipeline.name,
            "timings": {**out.timings, "method": time.perf_counter() - t0},
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

    Runs HY-WorldPlay's own ``download_models.py`` with HF_HOME inside the Volume, then commits.
    UNTESTED HERE; the vision encoder is gated (FLUX.1-Redux-dev: accept its licence first).
    """
    import subprocess
    import sys

    token = os.environ["HF_TOKEN"]
    # cwd in the Volume too, so whatever the script writes to relative paths is kept.
    script = f"{REPO_DIR}/download_models.py"
    subprocess.run([sys.executable, script, "--hf_token", token], cwd=WEIGHTS_DIR, check=True)
    weights.commit()
