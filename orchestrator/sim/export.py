"""``rewind traces export``: last week's viewers as a trace, to replay under another policy.

Each session's answered action requests become steps, in order. A viewer's think time is what is
left of the gap between two requests after the viewer waited for the previous chunk and watched
it: think_s = max(0, requested_at[i] - served_at[i-1] - chunk duration). The first step's think
time is measured from the session's first request's own serving. start_s is the session's first
request relative to the earliest one exported. Pose-only requests (no action) are left out: a
trace speaks in actions (DESIGN.md "Traces").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from itertools import groupby
from typing import Any

from orchestrator.queries import Conn, query
from orchestrator.sim.trace import SessionTrace, Step


def sessions_from_rows(rows: Sequence[Any], chunk_duration_s: float) -> list[SessionTrace]:
    """Trace sessions from request rows ordered by session then time (see module docstring)."""
    if not rows:
        return []
    origin: dt.datetime = min(r["requested_at"] for r in rows)
    out: list[SessionTrace] = []
    for session_id, group in groupby(rows, key=lambda r: r["session_id"]):
        reqs = list(group)
        steps: list[Step] = []
        previous_served: dt.datetime | None = None
        for r in reqs:
            think = 0.0
            if previous_served is not None:
                gap = (r["requested_at"] - previous_served).total_seconds()
                think = max(0.0, gap - chunk_duration_s)
            steps.append(Step(r["action"], round(think, 3)))
            previous_served = r["served_at"]
        out.append(
            SessionTrace(
                session_id=str(session_id),
                memory=str(reqs[0]["memory_id"]),
                start_s=round((reqs[0]["requested_at"] - origin).total_seconds(), 3),
                steps=tuple(steps),
            )
        )
    out.sort(key=lambda s: (s.start_s, s.session_id))
    return out


async def export_sessions(
    conn: Conn, since: dt.datetime | None, until: dt.datetime | None, chunk_duration_s: float
) -> list[SessionTrace]:
    """Read request rows in [since, until) and turn them into trace sessions."""
    rows = await conn.fetch(query("trace_export"), since, until)
    return sessions_from_rows(rows, chunk_duration_s)
