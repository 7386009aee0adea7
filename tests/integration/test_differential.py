"""The service's scheduler shell and the simulator agree: same outcome per request, same jobs.

Both drive the same live state, core and policy; this test checks that the shells carry out
what it decides alike. The service side is the real ``Scheduler`` on a real PostgreSQL with the
real local renderer, on a virtual clock: ``HeldPool`` renders each chunk for real and then holds
it until the virtual time reaches its start + G, and the harness below replays the trace as the
simulator does (a request ``chunk_duration + think`` after the previous one was answered, a plan
after every batch of simultaneous events).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

from gpu.local import LocalGpuPool
from gpu.protocol import GenerationRequest, GenerationResult
from orchestrator import repo
from orchestrator.core.poses import ACTION_NAMES, action_to_pose
from orchestrator.core.profile import GenerationProfile
from orchestrator.core.types import Budget, Timing
from orchestrator.db import open_database
from orchestrator.experiments import Arm
from orchestrator.media import decode_photo
from orchestrator.scheduler import Scheduler, SchedulerConfig
from orchestrator.sim.engine import Simulation
from orchestrator.sim.pool import chunk_id
from orchestrator.sim.regime import Generation, PoolModel, Regime
from orchestrator.sim.run import build_policy
from orchestrator.sim.trace import SessionTrace, Step, Trace
from orchestrator.storage import LocalBlobStore, original_key
from tests.conftest import photo_jpeg

pytestmark = pytest.mark.integration

G = 4.0  # virtual GPU-seconds per chunk: about one viewing step, so speculation can finish
FRAMES, FPS = 33, 24
PROFILE = GenerationProfile(frames=FRAMES, width=96, height=64, fps=FPS, steps=1, seed=0,
                            model="local")  # fmt: skip
BUDGET = Budget(max_containers=2, speculative_share=1.0, rate_gpu_s_per_s=1e6, burst_gpu_s=1e9,
                max_depth=1, per_session_inflight=2, min_probability=0.05,
                idle_timeout_s=1e6)  # fmt: skip
TIMING = Timing(gpu_s_per_chunk=G, chunk_duration_s=FRAMES / FPS, think_s=3.0)
REGIME = Regime(
    name="differential", frames=FRAMES, fps=FPS,
    generation=Generation("fixed", mean_gpu_s=G, min_gpu_s=G, max_gpu_s=G),
    pool=PoolModel(2, 2, 1e9, 0.0, 0.0), budget=BUDGET, timing=TIMING,
)  # fmt: skip
TRACE = Trace((
    SessionTrace("s1", "m1", 0.0, tuple(Step(a, 3.0) for a in ["w", "w", "d", "w", "a", "w"])),
    SessionTrace("s2", "m1", 4.0, tuple(Step(a, 1.0) for a in ["w", "w", "d", "d", "w"])),
    SessionTrace("s3", "m2", 2.0, tuple(Step(a, 8.0) for a in ["a", "w", "w"])),
))  # fmt: skip


class Clock:
    """The virtual clock both shells read (seconds)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class HeldPool(LocalGpuPool):
    """The real local renderer, whose every generation ends at virtual start + G."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(slots=2, delay_s=0.0, workers=1)
        self.clock = clock
        self.held: dict[str, tuple[float, asyncio.Event]] = {}  # attempt id -> (end, release)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        end, release = self.clock() + G, asyncio.Event()
        result = await super().generate(request)
        self.held[request.job_id] = (end, release)
        try:
            await release.wait()
        finally:
            self.held.pop(request.job_id, None)  # already gone when the harness released it
        return GenerationResult(result.video_mp4, result.last_frame_png, G, result.frames,
                                result.width, result.height)  # fmt: skip


class Harness:
    """Replays TRACE through a real Scheduler on the virtual clock."""

    def __init__(self, sched: Scheduler, pool: HeldPool, clock: Clock, memories: dict[str, Any]):
        self.sched, self.pool, self.clock, self.memories = sched, pool, clock, memories
        self.due: list[tuple[float, str, int]] = []  # (time, session, step)
        self.tasks: list[asyncio.Task[None]] = []
        self.outcomes: dict[tuple[str, int], tuple[str, float]] = {}  # -> (outcome, served at)
        self.paths: dict[str, tuple[str, ...]] = {}  # chunk id -> poses from the root
        self.cursor: dict[str, str] = {}
        self.waited_done = 0  # requests answered after waiting (each was accepted once)

    async def settle(self) -> None:
        """Wait until every request is answered or durably waiting and every job is held by
        the pool or finished (real I/O happens here; virtual time stands still)."""
        for _ in range(3000):
            jobs = list(self.sched.jobs._tasks.items())
            held = {str(j.job_id) for j in self.sched.jobs._active.values()} & set(self.pool.held)
            jobs_quiet = all(t.done() or str(self.sched.jobs._active[c].job_id) in held
                             for c, t in jobs)  # fmt: skip
            in_flight = sum(1 for t in self.tasks if not t.done())
            if jobs_quiet and self.sched.accepted - self.waited_done >= in_flight:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the shell did not settle")

    async def request(self, sid: str, step: int, trace: SessionTrace) -> None:
        memory_id, session_id = self.memories[trace.memory], self.memories[sid]
        if step < 0:
            parent, pose, action = None, REGIME.root_pose, None
        else:
            action = trace.steps[step].action
            parent = uuid.UUID(self.cursor[sid])
            pose = str(action_to_pose(action, FRAMES))
        served = await self.sched.request_chunk(
            memory_id=memory_id, parent_id=parent, pose=pose, action=action,
            session_id=session_id, record_history=step >= 0,
        )  # fmt: skip
        cid = str(served.chunk_id)
        self.paths[cid] = (*self.paths.get(str(parent), ()), pose) if parent else (pose,)
        self.cursor[sid] = cid
        self.outcomes[(sid, step)] = (served.outcome, self.clock())
        nxt = step + 1
        if nxt < len(trace.steps):
            self.due.append((self.clock() + TIMING.chunk_duration_s + trace.steps[nxt].think_s,
                             sid, nxt))  # fmt: skip
        self.waited_done += served.outcome != "hit"

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.create_task(coro))


async def _memory(db: Any, store: LocalBlobStore, sched: Scheduler, photo: bytes) -> uuid.UUID:
    import base64

    png = decode_photo(base64.b64encode(photo).decode(), max_bytes=10**8, max_pixels=10**8).png
    memory_id, root = uuid.uuid4(), uuid.uuid4()
    await store.put("originals", original_key(str(memory_id)), png, "image/png")
    async with db.pool.acquire() as conn, conn.transaction():
        await repo.insert_memory(conn, memory_id, None, original_key(str(memory_id)), 96, 64)
        await repo.claim_chunk(conn, chunk_id=root, memory_id=memory_id, parent_id=None,
                               chunk_index=0, pose=REGIME.root_pose, action="w",
                               profile_key=PROFILE.key(), profile=PROFILE.to_json())  # fmt: skip
    return memory_id


async def _service_run(database_url: str, data_dir: Path, photo: bytes) -> dict[str, Any]:
    clock = Clock()
    db = await open_database(database_url, data_dir)
    store = LocalBlobStore(data_dir / "blobs")
    pool = HeldPool(clock)
    config = SchedulerConfig(budget=BUDGET, arms=(Arm("markov", "markov", 1.0, {}),),
                             experiment="diff", think_s=TIMING.think_s, expected_gpu_s=G,
                             cold_start_s=0.0)  # fmt: skip
    sched = Scheduler(db, store, pool, PROFILE, config, clock=clock)
    await sched.start(planner=False)
    memories: dict[str, Any] = {}
    try:
        for m in ("m1", "m2"):
            memories[m] = await _memory(db, store, sched, photo)
        h = Harness(sched, pool, clock, memories)
        traces = {t.session_id: t for t in TRACE.sessions}
        arrivals = sorted((t.start_s, t.session_id) for t in TRACE.sessions)
        while arrivals or h.due or pool.held:
            ends = [end for end, _ in pool.held.values()]
            clock.now = min([a for a, _ in arrivals[:1]] + [t for t, _, _ in h.due] + ends)
            for attempt, (end, release) in list(pool.held.items()):
                if end <= clock.now:
                    del pool.held[attempt]  # not held any more: settle() waits for its end
                    release.set()
            await h.settle()
            while arrivals and arrivals[0][0] <= clock.now:
                _, sid = arrivals.pop(0)
                sess = uuid.uuid4()
                memories[sid] = sess
                memory_id = memories[traces[sid].memory]
                tree = sched.live.tree(str(memory_id))
                roots = [n.chunk_id for n in tree or () if n.parent_id is None]
                root = roots[0] if roots else None
                if root is None:
                    async with db.pool.acquire() as conn:
                        rows = await repo.chunks_of_memory(conn, memory_id)
                    root = str(rows[0]["id"])
                async with db.pool.acquire() as conn:
                    await repo.insert_session(conn, sess, memory_id, uuid.UUID(root), "markov",
                                              "markov")  # fmt: skip
                await sched.open_session(sess, memory_id, uuid.UUID(root), "markov")
                h.spawn(h.request(sid, -1, traces[sid]))
            for due in sorted((d for d in h.due if d[0] <= clock.now), key=lambda d: d[0]):
                h.due.remove(due)
                h.spawn(h.request(due[1], due[2], traces[due[1]]))
            await h.settle()
            await sched.plan_once()
            await h.settle()
        await asyncio.gather(*h.tasks)
        await sched.writer.flush()
        async with db.pool.acquire() as conn:
            jobs = await conn.fetch(
                "SELECT j.initial_kind, j.status, c.id, c.parent_chunk_id, c.pose, c.memory_id"
                " FROM gpu_jobs j JOIN chunks c ON c.id = j.chunk_id"
            )
            chunks = await conn.fetch("SELECT id, parent_chunk_id, pose FROM chunks")
        names = {v: k for k, v in memories.items()}
        parent = {r["id"]: (r["parent_chunk_id"], r["pose"]) for r in chunks}

        def path(cid: uuid.UUID | None) -> tuple[str, ...]:
            return () if cid is None else (*path(parent[cid][0]), parent[cid][1])

        return {"outcomes": h.outcomes, "jobs": sorted(
            (names[r["memory_id"]], path(r["id"]), r["initial_kind"], r["status"] == "cancelled")
            for r in jobs)}  # fmt: skip
    finally:
        await sched.close()
        await pool.close()
        await db.close()


async def test_service_shell_and_simulator_agree(database_url: str, data_dir: Path) -> None:
    sim = Simulation(TRACE, REGIME, build_policy("markov", REGIME, TRACE), seed=0).run()
    service = await _service_run(database_url, data_dir, photo_jpeg())
    sim_outcomes = {(r.session_id, r.step): (r.outcome, r.served_at) for r in sim.requests}
    assert {k: v[0] for k, v in service["outcomes"].items()} == {
        k: v[0] for k, v in sim_outcomes.items()
    }
    assert {k: v[1] for k, v in service["outcomes"].items()} == pytest.approx(
        {k: v[1] for k, v in sim_outcomes.items()}
    )
    # The same jobs: chunk path, kind and whether cancelled (ids differ: UUIDs, hashes).
    assert service["jobs"] == _sim_jobs(sim)
    outcomes = [o for o, _ in service["outcomes"].values()]
    assert "hit" in outcomes and "miss" in outcomes


def _sim_jobs(sim: Any) -> list[tuple[str, tuple[str, ...], str, bool]]:
    """The simulator's jobs named by chunk path: its ids hash (parent, pose), so walk them."""
    poses = {str(action_to_pose(a, FRAMES)) for a in ACTION_NAMES}
    made = {j.chunk_id for j in sim.jobs}  # a parent was generated before its children
    names: dict[str, tuple[str, tuple[str, ...]]] = {}
    frontier: list[tuple[str, str | None, tuple[str, ...]]] = [(m, None, ()) for m in ("m1", "m2")]
    while frontier:
        memory, parent, path = frontier.pop()
        for pose in poses if parent is not None else {REGIME.root_pose}:
            cid = chunk_id(memory, parent, pose)
            if cid in made and cid not in names:
                names[cid] = (memory, (*path, pose))
                frontier.append((memory, cid, (*path, pose)))
    return sorted((*names[j.chunk_id], j.initial_kind, j.cancel_reason is not None)
                  for j in sim.jobs)  # fmt: skip
