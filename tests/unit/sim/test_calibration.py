"""Calibration scoring: hand-computed bins and ECE, and the recorder inside a simulation run."""

from __future__ import annotations

import math

import pytest

from orchestrator.core.types import ActionObserved
from orchestrator.sim.calibration import (
    Prediction,
    RecordingPolicy,
    expected_calibration_error,
    pretrain,
    reliability,
    summarize_calibration,
)
from orchestrator.sim.run import run_one
from orchestrator.sim.trace import Trace
from policies import make_policy
from tests.unit.sim.test_engine import regime, viewer


def test_reliability_bins_and_ece_by_hand() -> None:
    pairs = [(0.15, True), (0.15, False), (0.15, False), (0.15, False), (0.95, True)]
    table = reliability(pairs)
    assert [(r["lo"], r["n"], r["predicted"], r["realised"]) for r in table] == [
        (0.1, 4, 0.15, 0.25), (0.9, 1, 0.95, 1.0)]  # fmt: skip
    assert expected_calibration_error(table) == pytest.approx((4 * 0.1 + 1 * 0.05) / 5)
    assert expected_calibration_error([]) is None


def test_summary_of_a_perfect_and_a_wrong_predictor() -> None:
    sure = [Prediction({"w": 1.0, "a": 0.0}, frozenset({"w"}), "w")] * 3
    report = summarize_calibration(sure)
    assert report["ece"] == 0.0 and report["top1_accuracy"] == 1.0
    assert report["log_loss_nats"] == 0.0 and report["brier"] == 0.0
    wrong = summarize_calibration([Prediction({"w": 1.0, "a": 0.0}, frozenset({"w"}), "a")])
    assert wrong["ece"] == 1.0 and wrong["log_loss_nats"] == pytest.approx(-math.log(1e-6))
    assert summarize_calibration([], unscored=2) == {"scored": 0, "unscored": 2}


def test_the_recorder_scores_before_the_policy_learns() -> None:
    trace = Trace((viewer("w w w w d", think=2.0),))
    reg = regime(g=3.0, think=2.0, slots=2)
    metrics = run_one(trace, reg, "markov", 0)
    cal = metrics["calibration"]
    assert cal["scored"] == 5 and cal["unscored"] == 0
    # the first prediction is the uniform prior over 24 actions: log-loss ln 24 on that step
    assert cal["uniform_log_loss_nats"] == pytest.approx(math.log(24))
    assert run_one(trace, reg, "none", 0)["calibration"]["scored"] == 0


def test_pretraining_feeds_other_viewers_under_their_own_ids() -> None:
    seen: list[ActionObserved] = []
    policy = make_policy("markov", {})
    recorder = RecordingPolicy(policy)
    recorder.inner.observe = seen.append  # type: ignore[method-assign]
    fed = pretrain(recorder.inner, Trace((viewer("w d", think=1.0),)))
    assert fed == 2
    assert [(e.session_id, e.memory_id, e.history, e.action) for e in seen] == [
        ("train:s1", "train:m1", (), "w"), ("train:s1", "train:m1", ("w",), "d")]  # fmt: skip
