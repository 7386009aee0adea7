"""Where the live state gets proposals from, and when it asks again.

A ``Proposer`` is the policy host seen from the live state: proposals for one session's arm,
and the feed of observed actions. ``orchestrator.policy_host.PolicyHost`` is the service's (one
policy per A/B arm); ``SinglePolicy`` wraps one policy object for the simulator.

Asking every session's policy on every plan is what made the first simulator spend 95 % of a
replay in proposals (issue 10), although a session's proposals only change when something the
policy reads changes. ``ProposalCache`` keeps each session's last answer under a signature of
what a time-free policy reads: cursor, history, arm, the states of the cursor's children, the
memory's epoch in coarse steps (``changes.coarse_epoch``: the memory's history grew by about an
eighth) and the host's epoch (bumped by a reconfiguration). Decision: an action observed on
*another* memory does not refresh a session's proposals (it only moves a learned policy's global
prior), and a peer's action on the same memory refreshes them only in those coarse steps; they
are refreshed at once at the session's own next step. Policies that read ``ctx.now`` or the
session's timestamps (``time_free`` False: an operator's own, by default) are asked every plan.

The children's states are in the signature only for a policy that reads them (``children_free``
False: an operator's own, by default). Decision (issue 10): a built-in policy, which never reads
them, is not asked again when a child is queued, starts or becomes ready. Its answer would
differ only by what it learned since (peers' actions, as above), and asking again on each of
those moments doubled the calls: in the simulator's 3,000-session replay, markov and lookahead
were asked about 2 times per request (124,000 calls for 59,600 requests); now once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from orchestrator.core.types import ActionObserved, NodeState, PolicyContext, Proposal
from policies import Policy
from policies.base import forget_memory, forget_session
from policies.registry import children_free, time_free

Signature = tuple[object, ...]


class Proposer(Protocol):
    """Proposals per arm and the observation feed (never raises: a failing policy proposes [])."""

    def propose(self, arm: str, ctx: PolicyContext) -> list[Proposal]:
        """``arm``'s policy's proposals for the session in ``ctx``."""
        ...

    def observe(self, event: ActionObserved) -> None:
        """Feed one requested action to every policy."""
        ...

    def time_free(self, arm: str) -> bool:
        """True when ``arm``'s policy ignores ``ctx.now`` and the session's timestamps."""
        ...

    def children_free(self, arm: str) -> bool:
        """True when ``arm``'s policy never reads ``ctx.children``."""
        ...


class SinglePolicy:
    """One policy as a ``Proposer`` whose every session is in arm ``policy.name`` (simulator)."""

    def __init__(self, policy: Policy, cache: bool | None = None) -> None:
        self.policy = policy
        self._time_free = time_free(policy) if cache is None else cache
        self._children_free = children_free(policy)

    def propose(self, arm: str, ctx: PolicyContext) -> list[Proposal]:
        """The policy's proposals (arm ignored: there is one)."""
        return list(self.policy.propose(ctx))

    def observe(self, event: ActionObserved) -> None:
        """Feed the policy."""
        self.policy.observe(event)

    def time_free(self, arm: str) -> bool:
        """Whether proposals may be cached (``policies.registry.time_free``, or forced)."""
        return self._time_free

    def children_free(self, arm: str) -> bool:
        """Whether the policy never reads ``ctx.children`` (``policies.registry.children_free``)."""
        return self._children_free

    def forget_session(self, session_id: str) -> None:
        """Tell the policy the session was evicted (``policies.base.Forgetting``, if offered)."""
        forget_session(self.policy, session_id)

    def forget_memory(self, memory_id: str) -> None:
        """Tell the policy the memory went cold (``policies.base.Forgetting``, if offered)."""
        forget_memory(self.policy, memory_id)


class ProposalCache:
    """Each session's last proposals, keyed by the signature of what produced them."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Signature, tuple[Proposal, ...]]] = {}
        self.asked = 0  # policy calls made (for benchmarks and tests)
        self.reused = 0  # answers served from the cache

    def get(
        self,
        proposer: Proposer,
        arm: str,
        sid: str,
        context: Callable[[], PolicyContext],
        signature: Signature,
    ) -> tuple[Proposal, ...]:
        """Session ``sid``'s proposals: cached when ``signature`` is unchanged and the arm's
        policy is time-free, else freshly asked (``context()`` builds what the policy sees)."""
        cacheable = proposer.time_free(arm)
        if cacheable:
            hit = self._entries.get(sid)
            if hit is not None and hit[0] == signature:
                self.reused += 1
                return hit[1]
        self.asked += 1
        fresh = tuple(proposer.propose(arm, context()))
        if cacheable:
            self._entries[sid] = (signature, fresh)
        return fresh

    def forget(self, session_id: str) -> None:
        """Drop an evicted session's entry."""
        self._entries.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._entries)


def children_signature(children: dict[str, NodeState]) -> tuple[tuple[str, NodeState], ...]:
    """A hashable, order-free form of a cursor's children states."""
    return tuple(sorted(children.items()))
