"""KnownTree's shortcuts equal what they stand for (Hypothesis).

``ancestry`` / ``family`` build the tuples the live state holds per job and per demand without
generators (``subtree`` / ``children`` / ``roots`` are built as lists too); ``is_ancestry`` /
``is_family`` / ``holds`` tell whether a tuple taken earlier is still what they would build
now, so that ``Changes._moved_memories`` takes a job's or a demand's nodes again only when they
moved. Each is checked against a plain walk over the nodes put (the references below), over
random puts (children, roots, parents known later) and state changes.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.live.tree import KnownNode, KnownTree

POSES = ("p0", "p1", "p2")
STATES = ("ready", "running", "failed", "pending")


def _walk_up(tree: KnownTree, chunk_id: str | None, depth: int) -> tuple[KnownNode, ...]:
    """Reference: the node and up to ``depth`` known ancestors, nearest first."""
    out: list[KnownNode] = []
    node = tree.get(chunk_id)
    for _ in range(depth + 1):
        if node is None:
            break
        out.append(node)
        node = tree.get(node.parent_id)
    return tuple(out)


def _kids(tree: KnownTree, put: list[KnownNode], parent: str | None) -> list[KnownNode]:
    """Reference: the children of ``parent`` (roots for None) in put order, as they are now."""
    return [n for p in put if p.parent_id == parent and (n := tree.get(p.chunk_id)) is not None]


def _family(tree: KnownTree, put: list[KnownNode], chunk_id: str | None) -> tuple[KnownNode, ...]:
    """Reference: the node and its children (the roots for None)."""
    if chunk_id is None:
        return tuple(_kids(tree, put, None))
    node = tree.get(chunk_id)
    return (node, *_kids(tree, put, chunk_id)) if node is not None else ()


def _subtree(
    tree: KnownTree, put: list[KnownNode], chunk_id: str | None, depth: int
) -> tuple[KnownNode, ...]:
    """Reference: the node and its descendants to ``depth`` levels, level by level."""
    node = tree.get(chunk_id)
    if node is None:
        return ()
    out, level = [], [node]
    for _ in range(depth + 1):
        out.extend(level)
        level = [k for n in level for k in _kids(tree, put, n.chunk_id)]
    return tuple(out)


def _same(a: tuple[KnownNode, ...], b: tuple[KnownNode, ...]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


# One operation: put a child of the i-th known node (or a root, or under a parent id not known
# yet), or move the i-th known node to a state; then look again at what was taken before.
_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("put"),
            st.one_of(st.sampled_from([-1, -2]), st.integers(0, 30)),  # roots often enough
            st.sampled_from(POSES),
            st.sampled_from(STATES),
        ),
        st.tuples(st.just("set"), st.integers(0, 30), st.sampled_from(STATES), st.just("")),
        st.tuples(st.just("take"), st.integers(0, 30), st.integers(0, 3), st.just("")),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=_ops)
def test_shortcuts_equal_the_plain_walks(ops: list[tuple[str, int, object, str]]) -> None:
    tree = KnownTree("m")
    ids: list[str] = []
    taken: list[tuple[str, int, tuple[KnownNode, ...], tuple[KnownNode, ...]]] = []
    roots: list[tuple[tuple[KnownNode, ...], str | None]] = []  # families of None / unknowns
    put: list[KnownNode] = []  # every node put, in order
    for n, (op, i, arg, state) in enumerate(ops):
        if op == "put":
            # -1: a root; -2: a child of a parent not known yet (known later, or never).
            parent = (
                None if i == -1 else f"c{n + 2}" if i == -2 else ids[i % len(ids)] if ids else None
            )
            pose = str(arg)
            if tree.by_key(("m", parent, pose)) is not None:
                continue
            node = KnownNode(f"c{n}", "m", parent, pose, None, state,  # type: ignore[arg-type]
                             0 if parent is None else 1)  # fmt: skip
            tree.put(node)
            ids.append(node.chunk_id)
            put.append(node)
        elif op == "set" and ids:
            tree.set_state(ids[i % len(ids)], arg, float(n))  # type: ignore[arg-type]
        elif op == "take" and ids:
            cid, depth = ids[i % len(ids)], int(arg)  # type: ignore[call-overload]
            taken.append((cid, depth, tree.ancestry(cid, depth), tree.family(cid)))
            roots.append((tree.family(None), None))
            roots.append((tree.family(f"c{n + 2}"), f"c{n + 2}"))  # perhaps known later
        for cid, depth, held, fam in taken:
            now = _walk_up(tree, cid, depth)
            assert _same(tree.ancestry(cid, depth), now)
            assert tree.is_ancestry(held, depth) == _same(held, now)
            assert tree.holds(fam) == all(tree.get(x.chunk_id) is x for x in fam)
            assert tree.is_family(fam, cid) == _same(fam, _family(tree, put, cid))
        for fam, parent in roots:
            assert tree.is_family(fam, parent) == _same(fam, _family(tree, put, parent))
        for cid in [*ids[-3:], None, "unknown"]:
            assert _same(tree.family(cid), _family(tree, put, cid))
            assert _same(tuple(tree.roots()), _family(tree, put, None))
            if cid is not None:
                assert _same(tuple(tree.children(cid)), tuple(_kids(tree, put, cid)))
            for depth in (-1, 0, 1, 2, 3):
                assert _same(tree.ancestry(cid, depth), _walk_up(tree, cid, depth))
                assert _same(tuple(tree.ancestors(cid, depth)), _walk_up(tree, cid, depth))
                if cid is not None:
                    want = _subtree(tree, put, cid, depth)
                    assert _same(tuple(tree.subtree(cid, depth)), want)
