"""The service container: builds every part from Settings, starts and stops them in order.

The backends (GPU pool, blob store, scene analysis, soundscape) are built by
``orchestrator.backends``; this module wires them with the database, the scheduler (or, on an
API replica, the replica's scheduler face) and the gate, by ``[cluster] role``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from gpu.protocol import GpuPool
from orchestrator import repo
from orchestrator.backends import (
    build_pool,
    build_scene,
    build_soundscape,
    build_store,
    check_backends,
    profile_from,
)
from orchestrator.config import ConfigError, Settings, load_settings
from orchestrator.core.poses import canonical_pose
from orchestrator.core.profile import GenerationProfile
from orchestrator.core.types import Budget
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
from orchestrator.scene import SceneAnalyzer
from orchestrator.scheduler import Scheduler, SchedulerConfig
from orchestrator.soundscape import Soundscape
from orchestrator.storage import BlobStore
from orchestrator.warm_control import WarmController, warm_controller

log = structlog.get_logger(__name__)

__all__ = ["Service", "scheduler_config"]


async def _close(part: object, name: str) -> None:
    """``await part.close()`` when it has one; a failure is logged, never raised."""
    close = getattr(part, "close", None)
    if close is None:
        return
    try:
        await close()
    except Exception as exc:
        log.warning("close_failed", part=name, error=f"{type(exc).__name__}: {exc}")


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
