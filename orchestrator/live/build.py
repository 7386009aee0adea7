"""Fast positional constructors for the frozen dataclasses the live state builds per event.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__(self, name,
value)``: a lookup of the field by name per field. The live state builds a ``KnownNode`` and
its ``TreeNode`` at every chunk put and state change, a ``SessionView`` at every request and
answer, a ``RunningJob`` per job and a ``PlanInput`` per plan (issue 10: dataclass ``__init__``
was 8 % of a simulator run). ``builder(cls)`` makes a constructor that sets the slots through
their descriptors instead, about twice as fast, and builds an object equal to ``cls(...)`` in
every field (``tests/unit/live/test_build.py``).

Only for ``slots=True`` dataclasses whose ``__init__`` does nothing else: ``builder`` refuses a
class with a ``__post_init__`` (its checks would be skipped) unless told the caller does that
work itself, and every init field must be passed, positionally, in declaration order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

T = TypeVar("T")


def builder(cls: type[T], *, post_init_done_by_caller: bool = False) -> Callable[..., T]:
    """A function ``(field_1, ..., field_n) -> cls`` for the init fields of ``cls`` in order.

    Raises:
        TypeError: ``cls`` is not a slotted dataclass, or has a ``__post_init__`` (unless
            ``post_init_done_by_caller``: then the fields it sets are left unset).
    """
    if not is_dataclass(cls) or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a slotted dataclass")
    if hasattr(cls, "__post_init__") and not post_init_done_by_caller:
        raise TypeError(f"{cls.__name__} has a __post_init__: build it with its __init__")
    names = [f.name for f in fields(cls) if f.init]
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    args = [f"a{i}" for i in range(len(names))]
    lines = [f"def build({', '.join(args)}):", "    o = _new(_cls)"]
    for i, name in enumerate(names):
        ns[f"_s{i}"] = cls.__dict__[name].__set__  # the slot's member descriptor
        lines.append(f"    _s{i}(o, a{i})")
    lines.append("    return o")
    exec("\n".join(lines), ns)  # source made of the class's own field names only
    build: Callable[..., T] = ns["build"]
    build.__qualname__ = build.__name__ = f"build_{cls.__name__}"
    return build
