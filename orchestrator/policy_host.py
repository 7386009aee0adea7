"""The host of the speculation policies: one policy instance per A/B arm.

The host owns the policies' learned state (Ray Serve's pattern: the host keeps the policy's state
and applies bounds outside the plug-in). Every policy instance observes every session's actions,
so arms learn from the same traffic; each session is served proposals by its own arm's policy.
A policy that raises is logged and proposes nothing: a plug-in bug never stalls demand jobs.
"""

from __future__ import annotations

import uuid

import structlog

from orchestrator.core.types import ActionObserved, PolicyContext, Proposal
from orchestrator.experiments import Arm, assign_arm
from policies import Policy, make_policy
from policies.registry import time_free

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
        self.reconfigure(arms, experiment)

    def reconfigure(self, arms: tuple[Arm, ...], experiment: str) -> None:
        """Switch to ``arms``; an arm whose policy and params are unchanged keeps its state."""
        if not arms:
            raise ValueError("at least one arm is needed")
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
        """Feed an action to every arm's policy."""
        for name, policy in self._policies.items():
            try:
                policy.observe(event)
            except Exception:
                log.exception("policy_observe_failed", arm=name)

    def time_free(self, arm: str) -> bool:
        """True when ``arm``'s policy ignores time, so its answers may be reused
        (``orchestrator.live.proposals``)."""
        policy = self._policies.get(arm)
        return policy is not None and time_free(policy)

    def propose(self, arm: str, ctx: PolicyContext) -> list[Proposal]:
        """The proposals of ``arm``'s policy for one session ([] if the policy fails)."""
        policy = self._policies.get(arm)
        if policy is None:
            return []
        try:
            return list(policy.propose(ctx))
        except Exception:
            log.exception("policy_propose_failed", arm=arm, session_id=ctx.session.session_id)
            return []
