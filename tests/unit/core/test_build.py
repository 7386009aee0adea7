"""The fast constructors of ``core.build`` give what the dataclasses' own ``__init__`` gives.

Each of ``new_start_job``, ``new_bucket``, ``new_cancel``, ``new_plan`` and ``new_proposal``
builds an object equal, field by field, to the one its class builds from the same values (and
hashing alike); ``builder`` (the live state's too: ``live.build`` re-exports it) refuses a
class with a ``__post_init__`` or without slots unless told the caller does its work.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.build import (
    builder,
    new_bucket,
    new_cancel,
    new_plan,
    new_proposal,
    new_start_job,
)
from orchestrator.core.types import BucketState, CancelJob, Plan, Proposal, StartJob

_text = st.text(max_size=4)
_opt_text = st.none() | _text
_num = st.floats(allow_nan=False) | st.integers()
_opt_num = st.none() | st.floats(allow_nan=False)


def _check(build: Any, cls: type, values: tuple[Any, ...]) -> None:
    built, want = build(*values), cls(*values)
    assert type(built) is cls
    for f in fields(want):
        assert getattr(built, f.name) == getattr(want, f.name), f.name
    assert built == want and hash(built) == hash(want)


_starts = st.tuples(
    _text, _opt_text, _text, _opt_text, st.sampled_from(["demand", "speculative"]), _opt_text,
    _num, st.integers(0, 5), _num, _num, _text, _opt_text, _num, st.booleans(),
)  # fmt: skip


@given(values=_starts)
def test_start_jobs(values: tuple[Any, ...]) -> None:
    _check(new_start_job, StartJob, values)


@given(values=st.tuples(_num, _num))
def test_buckets(values: tuple[Any, ...]) -> None:
    _check(new_bucket, BucketState, values)


@given(values=st.tuples(_text, _text))
def test_cancels(values: tuple[Any, ...]) -> None:
    _check(new_cancel, CancelJob, values)


@given(values=st.tuples(_text, st.lists(_text, max_size=3).map(tuple), _num))
def test_proposals(values: tuple[Any, ...]) -> None:
    _check(new_proposal, Proposal, values)


@given(
    starts=st.lists(_starts.map(lambda v: StartJob(*v)), max_size=3).map(tuple),
    cancels=st.lists(st.tuples(_text, _text).map(lambda v: CancelJob(*v)), max_size=3).map(tuple),
    bucket=st.tuples(_num, _num).map(lambda v: BucketState(*v)),
    short=_opt_num,
)
def test_plans(
    starts: tuple[StartJob, ...], cancels: tuple[CancelJob, ...], bucket: BucketState,
    short: float | None,
) -> None:  # fmt: skip
    _check(new_plan, Plan, (starts, cancels, bucket, short))


def test_a_class_with_post_init_or_without_slots_is_refused() -> None:
    @dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError(self.x)

    @dataclass(frozen=True)
    class Plain:
        x: int

    with pytest.raises(TypeError, match="__post_init__"):
        builder(Checked)
    with pytest.raises(TypeError, match="slotted"):
        builder(Plain)
    assert builder(Checked, post_init_done_by_caller=True)(-1).x == -1  # the caller's job


@given(votes=st.dictionaries(st.tuples(_text, _text, _text), st.just(("s", 0.5, 1, 2.0, "w", 4.0))))
def test_a_resolution_without_its_new_is_the_named_tuple(votes: dict[Any, Any]) -> None:
    """``session_votes`` builds its ``Resolution`` through ``tuple.__new__``: the same object."""
    from orchestrator.core.session_votes import Resolution, _new_resolution

    existing = frozenset(list(votes)[:1])
    built, want = _new_resolution(Resolution, (votes, existing)), Resolution(votes, existing)
    assert type(built) is Resolution and built == want
    assert built.votes is votes and built.existing is existing
