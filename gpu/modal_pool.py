"""GpuPool on Modal: each generation is a ``WorldPlay.generate`` call on the deployed app.

Client calls (modal 1.6, DESIGN.md "Facts checked on this machine"): ``modal.Cls.from_name(app,
cls)().generate.spawn.aio(...)`` returns a ``FunctionCall`` at once; ``fc.get.aio(timeout=...)``
raises the built-in ``TimeoutError`` while the call is still running (so we poll), and
``OutputExpiredError`` / ``FunctionTimeoutError`` / ``RemoteError`` or the remote exception
otherwise; ``fc.cancel.aio()`` cancels; ``modal.FunctionCall.from_id(id)`` re-attaches to a call
spawned by an earlier process (the scheduler stores ``fc.object_id`` on the gpu_jobs row through
``on_submitted``, column ``external_id``).

Accounting: the container reports ``timings["method"]`` (wall seconds inside ``generate``) and
whether the call was its first after ``@modal.enter``. A call paid a cold start when it was its
container's first and the container finished loading after the call was submitted; then the
load seconds are billed to it too. ``gpu_seconds`` = method seconds (+ load seconds on a cold
start): Modal bills GPU containers per second of uptime, so idle scaledown time is not charged
to any chunk (it shows in Modal's bill, not here).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import modal
import modal.config
import modal.exception as mx
import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from gpu.protocol import GenerationError, GenerationRequest, GenerationResult

log = structlog.get_logger(__name__)

DEFAULT_APP = "rewind-worldplay"
DEFAULT_CLS = "WorldPlay"
"""Must match ``gpu/modal_app.py`` (APP_NAME from REWIND_MODAL_APP, CLS_NAME)."""

OnSubmitted = Callable[[str, str], Awaitable[None]]
"""``await on_submitted(job_id, function_call_id)`` right after a successful spawn."""

_TRANSIENT_MODAL = (
    mx.ConnectionError, mx.ServiceError, mx.InternalError, mx.InternalFailure,
    mx.ResourceExhaustedError, mx.RemoteError, mx.OutputExpiredError,
)  # fmt: skip


class ModalConfigError(RuntimeError):
    """Modal is selected but no credentials are configured; the message says what is missing."""


def check_credentials(get: Callable[[str], Any] | None = None) -> None:
    """Fail fast at startup when Modal has no token (env vars or ~/.modal.toml).

    ``get`` reads a Modal setting (default ``modal.config.config.get``, which resolves
    MODAL_TOKEN_ID / MODAL_TOKEN_SECRET, then the active profile of ``~/.modal.toml`` or
    $MODAL_CONFIG_PATH). Never prints token values.

    Raises:
        ModalConfigError: token id and/or secret missing.
    """
    read = get or modal.config.config.get
    missing = [f"MODAL_{key.upper()}" for key in ("token_id", "token_secret") if not read(key)]
    if missing:
        raise ModalConfigError(
            f"the Modal GPU backend is selected but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not set and ~/.modal.toml (or "
            "$MODAL_CONFIG_PATH) has no token: run `modal token new` or export "
            "MODAL_TOKEN_ID and MODAL_TOKEN_SECRET"
        )


def map_modal_error(exc: BaseException, *, where: str) -> GenerationError:
    """A GenerationError for what Modal (or the remote ``generate``) raised.

    ``where`` names the deployment (app/class) for the message. ``transient`` is True when a
    retry may succeed: Modal service trouble, an expired output, a crashed container.
    """
    if isinstance(exc, GenerationError):
        return exc
    if isinstance(exc, mx.AuthError | mx.PermissionDeniedError):
        return GenerationError(
            f"Modal rejected the credentials ({type(exc).__name__}): check MODAL_TOKEN_ID/"
            "MODAL_TOKEN_SECRET or ~/.modal.toml",
            transient=False,
        )
    if isinstance(exc, mx.NotFoundError):
        return GenerationError(
            f"Modal has no {where} deployed ({exc}): run `modal deploy gpu/modal_app.py`",
            transient=False,
        )
    if isinstance(exc, mx.FunctionTimeoutError):
        return GenerationError(
            f"{where}.generate exceeded its Modal timeout: raise REWIND_MODAL_TIMEOUT_S and "
            "redeploy, or use fewer inference steps",
            transient=False,
        )
    if isinstance(exc, mx.OutputExpiredError):
        return GenerationError(
            f"the result of {where}.generate expired on Modal before it was collected",
            transient=True,
        )
    if isinstance(exc, _TRANSIENT_MODAL):
        return GenerationError(f"Modal {type(exc).__name__}: {exc}"[:400], transient=True)
    if isinstance(exc, TimeoutError):
        return GenerationError(f"Modal did not answer in time ({where})", transient=True)
    if isinstance(exc, mx.Error):
        return GenerationError(f"Modal {type(exc).__name__}: {exc}"[:400], transient=False)
    if isinstance(exc, ValueError | TypeError):
        # Raised by check_request in the container: the request itself is wrong.
        return GenerationError(f"{where} rejected the request: {exc}"[:400], transient=False)
    return GenerationError(f"{where}.generate failed: {type(exc).__name__}: {exc}"[:400])


class ModalGpuPool:
    """GpuPool whose slots are the Modal class's ``max_containers``.

    Args:
        app_name, cls_name: the deployed app and class (``modal.Cls.from_name``).
        max_containers: slots; must equal REWIND_MODAL_MAX_CONTAINERS of the deployment.
        environment_name: Modal environment, None for the profile's default.
        poll_s: seconds each ``fc.get.aio(timeout=...)`` waits before polling again.
        max_wait_s: give up (transient error, remote call cancelled) after this many seconds.
        submit_timeout_s: seconds one spawn attempt may take (an unreachable Modal hangs).
        submit_attempts: spawn attempts on transient errors (tenacity, exponential back-off).
        submit_backoff_s: first back-off in seconds (doubling, at most 10 s).
        on_submitted: ``await on_submitted(job_id, call_id)`` after each spawn.
        method, call_from_id: test seams; default the deployed ``generate`` method and
            ``modal.FunctionCall.from_id``.
    """

    name = "modal"

    def __init__(
        self, *, app_name: str = DEFAULT_APP, cls_name: str = DEFAULT_CLS,
        max_containers: int = 2, environment_name: str | None = None, poll_s: float = 30.0,
        max_wait_s: float = 3600.0, submit_timeout_s: float = 60.0, submit_attempts: int = 3,
        submit_backoff_s: float = 1.0, on_submitted: OnSubmitted | None = None, method: Any = None,
        call_from_id: Callable[[str], Any] | None = None,
    ) -> None:  # fmt: skip
        if max_containers < 1:
            raise ValueError("max_containers must be >= 1")
        self.app_name, self.cls_name = app_name, cls_name
        self.where = f"{app_name}/{cls_name}"
        self.max_containers = max_containers
        self.environment_name = environment_name
        self.poll_s, self.max_wait_s = poll_s, max_wait_s
        self.submit_timeout_s, self.submit_attempts = submit_timeout_s, submit_attempts
        self.submit_backoff_s = submit_backoff_s
        self.on_submitted = on_submitted
        self._method = method
        self._from_id = call_from_id or modal.FunctionCall.from_id
        self._inflight: dict[str, Any] = {}  # job_id -> FunctionCall, for health and close
        self._detached = False
        self.calls = self.failures = self.cold_starts = 0
        self.gpu_seconds = 0.0
        self._last_error: str | None = None
        self._last_ok_at: float | None = None

    @property
    def slots(self) -> int:
        """Generations that may run at once: the deployment's ``max_containers``."""
        return self.max_containers

    def _generate_method(self) -> Any:
        if self._method is None:  # lazy: from_name does no I/O until the first spawn
            cls = modal.Cls.from_name(
                self.app_name, self.cls_name, environment_name=self.environment_name
            )
            self._method = cls().generate
        return self._method

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Spawn the remote call, report its id, poll for the result.

        Raises:
            GenerationError: mapped Modal errors (see ``map_modal_error``).
            asyncio.CancelledError: the remote call is cancelled first.
        """
        submitted_at = time.time()
        # A cancellation during the spawn itself cannot cancel the remote call: no id yet.
        call = await self._submit(request)
        if self.on_submitted is not None:
            try:
                await self.on_submitted(request.job_id, call.object_id)
            except asyncio.CancelledError:
                await self._abandon(call)
                raise
            except Exception as exc:  # the generation goes on; only re-attachment is lost
                log.warning("modal_on_submitted_failed", job_id=request.job_id, error=str(exc))
        return await self._collect(call, request.job_id, submitted_at)

    def detach(self) -> None:
        """Shutdown mode: from now on a cancelled ``generate`` leaves its remote call running.

        Call it before cancelling the job tasks on shutdown; the next process re-attaches with
        ``reattach(call_id)`` using the id ``on_submitted`` stored, instead of paying again.
        """
        self._detached = True

    async def _abandon(self, call: Any) -> None:
        if not self._detached:
            await _cancel(call)  # free the GPU: nobody will read this result

    async def reattach(self, call_id: str, job_id: str = "") -> GenerationResult:
        """Wait for a call spawned earlier (e.g. before a restart), by its FunctionCall id.

        The submit time is unknown, so ``cold_start`` means "first call of its container".

        Raises:
            GenerationError, asyncio.CancelledError: as ``generate``.
        """
        return await self._collect(self._from_id(call_id), job_id or call_id, None)

    async def _submit(self, request: GenerationRequest) -> Any:
        kwargs = {
            "image_png": request.image_png, "pose": request.pose, "frames": request.frames,
            "steps": request.steps, "seed": request.seed, "prompt": request.prompt,
            "model": request.model, "width": request.width, "height": request.height,
            "fps": request.fps,
        }  # fmt: skip

        async def spawn() -> Any:
            try:
                return await asyncio.wait_for(
                    self._generate_method().spawn.aio(**kwargs), self.submit_timeout_s
                )
            except Exception as exc:
                raise map_modal_error(exc, where=self.where) from exc

        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.submit_attempts),
                wait=wait_exponential(multiplier=self.submit_backoff_s, max=10.0),
                retry=retry_if_exception(lambda e: isinstance(e, GenerationError) and e.transient),
                reraise=True,
            ):
                with attempt:
                    return await spawn()
        except GenerationError as exc:
            self._failed(exc)
            raise
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _collect(
        self, call: Any, job_id: str, submitted_at: float | None
    ) -> GenerationResult:
        t0 = time.monotonic()
        self._inflight[job_id] = call
        try:
            while True:
                try:
                    out = await call.get.aio(timeout=self.poll_s)
                    break
                except TimeoutError:  # built-in: the call is still running (modal 1.6)
                    if time.monotonic() - t0 > self.max_wait_s:
                        await _cancel(call)
                        error = GenerationError(
                            f"no result from {self.where} after {self.max_wait_s:.0f} s",
                            transient=True,
                        )
                        self._failed(error)
                        raise error from None
        except asyncio.CancelledError:
            await self._abandon(call)
            raise
        except GenerationError:
            raise
        except Exception as exc:
            error = map_modal_error(exc, where=self.where)
            self._failed(error)
            raise error from exc
        finally:
            self._inflight.pop(job_id, None)
        return self._result(out, submitted_at, time.monotonic() - t0)

    def _result(self, out: Any, submitted_at: float | None, wait_s: float) -> GenerationResult:
        try:
            timings = {k: float(v) for k, v in out["timings"].items()}
            box = out["container"]
            method_s, load_s = timings["method"], float(box["load_s"])
            paid = submitted_at is None or float(box["loaded_at"]) >= submitted_at
            cold = bool(box["first_call"]) and paid
            result = GenerationResult(
                video_mp4=bytes(out["video_mp4"]),
                last_frame_png=bytes(out["last_frame_png"]),
                gpu_seconds=method_s + (load_s if cold else 0.0),
                frames=int(out["frames"]),
                width=int(out["width"]),
                height=int(out["height"]),
                cold_start=cold,
                timings={**timings, **({"load": load_s} if cold else {}), "wait": wait_s},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            error = GenerationError(f"{self.where} returned a malformed result: {exc!r}")
            self._failed(error)
            raise error from exc
        self.calls += 1
        self.cold_starts += cold
        self.gpu_seconds += result.gpu_seconds
        self._last_error, self._last_ok_at = None, time.time()
        return result

    def _failed(self, error: GenerationError) -> None:
        self.failures += 1
        self._last_error = str(error)

    async def health(self) -> dict[str, object]:
        """not configured (no token) / ok / degraded (last call failed, with its error)."""
        report: dict[str, object] = {
            "backend": "modal", "app": self.app_name, "cls": self.cls_name, "slots": self.slots,
            "inflight": len(self._inflight), "calls": self.calls, "failures": self.failures,
            "cold_starts": self.cold_starts, "gpu_seconds": round(self.gpu_seconds, 3),
        }  # fmt: skip
        try:
            check_credentials()
        except ModalConfigError as exc:
            return {**report, "status": "not configured", "detail": str(exc)}
        if self._last_error:
            return {**report, "status": "degraded", "error": self._last_error}
        return {**report, "status": "ok", "last_ok_at": self._last_ok_at}

    async def check_deployment(self, timeout_s: float = 30.0) -> None:
        """Look the class up on Modal (startup check that the app is deployed).

        Raises:
            GenerationError: not deployed, bad credentials, or Modal unreachable.
        """
        cls = modal.Cls.from_name(
            self.app_name, self.cls_name, environment_name=self.environment_name
        )
        try:
            await asyncio.wait_for(cls.hydrate.aio(), timeout_s)
        except Exception as exc:
            raise map_modal_error(exc, where=self.where) from exc

    async def close(self) -> None:
        """Cancel calls still in flight, unless ``detach()`` was called (they are re-attachable)."""
        calls, self._inflight = list(self._inflight.values()), {}
        if not self._detached:
            await asyncio.gather(*(_cancel(c) for c in calls))


async def _cancel(call: Any, timeout_s: float = 10.0) -> None:
    """Ask Modal to cancel ``call``; shielded so a second cancellation cannot interrupt it."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.shield(call.cancel.aio()), timeout_s)
