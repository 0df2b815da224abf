from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from deployments.sync import desired_state
from jobctl import db, errors, migrate, validation
from jobctl.cli import cli
from jobctl.models import JobStatus
from jobctl.records import HistoryFilter, ScheduleSpec
from jobctl.repository import Repository
from jobctl.settings import Settings

MakeSpec = Callable[..., ScheduleSpec]

ORIGINAL_COLUMNS = {
    "JobSchedule": [
        "id",
        "cron",
        "jobName",
        "param",
        "isActive",
        "description",
        "priority",
        "timeout",
        "maxRetries",
        "createdAt",
        "updatedAt",
    ],
    "JobHistory": ["id", "jobName", "param", "status", "error", "startAt", "endAt"],
}
NEW_COLUMNS = {
    "JobSchedule": ["timezone", "retryDelay", "retryBackoff", "overlap", "misfireGrace", "alertTo"],
    "JobHistory": ["scheduleId", "flowRunId", "attempt", "peakMemoryBytes"],
}
HISTORY_INDEXES = {
    "JobHistory_jobName_startAt_id_idx": ["jobName", "startAt", "id"],
    "JobHistory_startAt_idx": ["startAt"],
    "JobHistory_status_startAt_id_idx": ["status", "startAt", "id"],
}
UNIQUE_RUN_ATTEMPT = ("JobHistory_flowRunId_attempt_key", ["flowRunId", "attempt"])
PRISMA_MIGRATIONS_COLUMNS = ["id", "checksum", "finished_at", "migration_name", "started_at"]

# Exactly what `prisma migrate` created for the original system's schema.prisma.
PRISMA_POSTGRES_DDL = [
    """CREATE TYPE "JobStatus" AS ENUM ('PROCESSING', 'SUCCESS', 'FAILED')""",
    """CREATE TABLE "JobSchedule" (
    "id" {id_type} NOT NULL,
    "cron" TEXT NOT NULL,
    "jobName" TEXT NOT NULL,
    "param" JSONB,
    "isActive" BOOLEAN NOT NULL DEFAULT true,
    "description" TEXT,
    "priority" INTEGER,
    "timeout" INTEGER,
    "maxRetries" INTEGER,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "JobSchedule_pkey" PRIMARY KEY ("id")
)""",
    """CREATE TABLE "JobHistory" (
    "id" SERIAL NOT NULL,
    "jobName" TEXT NOT NULL,
    "param" JSONB,
    "status" "JobStatus" NOT NULL,
    "error" TEXT,
    "startAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "endAt" TIMESTAMP(3),
    CONSTRAINT "JobHistory_pkey" PRIMARY KEY ("id")
)""",
    """CREATE TABLE "_prisma_migrations" (
    "id" VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum" VARCHAR(64) NOT NULL,
    "finished_at" TIMESTAMPTZ,
    "migration_name" VARCHAR(255) NOT NULL,
    "logs" TEXT,
    "rolled_back_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count" INTEGER NOT NULL DEFAULT 0
)""",
]
# Prisma's SQLite flavour of the same schema: DATETIME columns, TEXT for Json and enums.
PRISMA_SQLITE_DDL = [
    """CREATE TABLE "JobSchedule" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "cron" TEXT NOT NULL,
    "jobName" TEXT NOT NULL,
    "param" TEXT,
    "isActive" BOOLEAN NOT NULL DEFAULT true,
    "description" TEXT,
    "priority" INTEGER,
    "timeout" INTEGER,
    "maxRetries" INTEGER,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL
)""",
    """CREATE TABLE "JobHistory" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "jobName" TEXT NOT NULL,
    "param" TEXT,
    "status" TEXT NOT NULL,
    "error" TEXT,
    "startAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "endAt" DATETIME
)""",
    """CREATE TABLE "_prisma_migrations" (
    "id" TEXT PRIMARY KEY NOT NULL,
    "checksum" TEXT NOT NULL,
    "finished_at" DATETIME,
    "migration_name" TEXT NOT NULL,
    "logs" TEXT,
    "rolled_back_at" DATETIME,
    "started_at" DATETIME NOT NULL DEFAULT current_timestamp,
    "applied_steps_count" INTEGER UNSIGNED NOT NULL DEFAULT 0
)""",
]

