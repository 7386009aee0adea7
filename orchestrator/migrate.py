"""Forward-only SQL migrations: numbered ``migrations/NNN_name.sql`` files.

Each file is applied once, inside its own transaction, and recorded in ``schema_migrations`` with
its checksum. A PostgreSQL advisory lock serialises concurrent migrators (two service processes
starting together). Applying twice is a no-op; a recorded file whose content changed is an error,
because forward-only means an applied migration is never edited.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from orchestrator.queries import Conn, query

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_NAME = re.compile(r"^(\d{3,})_([a-z0-9_]+)\.sql$")
# Arbitrary constant: the advisory lock id that serialises migrators.
_LOCK_ID = 0x5265_7769_6E64


class MigrationError(RuntimeError):
    """A migration file is malformed, duplicated, or was edited after being applied."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: ``version`` (e.g. 1), ``name`` and its SQL text."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """sha256 of the SQL text (hex)."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Read every migration in ``directory``, ordered by version.

    Raises:
        MigrationError: a file is misnamed or two files share a version.
    """
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"{path.name}: migration files are named NNN_lower_name.sql")
        version = int(m.group(1))
        if version in found:
            raise MigrationError(f"{path.name}: version {version} is used twice")
        found[version] = Migration(version, m.group(2), path.read_text())
    return [found[v] for v in sorted(found)]


async def apply_migrations(conn: Conn, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply the migrations not yet recorded; return those applied now (empty if up to date).

    Raises:
        MigrationError: see ``discover``, or an applied file's checksum changed.
        asyncpg.PostgresError: a migration's SQL failed (its transaction is rolled back).
    """
    migrations = discover(directory)
    await conn.execute(query("migrations_create_table"))
    await conn.execute(query("advisory_lock"), _LOCK_ID)
    try:
        rows = await conn.fetch(query("migrations_applied"))
        applied = {r["version"]: r["checksum"] for r in rows}
        done: list[Migration] = []
        for mig in migrations:
            if mig.version in applied:
                if applied[mig.version] != mig.checksum:
                    raise MigrationError(
                        f"migration {mig.version:03d}_{mig.name} was edited after it was "
                        "applied; add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(mig.sql)
                await conn.execute(query("migrations_record"), mig.version, mig.name, mig.checksum)
            done.append(mig)
        return done
    finally:
        await conn.execute(query("advisory_unlock"), _LOCK_ID)
