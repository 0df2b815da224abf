"""Driver errors become jobctl errors, in this one place, by their codes.

PostgreSQL errors are told apart by SQLSTATE (appendix A of its manual). SQLite gives one
result code, ``SQLITE_ERROR``, to every statement it cannot run: its missing table or
column is known only by the fixed prefix of its message, and nothing else is read there.
An error jobctl has no meaning for keeps its driver's class and code in the message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, StatementError

from jobctl import errors

# undefined_table, undefined_column, undefined_object (the JobStatus type, say).
SCHEMA_BEHIND_SQLSTATES = frozenset({"42P01", "42703", "42704"})
# connection exception, insufficient resources, operator intervention (a shutdown).
UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})
# data exception, integrity constraint violation.
REFUSED_VALUE_SQLSTATE_CLASSES = frozenset({"22", "23"})

SQLITE_SCHEMA_BEHIND_PREFIXES = ("no such table:", "no such column:")
SQLITE_UNAVAILABLE_CODES = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR")
SQLITE_REFUSED_VALUE_CODES = ("SQLITE_CONSTRAINT", "SQLITE_MISMATCH", "SQLITE_TOOBIG")


@contextmanager
def translate_errors() -> Iterator[None]:
    try:
        yield
    except DBAPIError as exc:
        raise translated(exc) from exc
    except StatementError as exc:
        if isinstance(exc.orig, OverflowError):  # a time beyond what UTC can hold
            raise errors.InvalidInput(f"a time out of range: {exc.orig}") from exc
        if isinstance(exc.orig, ValueError):  # refused by a column type (a naive datetime)
            raise exc.orig from None
        raise


def translated(exc: DBAPIError) -> errors.JobctlError:
    """The jobctl error that ``exc`` means."""
    driver_error: BaseException = exc.orig if exc.orig is not None else exc
    detail = _first_line(driver_error)
    sqlstate: str | None = getattr(driver_error, "sqlstate", None)
    sqlite_code: str | None = getattr(driver_error, "sqlite_errorname", None)
    if exc.connection_invalidated:
        return errors.DatabaseUnavailable(f"the jobctl database connection was lost: {detail}")
    if sqlstate in SCHEMA_BEHIND_SQLSTATES or (
        sqlite_code == "SQLITE_ERROR" and detail.startswith(SQLITE_SCHEMA_BEHIND_PREFIXES)
    ):
        return errors.MigrationsPending()
    unavailable = (
        (sqlstate is not None and sqlstate[:2] in UNAVAILABLE_SQLSTATE_CLASSES)
        or (sqlite_code is not None and sqlite_code.startswith(SQLITE_UNAVAILABLE_CODES))
        # A connection that failed before any server answered has no code at all.
        or (
            sqlstate is None
            and sqlite_code is None
            and isinstance(exc, OperationalError | InterfaceError)
        )
    )
    if unavailable:
        return errors.DatabaseUnavailable(f"the jobctl database cannot be reached: {detail}")
    if (sqlstate is not None and sqlstate[:2] in REFUSED_VALUE_SQLSTATE_CLASSES) or (
        sqlite_code is not None and sqlite_code.startswith(SQLITE_REFUSED_VALUE_CODES)
    ):
        return errors.InvalidInput(f"the database refused a value: {detail}")
    code = f"SQLSTATE {sqlstate}" if sqlstate else (sqlite_code or "no code")
    return errors.DatabaseError(
        f"the database refused the query: {type(driver_error).__name__} ({code}): {detail}"
    )


def _first_line(driver_error: BaseException) -> str:
    lines = str(driver_error).strip().splitlines()
    return lines[0] if lines else type(driver_error).__name__
