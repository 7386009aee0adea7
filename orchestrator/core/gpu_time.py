"""G, the GPU time per chunk the core values candidates with, learned per generation profile.

A finished generation reports ``gpu_seconds`` (for a cold start: generation + container load)
and the load seconds separately (``GenerationResult.timings["load"]``). Warm time and cold-start
time are learned apart, because the core adds the cold start only when no warm container is free
(``Timing.cold_start_s``). Each profile (``GenerationProfile.key()``) has its own estimate: the
distilled 4-step model and the 50-step model differ by an order of magnitude, so switching the
active profile must not inherit the other model's G.

The estimate is an exponentially weighted mean (weight ``ALPHA`` for the newest sample); until a
profile has a sample the caller's prior (configured ``expected_gpu_s`` / ``cold_start_s``) holds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

ALPHA = 0.3
"""Weight of the newest sample: about the last 3 chunks dominate, so a warm-up outlier fades."""


@dataclass(frozen=True, slots=True)
class GpuTimeEstimate:
    """Learned times of one generation profile (seconds; None until a sample arrives).

    Attributes:
        profile_key: ``GenerationProfile.key()`` the samples belong to.
        warm_s: expected warm generation time G (GPU-seconds).
        cold_extra_s: expected extra seconds of a cold start (container load).
        samples: warm-time samples seen; cold_samples: cold-start samples seen.
    """

    profile_key: str
    warm_s: float | None = None
    cold_extra_s: float | None = None
    samples: int = 0
    cold_samples: int = 0


def _mean(prev: float | None, sample: float) -> float:
    return sample if prev is None else (1.0 - ALPHA) * prev + ALPHA * sample


def observe(
    est: GpuTimeEstimate, gpu_seconds: float, *, cold_start: bool = False, load_s: float = 0.0
) -> GpuTimeEstimate:
    """The estimate after one finished generation.

    Args:
        gpu_seconds: ``GenerationResult.gpu_seconds`` (load included when ``cold_start``).
        cold_start: ``GenerationResult.cold_start``.
        load_s: ``GenerationResult.timings.get("load", 0.0)`` (seconds of the container load).

    Negative or non-finite samples are ignored (a clock glitch must not poison G).
    """
    if not (gpu_seconds >= 0.0 and gpu_seconds < float("inf")):
        return est
    warm = max(0.0, gpu_seconds - load_s) if cold_start else gpu_seconds
    out = replace(est, warm_s=_mean(est.warm_s, warm), samples=est.samples + 1)
    if cold_start and load_s > 0.0:
        out = replace(
            out, cold_extra_s=_mean(est.cold_extra_s, load_s), cold_samples=est.cold_samples + 1
        )
    return out


def expected_times(
    est: GpuTimeEstimate | None, *, prior_gpu_s: float, prior_cold_s: float
) -> tuple[float, float]:
    """(G, cold start) in seconds for ``Timing``: learned values, else the priors."""
    if est is None:
        return prior_gpu_s, prior_cold_s
    warm = est.warm_s if est.warm_s is not None else prior_gpu_s
    cold = est.cold_extra_s if est.cold_extra_s is not None else prior_cold_s
    return warm, cold
