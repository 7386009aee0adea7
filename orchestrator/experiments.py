"""A/B arms: each new session is assigned a policy arm by a stable hash with configured weights.

The hash is sha256("<experiment name>:<session id>") read as a number in [0, 1); the arms' weights
cut [0, 1) into consecutive intervals in the order the arms are listed. So a session always lands
in the same arm for the same experiment name and arm list, and arms receive sessions in
proportion to their weights. Without ``[experiments]`` arms, every session is on one arm named
"default" running ``[speculation] policy``.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field

DEFAULT_ARM = "default"


@dataclass(frozen=True, slots=True)
class Arm:
    """One arm: a name recorded on analytics rows, the policy it runs and its share of sessions.

    Attributes:
        name: arm name (unique within the experiment).
        policy: policy spec (built-in name or ``module:attr``).
        weight: relative share of new sessions (> 0).
        params: keyword arguments for the policy.
    """

    name: str
    policy: str
    weight: float = 1.0
    params: dict[str, object] = field(default_factory=dict)

    def same_policy(self, other: Arm) -> bool:
        """True when both arms would build the same policy (learned state may be kept)."""
        return self.policy == other.policy and self.params == other.params


def unit_hash(experiment: str, session_id: uuid.UUID) -> float:
    """sha256 of "<experiment>:<session id>" as a float in [0, 1)."""
    digest = hashlib.sha256(f"{experiment}:{session_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_arm(experiment: str, session_id: uuid.UUID, arms: tuple[Arm, ...]) -> Arm:
    """The arm a session belongs to (stable for the same experiment name and arms).

    Raises:
        ValueError: no arms, or a weight is not positive.
    """
    if not arms:
        raise ValueError("an experiment needs at least one arm")
    total = sum(a.weight for a in arms)
    if total <= 0 or any(a.weight <= 0 for a in arms):
        raise ValueError("arm weights must be positive")
    point = unit_hash(experiment, session_id) * total
    edge = 0.0
    for arm in arms:
        edge += arm.weight
        if point < edge:
            return arm
    return arms[-1]  # float rounding at the very top of the range
