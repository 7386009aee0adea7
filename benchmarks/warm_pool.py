"""Warm containers from predicted demand vs fixed ``min_containers``: idle GPU time vs cold waits.

Usage::

    uv run python benchmarks/warm_pool.py [--seeds 20] [--out benchmarks/results/warm_pool.json]

A discrete-event model of one Modal class (the rules of ``@app.cls``: at most ``max_containers``;
at least ``min_containers`` kept up; an idle container above the minimum stops after
``scaledown_window``; every container-second is billed, booting and idle included). Chunk
requests arrive as a Poisson process whose rate changes by phase: busy, quiet (all sessions
ended), busy again, so both keeping warm and scaling down matter. A request takes an idle
container (no wait), else a booting one, else boots one (waits ``cold_start_s``), else queues.

Policies: fixed ``min_containers`` 0..max, and ``predicted``: every ``tick_s`` the warm count is
``orchestrator.core.warm.desired_warm`` of the phase's rate (a perfect rate prediction: the upper
bound of what the service's predicted demand can reach) on top of the busy containers.

Figures from the seed's A100 regime: G = 150 s per chunk, cold start 240 s (seed: 3-5 min),
scaledown window 300 s (the deployment default), 4 containers. Cost = billed GPU-seconds +
``wait_value`` x seconds viewers waited (1 GPU-second per second of wait by default).
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.core.warm import WarmDemand, desired_warm

PHASES = ((3600.0, 0.02), (3600.0, 0.0), (3600.0, 0.008))  # (seconds, requests per second)


@dataclass
class Box:
    """One container: booting until ``ready_at``, then busy or idle."""

    started: float
    ready_at: float
    busy_until: float | None = None
    idle_since: float | None = None
    stopped: float | None = None
    busy_s: float = 0.0
    reserved: bool = False  # a request is waiting for it to finish booting


@dataclass
class Run:
    g: float
    cold: float
    window: float
    cap: int
    policy: str
    wait_value: float = 1.0
    tick_s: float = 30.0
    boxes: list[Box] = field(default_factory=list)
    queue: list[float] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    cold_waits: int = 0

    def up(self) -> list[Box]:
        return [b for b in self.boxes if b.stopped is None]

    def boot(self, now: float) -> Box:
        box = Box(started=now, ready_at=now + self.cold)
        self.boxes.append(box)
        return box

    def serve(self, box: Box, arrived: float, start: float) -> None:
        box.busy_until, box.idle_since = start + self.g, None
        box.busy_s += self.g
        self.waits.append(start - arrived)

    def arrive(self, now: float) -> None:
        up = self.up()
        idle = [b for b in up if b.ready_at <= now and b.busy_until is None]
        booting = [b for b in up if b.ready_at > now and not b.reserved]
        if idle:
            self.serve(idle[0], now, now)
        elif booting:
            booting[0].reserved = True
            self.cold_waits += 1
            self.serve(booting[0], now, booting[0].ready_at)
        elif len(up) < self.cap:
            box = self.boot(now)
            box.reserved = True
            self.cold_waits += 1
            self.serve(box, now, box.ready_at)
        else:
            self.queue.append(now)

    def settle(self, now: float) -> None:
        """Finish generations due by ``now``; hand freed containers to the queue."""
        for box in self.up():
            if box.busy_until is not None and box.busy_until <= now:
                free_at = box.busy_until
                box.busy_until, box.idle_since, box.reserved = None, free_at, False
                if self.queue:
                    self.serve(box, self.queue.pop(0), free_at)

    def tick(self, now: float, rate: float) -> None:
        self.settle(now)
        up = self.up()
        busy = sum(1 for b in up if b.busy_until is not None)
        if self.policy == "predicted":
            d = WarmDemand(
                rate, self.g, self.cold, self.window, busy=busy, max_containers=self.cap,
                wait_value_gpu_s_per_s=self.wait_value,
            )  # fmt: skip
            minimum = busy + desired_warm(d)
        else:
            minimum = int(self.policy)
        for _ in range(max(0, min(self.cap, minimum) - len(up))):
            self.boot(now)
        idle = sorted(
            (b for b in self.up() if b.busy_until is None and b.idle_since is not None),
            key=lambda b: b.idle_since or 0.0,
        )
        for box in idle:
            if len(self.up()) <= minimum:
                break
            if now - (box.idle_since or now) >= self.window:
                box.stopped = now

    def report(self, end: float) -> dict[str, float]:
        billed = sum((b.stopped if b.stopped is not None else end) - b.started for b in self.boxes)
        busy = sum(b.busy_s for b in self.boxes)
        boot = sum(min(b.ready_at, end) - b.started for b in self.boxes)
        waits = sorted(self.waits) or [0.0]
        return {
            "requests": len(self.waits),
            "cold_waits": self.cold_waits,
            "mean_wait_s": statistics.fmean(waits),
            "p90_wait_s": waits[int(0.9 * (len(waits) - 1))],
            "gpu_s_billed": billed,
            "gpu_s_idle": max(0.0, billed - busy - boot),
            "total_wait_s": sum(waits),
        }


def simulate(
    policy: str, seed: int, g: float, cold: float, window: float, cap: int, wait_value: float
) -> dict[str, float]:
    """One seeded run of ``policy``; the report of ``Run.report``."""
    rng = random.Random(seed)
    run = Run(g, cold, window, cap, policy, wait_value)
    events: list[tuple[float, int, str, float]] = []
    t0, n = 0.0, 0
    for length, rate in PHASES:
        t = t0
        while rate > 0:
            t += rng.expovariate(rate)
            if t >= t0 + length:
                break
            heapq.heappush(events, (t, n, "arrive", rate))
            n += 1
        tick = t0
        while tick < t0 + length:
            heapq.heappush(events, (tick, n, "tick", rate))
            n += 1
            tick += run.tick_s
        t0 += length
    while events:
        now, _, kind, rate = heapq.heappop(events)
        run.settle(now)
        if kind == "arrive":
            run.arrive(now)
        else:
            run.tick(now, rate)
    run.settle(t0 + 10 * g)
    return run.report(t0)


def table(
    wait_value: float, seeds: int, g: float, cold: float, window: float, cap: int
) -> dict[str, dict[str, float]]:
    """Mean figures over ``seeds`` runs for every policy, at one ``wait_value``."""
    rows: dict[str, dict[str, float]] = {}
    for policy in [str(k) for k in range(cap + 1)] + ["predicted"]:
        runs = [simulate(policy, s, g, cold, window, cap, wait_value) for s in range(seeds)]
        row = {k: statistics.fmean(r[k] for r in runs) for k in runs[0]}
        row["cost_gpu_s"] = row["gpu_s_billed"] + wait_value * row["total_wait_s"]
        rows[policy] = row
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--wait-value", type=float, nargs="+", default=[1.0, 5.0],
                        help="GPU-s per second of a viewer wait (one table each)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/warm_pool.json"))
    args = parser.parse_args(argv)
    g, cold, window, cap = 150.0, 240.0, 300.0, 4
    tables = {str(w): table(w, args.seeds, g, cold, window, cap) for w in args.wait_value}
    report = {
        "regime": {"gpu_s": g, "cold_start_s": cold, "scaledown_window_s": window,
                   "max_containers": cap, "phases": PHASES, "seeds": args.seeds},
        "by_wait_value": tables,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for w, rows in tables.items():
        print(f"wait value {w} GPU-s per second waited")
        print(f"{'min_containers':>15} {'cold waits':>10} {'mean wait s':>11} "
              f"{'idle GPU-s':>10} {'billed GPU-s':>12} {'cost GPU-s':>10}")  # fmt: skip
        for policy, r in rows.items():
            print(f"{policy:>15} {r['cold_waits']:>10.1f} {r['mean_wait_s']:>11.1f} "
                  f"{r['gpu_s_idle']:>10.0f} {r['gpu_s_billed']:>12.0f} "
                  f"{r['cost_gpu_s']:>10.0f}")  # fmt: skip
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
