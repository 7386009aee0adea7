"""Analytics queries: hit rates, branch hit rates, waits and waste, grouped as the analyst asks.

The grouping dimensions are validated against a fixed list and passed to fixed SQL
(``orchestrator/sql/analytics_*.sql``) as booleans, so no identifier from a request ever reaches
SQL text. Definitions are in ``migrations/003_analytics.sql`` and the README.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from orchestrator.errors import InvalidInput
from orchestrator.queries import Conn, query

DIMENSIONS = ("policy", "arm", "day", "depth", "action")
WASTE_DIMENSIONS = ("policy", "arm", "day")


def parse_group_by(text: str | None, allowed: Sequence[str] = DIMENSIONS) -> list[str]:
    """``"policy,depth"`` -> ["policy", "depth"] (empty for None/"").

    Raises:
        InvalidInput: an unknown or repeated dimension (field "group_by").
    """
    if not text:
        return []
    dims = [d.strip().lower() for d in text.split(",") if d.strip()]
    bad = [d for d in dims if d not in allowed]
    if bad:
        raise InvalidInput(
            "invalid_group_by",
            f"cannot group by {', '.join(bad)}; choose from {', '.join(allowed)}",
            field="group_by",
        )
    if len(set(dims)) != len(dims):
        raise InvalidInput("invalid_group_by", "a dimension is repeated", field="group_by")
    return dims


def parse_time(text: str | None, field: str) -> dt.datetime | None:
    """An ISO-8601 time (a date means its midnight, UTC when no offset is given), or None.

    Raises:
        InvalidInput: not ISO-8601.
    """
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(
            "invalid_time",
            f"{field} must be ISO-8601, e.g. 2026-11-23 or 2026-11-23T10:00:00Z (got {text!r})",
            field=field,
        ) from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _flags(group_by: Sequence[str], dims: Sequence[str]) -> list[bool]:
    return [d in group_by for d in dims]


def _rows(
    records: Sequence[Any], group_by: Sequence[str], dims: Sequence[str]
) -> list[dict[str, Any]]:
    out = []
    for rec in records:
        row = {k: v for k, v in dict(rec).items() if k not in dims or k in group_by}
        for k, v in row.items():
            if isinstance(v, dt.date):
                row[k] = v.isoformat()
        out.append(row)
    return out


async def hit_rates(
    conn: Conn, group_by: Sequence[str], since: dt.datetime | None, until: dt.datetime | None
) -> dict[str, Any]:
    """Request rates (hit / in-flight / miss) and branch hit rates, grouped."""
    flags = _flags(group_by, DIMENSIONS)
    requests = await conn.fetch(query("analytics_request_rates"), since, until, *flags)
    branches = await conn.fetch(query("analytics_branch_rates"), since, until, *flags)
    return {
        "group_by": list(group_by),
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "request_rates": _rows(requests, group_by, DIMENSIONS),
        "branch_rates": _rows(branches, group_by, DIMENSIONS),
    }


async def waits(
    conn: Conn, group_by: Sequence[str], since: dt.datetime | None, until: dt.datetime | None
) -> dict[str, Any]:
    """Wait mean and p50/p95/p99 in milliseconds, grouped."""
    flags = _flags(group_by, DIMENSIONS)
    rows = await conn.fetch(query("analytics_waits"), since, until, *flags)
    return {"group_by": list(group_by), "rows": _rows(rows, group_by, DIMENSIONS)}


async def waste(
    conn: Conn, group_by: Sequence[str], since: dt.datetime | None, until: dt.datetime | None
) -> dict[str, Any]:
    """Waste ratio, GPU-seconds and USD in total and per served chunk, grouped."""
    flags = _flags(group_by, WASTE_DIMENSIONS)
    rows = await conn.fetch(query("analytics_waste"), since, until, *flags)
    return {"group_by": list(group_by), "rows": _rows(rows, group_by, WASTE_DIMENSIONS)}
