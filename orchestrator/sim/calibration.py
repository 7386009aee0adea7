"""Calibration of a policy's next-action prediction, measured inside a simulation run.

A policy's probabilities are what the core values speculation with (``P x`` saving against
``(1 - P) x`` waste), so they must mean what they say: of the actions predicted at 0.3, about 30 %
should be taken. ``RecordingPolicy`` wraps a policy for one run: every time the live state asks
it for proposals it keeps the policy's distribution over the session's *next* action, and when
the viewer's actual action arrives (``observe``, before the policy learns from it) it scores that
prediction. Every scored prediction is therefore out of sample (prequential); with ``pretrain``
the policy has first learned from *other* viewers (a training trace: other sessions on other
memories), so the scores are on held-out viewers, as a running service would meet new ones.

The distribution recorded for a step:

- a policy with the full next-action distribution (``policies.base.NextActionModel``, e.g.
  ``markov``; or a ``lookahead`` whose base has one) gives it directly;
- otherwise its depth-1 proposals give the proposed actions' probabilities, and the rest of the
  mass (1 - their sum) is spread evenly over the actions it did not propose.

``summarize_calibration`` reports (probabilities one-vs-rest, 10 equal-width bins on [0, 1]):

- ``reliability``: per bin, predictions in it, their mean probability and the share realised,
  over the *proposed* probabilities (depth-1 proposals: what the core acts on);
- ``ece``: expected calibration error over those, sum over bins of ``n_b / N x |mean p_b -
  realised_b|`` (the target of the issue, <= 0.05); ``ece_all_actions``: the same over every
  action's probability (diluted by the many near-zero tails, so it reads smaller);
  ``ece_top_label``: the classic top-label ECE (the most probable action's probability against
  whether it was taken);
- ``log_loss_nats``: mean ``-ln P(realised action)`` per scored request (P floored at 1e-6),
  ``uniform_log_loss_nats`` = ln(|actions|) for scale; ``brier``: mean squared error of the whole
  distribution per request; ``top1_accuracy``, ``mean_top_probability``.

Pure bookkeeping: it never changes what the wrapped policy proposes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.core.types import ActionObserved, PolicyContext, Proposal
from orchestrator.sim.trace import Trace
from policies import Policy
from policies.base import NextActionModel, action_key, unique_actions

__all__ = [
    "BINS",
    "Prediction",
    "RecordingPolicy",
    "expected_calibration_error",
    "pretrain",
    "reliability",
    "summarize_calibration",
]

BINS = 10
_FLOOR = 1e-6


@dataclass(frozen=True, slots=True)
class Prediction:
    """One scored step: the distribution over canonical actions (sums to ~1), the actions the
    policy proposed at depth 1, and the action the viewer took."""

    distribution: Mapping[str, float]
    proposed: frozenset[str]
    realised: str


def _model(policy: Policy) -> NextActionModel | None:
    if isinstance(policy, NextActionModel):
        return policy
    base = getattr(policy, "base", None)
    return base if isinstance(base, NextActionModel) else None


class RecordingPolicy:
    """``policy`` as it is, plus a record of its next-action predictions (module doc).

    Args:
        inner: the policy to wrap (its ``name`` is kept).
        score: which sessions to score (None: all).

    Attributes:
        predictions: the scored steps, in the order the viewers acted.
        unscored: steps the policy was never asked about before the viewer acted (e.g. the
            session was idle, or the policy is ``none``).
    """

    def __init__(self, inner: Policy, score: frozenset[str] | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.score = score
        self.model = _model(inner)
        self.predictions: list[Prediction] = []
        self.unscored = 0
        self._pending: dict[tuple[str, int], tuple[dict[str, float], frozenset[str]]] = {}

    def propose(self, ctx: PolicyContext) -> list[Proposal]:
        """The wrapped policy's proposals; the next-action distribution is kept for scoring."""
        proposals = self.inner.propose(ctx)
        sid = ctx.session.session_id
        if self.score is None or sid in self.score:
            self._pending[(sid, len(ctx.session.history))] = self._distribution(ctx, proposals)
        return proposals

    def _distribution(
        self, ctx: PolicyContext, proposals: Sequence[Proposal]
    ) -> tuple[dict[str, float], frozenset[str]]:
        actions = [action_key(a) for a in unique_actions(ctx.actions)]
        first = {action_key(p.path[0]): p.probability for p in proposals if len(p.path) == 1}
        if self.model is not None:
            raw = self.model.next_action_probabilities(ctx, ctx.session.history)
            dist = {a: 0.0 for a in actions}
            for a, p in raw.items():
                dist[action_key(a)] = dist.get(action_key(a), 0.0) + p
        else:
            rest = [a for a in actions if a not in first]
            spread = max(0.0, 1.0 - sum(first.values())) / len(rest) if rest else 0.0
            dist = {a: first.get(a, spread) for a in actions}
        return dist, frozenset(first)

    def observe(self, event: ActionObserved) -> None:
        """Score the prediction made for this step (if any), then let the policy learn."""
        key = (event.session_id, len(event.history))
        got = self._pending.pop(key, None)
        if got is not None:
            self.predictions.append(Prediction(got[0], got[1], action_key(event.action)))
        elif self.score is None or event.session_id in self.score:
            self.unscored += 1
        self.inner.observe(event)


