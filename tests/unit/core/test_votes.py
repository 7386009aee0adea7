"""The incremental vote index (orchestrator.core.votes) against the plain computation."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.core import vote_runs
from orchestrator.core.frontier import (
    active_by_id,
    collect_votes,
    probability,
    ranked,
    warm_gpu_s,
)
from orchestrator.core.poses import action_to_pose
from orchestrator.core.roster import Roster
from orchestrator.core.tree import Key, TreeIndex
from orchestrator.core.types import (
    BucketState,
    Budget,
    NodeState,
    PlanInput,
    Proposal,
    SessionView,
    Timing,
    TreeNode,
)
from orchestrator.core.votes import VoteIndex

ACTS = ("w", "a", "d", "left", "right", "w+left")
PROBS = (0.0, 0.04, 0.1, 0.2, 0.25, 0.5, 0.5, 0.5, 0.9, 1.0, 1.0, 1.3)


def pose(action: str) -> str:
    return str(action_to_pose(action))


def world(rnd: random.Random) -> tuple[tuple[TreeNode, ...], list[SessionView], float]:
    """One memory's tree (all states), sessions on its ready chunks, ``now``."""
    nodes = {"r": TreeNode("r", "m", None, pose("w"), "w", "ready", 0)}
    for _ in range(rnd.randint(0, 14)):
        parent = rnd.choice([c for c, n in nodes.items() if n.state == "ready"])
        a = rnd.choice(ACTS)
        state: NodeState = rnd.choice(("ready", "ready", "ready", "running", "failed"))
        nodes.setdefault(f"{parent}/{a}", TreeNode(f"{parent}/{a}", "m", parent, pose(a), a,
                                                   state, 1))  # fmt: skip
    ready = [c for c, n in nodes.items() if n.state == "ready"]
    now = rnd.choice((0.0, 10.0, 1000.0))
    watch = (0.0, 2.0, 2.0, 9.0, 40.0)
    sessions = [
        SessionView(
            f"s{i}",
            "m",
            rnd.choice(ready),
            now - rnd.choice(watch),
            now,
            think_s=rnd.choice((None, None, 1.0, 0.0)),
        )
        for i in range(rnd.randint(1, 6))
    ]
    return tuple(nodes.values()), sessions, now


def proposals(rnd: random.Random, sessions: list[SessionView]) -> list[Proposal]:
    out = []
    for s in sessions:
        for _ in range(rnd.randint(0, 6)):
            path = tuple(rnd.choice(ACTS) for _ in range(rnd.choice((1, 1, 2, 3))))
            out.append(Proposal(s.session_id, path, rnd.choice(PROBS)))
    return out


