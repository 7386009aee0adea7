"""The text prompt a chunk is generated with.

Upstream HY-WorldPlay makes ``--prompt`` mandatory (``hyvideo/generate.py``): the text encoder
conditions every rollout step. The rule, per chunk:

1. the user's prompt (``POST /api/memories`` ``prompt``), when given;
2. else, for every chunk after the root, the scene description once scene analysis stored it;
3. else ``FALLBACK_PROMPT`` (or the profile's prompt when the operator set one).

The root chunk does **not** wait for scene analysis. Scene analysis and the root chunk start
together (DESIGN.md data flow 1); the root is the one chunk a viewer is certainly waiting for, and
waiting would put the analysis (a Claude call: seconds when healthy, up to ``[scene] timeout_s``
= 60 s and retries when not) in front of it, and a failed analysis would have to be waited out.
HY-WorldPlay here is image-to-video: the photo (VAE latents + SigLIP vision states) carries the
scene, so the text matters less for the root than the seconds do. The children of the root start
after the root finished (~G seconds later), by which time the description is normally known.

The prompt is a function of the memory and of whether the chunk is the root, never of timing
beyond "scene known yet", so identical chunk keys normally share one prompt. A child started
before the analysis finished gets the fallback (logged by the caller).
"""

from __future__ import annotations

FALLBACK_PROMPT = (
    "A realistic, continuous first-person camera move through the scene shown in the image."
)
"""Used when neither the user nor scene analysis gave a text (upstream needs a prompt)."""

MAX_PROMPT_CHARS = 2000
"""Longer texts are cut (``[limits] max_prompt_chars`` default; the text encoder's window is
1000 tokens, ``max_length=1000`` in upstream ``_load_text_encoders``)."""


def chunk_prompt(
    *,
    user_prompt: str | None,
    scene_description: str | None,
    is_root: bool,
    profile_prompt: str = "",
) -> str:
    """The prompt for one chunk (see the module rule). Never empty."""
    for text in (user_prompt, None if is_root else scene_description, profile_prompt):
        if text and text.strip():
            return " ".join(text.split())[:MAX_PROMPT_CHARS]
    return FALLBACK_PROMPT
