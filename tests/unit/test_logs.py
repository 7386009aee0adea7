"""``orchestrator.logs.BoundOnce``: one bound logger per structlog configuration."""

from __future__ import annotations

import structlog
from structlog.testing import capture_logs

from orchestrator.events import EventBus
from orchestrator.logs import BoundOnce, configure_logging


def test_a_reconfiguration_rebinds_and_an_unchanged_one_does_not() -> None:
    log = BoundOnce("orchestrator.test")
    try:
        configure_logging("warning", True)
        quiet = log.get()
        assert log.get() is quiet  # same configuration: the same bound logger
        with capture_logs() as seen:  # processors swapped in place: seen by the bound logger
            quiet.warning("kept")
        assert [e["event"] for e in seen] == ["kept"]
        configure_logging("info", True)
        loud = log.get()
        assert loud is not quiet and log.get() is loud
        with capture_logs() as seen:
            log.get().info("now_kept")
        assert [e["event"] for e in seen] == ["now_kept"]
    finally:
        configure_logging("info", True)
        structlog.reset_defaults()


def test_an_event_reaches_subscribers_and_the_log_without_them() -> None:
    bus = EventBus(maxsize=2)
    with capture_logs() as seen:
        bus.publish("m1", "chunk_served", chunk_id="c1", outcome="hit")  # nobody subscribed
    assert seen and seen[0]["event"] == "chunk_served" and seen[0]["outcome"] == "hit"


def test_a_subscriber_gets_its_memorys_events_and_loses_the_oldest_when_full() -> None:
    import asyncio

    async def run() -> list[object]:
        bus = EventBus(maxsize=2)
        async with bus.subscribe("m1") as queue:
            for i in range(3):
                bus.publish("m1", "chunk_ready", chunk_id=f"c{i}")
            bus.publish("m2", "chunk_ready", chunk_id="elsewhere")
            return [queue.get_nowait() for _ in range(queue.qsize())]

    events = asyncio.run(run())
    assert [e["chunk_id"] for e in events] == ["c1", "c2"]  # type: ignore[index]
    assert all(e["type"] == "chunk_ready" and e["memory_id"] == "m1" for e in events)  # type: ignore[index]
