"""The service container: builds every part from Settings, starts and stops them in order.

Backends are chosen in the configuration (DESIGN.md "Real parts and their embedded defaults"):
``[gpu] backend`` local | modal, ``[storage] backend`` local | supabase, ``[scene] backend``
offline | claude, ``[soundscape] backend`` none | elevenlabs. Secrets come from the environment
only. A GPU pool or blob store without its credentials stops the start (``ConfigError``, before
the database is opened): nothing could be generated or stored. Claude or ElevenLabs without a key
do not: memories are still created with ``scene`` / audio null, and /api/health says why.

Costs of external calls (Claude tokens, ElevenLabs seconds) are collected per call through
``metered()`` and written to ``memory_costs`` by ``orchestrator.memories``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import structlog

from gpu.local import LocalGpuPool
from gpu.protocol import GpuPool
from orchestrator import repo
from orchestrator.config import ConfigError, Settings, load_settings
from orchestrator.core.poses import canonical_pose
from orchestrator.core.profile import GenerationProfile
from orchestrator.core.types import Budget
from orchestrator.core.variants import check_profile
from orchestrator.db import Database, open_database
from orchestrator.db_supervisor import Supervision
from orchestrator.events import EventBus
from orchestrator.experiments import DEFAULT_ARM, Arm
from orchestrator.gate import Gate
from orchestrator.intake import Intake
from orchestrator.leader import LeaderLock, elect
from orchestrator.metrics import Metrics
from orchestrator.reload import merge_live, refused_from
from orchestrator.replica import ReplicaScheduler
from orchestrator.scene import OfflineSceneAnalyzer, SceneAnalyzer, SceneInfo
from orchestrator.scheduler import Scheduler, SchedulerConfig
from orchestrator.soundscape import Audio, NoSoundscape, Soundscape
from orchestrator.storage import BlobStore, Bucket, LocalBlobStore
from orchestrator.warm_control import WarmController, warm_controller

if TYPE_CHECKING:  # imported lazily: anthropic alone takes seconds to import
    from orchestrator.claude_scene import ClaudeSceneAnalyzer
    from orchestrator.elevenlabs_soundscape import ElevenLabsSoundscape

log = structlog.get_logger(__name__)

__all__ = ["ConfigError", "ExternalCall", "Service", "SignedUrls", "check_backends", "metered"]


@runtime_checkable
class SignedUrls(Protocol):
    """A remote blob store that can hand out time-limited download URLs (Supabase Storage)."""

    async def signed_url(self, bucket: Bucket, key: str, expires_s: int) -> str:
        """A URL serving the blob for ``expires_s`` seconds. Raises BlobNotFound."""
        ...


def check_backends(settings: Settings) -> None:
    """Fail fast when the selected GPU pool or blob store has no credentials.

    Reads the environment (MODAL_TOKEN_ID / MODAL_TOKEN_SECRET or ~/.modal.toml; SUPABASE_URL /
    SUPABASE_SERVICE_ROLE_KEY) and never prints a secret. Claude and ElevenLabs are not checked
    here: without a key the service runs and reports them as "not configured".

    Raises:
        ConfigError: one line naming everything missing.
    """
    problems: list[str] = []
    if settings.gpu.backend == "modal":
        from gpu.modal_pool import ModalConfigError, check_credentials

        try:
            check_credentials()
        except ModalConfigError as exc:
            problems.append(f'[gpu] backend = "modal": {exc}')
        try:  # the variant's upstream rules (size, latents) before any GPU is paid for
            check_profile(profile_from(settings))
        except ValueError as exc:
            problems.append(f"[generation]: {exc}")
    if settings.storage.backend == "supabase":
        from orchestrator.supabase_storage import SupabaseConfigError, check_config

        try:
            check_config()
        except SupabaseConfigError as exc:
            problems.append(f'[storage] backend = "supabase": {exc}')
    if problems:
        raise ConfigError("cannot start: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class ExternalCall:
    """One billed call to an external API, as recorded in ``memory_costs``.

    ``quantity`` is in ``units`` (tokens for 'llm', seconds of audio for 'sound'); ``usd`` is
    priced with the configured rates at the time of the call.
    """

    kind: Literal["llm", "sound"]
    backend: str
    model: str | None
    units: Literal["tokens", "seconds"]
    quantity: float
    usd: float
    input_tokens: int | None = None
    output_tokens: int | None = None
    characters: int | None = None


_CALLS: ContextVar[list[ExternalCall] | None] = ContextVar("rewind_external_calls", default=None)


@contextlib.contextmanager
def metered() -> Iterator[list[ExternalCall]]:
    """Collect the billed external calls made in this block (this task's context only).

    Concurrent memories each collect their own calls: the list lives in a ContextVar, and the
    adapters append to it from inside their own awaited call.
    """
    calls: list[ExternalCall] = []
    token = _CALLS.set(calls)
    try:
        yield calls
    finally:
        _CALLS.reset(token)


def _bill(call: ExternalCall) -> None:
    sink = _CALLS.get()
    if sink is not None:
        sink.append(call)


@functools.cache
def metered_claude() -> type[ClaudeSceneAnalyzer]:
    """ClaudeSceneAnalyzer that also bills each answered call to the current ``metered()`` block.

    Tokens are billed even when the answer is then refused (no scene in it): they were paid.
    (A factory so that anthropic is imported only when Claude is selected.)
    """
    from orchestrator.claude_scene import ClaudeSceneAnalyzer

    class MeteredClaudeSceneAnalyzer(ClaudeSceneAnalyzer):
        def _record(self, input_tokens: int, output_tokens: int) -> None:
            super()._record(input_tokens, output_tokens)
            usd = (
                input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok
            ) / 1e6
            _bill(
                ExternalCall(
                    kind="llm",
                    backend=self.name,
                    model=self.model,
                    units="tokens",
                    quantity=float(input_tokens + output_tokens),
                    usd=usd,
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                )
            )

    return MeteredClaudeSceneAnalyzer


@functools.cache
def metered_elevenlabs() -> Callable[..., ElevenLabsSoundscape]:
    """ElevenLabsSoundscape that bills each generated clip to the current ``metered()`` block.

    Takes ElevenLabsSoundscape's arguments plus ``usd_per_1k_chars`` (USD per 1,000 prompt
    characters, added to the per-second price). (A factory so that elevenlabs is imported only
    when selected.)
    """
    from orchestrator.elevenlabs_soundscape import ElevenLabsSoundscape, sound_prompt

    class MeteredElevenLabsSoundscape(ElevenLabsSoundscape):
        def __init__(
            self, api_key: str | None, *, usd_per_1k_chars: float = 0.0, **kwargs: Any
        ) -> None:
            super().__init__(api_key, **kwargs)
            self.usd_per_1k_chars = usd_per_1k_chars

        async def generate(self, scene: SceneInfo) -> Audio | None:
            audio = await super().generate(scene)
            if audio is not None:
                chars = len(sound_prompt(scene))
                _bill(
                    ExternalCall(
                        kind="sound",
                        backend=self.name,
                        model=None,
                        units="seconds",
                        quantity=audio.duration_s,
                        usd=audio.duration_s * self.usd_per_second
                        + chars / 1000 * self.usd_per_1k_chars,
                        characters=chars,
                    )
                )
            return audio

    return MeteredElevenLabsSoundscape


def _env_key(name: str) -> str | None:
    return os.environ.get(name) or None


def build_store(settings: Settings) -> BlobStore:
    """The ``[storage]`` backend. Raises ConfigError (Supabase without URL or key)."""
    if settings.storage.backend == "supabase":
        from orchestrator.supabase_storage import (
            SupabaseBlobStore,
            SupabaseConfigError,
            check_config,
        )

        try:
            url, key = check_config()
        except SupabaseConfigError as exc:
            raise ConfigError(str(exc)) from exc
        return SupabaseBlobStore(url, key, timeout_s=settings.storage.timeout_s)
    return LocalBlobStore(settings.blob_root)


def build_pool(settings: Settings) -> GpuPool:
    """The ``[gpu]`` backend (Modal: credentials are checked by ``check_backends`` first)."""
    gpu = settings.gpu
    if gpu.backend == "modal":
        from gpu.modal_pool import ModalGpuPool

        return ModalGpuPool(
            app_name=gpu.modal_app,
            cls_name=gpu.modal_cls,
            max_containers=gpu.max_containers,
            environment_name=gpu.modal_environment,
            poll_s=gpu.poll_s,
            max_wait_s=gpu.max_wait_s,
            submit_timeout_s=gpu.submit_timeout_s,
            submit_attempts=gpu.submit_attempts,
        )
    return LocalGpuPool(slots=gpu.max_containers, delay_s=gpu.delay_s, workers=gpu.workers)


def build_scene(settings: Settings) -> SceneAnalyzer:
    """The ``[scene]`` backend; Claude without ANTHROPIC_API_KEY is built "not configured"."""
    sc = settings.scene
    if sc.backend == "claude":
        from orchestrator.claude_scene import ENV_KEY

        key = _env_key(ENV_KEY)
        if key is None:
            log.warning(
                "integration_not_configured",
                part="scene",
                backend="claude",
                reason=f"{ENV_KEY} is not set: memories get scene = null",
            )
        return metered_claude()(
            key,
            model=sc.model,
            timeout_s=sc.timeout_s,
            max_retries=sc.max_retries,
            max_tokens=sc.max_tokens,
            input_usd_per_mtok=sc.price_per_mtok_input,
            output_usd_per_mtok=sc.price_per_mtok_output,
            base_url=sc.base_url,
        )
    return OfflineSceneAnalyzer()


def build_soundscape(settings: Settings) -> Soundscape:
    """The ``[soundscape]`` backend; ElevenLabs without a key is built "not configured"."""
    so = settings.soundscape
    if so.backend == "elevenlabs":
        from orchestrator.elevenlabs_soundscape import ENV_KEY

        key = _env_key(ENV_KEY)
        if key is None:
            log.warning(
                "integration_not_configured",
                part="soundscape",
                backend="elevenlabs",
                reason=f"{ENV_KEY} is not set: memories get audio = null",
            )
        return metered_elevenlabs()(
            key,
            duration_s=so.duration_s,
            prompt_influence=so.prompt_influence,
            loop=so.loop,
            timeout_s=so.timeout_s,
            base_url=so.base_url,
            usd_per_second=so.price_per_second,
            usd_per_1k_chars=so.price_per_1k_chars,
        )
    return NoSoundscape()


async def _close(part: object, name: str) -> None:
    """``await part.close()`` when it has one; a failure is logged, never raised."""
    close = getattr(part, "close", None)
    if close is None:
        return
    try:
        await close()
    except Exception as exc:
        log.warning("close_failed", part=name, error=f"{type(exc).__name__}: {exc}")


def profile_from(settings: Settings) -> GenerationProfile:
    """The generation profile the service generates every chunk with."""
    g = settings.generation
    return GenerationProfile(
        frames=g.frames,
        width=g.width,
        height=g.height,
        fps=g.fps,
        steps=g.steps,
        seed=g.seed,
        model=g.model,
    )


def scheduler_config(settings: Settings) -> SchedulerConfig:
    """The scheduler's budget and policy from ``[gpu]`` and ``[speculation]``."""
    sp, gpu = settings.speculation, settings.gpu
    return SchedulerConfig(
        budget=Budget(
            max_containers=gpu.max_containers,
            speculative_share=sp.speculative_share,
            rate_gpu_s_per_s=sp.rate_gpu_s_per_s,
            burst_gpu_s=sp.burst_gpu_s,
            max_depth=sp.max_depth,
            per_session_inflight=sp.per_session_inflight,
            min_probability=sp.min_probability,
            idle_timeout_s=sp.idle_timeout_s,
            min_benefit_per_gpu_s=sp.min_benefit_per_gpu_s,
            gone_after_gaps=sp.gone_after_gaps,
        ),
        arms=arms_from(settings),
        experiment=settings.experiments.name,
        think_s=sp.think_s,
        expected_gpu_s=gpu.expected_gpu_s,
        cold_start_s=gpu.cold_start_s,
        usd_per_gpu_s=gpu.price_per_gpu_s,
        seed=settings.generation.seed,
    )


