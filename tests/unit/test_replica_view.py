"""An API replica's view of ready chunks (orchestrator/replica_view.py): rows and NOTIFY
payloads in, hit lookups out."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.replica_view import ReadyView

MEMORY = str(uuid.uuid4())


def _row(cid: str, parent: str | None, pose: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"id": cid, "memory_id": MEMORY, "parent_chunk_id": parent, "pose": pose,
            "action": None, "status": status, "chunk_index": 0 if parent is None else 1,
            **extra}  # fmt: skip


def test_a_payload_makes_a_loaded_chunk_ready_and_ignores_other_memories() -> None:
    view = ReadyView()
    root, child = str(uuid.uuid4()), str(uuid.uuid4())
    view.load(MEMORY, [_row(root, None, "w-8", "ready")], now=0.0)
    assert view.by_key(MEMORY, root, "a-8", 1.0) is None
    view.apply(_row(child, root, "a-8", "pending"))
    pending = view.by_key(MEMORY, root, "a-8", 1.0)
    assert pending is not None and pending.state == "running"
    job = str(uuid.uuid4())
    ready = view.apply(_row(child, root, "a-8", "ready", job_id=job, initial_kind="speculative",
                            depth=1, probability=0.5))  # fmt: skip
    assert ready is not None and ready.state == "ready" and ready.speculative
    assert view.by_key(MEMORY, root, "a-8", 2.0) is ready
    other = {**_row(str(uuid.uuid4()), None, "w-8", "ready"), "memory_id": str(uuid.uuid4())}
    assert view.apply(other) is None and len(view) == 1


def test_a_used_stamp_survives_a_stale_notification_of_the_same_attempt() -> None:
    view = ReadyView()
    root, child, job = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    spec = {"job_id": job, "initial_kind": "speculative", "depth": 1, "probability": 0.4}
    view.load(MEMORY, [_row(root, None, "w-8", "ready"), _row(child, root, "d-8", "ready", **spec)],
              now=0.0)  # fmt: skip
    node = view.node(MEMORY, child)
    assert node is not None and not node.used
    node.used = True  # the replica answered a hit and stamps it behind
    again = view.apply(_row(child, root, "d-8", "ready", used=False, **spec))
    assert again is not None and again.used


@given(st.integers(1, 30), st.integers(1, 10))
def test_the_view_is_bounded_and_idle_memories_leave(loads: int, bound: int) -> None:
    view = ReadyView(max_memories=bound)
    for i in range(loads):
        view.load(str(i), [], now=float(i))
    assert len(view) == min(loads, bound)
    assert view.evict_idle(now=float(loads) + 100.0, idle_s=50.0) == min(loads, bound)
    assert len(view) == 0
