"""The simulated pool's bill: idle warm time, scale-down tails, and ``warm_idle``."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.sim.pool import GpuPool, _Boot, uniforms
from orchestrator.sim.regime import Generation, PoolModel

G = Generation("fixed", mean_gpu_s=10.0, min_gpu_s=10.0, max_gpu_s=10.0)


def test_a_warm_minimum_is_billed_idle_until_the_end() -> None:
    pool = GpuPool(PoolModel(2, 2, 100.0, 30.0, 30.0), G, seed=0, start_s=5.0)
    assert pool.warm_idle(5.0) == 2
    assert pool.acquire(10.0, "c", 1) == (0.0, False)  # warm: no cold start
    assert pool.warm_idle(10.0) == 1
    pool.release(20.0, 10.0)
    # container A idle 5..10 and 20..50, container B 5..50
    assert pool.close(50.0) == 5.0 + 30.0 + 45.0


def test_a_booted_container_is_billed_until_it_scales_down() -> None:
    pool = GpuPool(PoolModel(2, 0, 100.0, 30.0, 30.0), G, seed=0, start_s=0.0)
    assert pool.warm_idle(0.0) == 0
    assert pool.acquire(0.0, "c", 1) == (30.0, True)  # cold start: 30 s load in the job
    pool.release(40.0, 30.0)
    assert pool.warm_idle(50.0) == 1
    assert pool.warm_idle(141.0) == 0  # stopped at 40 + 100
    assert pool.idle_gpu_s == 100.0
    assert pool.close(200.0) == 100.0


def test_initial_warm_containers_scale_down_to_the_minimum() -> None:
    pool = GpuPool(PoolModel(4, 1, 60.0, 30.0, 30.0, initial_warm=3), G, seed=0, start_s=0.0)
    assert pool.warm_idle(0.0) == 3
    assert pool.warm_idle(61.0) == 1  # two stopped at 60, the minimum stays
    assert pool.close(100.0) == 60.0 + 60.0 + 100.0


class _SortedEachTime(GpuPool):
    """The pool as it was: idle containers appended, sorted (stably) at every look."""

    def _expire(self, now: float) -> None:
        window = self.model.scaledown_window_s
        self.idle.sort(key=lambda b: b.ready_at)
        while (
            self.idle
            and self.busy + len(self.idle) > self.model.warm_containers
            and self.idle[0].ready_at + window < now
        ):
            gone = self.idle.pop(0)
            self.idle_gpu_s += gone.ready_at + window - gone.idle_since

    def warm_idle(self, now: float) -> int:
        self._expire(now)
        return sum(1 for b in self.idle if b.ready_at <= now)

    def acquire(self, now: float, chunk: str, attempt: int) -> tuple[float, bool]:
        self._expire(now)
        self.busy += 1
        ready = [b for b in self.idle if b.ready_at <= now]
        if ready:
            taken = max(ready, key=lambda b: b.ready_at)
            self.idle.remove(taken)
            self.idle_gpu_s += now - taken.idle_since
            return 0.0, False
        if self.idle:
            booting = min(self.idle, key=lambda b: b.ready_at)
            self.idle.remove(booting)
            self.idle_gpu_s += now - booting.idle_since
            return booting.ready_at - now, False
        self.cold_starts += 1
        return self.cold_start_s(chunk, attempt), True

    def release(self, now: float, boot_ready_at: float) -> None:
        self.busy -= 1
        self.idle.append(_Boot(max(now, boot_ready_at), now))

    def generation_s(self, chunk: str) -> float:
        return self.generation.sample(*uniforms(self.seed, "gen", chunk))


@settings(max_examples=300, deadline=None)
@given(
    warm=st.integers(0, 3), initial=st.integers(0, 4), window=st.sampled_from([0.0, 5.0, 50.0]),
    cold=st.sampled_from([0.0, 2.0]),
    steps=st.lists(st.tuples(st.sampled_from(["start", "end", "look"]), st.integers(0, 3),
                             st.sampled_from([0.0, 0.5, 1.0, 10.0])), max_size=60),
)  # fmt: skip
def test_the_kept_order_answers_as_sorting_at_every_look(
    warm: int, initial: int, window: float, cold: float, steps: list[tuple[str, int, float]]
) -> None:
    """The idle list kept sorted by ``release`` gives what sorting it at every look gave: the
    same containers taken, startups, cold starts, warm counts and bill."""
    # Equal cold starts: containers booting for jobs stopped at different times tie on
    # ready_at with different idle_since, so which of the tied is taken shows.
    model = PoolModel(4, warm, window, 5.0, 5.0 + cold, initial_warm=initial)
    gen = Generation("lognormal", mean_gpu_s=9.0, cv=0.3, min_gpu_s=5.0, max_gpu_s=20.0)
    new, old = GpuPool(model, gen, seed=3), _SortedEachTime(model, gen, seed=3)
    now, jobs = 0.0, []
    for op, i, dt in steps:
        now += dt
        assert new.warm_idle(now) == old.warm_idle(now)
        if op == "start" and new.busy < model.max_containers:
            got = new.acquire(now, f"c{i}", 1)
            assert got == old.acquire(now, f"c{i}", 1)
            jobs.append(now + got[0])
        elif op == "end" and jobs:
            boot = jobs.pop(i % len(jobs))
            new.release(now, boot)
            old.release(now, boot)
        assert new.generation_s(f"c{i}") == old.generation_s(f"c{i}")
        assert new.idle_gpu_s == old.idle_gpu_s and new.cold_starts == old.cold_starts
    for _ in jobs:
        new.release(now, now)
        old.release(now, now)
    assert new.close(now + 1.0) == old.close(now + 1.0)


def test_of_containers_ready_at_once_the_first_idle_is_taken() -> None:
    """Two containers booting for jobs stopped at 1 s and 2 s are both ready at 5 s: the next
    job takes the one idle since 1 s (what sorting at every look took), billing 5 s idle."""
    model = PoolModel(4, 0, 50.0, 5.0, 5.0, initial_warm=0)
    for pool in (GpuPool(model, G, seed=3), _SortedEachTime(model, G, seed=3)):
        assert pool.acquire(0.0, "c", 1) == pool.acquire(0.0, "d", 1) == (5.0, True)
        pool.release(1.0, 5.0)
        pool.release(2.0, 5.0)
        assert pool.acquire(6.0, "e", 1) == (0.0, False)
        assert pool.idle_gpu_s == 5.0  # 6 - 1 (taken) + 0; the other is still idle
