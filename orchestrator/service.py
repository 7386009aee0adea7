"""The service container: builds every part from Settings, starts and stops them in order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from gpu.local import LocalGpuPool
from gpu.protocol import GpuPool
from orchestrator.config import Settings, load_settings
from orchestrator.core.poses import canonical_pose
from orchestrator.core.profile import GenerationProfile
from orchestrator.core.types import Budget
from orchestrator.db import Database, open_database
from orchestrator.events import EventBus
from orchestrator.experiments import DEFAULT_ARM, Arm
from orchestrator.metrics import Metrics
from orchestrator.reload import merge_live, refused_from
from orchestrator.scene import OfflineSceneAnalyzer, SceneAnalyzer
from orchestrator.scheduler import Scheduler, SchedulerConfig
from orchestrator.soundscape import NoSoundscape, Soundscape
from orchestrator.storage import BlobStore, LocalBlobStore

log = structlog.get_logger(__name__)


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
    pool: GpuPool
    scheduler: Scheduler
    scene: SceneAnalyzer
    soundscape: Soundscape
    events: EventBus
    metrics: Metrics
    profile: GenerationProfile
    root_pose: str
    config_source: Callable[[], Settings] = field(default=lambda: load_settings())

    @classmethod
    async def start(cls, settings: Settings, config_path: Path | None = None) -> Service:
        """Open the database (embedded if no URL), storage, GPU pool; recover; start planning.

        Raises:
            pydantic.ValidationError / ValueError: the configuration is inconsistent.
            asyncpg / OSError errors: the database cannot be reached.
        """
        profile = profile_from(settings)
        root_pose = canonical_pose(settings.generation.root_pose, settings.generation.frames)
        settings.server.data_dir.mkdir(parents=True, exist_ok=True)
        db = await open_database(
            settings.database.url,
            settings.server.data_dir,
            pool_min=settings.database.pool_min,
            pool_max=settings.database.pool_max,
        )
        pool: GpuPool | None = None
        try:
            store = LocalBlobStore(settings.blob_root)
            pool = LocalGpuPool(
                slots=settings.gpu.max_containers,
                delay_s=settings.gpu.delay_s,
                workers=settings.gpu.workers,
            )
            events = EventBus()
            metrics = Metrics()
            scheduler = Scheduler(
                db,
                store,
                pool,
                profile,
                scheduler_config(settings),
                demand_retries=settings.gpu.demand_retries,
                events=events,
                metrics=metrics,
            )
            await scheduler.start()
        except BaseException:
            if pool is not None:
                await pool.close()
            await db.close()
            raise
        log.info(
            "service_started",
            gpu=pool.name,
            slots=pool.slots,
            policy=settings.speculation.policy,
            embedded_db=db.embedded is not None,
        )
        return cls(
            settings=settings,
            db=db,
            store=store,
            pool=pool,
            scheduler=scheduler,
            scene=OfflineSceneAnalyzer(),
            soundscape=NoSoundscape(),
            events=events,
            metrics=metrics,
            profile=profile,
            root_pose=root_pose,
            config_source=lambda: load_settings(config_path),
        )

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
        """Stop planning (running jobs become resumable), then the pool and the database."""
        with contextlib.suppress(Exception):
            await self.scheduler.close()
        await self.pool.close()
        await self.db.close()
