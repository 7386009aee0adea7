"""HY-WorldPlay model variants as generation profiles, with upstream's frame and latent rules.

Facts from Tencent-Hunyuan/HY-WorldPlay at the pinned commit (``gpu.worldplay.UPSTREAM_COMMIT``):

- Checkpoints (README "Model Checkpoints", ``download_models.py`` ``print_paths``): each variant is
  one ``.safetensors`` file inside the ``tencent/HY-WorldPlay`` snapshot, e.g.
  ``ar_model/diffusion_pytorch_model.safetensors``; ``--action_ckpt`` is that file.
- ``--model_type`` is ``ar`` or ``bi``; the pipeline rolls out ``chunk_latent_frames`` latents per
  step: 4 for ``ar``, 16 for ``bi`` (``hyvideo/generate.py``).
- ``hyvideo/generate.py`` asserts ``latents % 4 == 0`` for every variant; the README adds
  ``latents % 16 == 0`` for the bidirectional model; ``latents = (frames - 1) // 4 + 1``.
- Steps: the CLI default ``--num_inference_steps 50``; the distilled model runs with
  ``--few_step true --num_inference_steps 4`` (README "Model Selection", ``run.sh``).
- Size: ``run.sh`` uses ``WIDTH=832 HEIGHT=480`` (480p, 16:9 rounded to the transformer's
  16-pixel grid); only the 480p i2v transformer is released.

Context memory: upstream reconstitutes memory from earlier latents *of the same call*
(``select_aligned_memory_frames`` over the call's own ``viewmats``); ``__call__`` takes one
``reference_image`` and no earlier latents, so at this commit a chunk can only be conditioned on
its parent's last frame. No profile option for path memory is offered for that reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from orchestrator.core.poses import latents_for_frames
from orchestrator.core.profile import GenerationProfile

WORLDPLAY_WIDTH = 832
WORLDPLAY_HEIGHT = 480
"""Upstream ``run.sh`` WIDTH / HEIGHT: the size the 480p transformer is run at."""


@dataclass(frozen=True, slots=True)
class ModelVariant:
    """One model variant (a profile's ``model``).

    Attributes:
        name: the profile's ``model`` value.
        checkpoint: the action checkpoint file, relative to the ``tencent/HY-WorldPlay`` snapshot
            (None for the CPU renderer).
        model_type: upstream ``--model_type``: "ar" or "bi" ("cpu" for the renderer).
        few_step: upstream ``--few_step`` (distilled model; guidance scale forced to 1.0).
        steps: upstream's inference steps for this variant.
        latent_multiple: the latent count must divide by this.
        chunk_latent_frames: latents generated per rollout step (upstream ``chunk_latent_frames``).
        width, height: pixel size the variant is run at.
    """

    name: str
    checkpoint: str | None
    model_type: Literal["ar", "bi", "cpu"]
    few_step: bool
    steps: int
    latent_multiple: int
    chunk_latent_frames: int
    width: int = WORLDPLAY_WIDTH
    height: int = WORLDPLAY_HEIGHT

    @property
    def is_worldplay(self) -> bool:
        """True for the HY-WorldPlay checkpoints, False for the CPU renderer."""
        return self.checkpoint is not None


_CKPT = "diffusion_pytorch_model.safetensors"
VARIANTS: dict[str, ModelVariant] = {
    v.name: v
    for v in (
        ModelVariant("worldplay-ar", f"ar_model/{_CKPT}", "ar", False, 50, 4, 4),
        ModelVariant("worldplay-ar-rl", f"ar_rl_model/{_CKPT}", "ar", False, 50, 4, 4),
        ModelVariant(
            "worldplay-ar-distilled", f"ar_distilled_action_model/{_CKPT}", "ar", True, 4, 4, 4
        ),
        ModelVariant("worldplay-bi", f"bidirectional_model/{_CKPT}", "bi", False, 50, 16, 16),
        # The CPU renderer: any size and step count; kept here so one table names every model.
        ModelVariant("local-cpu", None, "cpu", False, 30, 1, 1, 854, 480),
    )
}


def variant(name: str) -> ModelVariant:
    """The variant called ``name``. Raises ValueError naming the known ones."""
    found = VARIANTS.get(name)
    if found is None:
        raise ValueError(f"unknown model variant {name!r}; known: {', '.join(VARIANTS)}")
    return found


def check_frames(v: ModelVariant, frames: int) -> int:
    """The latent count of ``frames`` for ``v``. Raises ValueError naming the broken rule."""
    latents = latents_for_frames(frames)  # frames = 4k + 1 (raises PoseError, a ValueError)
    if latents % v.latent_multiple:
        raise ValueError(
            f"{v.name} needs a latent count divisible by {v.latent_multiple}; "
            f"{frames} frames give {latents} latents (125 frames = 32 latents fits every variant)"
        )
    return latents


def check_profile(profile: GenerationProfile) -> ModelVariant:
    """Check a profile against its variant's upstream rules; return the variant.

    WorldPlay variants must run at 832 x 480 (the generated size is never resized: a resize
    would blur every chunk and the next chunk's input frame).

    Raises:
        ValueError: unknown model, frames/latents rule broken, wrong size, or steps < 1.
    """
    v = variant(profile.model)
    check_frames(v, profile.frames)
    if v.is_worldplay and (profile.width, profile.height) != (v.width, v.height):
        raise ValueError(
            f"{v.name} runs at {v.width} x {v.height} (upstream run.sh); the profile asks for "
            f"{profile.width} x {profile.height}: set [generation] width = {v.width}, "
            f"height = {v.height}"
        )
    if profile.steps < 1:
        raise ValueError(f"steps must be >= 1 (got {profile.steps})")
    return v


def profile_for(name: str, *, frames: int = 125, seed: int = 0, fps: int = 24) -> GenerationProfile:
    """The generation profile of variant ``name`` with upstream's steps and size.

    Raises:
        ValueError: unknown variant or frames breaking its latent rule.
    """
    v = variant(name)
    base = GenerationProfile(frames=frames, width=v.width, height=v.height, fps=fps, seed=seed)
    profile = replace(base, steps=v.steps, model=v.name)
    check_profile(profile)
    return profile