def arms_from(settings: Settings) -> tuple[Arm, ...]:
    """``[experiments]`` arms, or one "default" arm running ``[speculation] policy``."""
    if settings.experiments.arms:
        return tuple(
            Arm(a.name, a.policy, a.weight, dict(a.params)) for a in settings.experiments.arms
        )
    sp = settings.speculation
    return (Arm(DEFAULT_ARM, sp.policy, 1.0, dict(sp.policy_params)),)


@dataclass
class Service:
    """Everything a request needs. Build with ``Service.start(settings)``; ``await close()``."""

    settings: Settings
    db: Database
    store: BlobStore
    pool: GpuPool | None  # None on an API replica: the elected scheduler runs the GPU pool
    scheduler: Scheduler | ReplicaScheduler
    scene: SceneAnalyzer
    soundscape: Soundscape
    events: EventBus
    metrics: Metrics
    profile: GenerationProfile
    root_pose: str
    config_source: Callable[[], Settings] = field(default=lambda: load_settings())
    leader: LeaderLock | None = None  # held by a scheduler elected among several processes
    intake: Intake | None = None  # API replicas' hits and demands, while this is the leader
    gate: Gate = field(init=False)
    warm: WarmController | None = None

    def __post_init__(self) -> None:
        # Built from [auth], which is never reloaded live (a change needs a restart).
        self.gate = Gate(self.settings.auth)

    @classmethod
    async def start(cls, settings: Settings, config_path: Path | None = None) -> Service:
        """Check the backends' credentials, open the database (embedded if no URL), storage,
        GPU pool, scene and soundscape backends; recover; start planning.

        Raises:
            ConfigError: the GPU pool or blob store selected has no credentials (nothing opened).
            pydantic.ValidationError / ValueError: the configuration is inconsistent.
            asyncpg / OSError errors: the database cannot be reached.
        """
        check_backends(settings)
        profile = profile_from(settings)
        root_pose = canonical_pose(settings.generation.root_pose, settings.generation.frames)
        role = settings.cluster.role
        if role != "all" and settings.database.url is None:
            raise ConfigError(
                f"cannot start: role {role!r} needs DATABASE_URL ([database] url) on a "
                "session-mode connection; the embedded database serves one process (role all)"
            )
        settings.server.data_dir.mkdir(parents=True, exist_ok=True)
        dbc = settings.database
        db = await open_database(
            dbc.url,
            settings.server.data_dir,
            pool_min=dbc.pool_min,
            pool_max=dbc.pool_max,
            connect_timeout_s=dbc.connect_timeout_s,
            supervision=Supervision(
                dbc.probe_interval_s, dbc.probe_timeout_s, dbc.retry_initial_s, dbc.retry_max_s
            ),
        )
        opened: list[tuple[object, str]] = []
        leader: LeaderLock | None = None
        pool: GpuPool | None = None
        events, metrics = EventBus(), Metrics()
        name = settings.cluster.name or f"{socket.gethostname()}:{os.getpid()}"
        try:
            store = build_store(settings)
            opened.append((store, "storage"))
            sched: Scheduler | ReplicaScheduler
            if role == "api":
                sched = ReplicaScheduler(db, scheduler_config(settings), settings.cluster,
                                         name=name, events=events, metrics=metrics)  # fmt: skip
                await sched.start()
                opened.append((sched, "replica"))
            else:
                leader = await elect(db.dsn, settings.cluster, settings.database.connect_timeout_s)
                opened.append((leader, "leader"))
                pool = build_pool(settings)
                opened.append((pool, "gpu"))
                _report_submissions(pool, db)
                sched = Scheduler(
                    db,
                    store,
                    pool,
                    profile,
                    scheduler_config(settings),
                    demand_retries=settings.gpu.demand_retries,
                    events=events,
                    metrics=metrics,
                )
                await sched.start()
                opened.append((sched, "scheduler"))
            scene = build_scene(settings)
            opened.append((scene, "scene"))
            soundscape = build_soundscape(settings)
            opened.append((soundscape, "soundscape"))
        except BaseException:
            for part, part_name in reversed(opened):
                await _close(part, part_name)
            await db.close()
            raise
        log.info(
            "service_started",
            role=role,
            leader=leader is not None,
            gpu=pool.name if pool is not None else None,
            slots=pool.slots if pool is not None else None,
            storage=store.name,
            scene=scene.name,
            soundscape=soundscape.name,
            policy=settings.speculation.policy,
            embedded_db=db.embedded is not None,
        )
        service = cls(
            settings=settings,
            db=db,
            store=store,
            pool=pool,
            scheduler=sched,
            scene=scene,
            soundscape=soundscape,
            events=events,
            metrics=metrics,
            profile=profile,
            root_pose=root_pose,
            config_source=lambda: load_settings(config_path),
            leader=leader,
        )
        service.gate.log_mode()
        if isinstance(sched, Scheduler):
            assert pool is not None  # a scheduler runs the GPU pool
            service.warm = _warm_control(settings, pool, sched)
            if service.warm is not None:
                sched.warm_idle = service.warm.idle_now
            sched.live.speculation_allowed = service.gate.usage.allow_speculation_for_session
            intake = Intake(sched, db, name=name, note_user=service.gate.usage.note_session,
                            poll_s=settings.cluster.poll_s,
                            keep_answered_s=settings.cluster.answered_keep_s)  # fmt: skip
            await intake.start()
            service.intake = intake
        return service

    @property
    def gpu_slots(self) -> int:
        """GPU slots of the pool (on an API replica: the configured pool size, run elsewhere)."""
        return self.pool.slots if self.pool is not None else self.settings.gpu.max_containers

    async def gpu_health(self) -> dict[str, object]:
        """The GPU pool's health; on an API replica, whether a scheduler is elected to run it."""
        if self.pool is not None:
            health: dict[str, object] = await self.pool.health()
            health["role"] = self.settings.cluster.role
            health["leader"] = self.leader is not None and self.leader.held
            return health
        present = isinstance(self.scheduler, ReplicaScheduler) and self.scheduler.leader
        return {
            "status": "ok" if present else "degraded",
            "role": "api",
            "scheduler": "elected" if present else "none holds the leader lock",
            "slots": self.gpu_slots,
        }

    async def reload(self) -> dict[str, object]:
        """Re-read the configuration and apply its live parts (see ``orchestrator.reload``).

        Raises:
            ConfigRefused: the file is unreadable or invalid, or names an unknown policy;
                the running configuration is unchanged.
        """
        try:
            new = await asyncio.to_thread(self.config_source)
            merged = merge_live(self.settings, new)
            self.scheduler.reconfigure(scheduler_config(merged.settings))
        except Exception as exc:
            raise refused_from(exc) from exc
        self.settings = merged.settings
        log.info(
            "config_reloaded",
            restart_required=merged.restart_required,
            arms=[a.name for a in self.scheduler.policies.arms],
        )
        return {
            "applied": True,
            "restart_required": merged.restart_required,
            "config": self.settings.model_dump(mode="json"),
        }

    async def close(self) -> None:
        """Stop planning (running jobs become resumable), then the pool, the integrations'
        connections, the blob store and the database."""
        if self.warm is not None:
            await _bounded(self.warm.close(), 5.0, "warm-pool")
        if self.intake is not None:
            await _bounded(self.intake.close(), 10.0, "intake")
        await _bounded(self.scheduler.close(), 20.0, "scheduler")
        if self.pool is not None:
            await _bounded(self.pool.close(), 20.0, "gpu")
        if self.leader is not None:
            await _bounded(self.leader.close(), 5.0, "leader")
        await _bounded(_close(self.scene, "scene"), 5.0, "scene")
        await _bounded(_close(self.soundscape, "soundscape"), 5.0, "soundscape")
        await _bounded(_close(self.store, "storage"), 5.0, "storage")
        await _bounded(self.db.close(), 20.0, "database")


