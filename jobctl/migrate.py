"""Apply and inspect the Alembic migrations that live in ``jobctl/migrations``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from jobctl.db_errors import translate_errors

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with translate_errors(), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def holds_unversioned_tables(engine: Engine) -> bool:
    """Whether the database has a JobSchedule table that no jobctl migration made: the
    original system's, about to be taken over."""
    with translate_errors(), engine.connect() as connection:
        if MigrationContext.configure(connection).get_current_revision() is not None:
            return False
        return inspect(connection).has_table("JobSchedule")


def is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = _config()
    with translate_errors(), engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
