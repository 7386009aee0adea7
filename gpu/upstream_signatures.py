"""Regenerate ``gpu/upstream_signatures.json`` from an HY-WorldPlay checkout (``ast``, no torch).

Usage::

    git clone https://github.com/Tencent-Hunyuan/HY-WorldPlay /tmp/hy && \\
      git -C /tmp/hy checkout <commit>
    uv run python -m gpu.upstream_signatures /tmp/hy            # writes the snapshot
    uv run python -m gpu.upstream_signatures /tmp/hy --check    # exit 1 if it differs

For each upstream function the adapter (``gpu/worldplay.py``) calls, the snapshot records its
parameters (name, kind, whether it has a default), whether it takes ``**kwargs``, the keys its
body reads from ``kwargs`` (``kwargs.get("x")``) and, for functions taking an ``args`` object,
the attributes read from it (``args.x``; ``getattr(args, "x", default)`` counts as optional).
It also records the names each upstream module defines at top level (what ``from m import n``
may import) and the checkpoint paths ``download_models.py`` prints.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).with_name("upstream_signatures.json")

FUNCTIONS: dict[str, tuple[str, str]] = {
    "HunyuanVideo_1_5_Pipeline.create_pipeline": (
        "hyvideo/pipelines/worldplay_video_pipeline.py",
        "HunyuanVideo_1_5_Pipeline.create_pipeline",
    ),
    "HunyuanVideo_1_5_Pipeline.__call__": (
        "hyvideo/pipelines/worldplay_video_pipeline.py",
        "HunyuanVideo_1_5_Pipeline.__call__",
    ),
    "pose_to_input": ("hyvideo/generate.py", "pose_to_input"),
    "initialize_infer_state": ("hyvideo/commons/infer_state.py", "initialize_infer_state"),
    "initialize_parallel_state": (
        "hyvideo/commons/parallel_states.py",
        "initialize_parallel_state",
    ),
}
MODULES = (
    "hyvideo/generate.py",
    "hyvideo/commons/infer_state.py",
    "hyvideo/commons/parallel_states.py",
    "hyvideo/pipelines/worldplay_video_pipeline.py",
)


def _find(tree: ast.Module, dotted: str) -> ast.FunctionDef:
    body: list[ast.stmt] = tree.body
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        for node in body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name == part:
                if i == len(parts) - 1 and isinstance(node, ast.FunctionDef):
                    return node
                body = node.body
                break
        else:
            raise KeyError(f"{dotted} not found")
    raise KeyError(f"{dotted} is not a function")


def _params(fn: ast.FunctionDef) -> list[dict[str, Any]]:
    a = fn.args
    positional = a.posonlyargs + a.args
    first_default = len(positional) - len(a.defaults)
    out = [
        {"name": p.arg, "kind": "positional", "default": i >= first_default}
        for i, p in enumerate(positional)
    ]
    out += [
        {"name": p.arg, "kind": "keyword_only", "default": d is not None}
        for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)
    ]
    return [p for p in out if p["name"] not in ("self", "cls")]


def _reads(fn: ast.FunctionDef, obj: str) -> tuple[list[str], list[str]]:
    """(attributes read as ``obj.x``, names read as ``getattr(obj, "x", ...)`` / ``obj.get``)."""
    required: set[str] = set()
    optional: set[str] = set()
    for node in ast.walk(fn):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == obj
            and node.attr != "get"
        ):
            required.add(node.attr)
        if isinstance(node, ast.Call) and node.args:
            target = node.args[0]
            key = node.args[1] if len(node.args) > 1 else None
            if (
                isinstance(node.func, ast.Name)
                and node.func.id == "getattr"
                and isinstance(target, ast.Name)
                and target.id == obj
                and isinstance(key, ast.Constant)
                and isinstance(key.value, str)
            ):
                optional.add(key.value)
            if (
                isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == obj
                and isinstance(node.args[0], ast.Constant)
            ):
                optional.add(str(node.args[0].value))
    return sorted(required), sorted(optional - required)


def _top_level_names(tree: ast.Module) -> list[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return sorted(names)


def _checkpoints(tree: ast.Module) -> list[str]:
    """``<x>/diffusion_pytorch_model.safetensors`` paths in ``download_models.py``'s f-strings."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if text.endswith(".safetensors") and text.startswith("/"):
                found.add(text.lstrip("/"))
    return sorted(found)


def snapshot(root: Path) -> dict[str, Any]:
    """The snapshot of the checkout at ``root`` (a dict ready for JSON)."""
    trees: dict[str, ast.Module] = {}

    def tree(rel: str) -> ast.Module:
        if rel not in trees:
            trees[rel] = ast.parse((root / rel).read_text(), filename=rel)
        return trees[rel]

    functions: dict[str, Any] = {}
    for name, (rel, dotted) in FUNCTIONS.items():
        fn = _find(tree(rel), dotted)
        attrs, optional_attrs = _reads(fn, "args")
        _, kwargs_read = _reads(fn, "kwargs")
        functions[name] = {
            "module": rel,
            "params": _params(fn),
            "var_kwargs": fn.args.kwarg is not None,
            "kwargs_read": kwargs_read,
            "args_attributes": attrs,
            "args_optional_attributes": optional_attrs,
        }
    commit = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "repo": "Tencent-Hunyuan/HY-WorldPlay",
        "commit": commit,
        "functions": functions,
        "modules": {rel: _top_level_names(tree(rel)) for rel in MODULES},
        "checkpoints": _checkpoints(tree("download_models.py")),
        "root_modules": sorted(
            p.stem if p.suffix == ".py" else p.name
            for p in root.iterdir()
            if p.suffix == ".py" or (p / "__init__.py").exists()
        ),
    }


