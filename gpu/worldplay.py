"""HY-WorldPlay inside the Modal container: the pinned upstream's entry points, called its way.

Everything here follows Tencent-Hunyuan/HY-WorldPlay at ``UPSTREAM_COMMIT`` (read line by line;
``gpu/upstream_signatures.json`` holds the parameters of every upstream function called below and
``tests/unit/gpu/test_upstream_signatures.py`` checks this file's imports and keywords against
it). Upstream only runs under ``torchrun`` (``run.sh``); this module stands in for it on one GPU:

- ``hyvideo/generate.py`` calls ``initialize_parallel_state(sp=WORLD_SIZE)`` at import, which
  builds a torch ``DeviceMesh`` and so ``init_process_group`` from the ``env://`` variables RANK,
  WORLD_SIZE, MASTER_ADDR, MASTER_PORT (``hyvideo/commons/parallel_states.py``); the pipeline
  reads ``get_parallel_state()`` again. ``single_process_env`` sets them before the import
  (``hyvideo/__init__.py`` also defaults them at this commit; we do not rely on it).
- ``initialize_infer_state(args)`` reads ``sage_blocks_range``, ``enable_torch_compile``,
  ``use_fp8_gemm``, ``quant_type``, ``use_vae_parallel`` as attributes (``use_sageattn`` and
  ``include_patterns`` via getattr): ``infer_args()`` gives the CLI defaults of each.
- ``create_pipeline(action_ckpt=...)`` calls ``safetensors.torch.load_file(action_ckpt)``: the
  ``.safetensors`` file, not its folder (README: "should point to the .safetensors file").
- Memory: the README's 72 GB (AR distilled, 125 frames, sp = 1) is measured with the CLI default
  ``--offloading true`` (``--group_offloading`` unset = off). Without offloading the text encoder
  (Qwen2.5-VL-7B, fp16), SigLIP, ByT5 and the VAE stay resident next to the 8.3B transformer, so
  80 GB would not hold them: ``OFFLOAD`` keeps upstream's defaults, and for AR models sets
  ``transformer_resident_ar_rollout`` (``run.sh``'s distilled example; upstream: "reduces
  inference time without increasing peak VRAM"). The models then live in host RAM: the Modal
  class asks for ``MEMORY_MIB``.
- Weights on a Modal Volume may fail to memory-map (safetensors ``OSError: No such device (os
  error 19)``, seen on FUSE/network filesystems); ``load_with_local_copy`` then copies the model
  folders to the container's local disk once and loads from there.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import socket
import sys
import time
from argparse import Namespace
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any, TypeVar

import structlog
from PIL import Image

from gpu.render import RenderOutput
from orchestrator.core.poses import latents_for_frames
from orchestrator.core.variants import ModelVariant, variant

log = structlog.get_logger(__name__)

UPSTREAM_REPO = "https://github.com/Tencent-Hunyuan/HY-WorldPlay"
UPSTREAM_COMMIT = "da2d0c26eb0edb647f56e164ffd966490eb75282"
"""The upstream commit the image checks out and this adapter was read against (2026-03-24,
"update args --transformer_resident_ar_rollout"). Change it only together with the snapshot."""

REPO_DIR = "/opt/HY-WorldPlay"
OFFLOAD = {"enable_offloading": True, "enable_group_offloading": False}
MEMORY_MIB = 160 * 1024
"""Host RAM for offloaded models: transformer (bf16, ~17 GB) + Qwen2.5-VL-7B (fp16, ~16 GB) +
SigLIP + ByT5 + VAE, plus loading copies; 160 GiB leaves room for the state-dict load."""
T = TypeVar("T")


def single_process_env(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set the torchrun variables for a world of one process (only those not set yet).

    Returns the variables it set. MASTER_PORT is a free local TCP port.
    """
    env = os.environ if environ is None else environ
    wanted = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
    if "MASTER_PORT" not in env:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            wanted["MASTER_PORT"] = str(sock.getsockname()[1])
    added = {k: v for k, v in wanted.items() if k not in env}
    env.update(added)
    return added


def infer_args() -> Namespace:
    """What ``initialize_infer_state`` reads, at upstream's CLI defaults (no sage, fp8, compile,
    VAE parallelism: one GPU, stock attention)."""
    return Namespace(
        sage_blocks_range="0-53",
        use_sageattn=False,
        enable_torch_compile=False,
        use_fp8_gemm=False,
        quant_type="fp8-per-block",
        include_patterns="double_blocks",
        use_vae_parallel=False,
    )


