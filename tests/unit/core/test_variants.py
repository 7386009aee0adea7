"""Model variants as generation profiles: upstream's steps, size and latent rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.profile import GenerationProfile
from orchestrator.core.variants import VARIANTS, check_frames, check_profile, profile_for, variant


@pytest.mark.parametrize(
    ("name", "steps", "model_type", "few_step", "chunk"),
    [
        ("worldplay-ar", 50, "ar", False, 4),
        ("worldplay-ar-rl", 50, "ar", False, 4),
        ("worldplay-ar-distilled", 4, "ar", True, 4),
        ("worldplay-bi", 50, "bi", False, 16),
    ],
)
def test_profiles_follow_upstream(
    name: str, steps: int, model_type: str, few_step: bool, chunk: int
) -> None:
    p = profile_for(name)
    v = VARIANTS[name]
    assert (p.frames, p.width, p.height, p.steps, p.model) == (125, 832, 480, steps, name)
    assert (v.model_type, v.few_step, v.chunk_latent_frames) == (model_type, few_step, chunk)
    assert v.checkpoint is not None and v.checkpoint.endswith(".safetensors")


def test_profiles_have_distinct_keys() -> None:
    keys = {profile_for(name).key() for name in VARIANTS}
    assert len(keys) == len(VARIANTS)  # a chunk of one model never serves another's key


@given(st.integers(min_value=1, max_value=400))
def test_latent_rules(latents: int) -> None:
    frames = (latents - 1) * 4 + 1
    for v in VARIANTS.values():
        if latents % v.latent_multiple == 0:
            assert check_frames(v, frames) == latents
        else:
            with pytest.raises(ValueError, match=f"divisible by {v.latent_multiple}"):
                check_frames(v, frames)


def test_profile_checks() -> None:
    assert check_profile(GenerationProfile()).name == "local-cpu"  # the CPU default: 854 x 480
    with pytest.raises(ValueError, match="set \\[generation\\] width = 832"):
        check_profile(GenerationProfile(model="worldplay-ar"))  # 854 wide
    with pytest.raises(ValueError, match="divisible by 16"):
        profile_for("worldplay-bi", frames=97)  # 25 latents
    with pytest.raises(ValueError, match="4k"):
        profile_for("worldplay-ar", frames=126)
    with pytest.raises(ValueError, match="unknown model variant 'hy-9'; known: worldplay-ar"):
        variant("hy-9")
