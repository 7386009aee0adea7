"""How many GPU containers to keep warm ahead of the viewers' predicted requests.

Modal bills a container per second from start to stop, idle or not; a request that finds no warm
container waits a cold start (seed: 180-300 s for HY-WorldPlay) and pays the load in GPU-seconds.
Keeping one more container warm over the next ``horizon_s`` seconds costs ``horizon_s`` idle
GPU-seconds when nothing arrives, and saves a cold start (``cold_start_s`` GPU-seconds of load plus
``cold_start_s`` seconds of a viewer's wait, valued at ``wait_value_gpu_s_per_s``) for each request
it serves that would otherwise have found every container busy.

With requests arriving as a Poisson process at ``rate_per_s`` (the sum of the sessions' predicted
request rates: P(next request) / expected time to it), each needing a container for ``gpu_s``
seconds, the number of containers busy at once is Poisson with mean ``load = rate * gpu_s``
(an M/G/inf approximation; the cap ``max_containers`` is applied after). The k-th warm container
is used when at least k are needed, with probability ``P(N >= k)``; it pays when that probability
times the value of a saved cold start exceeds the cost of it idling, i.e. when
``P(N >= k) * (cold_start_s * (1 + wait_value)) >= (1 - P(N >= k)) * horizon_s``. The result
counts warm containers *in addition to* the busy ones the core already sees running.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.core.types import SessionView, Timing


@dataclass(frozen=True, slots=True)
class WarmDemand:
    """The inputs of the warm-count decision.

    Attributes:
        rate_per_s: predicted chunk requests per second over the horizon (all sessions).
        gpu_s: expected warm GPU-seconds per chunk (G of the active profile).
        cold_start_s: expected seconds of a cold start (container load).
        horizon_s: how long a warm container is kept for this prediction (Modal
            ``scaledown_window``: an idle container stops after it).
        busy: containers running generations now (they are not idle, not counted here).
        max_containers: the deployment's ``max_containers`` (busy + warm never exceed it).
        wait_value_gpu_s_per_s: GPU-seconds one second of a viewer's wait is worth
            (0: only the GPU-seconds of the load count).
    """

    rate_per_s: float
    gpu_s: float
    cold_start_s: float
    horizon_s: float
    busy: int = 0
    max_containers: int = 1
    wait_value_gpu_s_per_s: float = 1.0


def _tail(load: float, k: int) -> float:
    """P(N >= k) for N ~ Poisson(load)."""
    if k <= 0:
        return 1.0
    term = math.exp(-load)
    below = term
    for i in range(1, k):
        term *= load / i
        below += term
    return max(0.0, 1.0 - below)


def desired_warm(d: WarmDemand) -> int:
    """Idle containers worth keeping warm (0 .. max_containers - busy).

    Returns 0 when there is no predicted demand or no cold start to avoid, so containers scale
    down when sessions end.
    """
    room = max(0, d.max_containers - d.busy)
    if room == 0 or d.rate_per_s <= 0.0 or d.cold_start_s <= 0.0 or d.gpu_s <= 0.0:
        return 0
    load = d.rate_per_s * d.gpu_s
    saved = d.cold_start_s * (1.0 + max(0.0, d.wait_value_gpu_s_per_s))
    warm = 0
    for k in range(d.busy + 1, d.max_containers + 1):
        used = _tail(load, k)
        if used * saved < (1.0 - used) * d.horizon_s:
            break
        warm += 1
    return min(warm, room)


def predicted_rate(next_request_in_s: list[tuple[float, float]]) -> float:
    """Requests per second from per-session predictions.

    Args:
        next_request_in_s: one ``(probability, seconds_until)`` per session: the chance the
            session asks for another chunk and when (e.g. the rest of the current chunk's
            playback plus think time). Non-positive times count as one second.
    """
    return sum(p / max(1.0, t) for p, t in next_request_in_s if p > 0.0)


def cold_start_of_next(idle_warm: int, starting_before: int, cold_start_s: float) -> float:
    """Expected cold-start seconds of the next job started now.

    ``idle_warm`` containers are up and idle (``ModalGpuPool.warm_idle``); ``starting_before``
    jobs are being started ahead of this one in the same plan. The first ``idle_warm`` starts
    land on warm containers (0 s); later ones wait a container boot (``cold_start_s``). The core
    adds this to a speculative job's cost, so speculation causes a cold start only when its
    benefit still clears the threshold with the boot included.
    """
    return 0.0 if starting_before < max(0, idle_warm) else max(0.0, cold_start_s)


def session_next_requests(
    views: Iterable[SessionView], timing: Timing, now: float, idle_timeout_s: float
) -> list[tuple[float, float]]:
    """``(probability, seconds_between)`` per session, the input of ``predicted_rate``.

    A viewer who stays asks for one chunk per cycle: the chunk plays (``chunk_duration_s``) and
    they decide (``think_s``), so over a warm horizon of minutes their rate is one request per
    cycle, whatever the phase of the current one. The chance they stay falls linearly from 1 when
    last active now to 0 at ``idle_timeout_s`` of silence (where the live state's idle rule ends
    the session), so the warm count follows the viewers still here and scales down as they leave.

    Args:
        views: the active sessions (``SessionView``; times in seconds on ``now``'s clock).
        timing: the regime's chunk duration and think time (seconds).
        now: current time (seconds).
        idle_timeout_s: seconds of silence after which a session is ended (> 0).
    """
    cycle = max(1.0, timing.chunk_duration_s + timing.think_s)
    out: list[tuple[float, float]] = []
    for v in views:
        p = max(0.0, 1.0 - max(0.0, now - v.last_active_at) / idle_timeout_s)
        if p > 0.0:
            out.append((p, cycle))
    return out
