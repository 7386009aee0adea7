"""The host of the speculation policies: one policy instance per A/B arm.

The host owns the policies' learned state (Ray Serve's pattern: the host keeps the policy's state
and applies bounds outside the plug-in). Every policy instance observes every session's actions,
so arms learn from the same traffic; each session is served proposals by its own arm's policy.
A policy that raises is logged and proposes nothing: a plug-in bug never stalls demand jobs.

Observations are queued, not learned on the request path: ``observe`` appends the event (a cache
hit stays O(1) whatever the policy does per event) and the policies learn it before anything can
read what they learned: ``propose``, ``reconfigure`` and the planner's ``drain`` (in slices,
``orchestrator.plan_slices``) all feed the queue first, in arrival order. The queue lives in the
same process memory as the policies' learned state, so nothing is lost that was not already
lost with it.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable

import structlog

from orchestrator.core.types import ActionObserved, PolicyContext, Proposal
from orchestrator.experiments import Arm, assign_arm
from policies import Policy, make_policy
from policies.base import forget_memory, forget_session
from policies.registry import children_free, time_free

log = structlog.get_logger(__name__)


class PolicyHost:
    """Arms, their policy instances, and session-to-arm assignment.

    Raises (constructor, ``reconfigure``): ValueError when an arm names an unknown policy or bad
    parameters (nothing is changed then).
    """

    def __init__(self, arms: tuple[Arm, ...], experiment: str) -> None:
        self.experiment = experiment
        self.arms: tuple[Arm, ...] = ()
        self._policies: dict[str, Policy] = {}
        self._queued: deque[ActionObserved] = deque()
        self._children_free: dict[str, tuple[Policy, bool]] = {}  # arm -> (its policy, answer)
        self.reconfigure(arms, experiment)

    def reconfigure(self, arms: tuple[Arm, ...], experiment: str) -> None:
        """Switch to ``arms``; an arm whose policy and params are unchanged keeps its state."""
        if not arms:
            raise ValueError("at least one arm is needed")
        self.drain()  # the arms kept must not miss what was observed under the old set
        old = {a.name: a for a in self.arms}
        built: dict[str, Policy] = {}
        for arm in arms:
            prev = old.get(arm.name)
            if prev is not None and prev.same_policy(arm):
                built[arm.name] = self._policies[arm.name]
            else:
                built[arm.name] = make_policy(arm.policy, arm.params)
        self.arms, self._policies, self.experiment = arms, built, experiment

    def assign(self, session_id: uuid.UUID) -> Arm:
        """The arm a new session joins (stable hash, see ``orchestrator.experiments``)."""
        return assign_arm(self.experiment, session_id, self.arms)

    def arm(self, name: str) -> Arm | None:
        """The arm called ``name`` in the current configuration, or None."""
        return next((a for a in self.arms if a.name == name), None)

    def observe(self, event: ActionObserved) -> None:
        """Queue an action for every arm's policy (learned by the next ``drain``/``propose``)."""
        self._queued.append(event)

    @property
    def queued(self) -> int:
        """Observed actions not yet fed to the policies."""
        return len(self._queued)

    def drain(self, budget_s: float | None = None) -> int:
        """Feed queued actions to every arm's policy, oldest first; with ``budget_s`` stop once
        that many wall seconds have passed (at least one event is fed). Returns how many
        remain queued."""
        queue, policies = self._queued, self._policies
        t0 = time.perf_counter() if budget_s is not None else 0.0
        while queue:
            event = queue.popleft()
            for name, policy in policies.items():
                try:
                    policy.observe(event)
                except Exception:
                    log.exception("policy_observe_failed", arm=name)
            if budget_s is not None and time.perf_counter() - t0 >= budget_s:
                break
        return len(queue)

    def forget_session(self, session_id: str) -> None:
        """Every arm's policy drops what it keeps for an evicted session (``policies.base.
        Forgetting``); queued actions are fed first, so none of that session's arrives after."""
        self._forget(forget_session, session_id)

    def forget_memory(self, memory_id: str) -> None:
        """Every arm's policy moves a cold memory's state out of its live tables (markov keeps
        a bounded cold store, so a memory opened again is predicted as before)."""
        self._forget(forget_memory, memory_id)

    def _forget(self, hook: Callable[[object, str], None], ident: str) -> None:
        self.drain()
        for name, policy in self._policies.items():
            try:
                hook(policy, ident)
            except Exception:
                log.exception("policy_forget_failed", arm=name)

    def time_free(self, arm: str) -> bool:
        """True when ``arm``'s policy ignores time, so its answers may be reused
        (``orchestrator.live.proposals``)."""
        policy = self._policies.get(arm)
        return policy is not None and time_free(policy)

    def children_free(self, arm: str) -> bool:
        """True when ``arm``'s policy never reads ``ctx.children``, so a change of those alone
        does not make the host ask it again (``orchestrator.live.proposals``)."""
        policy = self._policies.get(arm)
        if policy is None:
            return False
        # Memoised per policy object: lookahead's check is a runtime Protocol isinstance
        # (~10 us), and the live state asks on every visit of a session, hits included.
        kept = self._children_free.get(arm)
        if kept is None or kept[0] is not policy:
            kept = self._children_free[arm] = (policy, children_free(policy))
        return kept[1]

    def propose(self, arm: str, ctx: PolicyContext) -> list[Proposal]:
        """The proposals of ``arm``'s policy for one session ([] if the policy fails)."""
        if self._queued:
            self.drain()
        policy = self._policies.get(arm)
        if policy is None:
            return []
        try:
            return list(policy.propose(ctx))
        except Exception:
            log.exception("policy_propose_failed", arm=arm, session_id=ctx.session.session_id)
            return []
