"""The registry: built-in names, an operator's own policy as "module:attr", clear errors.
Also the ``none`` baseline, which is too small for a file of its own."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.core.poses import ACTION_NAMES
from orchestrator.core.types import ActionObserved, PolicyContext, SessionView
from policies import Policy, available_policies, make_policy
from policies.lookahead import LookaheadPolicy
from policies.markov import MarkovPolicy
from policies.none import NonePolicy
from policies.registry import BUILTIN
from policies.uniform import UniformPolicy

BUILTINS = ["lookahead", "markov", "none", "oracle", "uniform"]
MODULE = "rewind_ops_policies_for_tests"

OPS_SOURCE = """
from orchestrator.core.types import Proposal


class AlwaysForward:
    name = "always-forward"

    def __init__(self, p: float = 0.9) -> None:
        self.p = p
        self.seen = 0

    def propose(self, ctx):
        return [Proposal(ctx.session.session_id, ("w",), self.p)]

    def observe(self, event):
        self.seen += 1


def make_forward(p: float = 0.5) -> AlwaysForward:
    return AlwaysForward(p=p)


class Holder:
    factory = AlwaysForward


class NoObserve:
    name = "no-observe"

    def propose(self, ctx):
        return []


class NoName:
    def propose(self, ctx):
        return []

    def observe(self, event):
        pass


class Fussy:
    name = "fussy"

    def __init__(self, level: int = 1) -> None:
        if level > 3:
            raise ValueError("level must be <= 3")

    def propose(self, ctx):
        return []

    def observe(self, event):
        pass


NOT_CALLABLE = 42
"""


@pytest.fixture
def ops_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An operator's own policy module, importable from a temporary sys.path entry."""
    (tmp_path / f"{MODULE}.py").write_text(textwrap.dedent(OPS_SOURCE))
    (tmp_path / "rewind_broken_policy_for_tests.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield MODULE
    sys.modules.pop(MODULE, None)
    sys.modules.pop("rewind_broken_policy_for_tests", None)


def make_ctx() -> PolicyContext:
    session = SessionView("s1", "m1", "c0", 0.0, 0.0, ("w",), "none")
    return PolicyContext(session, (("w",),), {"w": "ready"}, ACTION_NAMES, 2, 0.0)


# -- built-ins --------------------------------------------------------------------------------


def test_available_policies() -> None:
    assert available_policies() == BUILTINS
    assert sorted(BUILTIN) == BUILTINS


@pytest.mark.parametrize("name", [n for n in BUILTINS if n != "oracle"])
def test_every_builtin_builds_with_defaults_and_reports_its_name(name: str) -> None:
    policy = make_policy(name)
    assert isinstance(policy, Policy)
    assert policy.name == name
    policy.observe(ActionObserved("s1", "m1", (), "w"))
    proposals = policy.propose(make_ctx())
    assert all(p.session_id == "s1" and p.path[0] in ACTION_NAMES for p in proposals)


def test_oracle_builds_with_a_future() -> None:
    assert make_policy("oracle", {"future": {"s1": ["w"]}}).name == "oracle"


def test_names_are_case_and_space_insensitive_and_params_are_passed() -> None:
    policy = make_policy("  Markov ", {"order": 1, "top_k": 2})
    assert isinstance(policy, MarkovPolicy)
    assert (policy.order, policy.top_k) == (1, 2)
    assert isinstance(make_policy("uniform", {"k": 2}), UniformPolicy)
    assert isinstance(make_policy("lookahead", {"base": "uniform"}), LookaheadPolicy)


def test_each_call_builds_a_new_object() -> None:
    assert make_policy("markov") is not make_policy("markov")


def test_none_policy_proposes_nothing_and_learns_nothing() -> None:
    policy = NonePolicy()
    assert isinstance(policy, Policy)
    assert policy.name == "none"
    policy.observe(ActionObserved("s1", "m1", (), "w"))
    assert policy.propose(make_ctx()) == []


# -- an operator's own policy -----------------------------------------------------------------


def test_module_attr_class(ops_module: str) -> None:
    policy = make_policy(f"{ops_module}:AlwaysForward", {"p": 0.7})
    assert policy.name == "always-forward"
    assert [(p.path, p.probability) for p in policy.propose(make_ctx())] == [(("w",), 0.7)]


def test_module_attr_factory_and_dotted_attr(ops_module: str) -> None:
    assert make_policy(f"{ops_module}:make_forward").propose(make_ctx())[0].probability == 0.5
    assert make_policy(f"{ops_module}:Holder.factory").name == "always-forward"


def test_a_builtin_module_path_works_too() -> None:
    assert isinstance(make_policy("policies.markov:MarkovPolicy", {"order": 1}), MarkovPolicy)


# -- errors -----------------------------------------------------------------------------------


def assert_lists_builtins(err: pytest.ExceptionInfo[ValueError]) -> None:
    assert "built-in policies: lookahead, markov, none, oracle, uniform" in str(err.value)


def test_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown policy 'markof'") as err:
        make_policy("markof")
    assert_lists_builtins(err)


@pytest.mark.parametrize("spec", ["", "   ", ":Cls", "pkg.mod:", "pkg..mod:X", "a:b:c", "a-b:C"])
def test_malformed_specs(spec: str) -> None:
    with pytest.raises(ValueError) as err:
        make_policy(spec)
    assert_lists_builtins(err)


def test_missing_module() -> None:
    with pytest.raises(ValueError, match=r"cannot import module 'no_such_pkg\.mod'") as err:
        make_policy("no_such_pkg.mod:Policy")
    assert_lists_builtins(err)


def test_module_failing_on_import(ops_module: str) -> None:
    with pytest.raises(ValueError, match="RuntimeError: boom") as err:
        make_policy("rewind_broken_policy_for_tests:X")
    assert_lists_builtins(err)


def test_missing_attribute(ops_module: str) -> None:
    with pytest.raises(ValueError, match="has no attribute 'Nope'") as err:
        make_policy(f"{ops_module}:Nope")
    assert_lists_builtins(err)


def test_not_callable(ops_module: str) -> None:
    with pytest.raises(ValueError, match="not a class or factory"):
        make_policy(f"{ops_module}:NOT_CALLABLE")


@pytest.mark.parametrize(
    "attr, problem",
    [("NoObserve", "no callable observe"), ("NoName", "attribute 'name'")],
)
def test_result_must_satisfy_the_protocol(ops_module: str, attr: str, problem: str) -> None:
    with pytest.raises(ValueError, match="is not a Policy") as err:
        make_policy(f"{ops_module}:{attr}")
    assert problem in str(err.value)


def test_unknown_param_names_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match="bad params for policy 'uniform'") as err:
        make_policy("uniform", {"kk": 3})
    assert "accepted: k, actions" in str(err.value)
    assert_lists_builtins(err)


def test_builtin_without_params_rejects_any() -> None:
    with pytest.raises(ValueError, match="accepted: none"):
        make_policy("none", {"k": 1})


def test_invalid_param_value_is_reported_with_the_policy(ops_module: str) -> None:
    with pytest.raises(ValueError, match="policy 'markov': order must be"):
        make_policy("markov", {"order": -2})
    with pytest.raises(ValueError, match="level must be <= 3"):
        make_policy(f"{ops_module}:Fussy", {"level": 9})


def test_params_must_be_a_mapping_of_names() -> None:
    with pytest.raises(ValueError, match="mapping"):
        make_policy("uniform", [("k", 2)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mapping"):
        make_policy("uniform", {1: 2})  # type: ignore[dict-item]
