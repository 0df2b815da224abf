"""The audit trail of JobSchedule changes on SQLite and PostgreSQL: the triggers keep every
insert, update and delete, by the CLI (its OS user), the API (its token's name) and plain
SQL over a connection of its own (the database user and application_name)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import make_url

from jobctl import audit, errors, migrate
from jobctl.audit import AuditEntry
from jobctl.repository import DEFAULT_ACTOR, Repository
from tests.conftest import ScheduleFactory
from tests.fixtures.cli import cli_env, run_cli
from tests.integration.test_migrations import (
    DAILY_ID,
    PAUSED_ID,
    create_original_database,
    schema_snapshot,
)

ON_POSTGRES = pytest.mark.parametrize(
    "database_url", ["postgresql"], ids=["postgres"], indirect=True
)
OS_USER = "alice"
APPLICATION = "ops-shell"
SQL_ACTOR = {"sqlite": "sql", "postgresql": "sql:postgres"}
SQL_USER = {"sqlite": None, "postgresql": "postgres"}
SQL_APPLICATION = {"sqlite": None, "postgresql": APPLICATION}


# -- helpers -----------------------------------------------------------------------------


def changes(engine: Engine, schedule_id: str | None = None) -> list[AuditEntry]:
    """Every recorded change, oldest first."""
    entries = audit.list_entries(Repository(engine), schedule_id=schedule_id, limit=10_000)
    return entries[::-1]


def by_plain_sql(database_url: str, statement: str, **params: Any) -> None:
    """``statement`` over a DBAPI connection of its own, as a shell would send it: no jobctl
    code, no setting of ours; on PostgreSQL with ``application_name`` = ops-shell."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        with sqlite3.connect(url.database) as connection:
            connection.execute(statement.replace("%(", ":").replace(")s", ""), params)
        connection.close()
        return
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, application_name=APPLICATION) as connection:
        connection.execute(statement, params)  # type: ignore[arg-type]


def actor_rows(engine: Engine) -> int:
    """Rows of the SQLite actor table (it must never keep one)."""
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM jobctl_audit_actor")).scalar_one())


@pytest.fixture
def env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The CLI's environment, run by the OS user ``alice`` (getpass reads LOGNAME first)."""
    monkeypatch.setenv("LOGNAME", OS_USER)
    return cli_env(database_url=database_url, home=tmp_path, pycache=tmp_path / "pycache")


# -- the three paths ---------------------------------------------------------------------


def test_cli_changes_name_the_os_user_with_before_and_after(
    engine: Engine, env: dict[str, str]
) -> None:
    schedule_id = run_cli(
        "schedule", "add", "--cron", "0 0 * * *", "--job", "processData", env=env
    ).stdout.strip()
    run_cli("schedule", "update", schedule_id, "--cron", "*/5 * * * *", env=env)
    run_cli("schedule", "disable", schedule_id, env=env)
    run_cli("schedule", "remove", schedule_id, env=env)

    added, updated, disabled, removed = changes(engine, schedule_id)
    assert [e.action for e in (added, updated, disabled, removed)] == [
        "insert",
        "update",
        "update",
        "delete",
    ]
    assert {e.actor for e in (added, updated, disabled, removed)} == {f"cli:{OS_USER}"}
    assert added.before is None
    assert added.after is not None
    assert (added.after["id"], added.after["cron"]) == (schedule_id, "0 0 * * *")
    assert updated.changes() == {"cron": ("0 0 * * *", "*/5 * * * *")}
    assert disabled.changes() == {"isActive": (True, False)}
    assert removed.after is None
    assert removed.before is not None
    assert (removed.before["cron"], removed.before["isActive"]) == ("*/5 * * * *", False)


