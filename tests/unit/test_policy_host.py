"""PolicyHost's queued observations and the planner's pacing (plan_slices): no database."""

from __future__ import annotations

import asyncio
import uuid

from orchestrator.core.types import ActionObserved
from orchestrator.experiments import Arm
from orchestrator.plan_slices import HIT_PLAN_S, PlanPacer, hit_rest_s, rest_s
from orchestrator.policy_host import PolicyHost


class _Recorder:
    """A policy stand-in that records what it observed."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def observe(self, event: ActionObserved) -> None:
        self.seen.append(event.action)

    def propose(self, ctx: object) -> list[object]:
        return [len(self.seen)]


def _host() -> tuple[PolicyHost, _Recorder]:
    host = PolicyHost((Arm("a", "markov"),), "exp")
    rec = _Recorder()
    host._policies = {"a": rec}  # type: ignore[dict-item]
    return host, rec


def _event(action: str) -> ActionObserved:
    return ActionObserved(str(uuid.uuid4()), "m", (), action)


def test_observe_is_queued_and_learned_before_any_proposal() -> None:
    host, rec = _host()
    for a in ("w", "a", "d"):
        host.observe(_event(a))
    assert rec.seen == [] and host.queued == 3
    # The next proposal sees every observation, in arrival order.
    assert host.propose("a", object()) == [3]  # type: ignore[arg-type,comparison-overlap]
    assert rec.seen == ["w", "a", "d"] and host.queued == 0


def test_drain_with_a_budget_feeds_at_least_one_and_keeps_the_rest_in_order() -> None:
    host, rec = _host()
    for a in ("w", "a", "d"):
        host.observe(_event(a))
    assert host.drain(0.0) == 2
    assert rec.seen == ["w"]
    assert host.drain() == 0
    assert rec.seen == ["w", "a", "d"]


def test_reconfigure_feeds_the_queue_to_the_policies_it_keeps() -> None:
    host, rec = _host()
    host.observe(_event("w"))
    host.reconfigure(host.arms, "exp")
    assert rec.seen == ["w"]


def test_a_failing_observe_is_logged_and_the_rest_still_learn() -> None:
    host, rec = _host()

    class Broken(_Recorder):
        def observe(self, event: ActionObserved) -> None:
            raise RuntimeError("plug-in bug")

    host._policies = {"x": Broken(), "a": rec}  # type: ignore[dict-item]
    host.observe(_event("w"))
    assert host.drain() == 0
    assert rec.seen == ["w"]


def test_hit_rest_is_longer_than_the_urgent_rest() -> None:
    for busy in (0.0, 0.001, 0.01, 0.05, 0.2):
        assert hit_rest_s(busy) >= rest_s(busy, 0.05)
    assert hit_rest_s(0.0) == HIT_PLAN_S


def test_pacer_hit_schedules_a_later_plan_and_wake_asks_at_once() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        pacer = PlanPacer(tick_s=5.0, coalesce_s=0.0)
        pacer.hit()
        assert pacer._timer is None  # no planner loop: nothing to schedule
        pacer.running = True
        pacer.planned(0.0)  # a plan just ran
        pacer.hit()
        timer = pacer._timer
        assert timer is not None and not pacer._event.is_set()
        assert timer.when() >= loop.time() + HIT_PLAN_S * 0.5
        pacer.hit()
        assert pacer._timer is timer  # one timer for any number of hits
        pacer.wake()  # a miss: the plan is due now
        assert pacer._event.is_set()
        await pacer.wait()
        assert pacer._timer is None and timer.cancelled()  # that plan covers the hits

    asyncio.run(run())


def test_forget_session_feeds_the_queue_first_and_reaches_markov() -> None:
    host = PolicyHost((Arm("a", "markov"),), "exp")
    for action in ("w", "w", "d"):
        host.observe(ActionObserved("s1", "m1", (), action))
    host.forget_session("s1")
    markov = host._policies["a"]
    assert host.queued == 0  # learned before forgetting, so nothing of s1 arrives later
    assert "s1" not in markov._session  # type: ignore[attr-defined]
    host.forget_memory("m1")
    assert "m1" not in markov._memory  # type: ignore[attr-defined]
    host.forget_session("unknown")  # nothing kept: a no-op


def test_children_free_and_time_free_follow_each_arms_policy() -> None:
    host = PolicyHost((Arm("a", "markov"), Arm("b", "uniform")), "exp")
    assert host.children_free("a") and host.time_free("a") and host.children_free("b")
    host._policies["b"] = _Recorder()  # type: ignore[assignment]  # an operator's own policy
    assert not host.children_free("b") and not host.time_free("b")
    assert not host.children_free("missing") and not host.time_free("missing")