def fill(index: VoteIndex, inp: PlanInput, tree: TreeIndex, props: list[Proposal]) -> None:
    for s in inp.sessions:
        mine = tuple(p for p in props if p.session_id == s.session_id)
        index.update(s, mine, tree.node, lambda k: tree.by_key(*k), (mine, s))


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False))
def test_incremental_index_ranks_as_the_proposals_do(rnd: random.Random) -> None:
    nodes, sessions, now = world(rnd)
    final = proposals(rnd, sessions)
    budget = Budget(max_depth=rnd.choice((1, 2, 3)), min_probability=rnd.choice((0.0, 0.05)),
                    min_benefit_per_gpu_s=rnd.choice((-1.0, 0.0, 0.15, 1.0)))  # fmt: skip
    timing = Timing(rnd.choice((0.0, 4.0, 150.0)), 0.0, 5.0, 2.0)
    inp = PlanInput(now, nodes, tuple(sessions), (), (), tuple(final), budget,
                    BucketState(0.0, now), timing)  # fmt: skip
    tree = TreeIndex(nodes)
    index = VoteIndex(budget.max_depth, inp.frames, timing)
    fill(index, inp, tree, proposals(rnd, sessions))  # another state first, then the input's
    if rnd.random() < 0.3:
        index.drop(sessions[0].session_id)
    fill(index, inp, tree, final)
    afresh = VoteIndex.of(inp, tree.node, lambda k: tree.by_key(*k))
    assert index.contents() == afresh.contents()
    active = active_by_id(inp)
    votes = collect_votes(inp, tree, active)
    assert {k: probability(v) for k, v in votes.items()} == {
        k: probability(v) for k in votes if (v := index.votes(k)) is not None
    }
    for k in index.contents():  # the run's P is the one the planner values victims with
        v = index.votes(k)
        assert v is not None and index.probability_of(k) == probability(v)
    assert index.probability_of(("m", "r", "no such pose")) is None
    e = warm_gpu_s(inp)
    assert index.fits(inp) and index.safe(now, e) and index.holds(active)
    taken = set(rnd.sample(sorted(votes, key=str), min(len(votes), rnd.randint(0, 2))))
    later = replace(inp, now=now + rnd.choice((0.0, 1.0, 7.0)))  # the index is time-free
    for i in (inp, later):
        expected = ranked(i, tree, collect_votes(i, tree, active_by_id(i)), taken)
        assert list(index.best_first(i, e, taken)) == list(expected)


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False))
def test_walk_gives_each_key_its_runs_value_and_drops_runs(rnd: random.Random) -> None:
    """``walk`` yields ``best_first``'s keys with their run's value and attributed session
    (those of the ``Candidate``), and a dropped run's later keys are skipped, the rest kept."""
    nodes, sessions, now = world(rnd)
    budget = Budget(max_depth=rnd.choice((1, 2)), min_probability=rnd.choice((0.0, 0.05, 0.3)),
                    min_benefit_per_gpu_s=rnd.choice((0.0, 0.15)))  # fmt: skip
    timing = Timing(rnd.choice((4.0, 150.0)), 0.0, 5.0, 2.0)
    props = proposals(rnd, sessions)
    inp = PlanInput(now, nodes, tuple(sessions), (), (), tuple(props), budget,
                    BucketState(0.0, now), timing)  # fmt: skip
    tree = TreeIndex(nodes)
    index = VoteIndex.of(inp, tree.node, lambda k: tree.by_key(*k))
    e = warm_gpu_s(inp)
    every = list(index.best_first(inp, e, set()))
    walked = list(index.walk(inp, e, set()))
    assert [c.key for c in every] == [k for k, _, _ in walked]
    for c, (key, run, v) in zip(every, walked, strict=True):
        assert (c.probability, c.depth, c.step_s) == (run[0], run[1], run[3])
        assert (c.benefit_s, c.waste_gpu_s, c.charge_gpu_s, c.score) == tuple(v)
        lead = index.lead(key)
        assert (lead[0], lead[4]) == (c.session_id, c.action)
        assert index.candidate(key, inp, e) == c
    drop = {run for _, run, _ in walked if rnd.random() < 0.5}
    dropped: set[tuple[float, int, float, float]] = set()
    kept = []
    for key, run, _ in index.walk(inp, e, set(), dropped):
        kept.append(key)
        if run in drop:
            dropped.add(run)
    first: dict[tuple[float, int, float, float], Key] = {}
    for key, run, _ in walked:
        first.setdefault(run, key)
    assert kept == [k for k, run, _ in walked if run not in drop or first[run] == k]


