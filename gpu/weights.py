"""The files HY-WorldPlay opens at load, so an incomplete download fails loudly, not at serve time.

Paths from the pinned upstream (``gpu.worldplay.UPSTREAM_COMMIT``):
``HunyuanVideo_1_5_Pipeline.create_pipeline`` reads ``transformer/480p_i2v``, ``vae`` and
``scheduler`` under the HunyuanVideo-1.5 folder; ``_load_byt5`` reads
``text_encoder/Glyph-SDXL-v2/{assets/color_idx.json, assets/multilingual_10-lang_idx.json,
checkpoints/byt5_model.pt}`` and ``text_encoder/byt5-small`` (falling back to a network download
when absent, which the offline container cannot do); ``_load_text_encoders`` reads
``text_encoder/llm``; ``_load_vision_encoder`` reads ``vision_encoder/siglip`` with the
``image_encoder`` and ``feature_extractor`` subfolders. The action checkpoints are the files
``download_models.py`` prints (``orchestrator.core.variants.VARIANTS``).
"""

from __future__ import annotations

import os

from orchestrator.core.variants import VARIANTS

BASE_PATHS: tuple[str, ...] = (
    "transformer/480p_i2v/config.json",
    "vae/config.json",
    "scheduler",
    "text_encoder/llm/config.json",
    "text_encoder/byt5-small/config.json",
    "text_encoder/Glyph-SDXL-v2/assets/color_idx.json",
    "text_encoder/Glyph-SDXL-v2/assets/multilingual_10-lang_idx.json",
    "text_encoder/Glyph-SDXL-v2/checkpoints/byt5_model.pt",
    "vision_encoder/siglip/image_encoder",
    "vision_encoder/siglip/feature_extractor",
)


def missing_weights(base: str, actions: str, models: tuple[str, ...] | None = None) -> list[str]:
    """Paths the pipeline needs that do not exist (empty when complete).

    Args:
        base: the HunyuanVideo-1.5 folder; actions: the tencent/HY-WorldPlay folder.
        models: variants whose checkpoints must exist (default: every HY-WorldPlay variant).
    """
    names = models or tuple(n for n, v in VARIANTS.items() if v.is_worldplay)
    wanted = [os.path.join(base, p) for p in BASE_PATHS]
    wanted += [os.path.join(actions, VARIANTS[n].checkpoint or "") for n in names]
    return [p for p in wanted if not os.path.exists(p)]
