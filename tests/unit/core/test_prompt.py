"""Which text prompt a chunk is generated with."""

from __future__ import annotations

from orchestrator.core.prompt import FALLBACK_PROMPT, MAX_PROMPT_CHARS, chunk_prompt


def test_user_prompt_wins_everywhere() -> None:
    for root in (True, False):
        got = chunk_prompt(user_prompt="  a red  barn ", scene_description="fields", is_root=root)
        assert got == "a red barn"


def test_scene_description_for_every_chunk_after_the_root() -> None:
    assert chunk_prompt(user_prompt=None, scene_description="a harbour", is_root=False) == (
        "a harbour"
    )
    # The root does not wait for scene analysis, even when it happens to be known.
    assert chunk_prompt(user_prompt=None, scene_description="a harbour", is_root=True) == (
        FALLBACK_PROMPT
    )


def test_never_empty_and_bounded() -> None:
    assert chunk_prompt(user_prompt="", scene_description=None, is_root=False) == FALLBACK_PROMPT
    blank = chunk_prompt(user_prompt=" ", scene_description=" ", is_root=False, profile_prompt="p")
    assert blank == "p"
    long = chunk_prompt(user_prompt="x" * 5000, scene_description=None, is_root=True)
    assert len(long) == MAX_PROMPT_CHARS
