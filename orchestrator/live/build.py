"""Fast positional constructors for the frozen dataclasses the live state builds per event.

The live state builds a ``KnownNode`` and its ``TreeNode`` at every chunk put and state change,
a ``SessionView`` at every request and answer, a ``RunningJob`` per job and a ``PlanInput`` per
plan (issue 10: dataclass ``__init__`` was 8 % of a simulator run). ``builder`` is the core's
(``orchestrator.core.build``, one implementation for both layers: the core may not import the
live state); its contract and limits are documented there, and ``tests/unit/live/
test_build.py`` checks it on the live state's records.
"""

from __future__ import annotations

from orchestrator.core.build import builder

__all__ = ["builder"]