def is_mmap_failure(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is the ENODEV a failed mmap raises."""
    seen: BaseException | None = exc
    for _ in range(8):  # diffusers/transformers re-raise with `from`: walk a few links
        if seen is None:
            return False
        if isinstance(seen, OSError) and (seen.errno == errno.ENODEV or "os error 19" in str(seen)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def load_with_local_copy(
    load: Callable[[str, str], T], base: str, ckpt: str, local_root: str
) -> tuple[T, bool]:
    """``load(base, ckpt)``; on an mmap failure copy both to ``local_root`` and load again.

    Returns (loaded, copied). Symlinks (the Hugging Face cache's) are followed, so the copy holds
    the files themselves.

    Raises:
        whatever ``load`` raises, other than the first mmap failure.
    """
    try:
        return load(base, ckpt), False
    except Exception as exc:
        if not is_mmap_failure(exc):
            raise
        log.warning("weights_mmap_failed_copying_locally", base=base, local_root=local_root)
    root = Path(local_root)
    local_base = root / "base"
    shutil.copytree(base, local_base, dirs_exist_ok=True)
    local_ckpt = root / "action" / Path(ckpt).name
    local_ckpt.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ckpt, local_ckpt)
    return load(str(local_base), str(local_ckpt)), True


def weight_paths(
    v: ModelVariant, environ: MutableMapping[str, str] | None = None
) -> tuple[str, str]:
    """(HunyuanVideo-1.5 folder, action ``.safetensors`` file) for ``v``.

    ``WORLDPLAY_MODEL_PATH`` / ``WORLDPLAY_ACTION_ROOT`` override the Hugging Face cache lookup
    (HF_HOME lies in the Volume, so the snapshots resolve offline).

    Raises:
        FileNotFoundError: a path is missing (the message says which and how to fill it).
    """
    env = os.environ if environ is None else environ
    base, actions = env.get("WORLDPLAY_MODEL_PATH"), env.get("WORLDPLAY_ACTION_ROOT")
    if not base or not actions:
        from huggingface_hub import snapshot_download  # type: ignore[import-not-found]

        base = base or snapshot_download("tencent/HunyuanVideo-1.5", local_files_only=True)
        actions = actions or snapshot_download("tencent/HY-WorldPlay", local_files_only=True)
    ckpt = os.path.join(str(actions), v.checkpoint or "")
    for path in (os.path.join(str(base), "transformer", "480p_i2v"), ckpt):
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{path} is missing: run `modal run gpu/modal_app.py::download_weights`"
            )
    return str(base), ckpt


class WorldPlayPipeline:
    """HY-WorldPlay i2v at 480p, super-resolution and prompt rewriting off, one GPU.

    NOT RUN HERE (no GPU, weights or CUDA on the machine this was written on); its calls are held
    to the pinned upstream by the signature snapshot test, and ``modal run
    gpu/modal_app.py::smoke`` runs it on the real GPU.
    """

    name = "worldplay"

    def __init__(self, model: str) -> None:
        self.variant = variant(model)
        if not self.variant.is_worldplay:
            raise ValueError(f"REWIND_WORLDPLAY_VARIANT={model!r} is not a HY-WorldPlay variant")
        self.model = self.variant.name
        self._pipe: Any = None
        self._pose_to_input: Any = None
        self.copied_weights = False

    def load(self) -> None:
        """Import upstream (after the single-process env), build the pipeline from the Volume."""
        single_process_env()
        sys.path.insert(0, REPO_DIR)
        import torch  # type: ignore[import-not-found]
        from hyvideo.commons.infer_state import (  # type: ignore[import-not-found]
            initialize_infer_state,
        )
        from hyvideo.generate import pose_to_input  # type: ignore[import-not-found]
        from hyvideo.pipelines.worldplay_video_pipeline import (  # type: ignore[import-not-found]
            HunyuanVideo_1_5_Pipeline,
        )

        initialize_infer_state(infer_args())  # create_pipeline reads it (use_fp8_gemm)

        def build(base: str, ckpt: str) -> Any:
            return HunyuanVideo_1_5_Pipeline.create_pipeline(
                pretrained_model_name_or_path=base,
                transformer_version="480p_i2v",
                create_sr_pipeline=False,
                force_sparse_attn=False,
                transformer_dtype=torch.bfloat16,
                enable_offloading=OFFLOAD["enable_offloading"],
                enable_group_offloading=OFFLOAD["enable_group_offloading"],
                action_ckpt=ckpt,
            )

        base, ckpt = weight_paths(self.variant)
        self._pipe, self.copied_weights = load_with_local_copy(build, base, ckpt, "/tmp/weights")
        self._pose_to_input = pose_to_input

    def peak_memory_gb(self) -> float | None:
        """Peak GPU memory allocated by torch in this process, GiB (reset per call)."""
        import torch

        return float(torch.cuda.max_memory_allocated()) / 2**30

    def generate(self, job: Any) -> RenderOutput:
        """One chunk; ``job`` is a ``gpu.modal_app.ChunkJob`` already checked for this model."""
        if job.variant.name != self.model:  # before torch: refused in milliseconds, anywhere
            raise ValueError(f"this deployment serves {self.model}, not {job.variant.name}")
        import torch

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        torch.cuda.reset_peak_memory_stats()
        image = Image.open(io.BytesIO(job.image_png)).convert("RGB")
        viewmats, ks, action = self._pose_to_input(job.pose, latents_for_frames(job.frames))
        timings["prepare"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = self._pipe(
            prompt=job.prompt,
            aspect_ratio="16:9",
            video_length=job.frames,
            prompt_rewrite=False,
            num_inference_steps=job.steps,
            enable_sr=False,
            sr_num_inference_steps=None,
            negative_prompt="",
            seed=job.seed,
            reference_image=image,
            output_type="pt",
            return_pre_sr_video=False,
            viewmats=viewmats.unsqueeze(0),
            Ks=ks.unsqueeze(0),
            action=action.unsqueeze(0),
            few_step=self.variant.few_step,
            chunk_latent_frames=self.variant.chunk_latent_frames,
            model_type=self.variant.model_type,
            user_height=job.height,
            user_width=job.width,
            transformer_resident_ar_rollout=self.variant.model_type == "ar",
        )
        torch.cuda.synchronize()
        timings["generate"] = time.perf_counter() - t0
        video = out.videos[0] if out.videos.ndim == 5 else out.videos  # (C, F, H, W) in 0..1
        frames = (video.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 3, 0)
        rgb = list(frames.cpu().numpy())
        if len(rgb) != job.frames or rgb[0].shape[:2] != (job.height, job.width):
            raise RuntimeError(
                f"pipeline returned {len(rgb)} frames of {rgb[0].shape[1]} x {rgb[0].shape[0]}, "
                f"expected {job.frames} of {job.width} x {job.height}"
            )
        from gpu.encode import encode_chunk

        return encode_chunk(rgb, job.width, job.height, job.fps, timings)
