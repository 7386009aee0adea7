"""Prometheus metrics (prometheus-client), one registry per service so tests stay independent.

Exposed at ``GET /metrics``:
- ``rewind_chunk_requests_total{outcome, policy, arm}``: chunk requests by outcome;
- ``rewind_chunk_wait_seconds{outcome, policy}``: histogram of request-to-ready waits (seconds),
  by the session's policy (``"unknown"`` where the caller does not name it);
- ``rewind_gpu_slots``, ``rewind_gpu_slots_busy{kind}``: pool size, slots held by demand /
  speculative jobs;
- ``rewind_queued_demands``: misses waiting for a slot;
- ``rewind_gpu_seconds_total{kind}``: GPU-seconds spent, by the job's initial kind;
- ``rewind_gpu_jobs_total{kind, status}``: finished attempts by initial kind and final status;
- ``rewind_speculative_cancelled_total{reason}``: cancelled speculative jobs by reason.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class _WaitHistogram(Histogram):
    """The wait histogram, labelled by outcome and policy; ``policy`` defaults to "unknown".

    The default keeps callers that name only the outcome working (``labels(outcome=...)``);
    callers that know the session's policy pass it: ``labels(outcome=o, policy=p)``.
    """

    def labels(self, *labelvalues: Any, **labelkwargs: Any) -> Any:
        """The child for these label values (``policy`` filled in when not given)."""
        if not labelvalues:
            labelkwargs["policy"] = labelkwargs.get("policy") or "unknown"
        return super().labels(*labelvalues, **labelkwargs)


# Waits run from ~0 (hit) to minutes (a cold A100 miss: seed, 2-5 min + 3-5 min cold start).
_WAIT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    """The service's metric families, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "rewind_chunk_requests",
            "Chunk requests by outcome",
            ["outcome", "policy", "arm"],
            registry=r,
        )
        self.wait = _WaitHistogram(
            "rewind_chunk_wait_seconds",
            "Request to ready, seconds, by outcome and the session's policy",
            ["outcome", "policy"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.slots = Gauge("rewind_gpu_slots", "GPU slots in the pool", registry=r)
        self.slots_busy = Gauge(
            "rewind_gpu_slots_busy", "GPU slots held, by job kind", ["kind"], registry=r
        )
        self.queued = Gauge("rewind_queued_demands", "Misses waiting for a GPU slot", registry=r)
        self.gpu_seconds = Counter(
            "rewind_gpu_seconds", "GPU-seconds spent, by initial job kind", ["kind"], registry=r
        )
        self.jobs = Counter(
            "rewind_gpu_jobs", "Finished job attempts", ["kind", "status"], registry=r
        )
        self.cancelled = Counter(
            "rewind_speculative_cancelled", "Cancelled speculative jobs", ["reason"], registry=r
        )

        # (outcome, policy, arm) -> the request counter's and wait histogram's children: a
        # ``labels()`` lookup validates and joins the label values on every call.
        self._served: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def served(self, outcome: str, policy: str, arm: str, wait_s: float) -> None:
        """Count one answered chunk request and observe its wait (seconds)."""
        key = (outcome, policy, arm)
        children = self._served.get(key)
        if children is None:
            children = self._served[key] = (
                self.requests.labels(outcome=outcome, policy=policy, arm=arm),
                self.wait.labels(outcome=outcome, policy=policy),
            )
        children[0].inc()
        children[1].observe(wait_s)

    def render(self, slots: int, busy: dict[str, int], queued: int) -> bytes:
        """The exposition text, after refreshing the gauges from the live state."""
        self.slots.set(slots)
        for kind, n in busy.items():
            self.slots_busy.labels(kind=kind).set(n)
        self.queued.set(queued)
        return generate_latest(self.registry)
