"""The simulated GPU pool: generation times, warm containers and cold starts (seconds).

The world must be the same for every policy, so that policies are compared on equal terms:

- a chunk's warm generation time G is a deterministic function of (seed, chunk id), and chunk ids
  are a deterministic function of (memory, path of poses from the root) (``chunk_id``): the same
  chunk takes the same time under every policy, whoever generates it and whenever;
- the cold start a job pays is drawn from (seed, chunk id, attempt number), so only *whether* a
  container is cold depends on what the policy did, not how long a cold start lasts.

Containers follow Modal's model (``@app.cls(min_containers=, max_containers=,
scaledown_window=)``): at most ``max_containers`` exist; ``warm_containers`` are kept up even when
idle; any other container stops after ``scaledown_window_s`` idle seconds. A job takes the most
recently idle warm container; if none is idle it waits for a container still booting (the
remaining boot time), else boots a new one (a cold start of ``cold_start_min_s`` to
``cold_start_max_s``). A job cancelled while its container boots leaves a container that becomes
idle when its boot ends. GPU-seconds are charged for the time a job holds its slot, startup
included (Modal bills from container start).

Idle time is billed too (Modal bills a container from start to stop, idle or not): ``idle_gpu_s``
sums every container's seconds up and not holding a job, from the run's start (``start_s``) for
the containers up then (``PoolModel.warm_at_start``), or from the release of its last job, to
the moment it is taken again or stops (``scaledown_window_s`` after it went idle). ``close(end)``
ends the account: containers of the kept minimum are billed to ``end``, the others to their stop.
``warm_idle(now)`` is what the live state may be told (``ModalGpuPool.warm_idle`` in the
service): containers up, booted and idle at ``now``, on which a job starts without a cold start.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right, insort_right
from dataclasses import dataclass
from operator import attrgetter

from orchestrator.sim.regime import Generation, PoolModel

__all__ = ["GpuPool", "chunk_id", "uniforms"]

_SCALE = float(2**64)


def uniforms(*parts: object) -> tuple[float, float]:
    """Two independent uniform draws in [0, 1) from a hash of ``parts`` (stable across runs)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).digest()
    return (
        int.from_bytes(digest[:8], "big") / _SCALE,
        int.from_bytes(digest[8:], "big") / _SCALE,
    )


def chunk_id(memory_id: str, parent_id: str | None, pose: str) -> str:
    """The simulator's chunk id for chunk key (memory, parent, canonical pose).

    ``"<memory>#<16 hex digits>"``: a hash of the parent id and the pose, so it names the whole
    path from the root, is unique across memories and does not depend on which policy, session or
    job created the chunk.
    """
    digest = hashlib.blake2b(f"{parent_id}|{pose}".encode(), digest_size=8).hexdigest()
    return f"{memory_id}#{digest}"


@dataclass(slots=True)
class _Boot:
    ready_at: float  # when the container can run a job (seconds)
    idle_since: float  # when it last went idle: its idle time is billed from then (seconds)


_READY = attrgetter("ready_at")


