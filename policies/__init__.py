"""Speculation policies behind one protocol, chosen by name in the config (DESIGN.md "Policies").

``make_policy("markov", {"order": 2})`` builds one; ``available_policies()`` lists the built-ins
(none, uniform, markov, lookahead, oracle); ``Policy`` is the contract every policy meets.
"""

from policies.base import Policy
from policies.registry import available_policies, make_policy

__all__ = ["Policy", "available_policies", "make_policy"]
