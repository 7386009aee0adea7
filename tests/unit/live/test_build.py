"""The fast constructors of ``live.build`` give what the dataclasses' own ``__init__`` gives.

Every record the live state builds through one (``TreeNode`` and ``KnownNode`` via
``tree.known_node``, ``SessionView``, ``DemandRequest``, ``RunningJob``, ``PlanInput``,
``Resolution``, ``Ended``, ``Scheduled``, ``StartedJob``, ``CancelledJob``) equals, field by
field (``compare=False`` fields too), the one its class builds from the same values. The
builder's refusals are the core's (``tests/unit/core/test_build.py``).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.types import (
    BucketState,
    Budget,
    DemandRequest,
    PlanInput,
    RunningJob,
    SessionView,
    Timing,
    TreeNode,
)
from orchestrator.live.build import builder
from orchestrator.live.records import (
    CancelledJob,
    Ended,
    LiveJob,
    Resolution,
    Scheduled,
    StartedJob,
)
from orchestrator.live.tree import KnownNode, known_node

_text = st.text(max_size=4)
_opt_text = st.none() | _text
_num = st.floats(allow_nan=False) | st.integers()
_opt_num = st.none() | st.floats(allow_nan=False)


def _same_fields(a: object, b: object) -> None:
    assert type(a) is type(b)
    for f in fields(a):  # type: ignore[arg-type]
        assert getattr(a, f.name) == getattr(b, f.name), f.name


def _check(cls: type, values: tuple[Any, ...]) -> None:
    built = builder(cls)(*values)
    _same_fields(built, cls(*values))
    assert built == cls(*values)


@given(
    values=st.tuples(
        _text,
        _text,
        _opt_text,
        _text,
        _opt_text,
        st.sampled_from(["ready", "running", "failed"]),
        st.integers(0, 9),
        _opt_num,
    )
)
def test_tree_nodes(values: tuple[Any, ...]) -> None:
    _check(TreeNode, values)


_states = st.sampled_from(["ready", "running", "failed", "pending"])


@given(
    values=st.tuples(
        _text, _text, _opt_text, _text, _opt_text, _states, st.integers(0, 9), _opt_num
    )
)
def test_known_nodes_with_their_core_view(values: tuple[Any, ...]) -> None:
    built, want = known_node(*values), KnownNode(*values)
    _same_fields(built, want)
    assert built.core == want.core and built == want and hash(built) == hash(want)


@given(
    values=st.tuples(
        _text,
        _text,
        _text,
        _num,
        _num,
        st.lists(_text, max_size=3).map(tuple),
        _text,
        _opt_num,
        _opt_num,
    )
)
def test_session_views(values: tuple[Any, ...]) -> None:
    _check(SessionView, values)


@given(values=st.tuples(_text, _text, _opt_text, _text, _opt_text, _opt_text, _num))
def test_demand_requests(values: tuple[Any, ...]) -> None:
    _check(DemandRequest, values)


@given(
    values=st.tuples(
        _text,
        _text,
        _text,
        _opt_text,
        _text,
        st.sampled_from(["demand", "speculative"]),
        _num,
        _num,
        _num,
        _opt_text,
        st.integers(0, 5),
        _opt_num,
    )
)
def test_running_jobs(values: tuple[Any, ...]) -> None:
    _check(RunningJob, values)


@given(
    values=st.tuples(
        st.sampled_from(["hit", "inflight", "miss"]),
        _text,
        st.integers(0, 5),
        _opt_text,
        st.none() | st.integers(0, 5),
        _opt_num,
        st.sampled_from(["none", "insert", "reclaim"]),
        st.booleans(),
        st.booleans(),
        _opt_text,
        _opt_text,
    )
)
def test_resolutions(values: tuple[Any, ...]) -> None:
    _check(Resolution, values)


@given(_num, st.none() | st.integers(0, 3))
def test_plan_inputs(now: float, warm_idle: int | None) -> None:
    votes, lookup, roster = object(), object(), object()  # compare=False fields: kept as given
    values = (now, (), (), (), (), (), Budget(), BucketState(1.0, 0.0),
              Timing(gpu_s_per_chunk=1.0, chunk_duration_s=1.0, think_s=1.0), 125, warm_idle,
              votes, lookup, roster)  # fmt: skip
    built = builder(PlanInput)(*values)
    _same_fields(built, PlanInput(*values))  # type: ignore[arg-type]
    assert built.votes is votes and built.lookup is lookup and built.roster is roster


@given(values=st.tuples(_text, _text, _text, _text))
def test_cancelled_jobs(values: tuple[Any, ...]) -> None:
    _check(CancelledJob, values)


@given(
    values=st.tuples(
        _text, _text, st.sampled_from(["ready", "failed", "unchanged"]),
        st.lists(_text, max_size=3).map(tuple), st.sampled_from(["demand", "speculative"]),
    )
)  # fmt: skip
def test_ended(values: tuple[Any, ...]) -> None:
    _check(Ended, values)


def test_started_jobs_and_scheduled() -> None:
    job = LiveJob("j", "c", "m", None, "x", "w", "demand", "demand", "s", 1.0, 0, 9.0, 3.0)
    _check(StartedJob, (job, "insert", "demand"))
    started = builder(StartedJob)(job, "insert", "demand")
    assert started.job is job
    plan = object()  # compare=True field: equal as the same object
    _check(Scheduled, ((started,), (), plan, 2))
