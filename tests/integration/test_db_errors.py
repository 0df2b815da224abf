"""Driver errors become jobctl errors by their SQLSTATE or SQLite result code, never by
the wording of their message; the ones jobctl has no meaning for say what they are."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from jobctl import db, errors
from jobctl.db_errors import translate_errors


def run(engine: Engine, statement: str) -> None:
    with translate_errors(), engine.begin() as connection:
        connection.execute(text(statement))


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param('SELECT * FROM "NoSuchTable"', id="table"),
        pytest.param("SELECT no_such_column FROM jobctl_state", id="column"),
    ],
)
def test_a_missing_table_or_column_means_migrations_are_pending(engine: Engine, statement: str):
    with pytest.raises(errors.MigrationsPending):
        run(engine, statement)


@pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"], indirect=True)
def test_an_operator_that_does_not_exist_is_not_a_pending_migration(engine: Engine):
    # Its message says "does not exist", which once read as "schema not current".
    with pytest.raises(errors.DatabaseError) as raised:
        run(engine, "SELECT 1 = CAST('6f0b8e3e-1111-4a53-9c55-3b3a3f6c1a01' AS uuid)")

    assert not isinstance(raised.value, errors.MigrationsPending)
    assert "UndefinedFunction (SQLSTATE 42883): operator does not exist" in str(raised.value)


def test_an_error_jobctl_has_no_meaning_for_says_what_it_is(engine: Engine):
    with pytest.raises(errors.DatabaseError) as raised:
        run(engine, "SELECT no_such_function(1)")

    assert not isinstance(raised.value, errors.MigrationsPending)
    kind = "SQLSTATE 42883" if engine.dialect.name == "postgresql" else "SQLITE_ERROR"
    assert kind in str(raised.value)
    assert "no_such_function" in str(raised.value)


def test_a_value_the_column_refuses_is_invalid_input(engine: Engine):
    statement = (
        "SELECT CAST('not-a-uuid' AS uuid)"
        if engine.dialect.name == "postgresql"
        else "INSERT INTO jobctl_state (key, value) VALUES (NULL, 1)"
    )
    with pytest.raises(errors.InvalidInput, match="refused a value"):
        run(engine, statement)


def test_a_duplicate_key_is_invalid_input(engine: Engine):
    run(engine, "INSERT INTO jobctl_state (key, value) VALUES ('twice', 1)")

    with pytest.raises(errors.InvalidInput, match="refused a value"):
        run(engine, "INSERT INTO jobctl_state (key, value) VALUES ('twice', 2)")


def test_a_server_that_is_not_there_is_unavailable():
    engine = db.create_db_engine("postgresql+psycopg://postgres@127.0.0.1:1/jobctl")
    try:
        with pytest.raises(errors.DatabaseUnavailable, match="cannot be reached"):
            run(engine, "SELECT 1")
    finally:
        engine.dispose()


def test_a_locked_sqlite_database_is_unavailable(tmp_path):
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    holder = db.create_db_engine(url)
    waiter = db.create_db_engine(url)
    try:
        run(holder, "CREATE TABLE t (x INTEGER)")
        with holder.connect() as connection, waiter.connect() as other:
            connection.exec_driver_sql("BEGIN EXCLUSIVE")
            other.exec_driver_sql("PRAGMA busy_timeout=0")
            with pytest.raises(errors.DatabaseUnavailable, match="database is locked"):
                with translate_errors():
                    other.exec_driver_sql("INSERT INTO t VALUES (1)")
            connection.rollback()
    finally:
        holder.dispose()
        waiter.dispose()