def pretrain(policy: Policy, trace: Trace, prefix: str = "train:") -> int:
    """Feed ``policy`` every step of ``trace`` as ``observe`` events (session by session), with
    ``prefix`` on session and memory ids so they never collide with the scored run's. Returns
    the number of events fed."""
    fed = 0
    for s in trace.sessions:
        history: list[str] = []
        for step in s.steps:
            policy.observe(ActionObserved(prefix + s.session_id, prefix + s.memory,
                                          tuple(history), step.action))  # fmt: skip
            history.append(step.action)
            fed += 1
    return fed


def reliability(pairs: Iterable[tuple[float, bool]], bins: int = BINS) -> list[dict[str, Any]]:
    """Per equal-width bin of predicted probability: ``lo``, ``hi``, ``n``, ``predicted`` (mean
    p), ``realised`` (share true); bins without predictions are left out."""
    count = [0] * bins
    total_p = [0.0] * bins
    hits = [0] * bins
    for p, happened in pairs:
        b = min(bins - 1, max(0, int(p * bins)))
        count[b] += 1
        total_p[b] += p
        hits[b] += happened
    return [
        {"lo": b / bins, "hi": (b + 1) / bins, "n": count[b],
         "predicted": round(total_p[b] / count[b], 6), "realised": round(hits[b] / count[b], 6)}
        for b in range(bins) if count[b]
    ]  # fmt: skip


def expected_calibration_error(table: Sequence[Mapping[str, Any]]) -> float | None:
    """ECE of a ``reliability`` table: sum of ``n_b / N x |predicted_b - realised_b|``; None
    when empty."""
    n = sum(row["n"] for row in table)
    if n == 0:
        return None
    return float(sum(row["n"] * abs(row["predicted"] - row["realised"]) for row in table) / n)


def summarize_calibration(
    predictions: Sequence[Prediction], unscored: int = 0, bins: int = BINS
) -> dict[str, Any]:
    """The calibration report of one run (module doc). Empty predictions give counts only."""
    out: dict[str, Any] = {"scored": len(predictions), "unscored": unscored}
    if not predictions:
        return out
    proposed = [(p.distribution.get(a, 0.0), a == p.realised) for p in predictions
                for a in sorted(p.proposed)]  # fmt: skip
    every = [(q, a == p.realised) for p in predictions for a, q in p.distribution.items()]
    tops = []
    loss = brier = 0.0
    for p in predictions:
        top = max(sorted(p.distribution), key=lambda a: p.distribution[a])
        tops.append((p.distribution[top], top == p.realised))
        loss -= math.log(max(_FLOOR, p.distribution.get(p.realised, 0.0)))
        brier += sum((q - (a == p.realised)) ** 2 for a, q in p.distribution.items())
        if p.realised not in p.distribution:
            brier += 1.0
    table = reliability(proposed, bins)
    n = len(predictions)
    width = max(len(p.distribution) for p in predictions)
    ece = expected_calibration_error(table)
    return {
        **out,
        "proposed_per_request": round(len(proposed) / n, 6),
        "reliability": table,
        "ece": None if ece is None else round(ece, 6),
        "ece_all_actions": round(expected_calibration_error(reliability(every, bins)) or 0.0, 6),
        "ece_top_label": round(expected_calibration_error(reliability(tops, bins)) or 0.0, 6),
        "log_loss_nats": round(loss / n, 6),
        "uniform_log_loss_nats": round(math.log(width), 6),
        "brier": round(brier / n, 6),
        "top1_accuracy": round(sum(hit for _, hit in tops) / n, 6),
        "mean_top_probability": round(sum(q for q, _ in tops) / n, 6),
    }
