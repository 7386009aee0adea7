"""Viewer models of the live state: each session's think time, and when a viewer is gone.

Pure and clock-free: the live state feeds it the gaps it observes (``now`` comes from the shell).

Think time. When a viewer asks for the next chunk, the time since they started watching the
previous one, minus its playback length, is one observation of how long they think
(``observe``). A session's estimate is its own mean shrunk toward the global mean (an empirical-
Bayes mean with a prior worth ``SESSION_PRIOR_N`` observations), and the global mean is itself
shrunk toward the configured ``Timing.think_s`` (worth ``GLOBAL_PRIOR_N``). So a new viewer
starts at what viewers in general do, and a slow or quick viewer is recognised after a few
steps. The core uses it for need times (``SessionView.think_s``, ``frontier.need_time``).

Gone. A viewer who has not asked for longer than ``Budget.gone_after_gaps`` of their usual gaps
(playback + estimated think time) is considered gone: ``SessionView.idle_after_s`` makes the
core treat the session as idle, so nothing more is speculated for it and what runs only for it
is cancelled. A session waiting for a chunk is never gone (the wait is the service's, not the
viewer's). Observations longer than ``idle_timeout_s`` are pauses, not thinking, and are
ignored, so one coffee break does not make a viewer look slow for the rest of the walk.
"""

from __future__ import annotations

from dataclasses import dataclass

SESSION_PRIOR_N = 2.0
"""Weight of the global mean in a session's estimate, in observations (a judgement: two steps of
a viewer's own make their habit count as much as everyone's)."""

GLOBAL_PRIOR_N = 4.0
"""Weight of the configured ``think_s`` in the global mean, in observations."""


@dataclass(slots=True)
class ThinkStats:
    """Observed think times: count and sum (seconds)."""

    n: int = 0
    total_s: float = 0.0

    def add(self, think_s: float) -> None:
        """One more observation (seconds, >= 0)."""
        self.n += 1
        self.total_s += think_s


def shrunk_mean(stats: ThinkStats, prior_s: float, prior_n: float) -> float:
    """``(total + prior_n * prior) / (n + prior_n)``: the mean, pulled toward ``prior_s``."""
    return (stats.total_s + prior_n * prior_s) / (stats.n + prior_n)


def think_observation(gap_s: float, chunk_duration_s: float, idle_timeout_s: float) -> float | None:
    """Think seconds one request reveals: ``gap - chunk duration`` clamped at 0; None when the
    gap is negative or longer than ``idle_timeout_s`` (a pause, not a decision)."""
    if not 0.0 <= gap_s <= idle_timeout_s:
        return None
    return max(0.0, gap_s - chunk_duration_s)


def think_estimate(own: ThinkStats, everyone: ThinkStats, configured_s: float) -> float:
    """A session's expected think time (seconds): its own mean shrunk toward the global mean,
    itself shrunk toward ``configured_s`` (module doc)."""
    prior = shrunk_mean(everyone, max(0.0, configured_s), GLOBAL_PRIOR_N)
    return shrunk_mean(own, prior, SESSION_PRIOR_N)


def gone_after_s(think_s: float, chunk_duration_s: float, gone_after_gaps: float) -> float | None:
    """Seconds of inactivity after which the viewer is gone: ``gaps x (duration + think)``;
    None when ``gone_after_gaps <= 0`` (disabled)."""
    if not gone_after_gaps > 0.0:
        return None
    return gone_after_gaps * (chunk_duration_s + max(0.0, think_s))