CALLS: dict[str, str] = {
    "create_pipeline": "HunyuanVideo_1_5_Pipeline.create_pipeline",
    "_pipe": "HunyuanVideo_1_5_Pipeline.__call__",
    "_pose_to_input": "pose_to_input",
    "pose_to_input": "pose_to_input",
    "initialize_infer_state": "initialize_infer_state",
    "initialize_parallel_state": "initialize_parallel_state",
}
"""How the adapter names each upstream function at its call sites."""
THIRD_PARTY = frozenset({"torch", "huggingface_hub", "safetensors", "sys", "os", "argparse"})
"""What ``load()`` may import besides upstream's own modules."""


def _callee(node: ast.Call) -> str | None:
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
    return CALLS.get(name) if name else None


def _check_call(node: ast.Call, spec: dict[str, Any], key: str) -> list[str]:
    params = {p["name"]: p for p in spec["params"]}
    problems = []
    for kw in node.keywords:
        if kw.arg is None:
            problems.append(f"{key}: **-unpacking hides the keywords from this check")
        elif kw.arg not in params and kw.arg not in spec["kwargs_read"]:
            problems.append(f"{key} has no parameter {kw.arg!r} (line {node.lineno})")
    given = {kw.arg for kw in node.keywords}
    positional = [p for p in spec["params"] if p["kind"] == "positional"]
    if len(node.args) > len(positional):
        problems.append(f"{key} takes {len(positional)} positional arguments, got {len(node.args)}")
    given |= {p["name"] for p in positional[: len(node.args)]}
    for p in spec["params"]:
        if not p["default"] and p["name"] not in given:
            problems.append(f"{key}: required parameter {p['name']!r} is not passed")
    return problems


def _namespace_keywords(tree: ast.Module) -> set[str] | None:
    """Keywords of the Namespace given to ``initialize_infer_state`` (inline or via a helper)."""

    def namespace_in(node: ast.AST) -> set[str] | None:
        for call in ast.walk(node):
            if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "Namespace":
                return {kw.arg for kw in call.keywords if kw.arg}
        return None

    helpers = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and _callee(call) == "initialize_infer_state" and call.args:
            arg = call.args[0]
            if (
                isinstance(arg, ast.Call)
                and isinstance(arg.func, ast.Name)
                and arg.func.id in helpers
            ):
                return namespace_in(helpers[arg.func.id])
            return namespace_in(arg)
    return None


def adapter_problems(source: str, snap: dict[str, Any]) -> list[str]:
    """What in the adapter's source does not fit the snapshot (empty when it all fits).

    Checks every ``from hyvideo... import name`` against the module's top-level names, every
    call to an upstream function (``CALLS``) against its parameters (unknown keywords, missing
    required ones, too many positional arguments), and that ``infer_args()`` provides every
    attribute ``initialize_infer_state`` reads from its ``args`` (and nothing it never reads).
    """
    tree = ast.parse(source)
    problems: list[str] = []
    for fn in ast.walk(tree):  # lazy imports inside load(): upstream's, or the few allowed
        if isinstance(fn, ast.FunctionDef) and fn.name == "load":
            for node in ast.walk(fn):
                names = (
                    [a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                )  # fmt: skip
                for name in names:
                    top = name.split(".")[0]
                    if top not in snap["root_modules"] and top not in THIRD_PARTY:
                        problems.append(f"upstream has no top-level module {top!r}")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hyvideo"):
            rel = (node.module or "").replace(".", "/") + ".py"
            names = snap["modules"].get(rel)
            if names is None:
                problems.append(f"upstream has no module {node.module} in the snapshot")
                continue
            problems += [
                f"{node.module} defines no {a.name!r}" for a in node.names if a.name not in names
            ]
        if isinstance(node, ast.Call) and (key := _callee(node)) is not None:
            problems += _check_call(node, snap["functions"][key], key)
    spec = snap["functions"]["initialize_infer_state"]
    provided = _namespace_keywords(tree)
    if provided is None:
        return [*problems, "initialize_infer_state is not called with an argparse.Namespace"]
    problems += [
        f"the Namespace lacks {a!r}, read by initialize_infer_state"
        for a in spec["args_attributes"]
        if a not in provided
    ]
    known = set(spec["args_attributes"]) | set(spec["args_optional_attributes"])
    problems += [f"the Namespace sets {a!r}, which upstream never reads" for a in provided - known]
    return problems


def main(argv: list[str] | None = None) -> int:
    """Write (or ``--check``) the snapshot; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="an HY-WorldPlay working tree")
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--out", type=Path, default=SNAPSHOT)
    ns = parser.parse_args(argv)
    text = json.dumps(snapshot(ns.checkout), indent=1, sort_keys=True) + "\n"
    if ns.check:
        same = ns.out.read_text() == text
        print("snapshot up to date" if same else f"{ns.out} differs from {ns.checkout}")
        return 0 if same else 1
    ns.out.write_text(text)
    print(f"wrote {ns.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
