"""Regimes, the simulate()/synth_traces() entry points, determinism and proposal caching."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.sim.engine import Simulation
from orchestrator.sim.metrics import percentile
from orchestrator.sim.regime import (
    REPO_REGIMES,
    RegimeError,
    apply_budget_overrides,
    load_regime,
)
from orchestrator.sim.run import (
    build_policy,
    parse_budget_overrides,
    policy_names,
    simulate,
    synth_traces,
)
from orchestrator.sim.synth import synthesize
from orchestrator.sim.trace import Trace, read_trace

SHIPPED = ("a100", "short", "crowd")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_regimes_load_and_cite_sources(name: str) -> None:
    r = load_regime(name)
    assert r.name == name and r.budget.max_containers == r.pool.max_containers
    text = (REPO_REGIMES / f"{name}.toml").read_text()
    assert "Sources:" in text and "[seed]" in text
    assert r.generation.min_gpu_s <= r.generation.mean <= r.generation.max_gpu_s
    assert r.timing.chunk_duration_s == pytest.approx(r.frames / r.fps)


def test_regime_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(RegimeError, match="no regime 'nope'; shipped regimes: a100, crowd"):
        load_regime("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[pool]\nmax_containers = 2\nslots = 3\n')
    with pytest.raises(RegimeError, match=r"unknown key\(s\) \['slots'\]"):
        load_regime(path=bad)
    bad.write_text("[budget]\nmax_containers = 2\n")
    with pytest.raises(RegimeError, match=r"set max_containers in \[pool\]"):
        load_regime(path=bad)
    bad.write_text("[generation]\ndistribution = 'normal'\n")
    with pytest.raises(RegimeError, match="fixed, uniform or lognormal"):
        load_regime(path=bad)
    ok = tmp_path / "mine.toml"
    ok.write_text("[pool]\nmax_containers = 3\n[policies.markov]\ntop_k = 2\n")
    mine = load_regime(path=ok)
    assert mine.name == "mine" and mine.budget.max_containers == 3
    assert mine.params_for("Markov") == {"top_k": 2}


def test_budget_overrides() -> None:
    r = apply_budget_overrides(load_regime("short"), {"rate_gpu_s_per_s": 0.5, "max_depth": 3})
    assert r.budget.rate_gpu_s_per_s == 0.5 and r.budget.max_depth == 3
    r = apply_budget_overrides(r, {"max_containers": 2})
    assert r.pool.max_containers == 2 and r.pool.warm_containers <= 2
    with pytest.raises(RegimeError, match="unknown budget field 'rate'"):
        apply_budget_overrides(r, {"rate": 1.0})
    with pytest.raises(RegimeError, match="max_depth must be an integer"):
        apply_budget_overrides(r, {"max_depth": 1.5})


def test_parse_budget_overrides() -> None:
    assert parse_budget_overrides("rate_gpu_s_per_s=0.5, max_depth=3") == {
        "rate_gpu_s_per_s": 0.5,
        "max_depth": 3.0,
    }
    assert parse_budget_overrides(None) == {} and parse_budget_overrides("") == {}
    with pytest.raises(ValueError, match="'max_depth' is not NAME=NUMBER"):
        parse_budget_overrides("max_depth")
    with pytest.raises(ValueError, match="'a=b' is not NAME=NUMBER"):
        parse_budget_overrides("a=b")


def test_policy_names_add_the_baselines() -> None:
    bounds = ["clairvoyant", "clairvoyant-arrived", "serial-chain"]
    assert policy_names(["markov,uniform", "Markov"]) == ["markov", "uniform", "none", "oracle",
                                                          *bounds]  # fmt: skip
    assert policy_names(["oracle", "none"]) == ["oracle", "none", *bounds]


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)


@pytest.fixture
def small_config(tmp_path: Path) -> Path:
    """The short regime with a 3-point sweep (keeps the test fast)."""
    text = (REPO_REGIMES / "short.toml").read_text()
    text = re.sub(r"rate_gpu_s_per_s = \[[^\]]*\]", "rate_gpu_s_per_s = [0.0, 4.0, 16.0]", text)
    path = tmp_path / "small.toml"
    path.write_text(text)
    return path


def test_simulate_writes_json_table_and_plot(
    tmp_path: Path, small_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "t.jsonl"
    assert synth_traces(trace, regime="short", sessions=5, steps_min=3, steps_max=5) == 5
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    report = simulate(
        trace, ["markov"], config=small_config, budget_overrides={"max_depth": 1}, seed=1,
        out=out, plot=png, sweep_budget=True,
    )  # fmt: skip
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert png.stat().st_size > 1000
    assert list(report["policies"]) == [
        "markov",
        "none",
        "oracle",
        "clairvoyant",
        "clairvoyant-arrived",
        "serial-chain",
    ]
    assert report["budget"]["max_depth"] == 1 and report["trace"]["sessions"] == 5
    markov = report["policies"]["markov"]
    for key in ("hit_rate", "wait_p99_s", "gpu_s_per_served_chunk", "usd_per_viewer_hour"):
        assert key in markov and key in markov["vs_none"] and key in markov["vs_oracle"]
    assert report["policies"]["none"]["vs_none"]["wait_mean_s"] == 1.0
    assert [p["rate_gpu_s_per_s"] for p in report["sweep"]["markov"]] == [0.0, 4.0, 16.0]
    assert len(report["sweep"]["none"]) == len(report["sweep"]["clairvoyant"]) == 1
    # the honest oracle is at least as good as the oracle policy, the lower bound better still
    waits = {n: report["policies"][n]["wait_mean_s"] for n in report["policies"]}
    reference = report["policies"]["markov"]["oracle_reference"]
    assert waits[reference] == min(waits["oracle"], waits["clairvoyant"])
    assert waits["serial-chain"] <= waits[reference] + 1e-9
    assert waits["serial-chain"] <= waits["clairvoyant-arrived"] + 1e-9
    assert "arrived_reduction_share" in report["policies"]["markov"]
    printed = capsys.readouterr().out
    assert "markov" in printed and "mean wait vs none (x)" in printed


def test_same_seed_same_json_and_another_seed_differs(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    synth_traces(trace, regime="short", sessions=6, steps_min=4, steps_max=6, seed=2)
    outs = [tmp_path / f"{i}.json" for i in range(3)]
    for out, seed in zip(outs, (7, 7, 8), strict=True):
        simulate(trace, ["uniform", "markov"], regime="short", seed=seed, out=out)
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert outs[0].read_bytes() != outs[2].read_bytes()
    assert read_trace(trace).meta is not None


@pytest.mark.parametrize("policy", ["markov", "lookahead", "uniform"])
def test_proposal_cache_changes_nothing(policy: str) -> None:
    r = load_regime("crowd")
    trace = Trace(tuple(synthesize(replace(r.synth, sessions=8, steps_min=3, steps_max=5))))
    results = [
        Simulation(trace, r, build_policy(policy, r, trace), 3, cache_proposals=cache).run()
        for cache in (True, False)
    ]
    assert results[0] == results[1]


def test_pooled_runs_weigh_waits_by_requests_and_sum_the_bill() -> None:
    from orchestrator.sim.metrics import pool_runs
    from orchestrator.sim.run import run_one
    from tests.unit.sim.test_engine import regime, viewer

    reg = regime(g=10.0, think=2.0, slots=2)
    one = run_one(Trace((viewer("w", think=2.0),)), reg, "markov", 0)
    three = run_one(Trace((viewer("w d d", think=2.0),)), reg, "markov", 0)
    pooled = pool_runs([one, three])
    assert pooled["requests"] == 4 and pooled["pooled_runs"] == 2
    assert pooled["wait_mean_s"] == pytest.approx(
        (one["wait_mean_s"] * 1 + three["wait_mean_s"] * 3) / 4
    )
    assert pooled["gpu_s_billed"] == pytest.approx(one["gpu_s_billed"] + three["gpu_s_billed"])
    cal = pooled["calibration"]
    assert cal["scored"] == 4
    assert sum(row["n"] for row in cal["reliability"]) == sum(
        row["n"] for m in (one, three) for row in m["calibration"]["reliability"]
    )
    with pytest.raises(ValueError, match="at least one"):
        pool_runs([])
