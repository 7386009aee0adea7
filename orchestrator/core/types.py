"""Plain values exchanged by the decision core, the policies, the scheduler shell and the simulator.

Everything here is an immutable dataclass of plain values. Times are seconds on whatever clock the
caller uses (wall clock in the service, virtual clock in the simulator); the core never reads a
clock itself. GPU time is in GPU-seconds (one slot busy for one second).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from orchestrator.core.roster import Roster
    from orchestrator.core.tree import NodeLookup
    from orchestrator.core.votes import VoteIndex

JobKind = Literal["demand", "speculative"]
"""demand: a viewer is waiting for it; speculative: nobody has asked for it yet."""

NodeState = Literal["ready", "running", "failed"]
"""ready: MP4 and last frame stored; running: a job holds a GPU slot for it; failed: last attempt
failed or was cancelled (the key may be generated again)."""

Outcome = Literal["hit", "inflight", "miss"]
"""A chunk request's outcome: ready (hit), being generated (in-flight hit), not started (miss)."""


@dataclass(frozen=True, slots=True)
class TreeNode:
    """One chunk of a memory's chunk tree, as the core sees it.

    Attributes:
        chunk_id: chunk id (UUID string in the service, any unique string in the simulator).
        memory_id: the memory the chunk belongs to.
        parent_id: parent chunk id; None for the root chunk.
        pose: canonical pose string (``orchestrator.core.poses``).
        action: the action whose canonical pose this is, or None for a free-form pose.
        state: see NodeState.
        depth: chunk_index, 0 for the root.
        ready_at: when it became ready (seconds), None unless state == "ready".
    """

    chunk_id: str
    memory_id: str
    parent_id: str | None
    pose: str
    action: str | None
    state: NodeState
    depth: int
    ready_at: float | None = None


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A generation holding a GPU slot.

    Attributes:
        job_id: gpu_jobs id.
        chunk_id: the chunk it generates (its TreeNode has state "running").
        memory_id, parent_id, pose: the chunk key's parts (profile is one per service).
        kind: demand or speculative; an in-flight hit promotes speculative to demand.
        started_at: when it took the slot (seconds).
        expected_gpu_s: expected GPU-seconds for the whole generation (cold start included).
        probability: P(requested) when admitted (1.0 for demand).
        session_id: the session it was started for (None if unknown).
        depth: levels below the session's cursor when admitted (0 for demand).
        charged_gpu_s: GPU-seconds the token bucket was charged at admission and not yet given
            back (``StartJob.charged_gpu_s``); None = ``expected_gpu_s`` (a caller that does not
            track charges). A cancel refunds its unspent part.
    """

    job_id: str
    chunk_id: str
    memory_id: str
    parent_id: str | None
    pose: str
    kind: JobKind
    started_at: float
    expected_gpu_s: float
    probability: float = 1.0
    session_id: str | None = None
    depth: int = 0
    charged_gpu_s: float | None = None

    @property
    def charge(self) -> float:
        """GPU-seconds still charged to the bucket for this job (``charged_gpu_s`` or E)."""
        return self.expected_gpu_s if self.charged_gpu_s is None else self.charged_gpu_s


@dataclass(frozen=True, slots=True)
class DemandRequest:
    """A miss waiting for a GPU slot: a viewer asked for a chunk nobody is generating.

    Attributes:
        request_id: unique id of the waiting request (the shell's; a chunk id works).
        memory_id, parent_id, pose: the chunk key's parts; parent_id None means the root chunk.
        action: the action the viewer chose, or None for a free-form pose.
        session_id: the requesting session, or None.
        requested_at: when the request arrived (seconds); FIFO order among demands.
    """

    request_id: str
    memory_id: str
    parent_id: str | None
    pose: str
    action: str | None
    session_id: str | None
    requested_at: float


@dataclass(frozen=True, slots=True)
class SessionView:
    """One viewer's walk through a memory.

    Attributes:
        session_id: session id.
        memory_id: the memory walked.
        cursor_chunk_id: the chunk being watched.
        watch_started_at: when the viewer started watching the cursor (it became ready for them).
        last_active_at: last request or heartbeat (seconds); drives the idle timeout.
        history: the session's actions so far, oldest first (free-form poses left out).
        policy: name of the policy (arm) that speculates for this session.
        think_s: this viewer's expected think time (seconds; the live state's per-session
            estimate, ``orchestrator.live.viewers``); None = ``Timing.think_s``.
        idle_after_s: this viewer is considered gone once inactive this long (seconds; a
            multiple of their usual gap between requests); None = ``Budget.idle_timeout_s``
            alone. The smaller of the two applies.
    """

    session_id: str
    memory_id: str
    cursor_chunk_id: str
    watch_started_at: float
    last_active_at: float
    history: tuple[str, ...] = ()
    policy: str = "none"
    think_s: float | None = None
    idle_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Proposal:
    """A policy's guess: the session will take ``path`` (actions from its cursor) next.

    Attributes:
        session_id: the session the guess is for.
        path: one or more actions, the first a child of the cursor, each next one its child.
        probability: joint probability in [0, 1] that the session requests the whole path.
    """

    session_id: str
    path: tuple[str, ...]
    probability: float


@dataclass(frozen=True, slots=True)
class PolicyContext:
    """What a policy may see when proposing for one session (never the budget).

    Attributes:
        session: the session (cursor, history).
        memory_history: actions of every session on this memory, one tuple per session.
        children: action -> state of the cursor's existing children (ready/running/failed).
        actions: the actions the frontend offers (what a policy may propose).
        max_depth: deepest path the core will consider.
        now: current time in seconds.
        seed: seed for any randomness the policy uses (deterministic plans).
    """

    session: SessionView
    memory_history: tuple[tuple[str, ...], ...]
    children: dict[str, NodeState]
    actions: tuple[str, ...]
    max_depth: int
    now: float
    seed: int = 0


@dataclass(frozen=True, slots=True)
class ActionObserved:
    """Feedback to a policy: a session requested ``action`` after ``history``."""

    session_id: str
    memory_id: str
    history: tuple[str, ...]
    action: str


@dataclass(frozen=True, slots=True)
class Budget:
    """Operator limits on speculation (rewind.toml ``[gpu]`` and ``[speculation]``).

    Attributes:
        max_containers: GPU slots in the pool (Modal max_containers; seed: 1 request per A100).
        speculative_share: fraction of slots speculative jobs may hold at once, in [0, 1].
        rate_gpu_s_per_s: token-bucket refill: speculative GPU-seconds allowed per second.
        burst_gpu_s: token-bucket capacity in GPU-seconds.
        max_depth: deepest speculation below a cursor (1 = children only).
        per_session_inflight: speculative jobs one session may hold at once.
        min_probability: proposals below this P are never started.
        idle_timeout_s: a session idle this long gets no speculation.
        min_benefit_per_gpu_s: the one admission threshold: expected seconds of viewer wait
            saved per expected *wasted* GPU-second (``valuation`` module doc). A candidate is
            started only when ``benefit_s / waste_gpu_s`` exceeds it. Default 0.15: spend at
            most ~6.7 wasted GPU-seconds (~$0.0046 on an A100 at Modal's $0.000694/GPU-s, the
            price in rewind.example.toml) to save a viewer one second of waiting, in every
            regime (a judgement: about $17 per viewer-hour of waiting). For a depth-1 guess on a
            warm container the ratio is the odds P / (1 - P), so 0.15 admits P > 0.13; deeper
            guesses and cold starts need more (their saving over waiting for the next step is
            smaller). Measured on uniformly random viewers it keeps GPU-seconds within 1.03x of
            on-demand (issue 11). 0 admits anything that saves any wait.
        gone_after_gaps: a session inactive for this many of its usual gaps between requests
            (watching + thinking, per-session estimate) is considered gone and its speculation
            is cancelled (default 3: a judgement; think times with a CV of 0.6 exceed 3x their
            mean well under 1 % of the time). 0 disables it (``idle_timeout_s`` only).
    """

    max_containers: int = 4
    speculative_share: float = 0.75
    rate_gpu_s_per_s: float = 2.0
    burst_gpu_s: float = 1800.0
    max_depth: int = 2
    per_session_inflight: int = 4
    min_probability: float = 0.05
    idle_timeout_s: float = 120.0
    min_benefit_per_gpu_s: float = 0.15
    gone_after_gaps: float = 3.0


@dataclass(frozen=True, slots=True)
class BucketState:
    """Token bucket of speculative GPU-seconds: ``tokens`` available as of ``updated_at``."""

    tokens: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Timing:
    """The regime's expected times, used to value candidates (seconds).

    Attributes:
        gpu_s_per_chunk: expected warm generation time G of one chunk (GPU-seconds).
        cold_start_s: expected extra time when no warm container is free.
        chunk_duration_s: playback length of a chunk (125 / 24 = 5.2 s by default).
        think_s: expected time a viewer spends deciding after a chunk finishes playing.
    """

    gpu_s_per_chunk: float
    cold_start_s: float = 0.0
    chunk_duration_s: float = 125 / 24
    think_s: float = 2.0


@dataclass(frozen=True, slots=True)
class PlanInput:
    """Everything ``plan()`` decides from.

    Attributes:
        now: current time (seconds).
        nodes: every chunk of the memories with active sessions.
        sessions: active sessions.
        jobs: generations holding a slot now.
        demands: misses waiting for a slot, any order (the core sorts them FIFO).
        proposals: the policies' proposals for the sessions.
        budget: operator limits.
        bucket: token bucket state before this plan.
        timing: regime estimates.
        frames: frames per chunk (pose step count = (frames - 1) // 4).
        warm_idle: warm containers idle right now (``ModalGpuPool.warm_idle``, the simulator's
            pool); None = unknown or unlimited: every start is warm and ``Timing.cold_start_s``
            is treated as a cost every start pays alike (the pre-warm-pool model). When given,
            the starts of this plan beyond ``warm_idle`` (demands first) pay a cold start of
            ``Timing.cold_start_s``, and a speculative one is admitted only if its value covers
            it (``frontier.value``).
        votes: the proposals already resolved and combined per chunk key, kept up to date by
            the shell (``votes.VoteIndex``; its contract: exactly the votes of ``proposals``
            over the active sessions and ``nodes``); None = the core resolves ``proposals``
            itself. Either way the plan is the same; the index only saves the work. With a
            ``roster`` the plan checks only that the index's sessions carry the roster's views
            (``VoteIndex.holds_roster``), not that each is active at ``now``: part of the
            contract then (``Planner.prepare`` resolves no votes for an idle session).
        lookup: point lookups into the shell's own chunk trees (``tree.NodeLookup``; the live
            state's ``LiveLookup``); None = ``nodes`` is indexed. Contract: it answers like
            ``nodes`` for every chunk a plan reads (it may know more chunks: ``nodes`` holds the
            neighbourhoods a plan reads, ``LiveState.prepare``). With it, no plan scans
            ``nodes``. The plan is the same either way.
        roster: ``sessions`` and ``jobs`` indexed by the shell (``roster.Roster``: by id, by
            cursor, by chunk key, speculative jobs per session), kept up to date as they
            change; None = the core indexes the tuples. Contract: exactly ``sessions`` and
            ``jobs``, with unique ids (``Roster.matches``). The plan is the same either way.
    """

    now: float
    nodes: tuple[TreeNode, ...]
    sessions: tuple[SessionView, ...]
    jobs: tuple[RunningJob, ...]
    demands: tuple[DemandRequest, ...]
    proposals: tuple[Proposal, ...]
    budget: Budget
    bucket: BucketState
    timing: Timing
    frames: int = 125
    warm_idle: int | None = None
    votes: VoteIndex | None = field(default=None, compare=False, repr=False)
    lookup: NodeLookup | None = field(default=None, compare=False, repr=False)
    roster: Roster | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StartJob:
    """Start a generation now (a free slot exists or one is freed by a CancelJob in the same plan).

    Attributes:
        memory_id, parent_id, pose: the chunk key's parts (pose canonical).
        action: the action, or None for a free-form pose.
        kind: demand or speculative.
        session_id: the session it is for.
        probability: P(requested) (1.0 for demand).
        depth: levels below the cursor (0 for demand).
        expected_gpu_s: expected GPU-seconds of the whole generation (E, cold start included
            when this start is cold).
        benefit_s: expected seconds of wait saved (P x saving); 0 for demand.
        reason: human-readable why, e.g. "demand", "spec p=0.62 d=1 benefit/gpu=0.31".
        request_id: the DemandRequest it serves, None for speculative.
        charged_gpu_s: GPU-seconds taken from the bucket: what the job runs before the
            viewer's choice reveals whether it was wanted (``frontier.value``); given back when
            its chunk is requested (a correct guess is not waste) and, for the part not run,
            when it is cancelled. 0 for demand.
        cold: True when this start needs a cold container (``PlanInput.warm_idle`` exhausted).
    """

    memory_id: str
    parent_id: str | None
    pose: str
    action: str | None
    kind: JobKind
    session_id: str | None
    probability: float
    depth: int
    expected_gpu_s: float
    benefit_s: float
    reason: str
    request_id: str | None = None
    charged_gpu_s: float = 0.0
    cold: bool = False


@dataclass(frozen=True, slots=True)
class CancelJob:
    """Cancel a running speculative job: ``reason`` is "abandoned" (no session can reach it),
    "preempted" (a demand needs the slot), "idle" (its session went idle) or "budget"."""

    job_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The core's decision. Invariants (property-tested):

    - demand starts come first; every demand is started when a slot is free or a speculative
      job can be preempted;
    - running jobs - cancels + starts <= budget.max_containers;
    - speculative jobs after the plan <= floor(speculative_share * max_containers);
    - no two jobs (running or started) share a chunk key; no start's parent is not ready;
    - the bucket never goes negative.
    """

    starts: tuple[StartJob, ...] = ()
    cancels: tuple[CancelJob, ...] = ()
    bucket: BucketState = field(default_factory=lambda: BucketState(0.0, 0.0))
    bucket_short_gpu_s: float | None = None
    """The smallest charge of a candidate the bucket could not pay (GPU-seconds), None when the
    bucket refused none: the shell re-plans once the bucket has refilled that much."""
