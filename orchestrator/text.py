"""Text fields a client sends: refused when they hold characters nothing downstream can store.

PostgreSQL text cannot hold U+0000 (asyncpg raised ``CharacterNotInRepertoireError``, a 500),
a lone surrogate (U+D800..U+DFFF, legal in JSON escapes) cannot be encoded as UTF-8 at all, and
other control characters only break logs, terminals and prompts. So a text field is refused with
a 422 naming the field when it holds any of: C0 controls except tab, newline and carriage
return, DEL, C1 controls (U+0080..U+009F), or a surrogate. Accepted text is NFC-normalised so
that two spellings of "é" are one prompt (and one chunk key).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def check_text(value: str) -> str:
    """``value`` NFC-normalised, or PydanticCustomError ``invalid_text`` naming the character.

    Raises:
        PydanticCustomError: (type ``invalid_text``) a forbidden character, with its position.
    """
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        char = bad.group()
        kind = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
        raise PydanticCustomError(
            "invalid_text",
            "contains {code} ({kind}) at position {pos}; send printable UTF-8 text "
            "(tab, newline and carriage return are allowed)",
            {"code": f"U+{ord(char):04X}", "kind": kind, "pos": bad.start()},
        )
    return unicodedata.normalize("NFC", value)


SafeText = Annotated[str, AfterValidator(check_text)]
"""A ``str`` field validated by ``check_text``."""
