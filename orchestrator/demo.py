"""``rewind demo``: one process, embedded defaults, a real photo, a walk with think times.

It creates a memory, then walks a scripted (or seeded random) path like a viewer: watch the chunk
(its duration), think, choose the next action. Per step it prints the outcome (hit / in-flight /
miss), the wait, the GPU-seconds spent so far and which branches were speculated meanwhile, so a
newcomer sees speculation working within a minute.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.config import load_settings
from orchestrator.core.poses import ACTION_NAMES
from orchestrator.memories import create_memory, request_next_chunk
from orchestrator.queries import query
from orchestrator.service import Service
from orchestrator.tables import new_table, table_text

SAMPLE_PHOTO = Path(__file__).resolve().parent / "assets" / "astronaut.jpg"
"""NASA portrait of astronaut Eileen Collins (public domain), as shipped by scikit-image."""

DEFAULT_PATH = ("w", "w", "left", "w+right", "w", "w", "d", "w")


@dataclass(frozen=True, slots=True)
class DemoStep:
    """One printed line of the demo."""

    step: int
    action: str
    outcome: str
    wait_s: float
    gpu_s_total: float
    speculated: tuple[str, ...]


def random_path(steps: int, seed: int) -> tuple[str, ...]:
    """A seeded walk that mostly keeps its last action (viewers tend to keep going)."""
    rng = random.Random(seed)
    path = ["w"]
    while len(path) < steps:
        path.append(path[-1] if rng.random() < 0.6 else rng.choice(ACTION_NAMES[:8]))
    return tuple(path)


async def run_demo(
    *,
    policy: str,
    path: tuple[str, ...],
    think_s: float,
    gpu_delay_s: float,
    photo: Path,
    data_dir: Path,
    database_url: str | None,
    overrides: dict[str, dict[str, Any]],
    watch: bool,
    emit: Callable[[str], None] = print,
    status: Callable[[str], AbstractContextManager[object]] | None = None,
) -> list[DemoStep]:
    """Run the demo walk and return its steps (also emitted as lines via ``emit``).

    ``think_s`` is the viewer's thinking time (seconds) after each chunk; with ``watch`` the
    viewer also watches each chunk for its duration (frames / fps) before thinking. ``status``
    shows what the demo waits for (the CLI passes a rich spinner); by default nothing.
    """
    waiting = status or (lambda _text: contextlib.nullcontext())
    sections: dict[str, dict[str, Any]] = {
        "server": {"data_dir": data_dir},
        "database": {"url": database_url},
        "gpu": {"delay_s": gpu_delay_s},
        "speculation": {"policy": policy, "think_s": think_s},
        "log": {"level": "warning"},
    }
    for name, values in overrides.items():
        sections[name] = {**sections.get(name, {}), **values}
    settings = load_settings(None, use_file=True, **sections)
    with waiting("starting the service (embedded PostgreSQL on a first run)"):
        svc = await Service.start(settings)
    steps: list[DemoStep] = []
    speculated: list[str] = []
    try:
        image = base64.b64encode(photo.read_bytes()).decode()
        with waiting("rendering the root chunk from the photo"):
            created = await create_memory(svc, image, "demo walk")
        memory_id, session_id = created.memory_id, created.session_id
        parent = created.served.chunk_id
        emit(
            f"memory {memory_id}  policy={policy}  gpu slots={svc.gpu_slots}  "
            f"chunk={svc.profile.frames} frames {svc.profile.width}x{svc.profile.height}"
        )
        emit(f"root chunk ready in {created.served.wait_ms / 1000:.1f}s")
        async with svc.events.subscribe(str(memory_id)) as queue:
            for i, action in enumerate(path, start=1):
                pause = think_s + (svc.profile.duration_s if watch else 0.0)
                with waiting(f"step {i}/{len(path)}: the viewer thinks for {pause:.1f} s"):
                    await asyncio.sleep(pause)
                while not queue.empty():
                    event = queue.get_nowait()
                    if event["type"] == "speculation_started":
                        speculated.append(f"{event['action'] or event['pose']}@d{event['depth']}")
                with waiting(f"step {i}/{len(path)}: {action} requested, waiting for its chunk"):
                    served, _ = await request_next_chunk(
                        svc, memory_id, parent, None, action, session_id
                    )
                gpu = await _gpu_seconds(svc, memory_id)
                step = DemoStep(
                    i, action, served.outcome, served.wait_ms / 1000, gpu, tuple(speculated)
                )
                steps.append(step)
                emit(
                    f"step {i}: {action} -> {served.outcome}, waited {step.wait_s:.2f} s, "
                    f"{gpu:.1f} GPU-s so far; speculated meanwhile: {', '.join(speculated) or '-'}"
                )
                speculated.clear()
                parent = served.chunk_id
        emit(steps_table(steps))
        emit(summary(steps))
    finally:
        await svc.close()
    return steps


def steps_table(steps: list[DemoStep]) -> str:
    """The walk as a rich table: step, action, outcome, wait (s), GPU-s so far, speculated."""
    table = new_table(
        "the walk",
        ["step", "action", "outcome", "wait (s)", "GPU-s so far", "speculated meanwhile"],
        numeric_from=3,
        numeric_to=5,
    )
    for s in steps:
        table.add_row(
            str(s.step), s.action, s.outcome, f"{s.wait_s:.2f}", f"{s.gpu_s_total:.1f}",
            ", ".join(s.speculated) or "-",
        )  # fmt: skip
    return table_text(table)


def summary(steps: list[DemoStep]) -> str:
    """One line: hit / in-flight / miss counts and shares (%), mean wait (s), GPU-seconds."""
    n = max(1, len(steps))
    hits = sum(s.outcome == "hit" for s in steps)
    inflight = sum(s.outcome == "inflight" for s in steps)
    misses = len(steps) - hits - inflight
    mean_wait = sum(s.wait_s for s in steps) / n
    return (
        f"summary: {hits} hits ({100 * hits / n:.0f}%), {inflight} in-flight "
        f"({100 * inflight / n:.0f}%), {misses} misses ({100 * misses / n:.0f}%); "
        f"mean wait {mean_wait:.2f} s; {steps[-1].gpu_s_total if steps else 0:.1f} GPU-seconds"
    )


async def _gpu_seconds(svc: Service, memory_id: Any) -> float:
    async with svc.db.pool.acquire() as conn:
        value = await conn.fetchval(query("memory_gpu_seconds"), memory_id)
    return float(value)


def demo_data_dir(keep: Path | None) -> tempfile.TemporaryDirectory[str] | None:
    """A throwaway data folder unless the user asked to keep one."""
    return None if keep is not None else tempfile.TemporaryDirectory(prefix="rewind-demo-")
