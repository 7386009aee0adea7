"""Rendering query rows for people (a rich table), spreadsheets (CSV) and programs (JSON).

Tables are drawn with ``rich`` (one renderer for ``rewind analytics``, ``rewind simulate`` and
``rewind demo``). In a table, shares are percentages: a column whose key ends in ``_rate``,
``_ratio`` or ``_share`` holds a fraction 0..1 and is printed as ``62.5%``; ``_ms`` columns are
milliseconds, ``_gpu_s``/``gpu_s`` GPU-seconds, ``usd`` US dollars (their headers say so). CSV and
JSON keep the raw values (fractions stay fractions) for programs.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Sequence
from typing import Any, Literal

from rich import box
from rich.console import Console
from rich.table import Table

Format = Literal["table", "csv", "json"]

_PERCENT_SUFFIXES = ("_rate", "_ratio", "_share")


def is_share(column: str) -> bool:
    """True when ``column`` holds a fraction 0..1 (printed as a percentage in tables)."""
    return column.endswith(_PERCENT_SUFFIXES)


def header(column: str) -> str:
    """A column key as a header with its unit: ``p95_ms`` -> ``p95 (ms)``,
    ``gpu_s_per_served_chunk`` -> ``GPU-s per served chunk``, ``hit_rate`` -> ``hit rate``
    (its cells carry the ``%``)."""
    words = column.replace("_", " ")
    if column.endswith("_ms"):
        return f"{words.removesuffix(' ms')} (ms)"
    return words.replace("gpu s", "GPU-s").replace("usd", "USD")


def cell(value: Any, column: str = "") -> str:
    """One value as table text: None -> ``-``, shares as ``62.5%``, floats to 4 significant
    digits (whole numbers from 100,000 up)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float) and is_share(column):
        return f"{100 * value:.1f}%"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    return str(value)


def table_text(table: Table, width: int | None = None) -> str:
    """``table`` drawn as plain text, ``width`` columns wide (default: the terminal's, >= 100)."""
    cols = width or max(100, shutil.get_terminal_size((120, 24)).columns)
    console = Console(file=io.StringIO(), width=cols, color_system=None, highlight=False)
    console.print(table)
    text = str(console.file.getvalue())  # type: ignore[attr-defined]
    return "\n".join(line.rstrip() for line in text.rstrip("\n").splitlines())


def new_table(
    title: str, columns: Sequence[str], numeric_from: int = 0, numeric_to: int | None = None
) -> Table:
    """A ``rich`` table with our style: ``columns`` headers; columns ``numeric_from`` up to (not
    including) ``numeric_to`` (default: all the rest) are numbers, right-aligned."""
    table = Table(title=title or None, box=box.SIMPLE_HEAD, title_justify="left")
    end = len(columns) if numeric_to is None else numeric_to
    for i, name in enumerate(columns):
        numeric = numeric_from <= i < end
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    return table


def render_rows(rows: Sequence[dict[str, Any]], fmt: Format, title: str = "") -> str:
    """``rows`` (dicts sharing keys) as a rich table (text), CSV or a JSON array."""
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
    numeric = next(
        (i for i, c in enumerate(columns) if isinstance(rows[0][c], int | float)), len(columns)
    )
    table = new_table(title, [header(c) for c in columns], numeric)
    for row in rows:
        table.add_row(*(cell(row[c], c) for c in columns))
    return table_text(table)