def test_index_answers_none_for_unproposed_keys_and_forgets_dropped_sessions() -> None:
    nodes = (TreeNode("r", "m", None, pose("w"), "w", "ready", 0),)
    s = SessionView("s1", "m", "r", 0.0, 0.0)
    inp = PlanInput(1.0, nodes, (s,), (), (), (Proposal("s1", ("w",), 0.6),), Budget(),
                    BucketState(0.0, 0.0), Timing(10.0))  # fmt: skip
    tree = TreeIndex(nodes)
    index = VoteIndex.of(inp, tree.node, lambda k: tree.by_key(*k))
    key = ("m", "r", pose("w"))
    assert index.votes(key) is not None and index.votes(("m", "r", pose("a"))) is None
    assert [c.key for c in index.best_first(inp, 10.0, set())] == [key]
    index.drop("s1")
    assert index.votes(key) is None and len(index) == 0
    assert list(index.best_first(inp, 10.0, set())) == []


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False))
def test_holds_roster_answers_as_a_full_check_after_any_changes(rnd: random.Random) -> None:
    """The incremental ``holds_roster`` (only what changed since the last check that held)
    answers as the pass over every voter does, whatever changes the index and the roster go
    through between checks (views replaced on one side only, sessions dropped, another roster,
    the roster's log starting over)."""
    node = TreeNode("r", "m", None, pose("w"), "w", "ready", 0)
    index = VoteIndex(2, 61, Timing(10.0))
    rosters = [Roster(), Roster()]
    views = [SessionView(f"s{i}", "m", "r", float(t), 0.0) for i in range(4) for t in range(3)]
    budget = Budget()
    for _ in range(rnd.randint(1, 40)):
        roster = rnd.choice(rosters)
        view = rnd.choice(views)
        op = rnd.randrange(6)
        if op == 0:
            props = (Proposal(view.session_id, ("w",), 0.5),) if rnd.random() < 0.8 else ()
            index.update(view, props, lambda c: node if c == "r" else None, lambda k: None)
        elif op == 1:
            index.drop(view.session_id)
        elif op == 2:
            roster.set_session(view)
        elif op == 3:
            roster.drop_session(view.session_id)
        elif op == 4:
            if rnd.random() < 0.1:  # past the log's bound (~1,000 changes): it starts over
                for k in range(1100):
                    roster.set_session(views[k % len(views)])
            roster.set_session(rnd.choice(views))
        else:
            full = all(roster.sessions.get(sid) is index._views[sid] for sid in index._views)
            assert index.holds_roster(roster, 0.0, budget) == full


@settings(max_examples=150, deadline=None)
@given(st.randoms(use_true_random=False))
def test_few_runs_kept_sorted_walk_as_the_heap_does(rnd: random.Random) -> None:
    """The runs come in their order (the heap's) from the sorted list the index keeps while
    they are few (made and emptied one at a time, a heap past ``_SORTED`` runs, the list again
    below half of it) after any sequence of updates, and ``best_first`` stays ``ranked``'s
    order throughout."""
    bound = vote_runs._SORTED
    vote_runs._SORTED = rnd.choice((2, 4, 8, bound))  # small bounds: crossed both ways
    try:
        _walk_updates(rnd)
    finally:
        vote_runs._SORTED = bound


def _walk_updates(rnd: random.Random) -> None:
    nodes, sessions, now = world(rnd)
    ready = [n.chunk_id for n in nodes if n.state == "ready"]
    sessions += [
        SessionView(f"x{i}", "m", rnd.choice(ready), now - rnd.uniform(0.0, 30.0), now)
        for i in range(rnd.randint(0, 12))
    ]
    budget = Budget(max_depth=2, min_probability=0.0, min_benefit_per_gpu_s=0.0)
    timing = Timing(150.0, 0.0, 5.0, 2.0)
    tree = TreeIndex(nodes)
    index = VoteIndex(budget.max_depth, 125, timing)
    current: dict[str, tuple[Proposal, ...]] = {}  # session id -> its proposals in the index
    for _ in range(rnd.randint(1, 8)):
        for s in rnd.sample(sessions, rnd.randint(1, len(sessions))):
            if rnd.random() < 0.15:
                index.drop(s.session_id)
                current.pop(s.session_id, None)
                continue
            props = tuple(
                Proposal(s.session_id, tuple(rnd.choice(ACTS) for _ in range(rnd.choice((1, 2)))),
                         rnd.choice((0.1, 0.3, 0.5, 0.7, rnd.random())))
                for _ in range(rnd.randint(0, 4))
            )  # fmt: skip
            index.update(s, props, tree.node, lambda k: tree.by_key(*k))
            current[s.session_id] = props
        walked = list(index._runs_in_order())  # (settles and places the keys first)
        assert walked == [r for _, r in sorted((vote_runs._order(r), r) for r in index._runs)]
        voted = tuple(s for s in sessions if s.session_id in current)
        inp = PlanInput(now, nodes, voted, (), (), tuple(p for ps in current.values() for p in ps),
                        budget, BucketState(0.0, now), timing)  # fmt: skip
        expected = ranked(inp, tree, collect_votes(inp, tree, active_by_id(inp)), set())
        assert list(index.best_first(inp, warm_gpu_s(inp), set())) == list(expected)
