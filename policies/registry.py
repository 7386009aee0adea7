"""Pick a policy by name: the built-ins, or an operator's own as ``"package.module:attr"``.

The config (``rewind.toml`` ``[speculation] policy = "markov"`` plus a params table) and the
simulator's ``--policy`` both go through ``make_policy``, so every error an operator can make
is a ``ValueError`` whose message says what was wrong and which built-ins exist.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping

from policies.base import NextActionModel, Policy
from policies.lookahead import LookaheadPolicy
from policies.markov import MarkovPolicy
from policies.none import NonePolicy
from policies.oracle import OraclePolicy
from policies.uniform import UniformPolicy

__all__ = [
    "BUILTIN",
    "PolicyFactory",
    "available_policies",
    "children_free",
    "make_policy",
    "time_free",
]

PolicyFactory = Callable[..., Policy]
"""A class or function that takes the policy's params as keyword arguments and returns a Policy."""

BUILTIN: dict[str, PolicyFactory] = {
    "none": NonePolicy,
    "uniform": UniformPolicy,
    "markov": MarkovPolicy,
    "lookahead": LookaheadPolicy,
    "oracle": OraclePolicy,
}
"""Built-in policies by registry name (the name each policy object reports as ``.name``)."""

_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_ATTR = _MODULE  # attribute paths may be dotted too: "pkg.mod:Outer.factory"


_TIME_FREE = (NonePolicy, UniformPolicy, MarkovPolicy, OraclePolicy)
_CHILDREN_FREE = (NonePolicy, UniformPolicy, MarkovPolicy, OraclePolicy)


def time_free(policy: Policy) -> bool:
    """True for built-in policies whose proposals ignore ``ctx.now`` and the session's
    timestamps (read from their code: they depend on history, cursor children, actions, depth
    and what they observed), so a host may reuse their answers until one of those changes
    (``orchestrator.live.proposals``). An operator's own policy is assumed not to be."""
    if isinstance(policy, LookaheadPolicy):
        return time_free(policy.base)
    return type(policy) in _TIME_FREE


def children_free(policy: Policy) -> bool:
    """True for built-in policies whose proposals never read ``ctx.children`` (the states of
    the cursor's children): none, uniform, markov and the oracle read the session's history,
    ``ctx.actions``, ``ctx.max_depth`` and what they observed; lookahead passes the children on
    only to a base that is not a ``NextActionModel`` (``LookaheadPolicy._next``), so it is
    children-free when its base is a ``NextActionModel`` or itself children-free. A host need
    not ask such a policy again when only those states changed (``orchestrator.live.
    proposals``). An operator's own policy is assumed to read them."""
    if isinstance(policy, LookaheadPolicy):
        return isinstance(policy.base, NextActionModel) or children_free(policy.base)
    return type(policy) in _CHILDREN_FREE


def available_policies() -> list[str]:
    """Names of the built-in policies, sorted."""
    return sorted(BUILTIN)


def _builtins_hint() -> str:
    return (
        f"built-in policies: {', '.join(available_policies())}; "
        "or 'package.module:attr' for your own class or factory"
    )


def _load(spec: str) -> PolicyFactory:
    """Import ``module`` and walk ``attr`` of a ``"module:attr"`` spec."""
    module_name, _, attr_path = spec.partition(":")
    if not _MODULE.fullmatch(module_name) or not _ATTR.fullmatch(attr_path):
        raise ValueError(
            f"policy spec {spec!r} is not 'package.module:attr' (e.g. 'mypkg.policies:MyPolicy'); "
            + _builtins_hint()
        )
    try:
        obj: object = importlib.import_module(module_name)
    except Exception as err:  # operator code may fail on import with anything
        raise ValueError(
            f"cannot import module {module_name!r} for policy {spec!r}: "
            f"{type(err).__name__}: {err}; " + _builtins_hint()
        ) from err
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise ValueError(
                f"module {module_name!r} has no attribute {attr_path!r} (policy {spec!r}); "
                + _builtins_hint()
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(
            f"policy {spec!r} is a {type(obj).__name__}, not a class or factory; "
            + _builtins_hint()
        )
    factory: PolicyFactory = obj
    return factory


def _check_params(spec: str, factory: PolicyFactory, params: Mapping[str, object]) -> None:
    """Reject unknown or missing parameter names before calling, with the accepted names."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return  # not introspectable (e.g. a C callable): the call itself will complain
    try:
        signature.bind(**params)
    except TypeError as err:
        accepted = ", ".join(
            p.name
            for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        )
        raise ValueError(
            f"bad params for policy {spec!r}: {err}; accepted: {accepted or 'none'}; "
            + _builtins_hint()
        ) from err


def make_policy(spec: str, params: Mapping[str, object] | None = None) -> Policy:
    """Build the policy ``spec`` with ``params`` as keyword arguments.

    Args:
        spec: a built-in name (``available_policies()``; case and surrounding spaces ignored) or
            ``"package.module:attr"`` naming an importable class or factory (``attr`` may be
            dotted). The module must be importable from ``sys.path``.
        params: keyword arguments for the class or factory (default none: its defaults), e.g.
            ``{"order": 2, "top_k": 4}`` for ``markov``. Each built-in documents its own.

    Returns:
        A new policy object: has a ``name`` (str) and callable ``propose`` and ``observe``.

    Raises:
        ValueError: unknown name, malformed spec, import failure, missing attribute, unknown or
            invalid params, a factory that raised, or a result that is not a Policy. The message
            names the problem and lists the built-ins.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"policy must be a non-empty string (got {spec!r}); " + _builtins_hint())
    spec = spec.strip()
    if params is None:
        params = {}
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise ValueError(f"params for policy {spec!r} must be a mapping of names to values")

    if ":" in spec:
        factory = _load(spec)
    elif spec.lower() in BUILTIN:
        spec = spec.lower()
        factory = BUILTIN[spec]
    else:
        raise ValueError(f"unknown policy {spec!r}; " + _builtins_hint())

    _check_params(spec, factory, params)
    try:
        policy: object = factory(**params)
    except (TypeError, ValueError) as err:
        raise ValueError(f"policy {spec!r}: {err}; " + _builtins_hint()) from err

    missing = [m for m in ("propose", "observe") if not callable(getattr(policy, m, None))]
    name = getattr(policy, "name", None)
    if missing or not isinstance(name, str) or not name:
        problems = [f"no callable {m}()" for m in missing]
        if not isinstance(name, str) or not name:
            problems.append("no non-empty str attribute 'name'")
        raise ValueError(
            f"policy {spec!r} built a {type(policy).__name__} that is not a Policy "
            f"({'; '.join(problems)}); see policies.base.Policy; " + _builtins_hint()
        )
    assert isinstance(policy, Policy)  # runtime_checkable: the members checked just above
    return policy