UNICODE_TASK = "每日資料清理任務"
DAILY_ID = "0b0e6a3e-6f1f-4a53-9c55-3b3a3f6c1a01"
PAUSED_ID = "0b0e6a3e-6f1f-4a53-9c55-3b3a3f6c1a02"
ORIGINAL_SCHEDULES: list[dict[str, Any]] = [
    {
        "id": DAILY_ID,
        "cron": "0 3 * * *",
        "jobName": "processData",
        "param": {"task": UNICODE_TASK, "items": ["a", "b"], "depth": {"n": 1.5}},
        "isActive": True,
        "description": UNICODE_TASK,
        "priority": 1,
        "timeout": 60_000,
        "maxRetries": 3,
        "createdAt": datetime(2025, 12, 31, 23, 59, 59, 123000, tzinfo=UTC),
        "updatedAt": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
    },
    {
        "id": PAUSED_ID,
        "cron": "*/5 * * * *",
        "jobName": "httpCall",
        "param": None,
        "isActive": False,
        "description": None,
        "priority": None,
        "timeout": None,
        "maxRetries": None,
        "createdAt": datetime(2026, 1, 5, tzinfo=UTC),
        "updatedAt": datetime(2026, 1, 5, tzinfo=UTC),
    },
]
# Inserted in this order, so SERIAL/AUTOINCREMENT gives them the ids 1, 2, 3.
ORIGINAL_HISTORY: list[dict[str, Any]] = [
    {
        "jobName": "processData",
        "param": {"task": UNICODE_TASK},
        "status": "SUCCESS",
        "error": None,
        "startAt": datetime(2026, 1, 1, 3, 0, 0, 1000, tzinfo=UTC),
        "endAt": datetime(2026, 1, 1, 3, 0, 1, 500000, tzinfo=UTC),
    },
    {
        "jobName": "processData",
        "param": None,
        "status": "FAILED",
        "error": "Error: connection refused",
        "startAt": datetime(2026, 3, 1, 3, 0, tzinfo=UTC),
        "endAt": datetime(2026, 3, 1, 3, 0, 2, tzinfo=UTC),
    },
    {
        "jobName": "httpCall",
        "param": {"url": "https://example.invalid/hook"},
        "status": "PROCESSING",
        "error": None,
        "startAt": datetime(2026, 3, 2, 3, 0, tzinfo=UTC),
        "endAt": None,
    },
]


# -- helpers -----------------------------------------------------------------------------


def column_names(engine: Engine, table: str) -> list[str]:
    return [column["name"] for column in inspect(engine).get_columns(table)]


def indexes(engine: Engine, table: str) -> dict[str, tuple[list[str], bool]]:
    return {
        index["name"]: ([str(c) for c in index["column_names"]], bool(index["unique"]))
        for index in inspect(engine).get_indexes(table)
        if index["name"]
    }


def schema_snapshot(engine: Engine) -> dict[str, Any]:
    inspector = inspect(engine)
    return {
        table: {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ],
            "indexes": sorted(indexes(engine, table).items()),
        }
        for table in sorted(inspector.get_table_names())
    }