def test_plain_sql_names_the_database_user_and_application(
    engine: Engine, database_url: str, schedule_factory: ScheduleFactory
) -> None:
    dialect = engine.dialect.name
    schedule = Repository(engine).add_schedule(schedule_factory(cron="0 0 * * *"))
    new_id = "6f1d1f0e-9a43-4d56-8d4e-0d6f3f3c2a10"

    by_plain_sql(
        database_url,
        'UPDATE "JobSchedule" SET cron = %(cron)s WHERE id = %(id)s',
        cron="*/5 * * * *",
        id=schedule.id,
    )
    by_plain_sql(
        database_url,
        'INSERT INTO "JobSchedule" (id, cron, "jobName", "updatedAt") '
        "VALUES (%(id)s, '0 3 * * *', 'processData', CURRENT_TIMESTAMP)",
        id=new_id,
    )
    by_plain_sql(database_url, 'DELETE FROM "JobSchedule" WHERE id = %(id)s', id=schedule.id)

    added, updated, inserted, deleted = changes(engine)
    assert added.actor == DEFAULT_ACTOR
    assert [(e.action, e.schedule_id) for e in (updated, inserted, deleted)] == [
        ("update", schedule.id),
        ("insert", new_id),
        ("delete", schedule.id),
    ]
    for entry in (updated, inserted, deleted):
        assert (entry.actor, entry.db_user, entry.application) == (
            SQL_ACTOR[dialect],
            SQL_USER[dialect],
            SQL_APPLICATION[dialect],
        )
    assert updated.changes() == {"cron": ("0 0 * * *", "*/5 * * * *")}
    assert inserted.after is not None and inserted.after["cron"] == "0 3 * * *"
    assert deleted.before is not None and deleted.before["cron"] == "*/5 * * * *"


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="no sqlite3 shell on this machine")
@pytest.mark.parametrize("database_url", ["sqlite"], ids=["sqlite"], indirect=True)
def test_the_sqlite3_shell_is_audited(
    engine: Engine, database_url: str, schedule_factory: ScheduleFactory
) -> None:
    """The shell knows no function of jobctl's: the triggers use none."""
    schedule = Repository(engine).add_schedule(schedule_factory(description="before"))
    path = make_url(database_url).database
    assert path is not None
    statement = f"UPDATE \"JobSchedule\" SET description = 'after' WHERE id = '{schedule.id}'"

    subprocess.run(["sqlite3", path, statement], check=True, capture_output=True, timeout=30)

    last = changes(engine)[-1]
    assert (last.action, last.actor) == ("update", "sql")
    assert last.changes() == {"description": ("before", "after")}


@pytest.mark.parametrize("database_url", ["sqlite"], ids=["sqlite"], indirect=True)
def test_values_json_cannot_hold_never_stop_a_plain_sql_write_on_sqlite(
    engine: Engine, database_url: str, schedule_factory: ScheduleFactory
) -> None:
    schedule = Repository(engine).add_schedule(schedule_factory())

    by_plain_sql(
        database_url,
        "UPDATE \"JobSchedule\" SET param = 'not json', description = X'00FF', "
        "\"isActive\" = 'false'",
    )

    last = changes(engine, schedule.id)[-1]
    assert last.after is not None
    assert (last.after["param"], last.after["description"], last.after["isActive"]) == (
        "not json",
        "X'00FF'",
        "false",
    )


@ON_POSTGRES
def test_truncate_is_kept_as_a_delete_of_every_row(
    engine: Engine, database_url: str, schedule_factory: ScheduleFactory
) -> None:
    repo = Repository(engine)
    ids = {repo.add_schedule(schedule_factory()).id for _ in range(2)}

    by_plain_sql(database_url, 'TRUNCATE "JobSchedule"')

    deletes = [e for e in changes(engine) if e.action == "delete"]
    assert {e.schedule_id for e in deletes} == ids
    assert {e.application for e in deletes} == {APPLICATION}
    assert all(e.before is not None and e.after is None for e in deletes)


@ON_POSTGRES
def test_a_role_without_rights_on_the_audit_is_audited_and_cannot_forge_it(
    engine: Engine, database_url: str, schedule_factory: ScheduleFactory
) -> None:
    """The trigger function runs as its owner (SECURITY DEFINER). (The change marker's
    trigger of migration 0002 does not: the role needs UPDATE on jobctl_state.)"""
    schedule = Repository(engine).add_schedule(schedule_factory(cron="0 0 * * *"))
    role = f"jobctl_editor_{uuid.uuid4().hex[:12]}"
    url = make_url(database_url)
    as_role = url.set(drivername="postgresql", username=role).render_as_string()
    with engine.begin() as connection:
        connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        connection.execute(text(f'GRANT SELECT, UPDATE ON "JobSchedule", jobctl_state TO "{role}"'))
    try:
        with psycopg.connect(as_role, application_name=APPLICATION) as connection:
            connection.execute("UPDATE \"JobSchedule\" SET cron = '0 2 * * *'")
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            psycopg.connect(as_role) as connection,
        ):
            connection.execute(
                'INSERT INTO jobctl_schedule_audit (action, "scheduleId", actor) '
                "VALUES ('update', 'x', 'cli:someone-else')"
            )
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'DROP OWNED BY "{role}"'))
            connection.execute(text(f'DROP ROLE "{role}"'))

    last = changes(engine, schedule.id)[-1]
    assert (last.actor, last.db_user, last.application) == (f"sql:{role}", role, APPLICATION)
    assert last.changes() == {"cron": ("0 0 * * *", "0 2 * * *")}