async def _bounded(step: Coroutine[Any, Any, object], seconds: float, name: str) -> None:
    """Run one shutdown step for at most ``seconds``: a part that hangs (or ignores
    cancellation) is left behind with a warning, so a stop always finishes (issue 12)."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        log.warning("close_timed_out", part=name, timeout_s=seconds)
    elif not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.warning("close_failed", part=name, error=f"{type(exc).__name__}: {exc}")


def _warm_control(settings: Settings, pool: GpuPool, scheduler: Scheduler) -> WarmController | None:
    """The warm-pool loop for pools with containers (Modal), from ``[gpu]`` (issue 13 item 7)."""
    gpu = settings.gpu
    return warm_controller(
        pool, scheduler.live, scheduler.clock, enabled=gpu.warm_pool,
        idle_timeout_s=settings.speculation.idle_timeout_s, cold_start_s=gpu.cold_start_s,
        horizon_s=gpu.scaledown_window_s, interval_s=gpu.warm_interval_s,
    )  # fmt: skip


def _report_submissions(pool: GpuPool, db: Database) -> None:
    """Store each remote call's id (Modal FunctionCall id) in ``gpu_jobs.external_id``.

    Only pools with an ``on_submitted`` hook (ModalGpuPool) have remote calls. The id is kept for
    operators and for re-attaching after a restart (``ModalGpuPool.resume``).
    """
    if not hasattr(pool, "on_submitted"):
        return

    async def on_submitted(job_id: str, call_id: str) -> None:
        async with db.pool.acquire() as conn:
            await repo.set_job_external_id(conn, uuid.UUID(job_id), call_id)

    pool.on_submitted = on_submitted