def dump_rows(engine: Engine, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    """Every row as the driver returns it, on the given columns, ordered by id."""
    quoted = ", ".join(f'"{column}"' for column in columns)
    with engine.connect() as connection:
        rows = connection.execute(text(f'SELECT {quoted} FROM "{table}" ORDER BY "id"'))
        return [tuple(row) for row in rows]


def dump_original_data(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    dumps = {
        table: dump_rows(engine, table, columns) for table, columns in ORIGINAL_COLUMNS.items()
    }
    dumps["_prisma_migrations"] = dump_rows(engine, "_prisma_migrations", PRISMA_MIGRATIONS_COLUMNS)
    return dumps


def column_definitions(engine: Engine, table: str) -> dict[str, tuple[Any, ...]]:
    """How the database itself describes each column (type, precision, null, default)."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            rows = connection.execute(
                text(
                    "SELECT column_name, data_type, udt_name, datetime_precision, is_nullable, "
                    "column_default FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = :table"
                ),
                {"table": table},
            )
            return {row[0]: tuple(row[1:]) for row in rows}
        rows = connection.execute(text(f'PRAGMA table_info("{table}")'))
        return {row[1]: (row[2], row[3], row[4], row[5]) for row in rows}


def plain_sql(engine: Engine, statement: str, **params: Any) -> None:
    with engine.begin() as connection:
        connection.execute(text(statement), params)


# -- the original system's database ----------------------------------------------------


def prisma_stored(engine: Engine, moment: datetime | None) -> Any:
    """A timestamp as Prisma writes it: naive UTC in TIMESTAMP(3); epoch ms on SQLite."""
    if moment is None:
        return None
    if engine.dialect.name == "postgresql":
        return moment.astimezone(UTC).replace(tzinfo=None)
    return int(moment.timestamp() * 1000)


def create_original_database(engine: Engine, id_type: str = "TEXT") -> None:
    """The original's tables and rows; ``id_type`` is ``UUID`` when its Prisma schema said
    ``@db.Uuid`` (the original's ERD: ``uuid id PK``), ``TEXT`` when it did not."""
    postgres = engine.dialect.name == "postgresql"
    json_value = "CAST(:param AS JSONB)" if postgres else ":param"
    status_value = 'CAST(:status AS "JobStatus")' if postgres else ":status"
    with engine.begin() as connection:
        for statement in PRISMA_POSTGRES_DDL if postgres else PRISMA_SQLITE_DDL:
            connection.execute(text(statement.replace("{id_type}", id_type)))
        for schedule in ORIGINAL_SCHEDULES:
            connection.execute(
                text(
                    'INSERT INTO "JobSchedule" ("id", "cron", "jobName", "param", "isActive", '
                    '"description", "priority", "timeout", "maxRetries", "createdAt", '
                    f'"updatedAt") VALUES (:id, :cron, :jobName, {json_value}, :isActive, '
                    ":description, :priority, :timeout, :maxRetries, :createdAt, :updatedAt)"
                ),
                {
                    **schedule,
                    "param": _json_text(schedule["param"]),
                    "isActive": schedule["isActive"] if postgres else int(schedule["isActive"]),
                    "createdAt": prisma_stored(engine, schedule["createdAt"]),
                    "updatedAt": prisma_stored(engine, schedule["updatedAt"]),
                },
            )
        for attempt in ORIGINAL_HISTORY:
            connection.execute(
                text(
                    'INSERT INTO "JobHistory" ("jobName", "param", "status", "error", '
                    f'"startAt", "endAt") VALUES (:jobName, {json_value}, {status_value}, '
                    ":error, :startAt, :endAt)"
                ),
                {
                    **attempt,
                    "param": _json_text(attempt["param"]),
                    "startAt": prisma_stored(engine, attempt["startAt"]),
                    "endAt": prisma_stored(engine, attempt["endAt"]),
                },
            )
        connection.execute(
            text(
                'INSERT INTO "_prisma_migrations" ("id", "checksum", "finished_at", '
                '"migration_name", "started_at", "applied_steps_count") '
                "VALUES (:id, :checksum, :finished_at, :name, :started_at, 1)"
            ),
            {
                "id": "6a1c2f0e-2d2b-4a6e-8f0a-0c8f4f1d9b11",
                "checksum": "9" * 64,
                "finished_at": prisma_stored(engine, datetime(2025, 12, 1, 10, 0, 1, tzinfo=UTC)),
                "name": "20251201100000_init",
                "started_at": prisma_stored(engine, datetime(2025, 12, 1, 10, 0, tzinfo=UTC)),
            },
        )


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


# The original system ran on PostgreSQL. Prisma's SQLite connector stores times as epoch
# milliseconds, which jobctl refuses to upgrade (see the SQLite test at the end).
ORIGINAL_ON_POSTGRES = pytest.mark.parametrize(
    "unmigrated_database_url", ["postgresql"], ids=["postgres"], indirect=True
)


@pytest.fixture(params=["TEXT", "UUID"], ids=["text-id", "uuid-id"])
def original_engine(request: pytest.FixtureRequest, unmigrated_engine: Engine) -> Engine:
    """A database as the original NestJS/Prisma system left it, with a few rows: its ids
    TEXT (Prisma's ``String @id``) or PostgreSQL ``uuid`` (``@db.Uuid``)."""
    create_original_database(unmigrated_engine, id_type=request.param)
    return unmigrated_engine


# -- an empty database -----------------------------------------------------------------


def test_upgrade_creates_both_tables_with_the_original_column_names(unmigrated_engine: Engine):
    migrate.upgrade(unmigrated_engine)

    for table in ORIGINAL_COLUMNS:
        assert (
            column_names(unmigrated_engine, table) == ORIGINAL_COLUMNS[table] + NEW_COLUMNS[table]
        )


@pytest.mark.parametrize("unmigrated_database_url", ["postgresql"], ids=["postgres"], indirect=True)
def test_upgrade_creates_the_job_status_enum_on_postgres(unmigrated_engine: Engine):
    migrate.upgrade(unmigrated_engine)

    enums = {e["name"]: e["labels"] for e in inspect(unmigrated_engine).get_enums()}  # type: ignore[attr-defined]
    assert enums == {"JobStatus": ["PROCESSING", "SUCCESS", "FAILED"]}
    columns = column_definitions(unmigrated_engine, "JobHistory")
    assert columns["status"][1] == "JobStatus"
    assert columns["param"][1] == "jsonb"
    assert columns["startAt"][0] == "timestamp with time zone"


def test_upgrade_creates_the_history_indexes(unmigrated_engine: Engine):
    migrate.upgrade(unmigrated_engine)

    found = indexes(unmigrated_engine, "JobHistory")
    for name, columns in HISTORY_INDEXES.items():
        assert found[name] == (columns, False)
    unique_name, unique_columns = UNIQUE_RUN_ATTEMPT
    assert found[unique_name] == (unique_columns, True)


def test_history_is_unique_on_flow_run_and_attempt(unmigrated_engine: Engine):
    migrate.upgrade(unmigrated_engine)
    insert = (
        'INSERT INTO "JobHistory" ("jobName", "status", "flowRunId", "attempt") '
        "VALUES ('sleep', 'SUCCESS', :run, :attempt)"
    )
    plain_sql(unmigrated_engine, insert, run="run-1", attempt=1)
    plain_sql(unmigrated_engine, insert, run="run-1", attempt=2)

    with pytest.raises(IntegrityError):
        plain_sql(unmigrated_engine, insert, run="run-1", attempt=1)


def test_history_rows_without_flow_run_do_not_collide(unmigrated_engine: Engine):
    migrate.upgrade(unmigrated_engine)
    insert = 'INSERT INTO "JobHistory" ("jobName", "status") VALUES (\'sleep\', \'SUCCESS\')'

    plain_sql(unmigrated_engine, insert)
    plain_sql(unmigrated_engine, insert)

    assert Repository(unmigrated_engine).count_history() == 2


def test_is_current_is_false_before_and_true_after_upgrade(unmigrated_engine: Engine):
    assert migrate.current_revision(unmigrated_engine) is None
    assert migrate.is_current(unmigrated_engine) is False

    migrate.upgrade(unmigrated_engine)

    assert migrate.current_revision(unmigrated_engine) == migrate.head_revision()
    assert migrate.is_current(unmigrated_engine) is True


def test_partial_upgrade_is_not_current(unmigrated_engine: Engine):
    migrate.upgrade(unmigrated_engine, revision="0001")

    assert migrate.current_revision(unmigrated_engine) == "0001"
    assert migrate.is_current(unmigrated_engine) is False
    with pytest.raises(errors.MigrationsPending):
        Repository(unmigrated_engine).schedule_version()


def test_upgrade_completes_a_partial_upgrade(unmigrated_engine: Engine):
    migrate.upgrade(unmigrated_engine, revision="0001")

    migrate.upgrade(unmigrated_engine)

    assert migrate.is_current(unmigrated_engine) is True
    assert Repository(unmigrated_engine).schedule_version() == 0


def test_upgrading_twice_is_a_no_op(unmigrated_engine: Engine, schedule_factory: MakeSpec):
    migrate.upgrade(unmigrated_engine)
    repo = Repository(unmigrated_engine)
    schedule = repo.add_schedule(schedule_factory())
    schema = schema_snapshot(unmigrated_engine)
    version = repo.schedule_version()

    migrate.upgrade(unmigrated_engine)

    assert schema_snapshot(unmigrated_engine) == schema
    assert repo.list_schedules() == [schedule]
    assert repo.schedule_version() == version
    assert migrate.current_revision(unmigrated_engine) == migrate.head_revision()


def test_migrated_database_url_fixture_is_current(engine: Engine):
    assert migrate.is_current(engine) is True


def test_current_revision_of_an_unreachable_database_raises_database_unavailable():
    engine = db.create_db_engine("postgresql+psycopg://postgres@127.0.0.1:1/jobctl")
    try:
        with pytest.raises(errors.DatabaseUnavailable):
            migrate.current_revision(engine)
    finally:
        engine.dispose()


# -- the original system's database ----------------------------------------------------


@ORIGINAL_ON_POSTGRES
def test_original_database_is_not_current_before_upgrade(original_engine: Engine):
    assert migrate.current_revision(original_engine) is None
    assert migrate.is_current(original_engine) is False


@ORIGINAL_ON_POSTGRES
def test_upgrade_keeps_every_original_row_and_value(original_engine: Engine):
    before = dump_original_data(original_engine)
    assert len(before["JobSchedule"]) == 2
    assert len(before["JobHistory"]) == 3

    migrate.upgrade(original_engine)

    assert dump_original_data(original_engine) == before
    assert migrate.is_current(original_engine) is True


@ORIGINAL_ON_POSTGRES
def test_upgrade_keeps_the_original_column_types(original_engine: Engine):
    before = {table: column_definitions(original_engine, table) for table in ORIGINAL_COLUMNS}

    migrate.upgrade(original_engine)

    for table, definitions in before.items():
        after = column_definitions(original_engine, table)
        assert {name: after[name] for name in definitions} == definitions


@pytest.mark.parametrize("unmigrated_database_url", ["postgresql"], ids=["postgres"], indirect=True)
def test_upgrade_keeps_timestamps_without_time_zone_on_postgres(original_engine: Engine):
    migrate.upgrade(original_engine)

    schedule = column_definitions(original_engine, "JobSchedule")
    history = column_definitions(original_engine, "JobHistory")
    for column in (schedule["createdAt"], schedule["updatedAt"], history["startAt"]):
        assert column[0] == "timestamp without time zone"
        assert column[2] == 3
    assert history["status"][1] == "JobStatus"
    assert schedule["param"][1] == "jsonb"


@ORIGINAL_ON_POSTGRES
def test_upgrade_adds_the_new_columns_and_indexes(original_engine: Engine):
    migrate.upgrade(original_engine)

    for table in ORIGINAL_COLUMNS:
        assert column_names(original_engine, table) == ORIGINAL_COLUMNS[table] + NEW_COLUMNS[table]
    found = indexes(original_engine, "JobHistory")
    for name, columns in HISTORY_INDEXES.items():
        assert found[name] == (columns, False)
    assert found[UNIQUE_RUN_ATTEMPT[0]] == (UNIQUE_RUN_ATTEMPT[1], True)


@ORIGINAL_ON_POSTGRES
def test_upgrade_of_the_original_database_twice_is_a_no_op(original_engine: Engine):
    migrate.upgrade(original_engine)
    schema = schema_snapshot(original_engine)
    data = dump_original_data(original_engine)

    migrate.upgrade(original_engine)

    assert schema_snapshot(original_engine) == schema
    assert dump_original_data(original_engine) == data


@ORIGINAL_ON_POSTGRES
def test_repository_reads_original_schedules(original_engine: Engine):
    migrate.upgrade(original_engine)

    schedules = Repository(original_engine).list_schedules()

    assert [s.id for s in schedules] == [DAILY_ID, PAUSED_ID]
    for schedule, original in zip(schedules, ORIGINAL_SCHEDULES, strict=True):
        assert schedule.cron == original["cron"]
        assert schedule.job_name == original["jobName"]
        assert schedule.param == original["param"]
        assert schedule.is_active is original["isActive"]
        assert schedule.description == original["description"]
        assert schedule.priority == original["priority"]
        assert schedule.timeout_ms == original["timeout"]
        assert schedule.max_retries == original["maxRetries"]
        assert schedule.created_at == original["createdAt"]
        assert schedule.updated_at == original["updatedAt"]
        assert schedule.created_at is not None
        assert schedule.created_at.utcoffset() == timedelta(0)
        assert (schedule.timezone, schedule.retry_delay_ms, schedule.misfire_grace_ms) == (
            None,
            None,
            None,
        )
        assert (schedule.retry_backoff, schedule.overlap) == ("fixed", "allow")


@ORIGINAL_ON_POSTGRES
def test_repository_reads_original_history(original_engine: Engine):
    migrate.upgrade(original_engine)

    attempts = Repository(original_engine).list_history(HistoryFilter())

    assert [a.id for a in attempts] == [3, 2, 1]
    for attempt, original in zip(attempts, reversed(ORIGINAL_HISTORY), strict=True):
        assert attempt.job_name == original["jobName"]
        assert attempt.param == original["param"]
        assert attempt.status is JobStatus(original["status"])
        assert attempt.error == original["error"]
        assert attempt.start_at == original["startAt"]
        assert attempt.start_at.utcoffset() == timedelta(0)
        assert attempt.end_at == original["endAt"]
        assert (attempt.schedule_id, attempt.flow_run_id, attempt.attempt) == (None, None, None)


@ORIGINAL_ON_POSTGRES
def test_purge_history_deletes_only_old_original_rows(original_engine: Engine):
    migrate.upgrade(original_engine)
    repo = Repository(original_engine)

    purged = repo.purge_history(datetime(2026, 2, 1, tzinfo=UTC))

    assert dump_rows(original_engine, "JobHistory", ["id"]) == [(2,), (3,)]
    assert purged == 1


@ORIGINAL_ON_POSTGRES
def test_the_start_of_an_original_id_names_its_row(
    original_engine: Engine, schedule_factory: MakeSpec
):
    migrate.upgrade(original_engine)
    repo = Repository(original_engine)
    original_ids = [row.id for row in repo.list_schedules()]
    added = repo.add_schedule(
        schedule_factory(), schedule_id="9d3e52b7-0000-4000-8000-000000000000"
    )

    assert repo.resolve_schedule_id("9d3e52b7") == added.id
    assert [repo.resolve_schedule_id(i) for i in original_ids] == original_ids
    with pytest.raises(errors.InvalidInput, match="several schedules"):
        repo.resolve_schedule_id(original_ids[0][:8])  # the original's ids differ at the end
    with pytest.raises(errors.ScheduleNotFound):
        repo.resolve_schedule_id("zzzzzzzz")


@ORIGINAL_ON_POSTGRES
def test_repository_writes_into_the_upgraded_database(
    original_engine: Engine, schedule_factory: MakeSpec
):
    migrate.upgrade(original_engine)
    repo = Repository(original_engine)
    start_at = datetime(2026, 4, 1, 12, 0, 0, 250000, tzinfo=UTC)

    schedule = repo.add_schedule(schedule_factory(param={"task": UNICODE_TASK}))
    history_id = repo.start_attempt(
        flow_run_id="run-1",
        attempt=1,
        job_name="processData",
        param={"task": UNICODE_TASK},
        schedule_id=schedule.id,
        start_at=start_at,
    )
    replayed_id = repo.start_attempt(
        flow_run_id="run-1",
        attempt=1,
        job_name="processData",
        param=None,
        schedule_id=schedule.id,
        start_at=start_at,
    )
    repo.finish_attempt(
        flow_run_id="run-1",
        attempt=1,
        status=JobStatus.SUCCESS,
        job_name="processData",
        param={"task": UNICODE_TASK},
        schedule_id=schedule.id,
        end_at=start_at + timedelta(seconds=2),
    )

    assert repo.get_schedule(schedule.id) == schedule
    assert history_id == replayed_id == 4
    attempt = repo.get_attempt(history_id)
    assert attempt.status is JobStatus.SUCCESS
    assert (attempt.start_at, attempt.end_at) == (start_at, start_at + timedelta(seconds=2))
    assert attempt.param == {"task": UNICODE_TASK}
    assert repo.count_history() == 4


@ORIGINAL_ON_POSTGRES
def test_original_rows_are_found_updated_and_deleted_by_their_id(original_engine: Engine):
    migrate.upgrade(original_engine)
    repo = Repository(original_engine)

    assert repo.get_schedule(DAILY_ID).cron == "0 3 * * *"
    updated = repo.update_schedule(DAILY_ID, cron="0 4 * * *")
    repo.delete_schedule(PAUSED_ID)

    assert (updated.id, updated.cron) == (DAILY_ID, "0 4 * * *")
    assert [s.id for s in repo.list_schedules()] == [DAILY_ID]
    assert all(isinstance(s.id, str) for s in repo.list_schedules())
    assert validation.id_problems(updated.id) == []
    # An id that is no UUID matches no row of a uuid column: not found, not a driver error.
    assert repo.get_schedule_or_none("not-a-uuid") is None
    with pytest.raises(errors.ScheduleNotFound):
        repo.update_schedule("not-a-uuid", cron="0 5 * * *")
    with pytest.raises(errors.ScheduleNotFound):
        repo.delete_schedule("not-a-uuid")


@ORIGINAL_ON_POSTGRES
def test_rows_added_to_the_original_table_get_ids_of_its_kind(
    original_engine: Engine, schedule_factory: MakeSpec
):
    migrate.upgrade(original_engine)
    repo = Repository(original_engine)

    added = repo.add_schedule(schedule_factory())

    assert isinstance(added.id, str)
    assert repo.get_schedule(added.id) == added
    assert str(uuid.UUID(added.id)) == added.id


@ORIGINAL_ON_POSTGRES
def test_the_sync_accepts_the_ids_of_the_original_rows(original_engine: Engine):
    migrate.upgrade(original_engine)

    specs, rejected = desired_state(Settings(database_url="sqlite://"), Repository(original_engine))

    # Both original rows have params today's demo jobs refuse; their ids must pass.
    assert set(specs) | set(rejected) == {DAILY_ID, PAUSED_ID}
    assert [reason for reason in rejected.values() if "id:" in reason] == []


@ORIGINAL_ON_POSTGRES
def test_cli_lists_and_shows_the_original_rows_after_db_upgrade(original_engine: Engine):
    url = original_engine.url.render_as_string(hide_password=False)
    runner = CliRunner()

    upgraded = runner.invoke(cli, ["--database-url", url, "db", "upgrade"])
    listed = runner.invoke(cli, ["--database-url", url, "schedule", "list"])
    shown = runner.invoke(cli, ["--database-url", url, "schedule", "show", DAILY_ID])

    assert upgraded.exit_code == 0, upgraded.output
    assert "the original system's tables" in upgraded.output
    assert "from nothing" not in upgraded.output
    assert listed.exit_code == 0, listed.output
    assert "id: must be" not in listed.output  # the uuid ids were read as non-text
    assert DAILY_ID in listed.output and PAUSED_ID in listed.output
    assert shown.exit_code == 0, shown.output
    assert "0 3 * * *" in shown.output


@ORIGINAL_ON_POSTGRES
def test_schedule_version_bumps_in_the_upgraded_database(
    original_engine: Engine, schedule_factory: MakeSpec
):
    migrate.upgrade(original_engine)
    repo = Repository(original_engine)
    versions = [repo.schedule_version()]

    plain_sql(
        original_engine,
        'UPDATE "JobSchedule" SET "cron" = \'0 4 * * *\' WHERE "id" = :id',
        id=DAILY_ID,
    )
    versions.append(repo.schedule_version())
    repo.add_schedule(schedule_factory())
    versions.append(repo.schedule_version())
    plain_sql(original_engine, 'DELETE FROM "JobSchedule" WHERE "id" = :id', id=PAUSED_ID)
    versions.append(repo.schedule_version())

    assert versions == sorted(set(versions)), versions


@pytest.mark.parametrize("unmigrated_database_url", ["sqlite"], ids=["sqlite"], indirect=True)
def test_upgrade_refuses_a_prisma_sqlite_database_and_changes_nothing(
    unmigrated_engine: Engine,
) -> None:
    create_original_database(unmigrated_engine)
    before = dump_original_data(unmigrated_engine)
    columns_before = {t: column_names(unmigrated_engine, t) for t in ORIGINAL_COLUMNS}

    with pytest.raises(errors.IncompatibleDatabase, match="epoch milliseconds"):
        migrate.upgrade(unmigrated_engine)

    assert dump_original_data(unmigrated_engine) == before
    assert {t: column_names(unmigrated_engine, t) for t in ORIGINAL_COLUMNS} == columns_before
    assert migrate.current_revision(unmigrated_engine) is None