class GpuPool:
    """Containers of one simulated pool. ``acquire`` when a job starts, ``release`` when it ends.

    Args:
        model: slots, warm minimum, scale-down window, cold-start range (seconds).
        generation: the distribution of warm generation times G (GPU-seconds).
        seed: the world's seed (independent of the policy).
        start_s: when the run starts: the initially warm containers are up (and billed) from then.
    """

    def __init__(
        self, model: PoolModel, generation: Generation, seed: int, start_s: float = 0.0
    ) -> None:
        self.model = model
        self.generation = generation
        self.seed = seed
        self.busy = 0
        # Idle containers by ``ready_at``, ties in the order they went idle (what a stable sort
        # of the containers in release order gives): kept so by ``release`` instead of sorted
        # at every ``warm_idle`` / ``acquire`` (one of each per plan).
        self.idle: list[_Boot] = [_Boot(start_s, start_s) for _ in range(model.warm_at_start)]
        self.cold_starts = 0
        self.idle_gpu_s = 0.0  # billed seconds of containers up and not holding a job
        self._gen_prefix = f"{seed}|gen|"  # ``uniforms(seed, "gen", chunk)``'s text before chunk

    def generation_s(self, chunk: str) -> float:
        """Warm generation time G of ``chunk`` (seconds; the same in every run with this seed)."""
        # Recomputed, not cached: a pure function of (seed, chunk), asked about once per job
        # start, and a cache would grow with every chunk of the replay. The hashed text is
        # ``uniforms(seed, "gen", chunk)``'s, its constant prefix built once.
        digest = hashlib.blake2b((self._gen_prefix + chunk).encode(), digest_size=16).digest()
        return self.generation.sample(
            int.from_bytes(digest[:8], "big") / _SCALE, int.from_bytes(digest[8:], "big") / _SCALE
        )

    def cold_start_s(self, chunk: str, attempt: int) -> float:
        """Cold-start seconds the ``attempt``-th generation of ``chunk`` pays on a new container."""
        lo, hi = self.model.cold_start_min_s, self.model.cold_start_max_s
        return lo + uniforms(self.seed, "cold", chunk, attempt)[0] * (hi - lo)

    def _expire(self, now: float) -> None:
        """Stop idle containers past the scale-down window, keeping the warm minimum."""
        window, idle = self.model.scaledown_window_s, self.idle
        while (
            idle
            and self.busy + len(idle) > self.model.warm_containers
            and idle[0].ready_at + window < now
        ):
            gone = idle.pop(0)
            self.idle_gpu_s += gone.ready_at + window - gone.idle_since

    def warm_idle(self, now: float) -> int:
        """Containers up, booted and idle at ``now``: the next ``warm_idle(now)`` jobs start
        without a cold start (the value ``LiveState.prepare(now, warm_idle=...)`` takes; the
        service reads it from Modal, ``ModalGpuPool.warm_idle``)."""
        self._expire(now)
        return bisect_right(self.idle, now, key=_READY)

    def acquire(self, now: float, chunk: str, attempt: int) -> tuple[float, bool]:
        """Take a container for a job starting at ``now``.

        Returns:
            (startup delay in seconds before generation begins, True when a new container was
            booted, i.e. a cold start).

        Raises:
            RuntimeError: every slot is busy (the planner over-committed the pool).
        """
        if self.busy >= self.model.max_containers:
            raise RuntimeError(f"no free GPU slot at t={now:.3f} ({self.busy} busy)")
        self._expire(now)
        self.busy += 1
        idle = self.idle
        ready = bisect_right(idle, now, key=_READY)  # idle[:ready] are booted
        if ready:
            # The most recently ready one; of several equally recent, the first idle.
            taken = idle.pop(bisect_left(idle, idle[ready - 1].ready_at, 0, ready, key=_READY))
            self.idle_gpu_s += now - taken.idle_since
            return 0.0, False
        if idle:
            booting = idle.pop(0)  # the first ready of those still booting
            self.idle_gpu_s += now - booting.idle_since
            return booting.ready_at - now, False
        if self.busy + len(self.idle) > self.model.max_containers:
            raise RuntimeError("container accounting broke: more containers than slots")
        self.cold_starts += 1
        return self.cold_start_s(chunk, attempt), True

    def release(self, now: float, boot_ready_at: float) -> None:
        """A job ended or was cancelled at ``now``; its container idles from ``max(now, boot)``."""
        self.busy -= 1
        insort_right(self.idle, _Boot(max(now, boot_ready_at), now), key=_READY)

    def close(self, end_s: float) -> float:
        """End the idle account at ``end_s`` (the run's last served chunk or job end); returns
        ``idle_gpu_s``. The ``warm_containers`` most recently idle are billed to ``end_s``, every
        other idle container to its stop (``scaledown_window_s`` after it went idle), which may
        lie after ``end_s``: Modal bills that tail too. Call once, after the last ``release``."""
        self._expire(end_s)
        window = self.model.scaledown_window_s
        extra = max(0, self.busy + len(self.idle) - self.model.warm_containers)
        for i, b in enumerate(self.idle):
            stop = b.ready_at + window if i < extra else max(end_s, b.ready_at)
            self.idle_gpu_s += max(0.0, stop - b.idle_since)
        self.idle.clear()
        return self.idle_gpu_s