# -- what is kept, what is not -----------------------------------------------------------


def test_an_update_that_changes_nothing_leaves_no_row(
    engine: Engine, database_url: str, schedule_factory: ScheduleFactory
) -> None:
    Repository(engine).add_schedule(schedule_factory())

    by_plain_sql(database_url, 'UPDATE "JobSchedule" SET cron = cron')

    assert [e.action for e in changes(engine)] == ["insert"]


def test_the_audit_keeps_every_column_of_the_row(
    engine: Engine, schedule_factory: ScheduleFactory
) -> None:
    """SQLite's triggers name the columns: one added later must be added to them too."""
    Repository(engine).add_schedule(schedule_factory(param={"nested": ["x", 1]}))

    (added,) = changes(engine)

    columns = [column["name"] for column in inspect(engine).get_columns("JobSchedule")]
    assert added.after is not None
    assert sorted(added.after) == sorted(columns)
    assert added.after["param"] == {"nested": ["x", 1]}
    assert added.after["isActive"] is True


def test_the_actor_of_a_write_does_not_outlive_its_transaction(
    engine: Engine, schedule_factory: ScheduleFactory
) -> None:
    """The next statement on the same pooled connection is plain SQL again."""
    repo = Repository(engine).acting_as("cli:alice")
    schedule = repo.add_schedule(schedule_factory(cron="0 0 * * *"))

    with engine.begin() as connection:
        connection.execute(text("UPDATE \"JobSchedule\" SET cron = '0 1 * * *'"))

    added, updated = changes(engine, schedule.id)
    assert added.actor == "cli:alice"
    assert updated.actor == SQL_ACTOR[engine.dialect.name]
    if engine.dialect.name == "sqlite":
        assert actor_rows(engine) == 0


def test_a_write_that_fails_leaves_no_audit_row(
    engine: Engine, schedule_factory: ScheduleFactory
) -> None:
    repo = Repository(engine).acting_as("cli:alice")
    missing = "00000000-0000-0000-0000-000000000000"

    with pytest.raises(errors.ScheduleNotFound):
        repo.apply_schedules(
            adds=[("6f1d1f0e-9a43-4d56-8d4e-0d6f3f3c2a11", schedule_factory())],
            updates=[(missing, {"cron": "0 0 * * *"})],
        )

    assert changes(engine) == []
    assert repo.list_schedules() == []
    if engine.dialect.name == "sqlite":
        assert actor_rows(engine) == 0


def test_schedule_apply_names_the_cli_user(
    engine: Engine, env: dict[str, str], tmp_path: Path, schedule_factory: ScheduleFactory
) -> None:
    schedule = Repository(engine).add_schedule(schedule_factory(cron="0 0 * * *"))
    exported = run_cli("schedule", "export", env=env).stdout
    path = tmp_path / "schedules.yaml"
    path.write_text(exported.replace("0 0 * * *", "0 6 * * *"))

    run_cli("schedule", "apply", "-f", str(path), env=env)

    last = changes(engine, schedule.id)[-1]
    assert (last.action, last.actor) == ("update", f"cli:{OS_USER}")
    assert last.changes() == {"cron": ("0 0 * * *", "0 6 * * *")}


# -- schedule log and history purge ------------------------------------------------------


