"""Calibration of next-action predictions: reliability table, expected calibration error, log-loss.

Pure: a list of (predicted distribution, realised action) pairs in, plain numbers out, so the
simulator (or an analyst) can report how honest a policy's probabilities are. The core values a
guess at its probability P (``core.frontier.value``), so an overconfident policy wastes GPU time
and an underconfident one leaves wait on the table.

Definitions (the usual ones, e.g. Guo et al. 2017, "On Calibration of Modern Neural Networks"):

- Every (action, predicted p) of every prediction is one forecast of a binary event "the viewer
  takes this action"; ``outcome`` is 1 for the realised action, 0 for the others. Forecasts are
  grouped into ``bins`` equal-width bins of p ([0, 0.1), [0.1, 0.2), ... with 10 bins; p = 1
  falls in the last).
- Reliability table: per bin, the number of forecasts, their mean predicted p and the realised
  frequency (mean outcome).
- ECE = sum over bins of (count / total) x |mean predicted - realised|: 0 for a calibrated
  forecaster. ``top_ece`` is the same over each prediction's top action only (the confidence
  ECE of the literature). Forecasts with p = 0 that never happen say nothing: ``min_p``
  (default 1e-9) drops them so the thousands of near-zero tail forecasts do not dilute the ECE.
- Log-loss = mean over predictions of -ln p(realised action), with p floored at ``eps``
  (default 1e-6) so a zero forecast that happens costs ~13.8 nats rather than infinity.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Calibration", "ReliabilityBin", "calibration", "reliability_table"]


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    """One bin of the reliability table: [low, high) of p, forecasts, mean p, realised rate."""

    low: float
    high: float
    count: int
    mean_predicted: float
    realised: float


@dataclass(frozen=True, slots=True)
class Calibration:
    """``calibration``'s result.

    Attributes:
        predictions: pairs evaluated.
        forecasts: (action, p) forecasts counted in ``table`` and ``ece``.
        table: the reliability table, one entry per non-empty bin, by p.
        ece: expected calibration error over every forecast (in [0, 1]).
        top_ece: ECE over each prediction's most probable action.
        top_table: the reliability table of those top-action forecasts.
        log_loss: mean -ln p(realised), nats.
        top_accuracy: share of predictions whose most probable action was realised.
    """

    predictions: int
    forecasts: int
    table: tuple[ReliabilityBin, ...]
    ece: float
    top_ece: float
    top_table: tuple[ReliabilityBin, ...]
    log_loss: float
    top_accuracy: float


def reliability_table(
    points: Iterable[tuple[float, int]], bins: int
) -> tuple[tuple[ReliabilityBin, ...], float]:
    """(non-empty equal-width bins of p, ECE) of ``(p, 1 if it happened else 0)`` forecasts.

    ECE is the sum over bins of ``n_b / N x |mean p_b - realised rate_b|`` (0 when empty).
    """
    points = list(points)
    sums = [[0, 0.0, 0] for _ in range(bins)]  # count, sum p, sum outcome
    for p, hit in points:
        b = min(bins - 1, int(p * bins))
        sums[b][0] += 1
        sums[b][1] += p
        sums[b][2] += hit
    total = len(points)
    table, ece = [], 0.0
    for i, (n, sp, so) in enumerate(sums):
        if n == 0:
            continue
        # The exact mean of a bin's forecasts lies in the bin; summing floats can leave it by
        # an ulp (three forecasts of 0.7 average 0.6999999999999998, below [0.7, 0.8)).
        low, high = i / bins, (i + 1) / bins
        mean_p, rate = min(high, max(low, sp / n)), so / n
        table.append(ReliabilityBin(low, high, int(n), mean_p, rate))
        ece += (n / total) * abs(mean_p - rate)
    return tuple(table), ece


def calibration(
    pairs: Iterable[tuple[Mapping[str, float], str]],
    *,
    bins: int = 10,
    min_p: float = 1e-9,
    eps: float = 1e-6,
) -> Calibration:
    """Reliability table, ECE, top-action ECE, log-loss and top-1 accuracy of ``pairs``.

    Args:
        pairs: (predicted distribution action -> p, realised action). A distribution may omit
            actions (p 0) and need not sum to 1 (a policy proposing only its top few).
        bins: equal-width bins of p (>= 1).
        min_p: forecasts below this p are left out of the table and the ECE.
        eps: floor of p in the log-loss.

    Raises:
        ValueError: ``bins`` < 1.

    Example: ``calibration([({"w": 0.8, "a": 0.2}, "w"), ({"w": 0.8, "a": 0.2}, "a")])`` has
    log-loss ``-(ln 0.8 + ln 0.2) / 2 = 0.916``; its 0.8 forecasts were right half the time.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1 (got {bins})")
    points: list[tuple[float, int]] = []
    tops: list[tuple[float, int]] = []
    loss, right, n = 0.0, 0, 0
    for dist, actual in pairs:
        n += 1
        clean = {a: min(1.0, max(0.0, p)) for a, p in dist.items() if math.isfinite(p)}
        points.extend((p, int(a == actual)) for a, p in clean.items() if p >= min_p)
        loss -= math.log(max(eps, clean.get(actual, 0.0)))
        if clean:
            top = min(clean, key=lambda a: (-clean[a], a))
            tops.append((clean[top], int(top == actual)))
            right += top == actual
    table, ece = reliability_table(points, bins)
    top_table, top_ece = reliability_table(tops, bins)
    return Calibration(
        predictions=n,
        forecasts=len(points),
        table=table,
        ece=ece,
        top_ece=top_ece,
        top_table=top_table,
        log_loss=loss / n if n else 0.0,
        top_accuracy=right / n if n else 0.0,
    )
