"""Fast positional constructors for the core's frozen dataclasses (pure).

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__(self, name,
value)``: a lookup of the field by name per field. ``plan()`` builds a ``StartJob`` (14 fields)
per start, a ``BucketState`` at every refill, refund and spend, a ``CancelJob`` per cancel and a
``Plan`` per call, and the policies a ``Proposal`` per guess (issue 10: frozen ``__init__`` was
~3 % of a simulator run). ``builder(cls)`` makes a constructor that sets the slots through
their descriptors instead, about twice as fast, and builds an object equal to ``cls(...)`` in
every field (``tests/unit/core/test_build.py``). The live state builds its records with the same
``builder`` (``orchestrator.live.build`` re-exports it: the core must not import the live state,
the live state may import the core).

Only for ``slots=True`` dataclasses whose ``__init__`` does nothing else: ``builder`` refuses a
class with a ``__post_init__`` (its checks would be skipped) unless told the caller does that
work itself, and every init field must be passed, positionally, in declaration order (defaults
included).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

from orchestrator.core.types import BucketState, CancelJob, Plan, Proposal, StartJob

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


new_start_job = builder(StartJob)
"""``StartJob(memory_id, parent_id, pose, action, kind, session_id, probability, depth,
expected_gpu_s, benefit_s, reason, request_id, charged_gpu_s, cold)``, all 14 positional."""
new_bucket = builder(BucketState)
"""``BucketState(tokens, updated_at)``."""
new_cancel = builder(CancelJob)
"""``CancelJob(job_id, reason)``."""
new_plan = builder(Plan)
"""``Plan(starts, cancels, bucket, bucket_short_gpu_s)``, all four positional."""
new_proposal = builder(Proposal)
"""``Proposal(session_id, path, probability)``."""
