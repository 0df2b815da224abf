"""What every command shares: the settings, built once, and lazily opened resources."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field

import click
from pydantic import ValidationError
from sqlalchemy import Engine

from jobctl import db, errors
from jobctl.repository import Repository
from jobctl.settings import Settings


@dataclass
class Context:
    database_url: str | None = None
    verbose: bool = False
    # Only the commands that create the tables create a SQLite file that is missing.
    creates_database: bool = False
    _settings: Settings | None = field(default=None, init=False)
    _engine: Engine | None = field(default=None, init=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            overrides = {"database_url": self.database_url} if self.database_url else {}
            try:
                self._settings = Settings(**overrides)  # type: ignore[arg-type]
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                where = ".".join(str(part) for part in first["loc"]).upper()
                raise errors.InvalidSetting(
                    f"invalid setting JOBCTL_{where}: {first['msg']}"
                ) from None
        return self._settings

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = db.create_db_engine(
                self.settings.database_url, create_missing=self.creates_database
            )
        return self._engine

    @property
    def actor(self) -> str:
        """Who the audit trail names for this command's changes to schedules."""
        return f"cli:{os_user()}"

    @property
    def repository(self) -> Repository:
        return Repository(self.engine, actor=self.actor)

    def filter_schedule_id(self, given: str) -> str:
        """The schedule id a history or audit filter means: a row's, from the whole id or
        its start; as given when no row has it (a deleted row's attempts and changes)."""
        try:
            return self.repository.resolve_schedule_id(given)
        except errors.ScheduleNotFound:
            return given

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def os_user() -> str:
    """The login name of the user running jobctl (a uid without a name in a container)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no $USER/$LOGNAME and no passwd entry
        return f"uid-{os.getuid()}"


pass_context = click.make_pass_decorator(Context)
