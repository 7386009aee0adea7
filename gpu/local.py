"""The local GPU pool: ``gpu.render`` in worker processes, standing in for HY-WorldPlay on Modal.

It is the default backend (DESIGN.md "Real parts and their embedded defaults"): real MP4s of the
camera moving over the photo, with a configurable extra delay imitating GPU time. Like a Modal
pool it has ``slots`` (one generation each); a generation holds its slot for the render and then
the delay, and ``gpu_seconds`` is how long the slot was held.

Renders run in a ``ProcessPoolExecutor`` started with ``forkserver`` (``spawn`` where that does
not exist), never ``fork``: the service's process has asyncio, asyncpg and executor threads whose
locks a forked child could inherit held.

Cancellation: cancelling the task awaiting ``generate`` raises ``asyncio.CancelledError`` in it
and frees its slot at once, whether it was waiting for a slot, rendering or in its delay (the
delay is a plain ``asyncio.sleep``). A render already handed to a worker process cannot be
interrupted: it finishes in the background and its result is discarded, so a worker may stay
busy for up to one render time (about 2 s at 854x480x125) after its slot was freed.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from gpu.protocol import GenerationError, GenerationRequest, GenerationResult
from gpu.render import RenderOutput, render_chunk
from gpu.world import render_world_chunk


class RenderRejected(Exception):
    """A worker refused a request (bad pose, size, frames or image): retrying cannot help.

    Raised in the worker instead of the original ``PoseError``/``ValueError``, whose pickled
    form need not survive the trip back (``PoseError`` takes two constructor arguments).
    """


def _render_in_worker(
    image_png: bytes,
    pose: str,
    frames: int,
    width: int,
    height: int,
    fps: int,
    origin_png: bytes | None = None,
    history: tuple[str, ...] = (),
) -> RenderOutput:
    """The chunk from the memory's photo along the walked path when ``origin_png`` is given
    (``gpu.world``: sharp however far one walks), else from ``image_png`` alone
    (``gpu.render``); input errors become a picklable ``RenderRejected``."""
    try:
        if origin_png is not None:
            return render_world_chunk(origin_png, history, pose, frames, width, height, fps)
        return render_chunk(image_png, pose, frames, width, height, fps)
    except ValueError as exc:  # PoseError is a ValueError
        raise RenderRejected(f"{type(exc).__name__}: {exc}") from None


def _mp_context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


class LocalGpuPool:
    """A ``gpu.protocol.GpuPool`` rendering on local CPU worker processes.

    Args:
        slots: generations that may run at once (>= 1); the seed's containers each take one.
        delay_s: extra seconds each generation holds its slot after rendering, imitating GPU
            time (>= 0; cancellable).
        workers: worker processes (>= 1); defaults to ``slots``. Fewer workers than slots queue
            renders inside the executor while their slots are held.

    Raises:
        ValueError: an argument out of range.
    """

    name = "local"
    renders_from_origin = True
    """Every chunk is rendered from the memory's photo (``GenerationRequest.origin_png``)."""

    def __init__(self, slots: int = 2, delay_s: float = 0.0, workers: int | None = None) -> None:
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise ValueError(f"slots must be a positive integer (got {slots!r})")
        if not delay_s >= 0:
            raise ValueError(f"delay_s must be >= 0 seconds (got {delay_s!r})")
        if workers is not None and (isinstance(workers, bool) or workers < 1):
            raise ValueError(f"workers must be a positive integer or None (got {workers!r})")
        self._slots = slots
        self._delay_s = float(delay_s)
        self._workers = workers if workers is not None else slots
        self._semaphore = asyncio.Semaphore(slots)
        self._busy = 0
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False

    @property
    def slots(self) -> int:
        """Number of generations that may run at once."""
        return self._slots

    @property
    def busy(self) -> int:
        """Slots held right now (0..slots)."""
        return self._busy

    @property
    def delay_s(self) -> float:
        """Extra seconds each generation holds its slot after rendering."""
        return self._delay_s

    def _get_executor(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self._workers, mp_context=_mp_context()
            )
        return self._executor

    def _discard_executor(self, executor: ProcessPoolExecutor) -> None:
        # Concurrent generations all see the same broken pool; only the first replaces it.
        if self._executor is executor:
            self._executor = None
        executor.shutdown(wait=False, cancel_futures=True)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Render ``request`` in a worker, then hold the slot ``delay_s`` more seconds.

        Returns:
            GenerationResult with ``gpu_seconds`` = seconds the slot was held (render + delay),
            ``cold_start`` False and ``timings`` in seconds: ``render``, ``encode``, ``png`` (in
            the worker), ``worker`` (round trip to the worker process, incl. process start on
            first use), ``delay`` and ``queue`` (waiting for a slot, not billed).

        Raises:
            GenerationError(transient=False): invalid pose/profile/image, an unexpected render
                error, or the pool is closed.
            GenerationError(transient=True): a worker process died (the executor is replaced).
            asyncio.CancelledError: the awaiting task was cancelled; the slot is freed.
        """
        if self._closed:
            raise GenerationError("local GPU pool is closed", transient=False)
        queued = time.perf_counter()
        async with self._semaphore:
            self._busy += 1
            start = time.perf_counter()
            try:
                output = await self._render(request)
                rendered = time.perf_counter()
                if self._delay_s > 0:
                    await asyncio.sleep(self._delay_s)
                end = time.perf_counter()
            finally:
                self._busy -= 1
        timings = dict(output.timings)
        timings.update(worker=rendered - start, delay=end - rendered, queue=start - queued)
        return GenerationResult(
            video_mp4=output.video_mp4,
            last_frame_png=output.last_frame_png,
            gpu_seconds=end - start,
            frames=output.frames,
            width=output.width,
            height=output.height,
            cold_start=False,
            timings=timings,
        )

    async def _render(self, request: GenerationRequest) -> RenderOutput:
        if self._closed:
            raise GenerationError("local GPU pool is closed", transient=False)
        executor = self._get_executor()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                executor,
                _render_in_worker,
                request.image_png,
                request.pose,
                request.frames,
                request.width,
                request.height,
                request.fps,
                request.origin_png,
                request.history,
            )
        except RenderRejected as exc:
            raise GenerationError(f"job {request.job_id}: {exc}", transient=False) from None
        except BrokenProcessPool as exc:
            self._discard_executor(executor)
            msg = f"job {request.job_id}: a local render worker died ({exc})"
            raise GenerationError(msg, transient=True) from exc
        except Exception as exc:
            if self._closed:  # close() shut the executor down under us
                raise GenerationError("local GPU pool is closed", transient=False) from exc
            # An unexpected error in a deterministic renderer would recur on retry.
            msg = f"job {request.job_id}: local render failed: {type(exc).__name__}: {exc}"
            raise GenerationError(msg, transient=False) from exc

    async def health(self) -> dict[str, object]:
        """``{"status": "ok", "backend": "local", "slots", "busy", "delay_s"}`` (plus ``workers``).

        ``status`` is ``"degraded"`` once the pool is closed.
        """
        return {
            "status": "degraded" if self._closed else "ok",
            "backend": self.name,
            "slots": self._slots,
            "busy": self._busy,
            "delay_s": self._delay_s,
            "workers": self._workers,
        }

    async def close(self) -> None:
        """Stop accepting work, drop queued renders and wait (in a thread) for running ones."""
        self._closed = True
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
