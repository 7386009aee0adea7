"""``python -m orchestrator`` runs the ``rewind`` CLI."""

from orchestrator.cli import app

app()
