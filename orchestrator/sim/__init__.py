"""The trace-driven simulator: replays viewer traces against the decision core on a virtual clock.

Modules: ``trace`` (the JSON Lines format of DESIGN.md "Traces"), ``synth`` (synthetic traces),
``regime`` (named, editable TOML regimes in the repository's ``regimes/`` folder), ``pool`` (the
GPU pool: warm containers, cold starts, generation times), ``engine`` (the discrete-event loop
driving ``orchestrator.core.plan.plan`` and ``policies``), ``metrics`` (per-policy figures and
ratios), ``report`` (table and plot) and ``run`` (the plain entry points the CLI wires up).
"""
