"""Rendering query rows for people (aligned table), spreadsheets (CSV) and programs (JSON)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any, Literal

Format = Literal["table", "csv", "json"]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    return str(value)


def render_rows(rows: Sequence[dict[str, Any]], fmt: Format, title: str = "") -> str:
    """``rows`` (dicts sharing keys) as an aligned text table, CSV or a JSON array."""
    if fmt == "json":
        return json.dumps(list(rows), indent=2, default=str)
    columns = list(rows[0]) if rows else []
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    if not rows:
        return f"{title}\n(no rows)" if title else "(no rows)"
    cells = [columns] + [[_cell(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [title] if title else []
    for n, row in enumerate(cells):
        lines.append("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
