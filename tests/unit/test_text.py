"""Text fields: control characters and lone surrogates refused, the rest NFC-normalised."""

from __future__ import annotations

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.schemas import ChunkRequest, CreateMemory
from orchestrator.text import check_text

BAD = ["\x00", "\ud800", "\udfff", "\x1b", "\x7f", "\x85", "\x0b"]


@pytest.mark.parametrize("char", BAD)
def test_forbidden_characters_are_refused_naming_the_field(char: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        CreateMemory(image_base64="x", prompt=f"a garden{char}at dusk")
    err = info.value.errors()[0]
    assert err["type"] == "invalid_text" and err["loc"] == ("prompt",)
    assert f"U+{ord(char):04X}" in err["msg"] and "position 8" in err["msg"]


@pytest.mark.parametrize("field", ["pose", "action"])
def test_pose_and_action_are_checked_too(field: str) -> None:
    body = {"parent_chunk_id": "00000000-0000-0000-0000-000000000001", field: "w\x00"}
    with pytest.raises(pydantic.ValidationError) as info:
        ChunkRequest.model_validate(body)
    assert info.value.errors()[0]["loc"] == (field,)


def test_tab_newline_and_unicode_pass_and_are_nfc() -> None:
    assert check_text("line one\n\tline two\r\n") == "line one\n\tline two\r\n"
    assert check_text("cafe\u0301 \u00e0 l'aube") == "caf\u00e9 \u00e0 l'aube"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs"))))
def test_printable_text_always_passes_and_encodes(text: str) -> None:
    out = check_text(text)
    out.encode("utf-8")  # storable: no surrogate survives
    assert "\x00" not in out
