"""Engines and sessions: how to connect, never what to query (that is ``repository``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from jobctl import errors

SQLITE_BUSY_TIMEOUT_MS = 10_000


def create_db_engine(database_url: str, *, create_missing: bool = True, **kwargs: Any) -> Engine:
    """An engine for ``database_url``; ``InvalidSetting`` when it names no database jobctl
    can use (neither the text nor its password is repeated: it may hold a secret).

    A SQLite file that does not exist is created, unless not ``create_missing``: then
    ``MigrationsPending`` (a mistyped path would otherwise leave an empty database behind).
    """
    try:
        url = make_url(database_url)
        url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise errors.InvalidSetting(
            f"JOBCTL_DATABASE_URL is not a database URL jobctl can use ({type(exc).__name__}):"
            " e.g. sqlite:///jobctl.db or postgresql+psycopg://user@host:5432/jobctl"
        ) from None
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            path = Path(url.database)
            if not create_missing and not path.exists():
                raise errors.MigrationsPending(
                    f"the SQLite database does not exist (run `jobctl db upgrade`): {path}"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    # The original system's columns are timestamps without zone holding UTC: read and
    # write them in a UTC session so that they mean the same as our timestamptz columns.
    connect_args = {"options": "-c timezone=UTC", "connect_timeout": 10}
    connect_args.update(kwargs.pop("connect_args", {}))
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