def test_schedule_log_shows_the_changed_fields_and_the_whole_rows_as_json(
    engine: Engine, database_url: str, env: dict[str, str]
) -> None:
    schedule_id = run_cli(
        "schedule", "add", "--cron", "0 0 * * *", "--job", "processData", env=env
    ).stdout.strip()
    run_cli("schedule", "update", schedule_id, "--cron", "*/5 * * * *", env=env)
    by_plain_sql(database_url, "UPDATE \"JobSchedule\" SET description = 'by hand'")

    table = run_cli("schedule", "log", schedule_id, env=env).stdout
    as_json = json.loads(run_cli("schedule", "log", schedule_id, "--json", env=env).stdout)
    future = run_cli("schedule", "log", "--since", "2999-01-01", env=env).stdout
    unknown = run_cli("schedule", "log", "nope", env=env, expect_rc=1)

    assert "3 change(s)" in table
    assert 'cron: "0 0 * * *" → "*/5 * * * *"' in table
    assert 'description: null → "by hand"' in table
    assert f"cli:{OS_USER}" in table
    assert [(e["action"], e["actor"]) for e in as_json] == [
        ("update", SQL_ACTOR[engine.dialect.name]),
        ("update", f"cli:{OS_USER}"),
        ("insert", f"cli:{OS_USER}"),
    ]
    assert as_json[1]["before"]["cron"] == "0 0 * * *"
    assert as_json[1]["after"]["cron"] == "*/5 * * * *"
    assert "0 change(s)" in future
    assert "no schedule has the id 'nope'" in unknown.stderr


def test_the_log_of_a_deleted_row_stays_readable(
    engine: Engine, schedule_factory: ScheduleFactory
) -> None:
    repo = Repository(engine)
    schedule = repo.add_schedule(schedule_factory())
    repo.delete_schedule(schedule.id)

    assert [e.action for e in changes(engine, schedule.id)] == ["insert", "delete"]
    with pytest.raises(errors.ScheduleNotFound):
        changes(engine, "00000000-0000-0000-0000-000000000000")


def test_history_purge_deletes_audit_rows_past_their_own_retention(
    engine: Engine, env: dict[str, str], schedule_factory: ScheduleFactory
) -> None:
    repo = Repository(engine)
    old, recent = (repo.add_schedule(schedule_factory()) for _ in range(2))
    with engine.begin() as connection:
        connection.execute(
            text('UPDATE jobctl_schedule_audit SET at = :at WHERE "scheduleId" = :id'),
            {"at": datetime.now(UTC) - timedelta(days=40), "id": old.id},
        )

    kept = run_cli("history", "purge", env=env).stdout
    purged = run_cli("history", "purge", env={**env, "JOBCTL_AUDIT_RETENTION_DAYS": "30"}).stdout

    assert "purged 0 schedule change(s) of the audit trail" in kept
    assert "purged 1 schedule change(s) of the audit trail" in purged
    assert [e.schedule_id for e in changes(engine)] == [recent.id]


def test_migration_0006_run_again_changes_nothing_and_audits_each_write_once(
    engine: Engine, schedule_factory: ScheduleFactory
) -> None:
    """Like 0004, it completes what is missing: run over its own tables and triggers (an
    interrupted upgrade, a version table restored from a backup), it duplicates nothing."""
    head = migrate.current_revision(engine)
    schema = schema_snapshot(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0005'"))

    migrate.upgrade(engine, "0006")

    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    assert schema_snapshot(engine) == schema
    Repository(engine).add_schedule(schedule_factory())
    assert [e.action for e in changes(engine)] == ["insert"]


# -- the original system's database, taken over ----------------------------------------


@pytest.fixture(params=["TEXT", "UUID"], ids=["text-id", "uuid-id"])
def taken_over(request: pytest.FixtureRequest, unmigrated_engine: Engine) -> Iterator[Engine]:
    create_original_database(unmigrated_engine, id_type=request.param)
    migrate.upgrade(unmigrated_engine)
    yield unmigrated_engine


@pytest.mark.parametrize("unmigrated_database_url", ["postgresql"], ids=["postgres"], indirect=True)
def test_the_original_rows_are_audited_by_their_id(
    taken_over: Engine, unmigrated_database_url: str
) -> None:
    Repository(taken_over).acting_as("api:deploy-bot").update_schedule(DAILY_ID, cron="0 4 * * *")
    by_plain_sql(
        unmigrated_database_url, 'DELETE FROM "JobSchedule" WHERE id = %(id)s', id=PAUSED_ID
    )

    updated, deleted = changes(taken_over)
    assert (updated.schedule_id, updated.actor) == (DAILY_ID, "api:deploy-bot")
    assert updated.before is not None and updated.before["description"] == "每日資料清理任務"
    assert "cron" in updated.changes()
    assert (deleted.schedule_id, deleted.actor, deleted.application) == (
        PAUSED_ID,
        "sql:postgres",
        APPLICATION,
    )
    assert [e.action for e in changes(taken_over, DAILY_ID)] == ["update"]
