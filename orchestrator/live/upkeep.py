"""What changed since the last ``prepare``: the live state's dirty tracking (issue 10).

``Planner.prepare`` used to visit every live session on every plan (idle test, cursor subtree,
proposal cache, identity checks against the vote index), every running job (its ancestry) and
every session again for eviction and the next idle time: O(all live sessions) per plan, although
~20 sessions are active at once in the simulator and a plan follows almost every event. It now
visits only the sessions whose answer could differ from the last prepare's, which are:

- touched: its view was replaced (request, cursor move, answer, open, arm) or it was closed;
- near a moved chunk: a chunk within ``max_depth`` below its cursor (or the cursor itself) was
  put or changed state (``KnownTree.take_moved``; the cursor subtree and its children's states
  are read from there, and nothing else of the tree is);
- on a memory whose epoch moved one coarse step (``changes.coarse_epoch``, in the proposals'
  signature);
- due: its idle deadline (``last_active_at + idle_after_s``) passed: its proposals drop to none;
- asked every plan: its arm's policy is not time-free (``ProposalCache``);
- gated: a custom ``speculation_allowed`` predicate now answers differently for it;
- everything: the budget, ``frames``, the host epoch or the vote index changed, or time went
  backwards (``Changes._everything``).

Any other session would give what it gave last time (the same cached proposals and view, a
subtree of the same nodes), so skipping it changes nothing. Assumed, as the proposal cache
already did: an arm's ``time_free`` changes only with a reconfiguration (``configure`` bumps the
host epoch). A custom gate is asked every prepare for every session that may speculate (the
state cannot know when a quota moves): O(those sessions) calls, the one pass left.

Eviction is driven the same way by a deadline heap (``Deadlines``) instead of a pass over every
session, and cold memories are looked for among the memories that lost a session, a job or a
demand. The nodes a plan may read (``PlanInput.nodes``) are counted per holder
(``NodeCounts``): a session's cursor subtree, a job's ancestry, a demand's parent and siblings,
each taken again only when it is visited (a session) or, for jobs and demands on a memory whose
tree moved, when what it holds would differ: a node of it replaced, a parent of a cut-short
ancestry or a sibling of a demand added (``KnownTree.is_ancestry`` / ``is_family``; ``full``
takes them all again). The proposals are kept end to end (``Flat``).
``prepare(now, full=True)`` visits everything, as every prepare did before; the stateful test
compares the two.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable

from orchestrator.core.types import Proposal, TreeNode
from orchestrator.live.tree import KnownNode


def allow_all(_session_id: str) -> bool:
    """The default speculation predicate: every session may speculate (nothing to re-check)."""
    return True


def slack(now: float) -> float:
    """Seconds before ``now`` within which a deadline is already treated as due.

    ``is_idle`` compares ``now - last > limit`` while a deadline is ``last + limit``; the two
    roundings can disagree by an ulp, so a deadline up to this far after ``now`` is popped too
    and the session looked at (looking at one too many changes nothing)."""
    return 1e-9 * (1.0 + abs(now))


class Deadlines:
    """One deadline per session (seconds on the caller's clock) in a min-heap, lazily deleted.

    ``stamp[sid]`` is what the session's current deadline was computed from (any object,
    compared by identity); a heap entry with another stamp is stale and skipped. The heap is
    compacted when stale entries outnumber the sessions, so it stays O(sessions).
    """

    __slots__ = ("_heap", "_seq", "stamp")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str, object]] = []
        self._seq = 0
        self.stamp: dict[str, object] = {}

    def __len__(self) -> int:
        """Heap entries, stale ones included."""
        return len(self._heap)

    def set(self, sid: str, t: float, stamp: object, *, push: bool = True) -> None:
        """Make ``stamp`` the session's current one, with deadline ``t`` when ``push``."""
        self.stamp[sid] = stamp
        if push:
            self.push(t, sid, stamp)

    def push(self, t: float, sid: str, stamp: object) -> None:
        """(Re-)queue deadline ``t`` of ``stamp`` if it is still the session's current one."""
        if self.stamp.get(sid) is not stamp or t == math.inf:
            return
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, sid, stamp))
        if len(self._heap) > 2 * len(self.stamp) + 64:
            self._compact()

    def due(self, until: float) -> list[tuple[float, str, object]]:
        """Pop every current entry with deadline <= ``until``: (deadline, session, stamp)."""
        heap, stamps, out = self._heap, self.stamp, []
        while heap and heap[0][0] <= until:
            t, _, sid, stamp = heapq.heappop(heap)
            if stamps.get(sid) is stamp:
                out.append((t, sid, stamp))
        return out

    def first(self) -> float:
        """The earliest current deadline queued (inf if none)."""
        heap, stamps = self._heap, self.stamp
        while heap and stamps.get(heap[0][2]) is not heap[0][3]:
            heapq.heappop(heap)
        return heap[0][0] if heap else math.inf

    def forget(self, sid: str) -> None:
        """Drop the session (its entries become stale)."""
        self.stamp.pop(sid, None)

    def clear(self) -> None:
        """Drop everything."""
        self._heap.clear()
        self.stamp.clear()

    def _compact(self) -> None:
        stamps = self.stamp
        self._heap = [e for e in self._heap if stamps.get(e[2]) is e[3]]
        heapq.heapify(self._heap)


