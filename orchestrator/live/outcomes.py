"""Job outcomes of the live state: a finished or failed job's chunk, its waiting requests and
the GPU time it teaches (``LiveState`` inherits it; see ``state``).

Split from ``state`` to keep each module about one thing: this module takes a job's result back
(``job_ended``: the chunk's state, its producer, the requests it answers) and keeps the learned
G per generation profile (``core.gpu_time``) that values the next plans; ``requests`` resolves
requests, ``planning`` starts and cancels jobs.
"""

from __future__ import annotations

from dataclasses import replace

from orchestrator.core.gpu_time import GpuTimeEstimate, expected_times, observe
from orchestrator.core.types import JobKind, Timing
from orchestrator.live.build import builder
from orchestrator.live.records import Ended, LiveJob, Producer
from orchestrator.live.requests import Requests

_ended = builder(Ended)  # per job end


class Outcomes(Requests):
    """Job outcomes over the live state's fields (declared here and in ``Requests``, set by
    ``LiveState.__init__``); a job's end answers the requests ``Requests`` left waiting."""

    prior_timing: Timing
    profile_key: str
    learn_gpu_time: bool
    gpu_times: dict[str, GpuTimeEstimate]
    _job_chunk: dict[str, str]

    def job_ended(
        self, job_id: str, chunk_id: str, memory_id: str, *, ok: bool, now: float,
        gpu_s: float | None = None, made_by: str | None = None,
        profile_key: str | None = None, cold_start: bool = False, load_s: float = 0.0,
    ) -> Ended:  # fmt: skip
        """A job finished (``ok``: its chunk is stored and ready) or failed / was stopped.

        A report for a job the state no longer runs (cancelled by a plan) still makes a stored
        chunk ready: its files and row exist. ``gpu_s`` (GPU-seconds it took, the load included
        on a cold start) feeds the learned G of ``profile_key`` (default: the active profile);
        ``cold_start`` and ``load_s`` (``GenerationResult.cold_start``, ``timings["load"]``)
        let the cold start be learned apart (``core.gpu_time.observe``). ``made_by`` is the
        attempt that produced the chunk when the shell retried under new ids (default
        ``job_id``).
        """
        self._dirty = True
        made_by = made_by or job_id
        job = self._running.get(chunk_id)
        current = job is not None and job.job_id == job_id
        mem = self._memories.get(memory_id)
        node = mem.tree.get(chunk_id) if mem is not None else None
        kind: JobKind = job.kind if job is not None and current else "speculative"
        if ok and gpu_s is not None:
            self._learn(gpu_s, profile_key or self.profile_key, cold_start, load_s)
        if mem is None or node is None or (not current and (not ok or node.state == "ready")):
            return _ended(chunk_id, memory_id, "unchanged", (), kind)
        if job is not None and current:
            self._release(job, "ready" if ok else "failed", now)
            if ok:
                used = job.initial_kind == "speculative" and job.kind == "demand"
                mem.producers[chunk_id] = Producer(made_by, job.initial_kind, job.depth,
                                                   job.probability, used,
                                                   job.charged_gpu_s)  # fmt: skip
        elif ok:  # a cancelled job that stored its chunk anyway
            if chunk_id in self._running:
                return _ended(chunk_id, memory_id, "unchanged", (), kind)
            self._take_demand(chunk_id)
            mem.tree.set_state(chunk_id, "ready", now)
            mem.producers[chunk_id] = Producer(made_by, "speculative", None, None, False)
        return _ended(chunk_id, memory_id, "ready" if ok else "failed",
                     self._answer(chunk_id, now), kind)  # fmt: skip

    def _release(self, job: LiveJob, state: str, now: float) -> None:
        del self._running[job.chunk_id]
        self._job_chunk.pop(job.job_id, None)
        self._job_changes[job.job_id] = None
        self._cold.add(job.memory_id)  # perhaps its memory's last job
        tree = self._memories[job.memory_id].tree
        tree.set_state(job.chunk_id, "ready" if state == "ready" else "failed", now)

    def _answer(self, chunk_id: str, now: float) -> tuple[str, ...]:
        answered: list[str] = []
        for request_id, session_id in self._waiting.pop(chunk_id, []):
            answered.append(request_id)
            s = self._sessions.get(session_id) if session_id is not None else None
            if s is not None:
                s.waiting -= 1
                # Watching starts now; so does activity (a long wait must not make them idle).
                self._set_viewer(s, served=s.waiting == 0, at=now)
        return tuple(answered)

    def _learn(self, gpu_s: float, profile_key: str, cold_start: bool, load_s: float) -> None:
        if not self.learn_gpu_time:
            return
        est = self.gpu_times.get(profile_key) or GpuTimeEstimate(profile_key)
        self.gpu_times[profile_key] = observe(est, gpu_s, cold_start=cold_start, load_s=load_s)
        self._retime()

    def _retime(self) -> None:
        """``timing`` = the priors with the active profile's learned G and cold start."""
        if not self.learn_gpu_time:
            return
        prior = self.prior_timing
        g, cold = expected_times(self.gpu_times.get(self.profile_key),
                                 prior_gpu_s=prior.gpu_s_per_chunk,
                                 prior_cold_s=prior.cold_start_s)  # fmt: skip
        self.timing = replace(prior, gpu_s_per_chunk=g, cold_start_s=cold)
