"""GpuPool on Modal: each generation is a ``WorldPlay.generate`` call on the deployed app.

Client calls (modal 1.6, checked in the installed package): ``modal.Cls.from_name(app, cls)()
.generate.spawn.aio(...)`` returns a ``FunctionCall`` at once; ``fc.get.aio(timeout=...)`` raises
the built-in ``TimeoutError`` while the call is still running (so we poll), and
``OutputExpiredError`` / ``FunctionTimeoutError`` / ``RemoteError`` or the remote exception
otherwise; ``fc.cancel.aio()`` cancels; ``modal.FunctionCall.from_id(id)`` (plain, lazy: its
``.aio`` form is deprecated) re-attaches to a call spawned by an earlier process. The scheduler
stores ``fc.object_id`` on the gpu_jobs row through ``on_submitted`` (column ``external_id``)
and, after a restart, calls ``resume(request, external_id)`` instead of submitting again.

Run once (``gpu.claims``): every spawn carries the job id; the container claims it before any
GPU work. A submission that timed out is looked up by job id and adopted when it started, and
spawned again otherwise (a second start returns ``duplicate_of`` at once and is adopted). A job
abandoned before its call id was known is blocked in the claims, or its owner cancelled.

Accounting: the container reports ``timings["method"]`` (wall seconds inside ``generate``) and
whether the call was its first after ``@modal.enter``. A call paid a cold start when it was its
container's first and the container finished loading after the call was submitted; then the
load seconds are billed to it too. Modal bills GPU containers per second of uptime, so idle warm
time is not charged to any chunk (it shows in Modal's bill and in ``gpu.modal_deployment``).

A result whose container reports another ``model`` than the request's is refused (never stored
under that profile): e.g. a deployment built with ``REWIND_PIPELINE=cpu`` answering a
``worldplay-ar`` profile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import modal
import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from gpu.claims import CANCELLED, CLAIMS_DICT, ClaimsClient
from gpu.modal_deployment import ModalDeployment
from gpu.modal_errors import ModalConfigError, check_credentials, map_modal_error
from gpu.protocol import GenerationError, GenerationRequest, GenerationResult

__all__ = ["ModalConfigError", "ModalGpuPool", "check_credentials", "map_modal_error"]

log = structlog.get_logger(__name__)

DEFAULT_APP = "rewind-worldplay"
DEFAULT_CLS = "WorldPlay"
"""Must match ``gpu/modal_app.py`` (APP_NAME from REWIND_MODAL_APP, CLS_NAME)."""

OnSubmitted = Callable[[str, str], Awaitable[None]]
"""``await on_submitted(job_id, function_call_id)`` right after a successful spawn."""


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
        method, call_from_id, claims, deployment: test seams; default the deployed
            ``generate`` method, ``modal.FunctionCall.from_id``, the claims Dict
            (``gpu.claims.CLAIMS_DICT``) and the deployment lookup/autoscaler control.
    """

    name = "modal"

    def __init__(
        self, *, app_name: str = DEFAULT_APP, cls_name: str = DEFAULT_CLS,
        max_containers: int = 2, environment_name: str | None = None, poll_s: float = 30.0,
        max_wait_s: float = 3600.0, submit_timeout_s: float = 60.0, submit_attempts: int = 3,
        submit_backoff_s: float = 1.0, on_submitted: OnSubmitted | None = None, method: Any = None,
        call_from_id: Callable[[str], Any] | None = None, claims: ClaimsClient | None = None,
        deployment: ModalDeployment | None = None,
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
        self._claims = claims
        self.deployment = deployment or ModalDeployment(
            app_name, cls_name, environment_name=environment_name
        )
        self._inflight: dict[str, Any] = {}  # job_id -> FunctionCall, for health and close
        self._detached = False
        self.calls = self.failures = self.cold_starts = self.adopted = 0
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

    def claims(self) -> ClaimsClient:
        """The claims client (lazy: ``modal.Dict.from_name`` does no I/O until used)."""
        if self._claims is None:
            store = modal.Dict.from_name(
                CLAIMS_DICT, environment_name=self.environment_name, create_if_missing=True
            )
            self._claims = ClaimsClient(store)
        return self._claims

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Spawn the remote call (at most one run per job id), report its id, poll for it.

        Raises:
            GenerationError: mapped Modal errors (see ``map_modal_error``); a result from a
                container serving another model.
            asyncio.CancelledError: the remote call is cancelled first (or blocked, when the
                cancellation came before its id was known).
        """
        submitted_at = time.time()
        try:
            call = await self._submit(request)
        except asyncio.CancelledError:
            await self._abandon_unknown(request.job_id)
            raise
        if self.on_submitted is not None:
            try:
                await self.on_submitted(request.job_id, call.object_id)
            except asyncio.CancelledError:
                await self._abandon(call)
                raise
            except Exception as exc:  # the generation goes on; the claim still finds it
                log.warning("modal_on_submitted_failed", job_id=request.job_id, error=str(exc))
        return await self._collect(call, request.job_id, submitted_at, request.model)

    async def resume(self, request: GenerationRequest, call_id: str | None) -> GenerationResult:
        """After a restart: re-attach to the job's call instead of paying for it again.

        ``call_id`` is the stored ``gpu_jobs.external_id``; without one (the process died
        between spawn and storing it) the claims are asked; only a job no call ever claimed is
        spawned, and then still at most once.

        Raises:
            GenerationError, asyncio.CancelledError: as ``generate``.
        """
        owner = call_id or await self.claims().owner(request.job_id)
        if owner and owner != CANCELLED:
            self.adopted += 1
            return await self.reattach(owner, request.job_id, model=request.model)
        return await self.generate(request)

    def detach(self) -> None:
        """Shutdown mode: from now on a cancelled ``generate`` leaves its remote call running.

        Call it before cancelling the job tasks on shutdown; the next process re-attaches with
        ``resume(request, call_id)`` using the id ``on_submitted`` stored.
        """
        self._detached = True

    async def _abandon(self, call: Any) -> None:
        if not self._detached:
            await _cancel(call)  # free the GPU: nobody will read this result

    async def _abandon_unknown(self, job_id: str) -> None:
        """Cancelled before the spawn answered: block the job, or cancel the call that has it."""
        if self._detached:
            return
        owner = await asyncio.shield(self.claims().cancel(job_id))
        if owner:
            await _cancel(self._from_id(owner))

    async def reattach(
        self, call_id: str, job_id: str = "", *, model: str = ""
    ) -> GenerationResult:
        """Wait for a call spawned earlier (e.g. before a restart), by its FunctionCall id.

        The submit time is unknown, so ``cold_start`` means "first call of its container".
        ``model``: refuse a result from a container serving another model ("" skips the check).

        Raises:
            GenerationError, asyncio.CancelledError: as ``generate``.
        """
        return await self._collect(self._from_id(call_id), job_id or call_id, None, model)

    async def _submit(self, request: GenerationRequest) -> Any:
        kwargs = {
            "image_png": request.image_png, "pose": request.pose, "frames": request.frames,
            "steps": request.steps, "seed": request.seed, "prompt": request.prompt,
            "model": request.model, "width": request.width, "height": request.height,
            "fps": request.fps, "job_id": request.job_id,
        }  # fmt: skip

        async def spawn() -> Any:
            try:
                return await asyncio.wait_for(
                    self._generate_method().spawn.aio(**kwargs), self.submit_timeout_s
                )
            except TimeoutError:
                # The spawn may have reached Modal: adopt it if it claimed the job.
                owner = await self.claims().owner(request.job_id)
                if owner and owner != CANCELLED:
                    self.adopted += 1
                    log.info("modal_submit_adopted", job_id=request.job_id, call_id=owner)
                    return self._from_id(owner)
                raise GenerationError(  # transient: spawning again is safe, the claim refuses
                    f"Modal did not answer the submission in time ({self.where}) and no call "
                    "has claimed the job yet",  # a second start of the same job
                    transient=True,
                ) from None
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
            await self._abandon_unknown(request.job_id)  # a late start must not run for nobody
            raise
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    async def _collect(
        self, call: Any, job_id: str, submitted_at: float | None, model: str
    ) -> GenerationResult:
        t0 = time.monotonic()
        self._inflight[job_id] = call
        try:
            out = await self._poll(call, job_id, t0)
        except asyncio.CancelledError:
            await self._abandon(self._inflight.get(job_id, call))
            raise
        except GenerationError:
            raise
        except Exception as exc:
            error = map_modal_error(exc, where=self.where)
            self._failed(error)
            raise error from exc
        finally:
            self._inflight.pop(job_id, None)
        return self._result(out, submitted_at, time.monotonic() - t0, model)

    async def _poll(self, call: Any, job_id: str, t0: float) -> Any:
        """The call's output; follows ``duplicate_of`` to the call that owns the job."""
        for _ in range(4):  # a duplicate points at the owner, which never points on
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
            if not isinstance(out, dict) or "duplicate_of" not in out:
                return out
            log.info("modal_duplicate_adopted", job_id=job_id, owner=out["duplicate_of"])
            self.adopted += 1
            call = self._from_id(str(out["duplicate_of"]))
            self._inflight[job_id] = call
        raise GenerationError(f"{self.where}: claim chain for job {job_id} does not end")

    def _result(
        self, out: Any, submitted_at: float | None, wait_s: float, model: str
    ) -> GenerationResult:
        if isinstance(out, dict) and out.get("cancelled"):
            error = GenerationError(f"{self.where}: the job was cancelled before it started")
            self._failed(error)
            raise error
        try:
            reported = str(out["model"])
            if model and reported != model:
                raise GenerationError(
                    f"{self.where} runs pipeline {out.get('pipeline')!r} serving model "
                    f"{reported!r}, not the profile's {model!r}: refusing its chunk (redeploy "
                    "with REWIND_PIPELINE=worldplay and REWIND_WORLDPLAY_VARIANT matching "
                    "[generation] model)"
                )
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
        except GenerationError as refused:
            self._failed(refused)
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            malformed = GenerationError(f"{self.where} returned a malformed result: {exc!r}")
            self._failed(malformed)
            raise malformed from exc
        self.calls += 1
        self.cold_starts += cold
        self.gpu_seconds += result.gpu_seconds
        self._last_error, self._last_ok_at = None, time.time()
        return result

    def _failed(self, error: GenerationError) -> None:
        self.failures += 1
        self._last_error = str(error)

    async def health(self) -> dict[str, object]:
        """not configured (no token) / unhealthy (app or class not deployed) / degraded (lookup
        or last call failed, with the error) / ok. Looks the deployment up (cached 30 s)."""
        report: dict[str, object] = {
            "backend": "modal", "app": self.app_name, "cls": self.cls_name, "slots": self.slots,
            "inflight": len(self._inflight), "calls": self.calls, "failures": self.failures,
            "cold_starts": self.cold_starts, "adopted": self.adopted,
            "gpu_seconds": round(self.gpu_seconds, 3),
            "warm": None if self.deployment.warm is None else list(self.deployment.warm),
        }  # fmt: skip
        try:
            check_credentials()
        except ModalConfigError as exc:
            return {**report, "status": "not configured", "detail": str(exc)}
        found = await self.deployment.probe()
        report["deployed"] = found.found
        if found.found is False:
            return {**report, "status": "unhealthy", "error": found.error}
        if found.found is None:
            return {**report, "status": "degraded", "error": found.error}
        if self._last_error:
            return {**report, "status": "degraded", "error": self._last_error}
        return {**report, "status": "ok", "last_ok_at": self._last_ok_at}

    async def set_warm(self, min_containers: int, buffer_containers: int | None = None) -> bool:
        """Keep containers warm ahead of predicted demand (``ModalDeployment.set_warm``).

        ``min_containers`` is capped at ``max_containers``. Returns True when Modal was called.

        Raises:
            ValueError, GenerationError: as ``ModalDeployment.set_warm``.
        """
        return await self.deployment.set_warm(
            min(min_containers, self.max_containers), buffer_containers
        )

    async def warm_idle(self, timeout_s: float = 10.0) -> int | None:
        """Containers up and idle now: ``num_total_runners - num_running_inputs - backlog`` of
        the deployed method's ``get_current_stats`` (modal 1.6 ``FunctionCurrentStats``; booting
        containers count as runners). None when Modal does not answer."""
        try:
            stats = await asyncio.wait_for(
                self._generate_method().get_current_stats.aio(), timeout_s
            )
            idle = stats.num_total_runners - stats.num_running_inputs - stats.backlog
        except Exception as exc:
            log.warning("modal_stats_failed", error=f"{type(exc).__name__}: {exc}")
            return None
        return max(0, int(idle))

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