class NodeCounts:
    """The nodes held by several holders, each chunk once (what ``tree.core_nodes`` of all the
    holders' nodes gives), kept as holders change instead of gathered per plan.

    A holder (a session's cursor subtree, a job's ancestry, a demand's neighbourhood) swaps its
    old nodes for its new ones (``swap``); every holder of a memory whose tree moved is swapped
    in the same ``prepare``, so the node objects held are the trees' current ones. Pending
    nodes are counted but not given (the core never sees them).
    """

    __slots__ = ("_core", "_count", "_tuple")

    def __init__(self) -> None:
        self._count: dict[str, int] = {}
        self._core: dict[str, TreeNode] = {}
        self._tuple: tuple[TreeNode, ...] | None = ()

    def swap(self, old: Iterable[KnownNode], new: Iterable[KnownNode]) -> None:
        """One holder's nodes change from ``old`` (what it last gave) to ``new``."""
        if old is new:
            return
        count, core = self._count, self._core
        for n in old:
            cid = n.chunk_id
            left = count[cid] - 1
            if left:
                count[cid] = left
            else:
                del count[cid]
                core.pop(cid, None)
        for n in new:
            cid = n.chunk_id
            count[cid] = count.get(cid, 0) + 1
            c = n.core
            if c is None:
                core.pop(cid, None)
            else:
                core[cid] = c
        self._tuple = None

    def nodes(self) -> tuple[TreeNode, ...]:
        """Every held non-pending chunk's core view, once each (built when holders changed)."""
        if self._tuple is None:
            self._tuple = tuple(self._core.values())
        return self._tuple

    def held(self) -> int:
        """Distinct chunks held (pending ones included)."""
        return len(self._count)


class Flat:
    """Each session's proposals end to end, in session order, and their tuple
    (``PlanInput.proposals``), kept as sessions change instead of joined per plan.

    Joining 10^4 sessions' proposals (10^5) takes ~2 ms; copying one list into a tuple ~0.2
    ms. A session whose proposals keep their length is written in place; any other change (a
    session new, gone, or proposing more or fewer) joins them all again at the next ``tuple``.
    """

    __slots__ = ("_at", "_flat", "_of", "_tuple")

    def __init__(self) -> None:
        self._of: dict[str, tuple[Proposal, ...]] = {}  # in session order
        self._at: dict[str, int] | None = {}  # where each one starts in ``_flat`` (None: stale)
        self._flat: list[Proposal] = []
        self._tuple: tuple[Proposal, ...] | None = ()

    def get(self, sid: str) -> tuple[Proposal, ...] | None:
        """The proposals last set for ``sid`` (None: none set)."""
        return self._of.get(sid)

    def set(self, sid: str, props: tuple[Proposal, ...]) -> None:
        """``sid``'s proposals are now ``props`` (a new session goes last)."""
        old = self._of.get(sid)
        if old is props:
            return
        self._of[sid] = props
        self._tuple = None
        at = self._at
        if at is not None and old is not None and len(old) == len(props):
            i = at[sid]
            self._flat[i : i + len(props)] = props
        else:
            self._at = None

    def drop(self, sid: str) -> None:
        """Forget ``sid``."""
        if self._of.pop(sid, None) is not None:
            self._at, self._tuple = None, None

    def tuple(self) -> tuple[Proposal, ...]:
        """Every session's proposals, in session order."""
        if self._tuple is None:
            if self._at is None:
                at: dict[str, int] = {}
                flat: list[Proposal] = []
                for sid, props in self._of.items():
                    at[sid] = len(flat)
                    flat.extend(props)
                self._at, self._flat = at, flat
            self._tuple = tuple(self._flat)
        return self._tuple
