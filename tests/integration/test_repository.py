from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, insert, text
from sqlalchemy.exc import DBAPIError, StatementError

from jobctl import db, errors
from jobctl.models import JobHistory, JobStatus
from jobctl.records import HistoryFilter, InvalidJson, ScheduleSpec
from jobctl.repository import Repository

MakeSpec = Callable[..., ScheduleSpec]

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NAIVE = datetime(2026, 3, 1, 12, 0)  # noqa: DTZ001
UNREACHABLE_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:1/jobctl"
UNICODE_PARAM = {"name": "每日資料清理任務", "items": ["ä", "ö", "😀"], "nested": {"n": 1.5}}


def is_aware_utc(moment: datetime | None) -> bool:
    return moment is not None and moment.utcoffset() == timedelta(0)


def plain_sql(engine: Engine, statement: str, **params: Any) -> None:
    with engine.begin() as connection:
        connection.execute(text(statement), params)


def start(repo: Repository, flow_run_id: str = "run-1", attempt: int = 1, **kwargs: Any) -> int:
    values: dict[str, Any] = {
        "job_name": "processData",
        "param": ["a"],
        "schedule_id": "schedule-1",
        "start_at": T0,
    }
    values.update(kwargs)
    return repo.start_attempt(flow_run_id=flow_run_id, attempt=attempt, **values)


def finish(repo: Repository, flow_run_id: str = "run-1", attempt: int = 1, **kwargs: Any) -> bool:
    values: dict[str, Any] = {
        "status": JobStatus.SUCCESS,
        "job_name": "processData",
        "param": ["a"],
        "schedule_id": "schedule-1",
        "end_at": T0 + timedelta(seconds=5),
    }
    values.update(kwargs)
    return repo.finish_attempt(flow_run_id=flow_run_id, attempt=attempt, **values)


# -- schedules -------------------------------------------------------------------------


def test_list_schedules_is_empty_on_a_new_database(repo: Repository):
    assert repo.list_schedules() == []


def test_add_schedule_stores_every_field(repo: Repository, schedule_factory: MakeSpec):
    spec = schedule_factory(param=UNICODE_PARAM)

    added = repo.add_schedule(spec)

    assert added.spec() == spec
    assert uuid.UUID(added.id)
    assert repo.get_schedule(added.id) == added


def test_add_schedule_defaults_match_the_original_system(repo: Repository):
    added = repo.add_schedule(ScheduleSpec(cron="* * * * *", job_name="sleep"))

    assert added.is_active is True
    assert added.retry_backoff == "fixed"
    assert added.overlap == "allow"
    assert added.param is None
    assert added.timeout_ms is None


def test_add_schedule_uses_a_given_id(repo: Repository, schedule_factory: MakeSpec):
    added = repo.add_schedule(schedule_factory(), schedule_id="my-own-id")

    assert added.id == "my-own-id"
    assert repo.get_schedule("my-own-id") == added


def test_add_schedule_sets_created_and_updated_at_in_utc(
    repo: Repository, schedule_factory: MakeSpec
):
    before = datetime.now(UTC)

    added = repo.add_schedule(schedule_factory())

    after = datetime.now(UTC)
    assert is_aware_utc(added.created_at)
    assert is_aware_utc(added.updated_at)
    assert added.created_at is not None
    assert before <= added.created_at <= after


@pytest.mark.parametrize(
    "param",
    [None, [], {}, "text", 0, 1.5, True, ["a", "b"], UNICODE_PARAM, {"deep": [{"x": [None]}]}],
    ids=repr,
)
def test_schedule_param_round_trips(repo: Repository, schedule_factory: MakeSpec, param: Any):
    added = repo.add_schedule(schedule_factory(param=param))

    assert repo.get_schedule(added.id).param == param
    assert type(repo.get_schedule(added.id).param) is type(param)


def test_get_schedule_raises_schedule_not_found_for_a_missing_id(repo: Repository):
    with pytest.raises(errors.ScheduleNotFound, match="nope"):
        repo.get_schedule("nope")


def test_get_schedule_or_none_returns_none_for_a_missing_id(repo: Repository):
    assert repo.get_schedule_or_none("nope") is None


def test_list_schedules_returns_every_row_in_creation_order(
    repo: Repository, schedule_factory: MakeSpec
):
    added = [repo.add_schedule(schedule_factory(description=f"row {i}")) for i in range(3)]

    assert repo.list_schedules() == added


def test_update_schedule_changes_only_the_given_fields(
    repo: Repository, schedule_factory: MakeSpec
):
    added = repo.add_schedule(schedule_factory())

    updated = repo.update_schedule(added.id, cron="0 3 * * *", is_active=False, param={"k": 1})

    assert updated.spec() == added.spec().replace(cron="0 3 * * *", is_active=False, param={"k": 1})
    assert updated.created_at == added.created_at
    assert repo.get_schedule(added.id) == updated


def test_update_schedule_moves_updated_at_forward(repo: Repository, schedule_factory: MakeSpec):
    added = repo.add_schedule(schedule_factory())

    updated = repo.update_schedule(added.id, description="changed")

    assert added.updated_at is not None
    assert updated.updated_at is not None
    assert updated.updated_at > added.updated_at
    assert is_aware_utc(updated.updated_at)


def test_update_schedule_can_set_fields_to_null(repo: Repository, schedule_factory: MakeSpec):
    added = repo.add_schedule(schedule_factory())

    updated = repo.update_schedule(added.id, timeout_ms=None, timezone=None, description=None)

    assert (updated.timeout_ms, updated.timezone, updated.description) == (None, None, None)


def test_update_schedule_raises_schedule_not_found_for_a_missing_id(repo: Repository):
    with pytest.raises(errors.ScheduleNotFound):
        repo.update_schedule("nope", description="x")


def test_update_schedule_rejects_unknown_fields(repo: Repository, schedule_factory: MakeSpec):
    added = repo.add_schedule(schedule_factory())

    with pytest.raises(ValueError, match="id, updatedAt"):
        repo.update_schedule(added.id, id="other", updatedAt=T0)

    assert repo.get_schedule(added.id) == added


def test_delete_schedule_removes_only_that_row(repo: Repository, schedule_factory: MakeSpec):
    kept = repo.add_schedule(schedule_factory())
    deleted = repo.add_schedule(schedule_factory())

    repo.delete_schedule(deleted.id)

    assert repo.get_schedule_or_none(deleted.id) is None
    assert repo.list_schedules() == [kept]


def test_delete_schedule_raises_schedule_not_found_for_a_missing_id(repo: Repository):
    with pytest.raises(errors.ScheduleNotFound):
        repo.delete_schedule("nope")


def test_delete_schedule_keeps_its_history(repo: Repository, schedule_factory: MakeSpec):
    schedule = repo.add_schedule(schedule_factory())
    history_id = start(repo, schedule_id=schedule.id)

    repo.delete_schedule(schedule.id)

    assert repo.get_attempt(history_id).schedule_id == schedule.id


# -- the change marker -------------------------------------------------------------------


def test_schedule_version_increases_after_plain_sql_changes(repo: Repository, engine: Engine):
    versions = [repo.schedule_version()]

    plain_sql(
        engine,
        'INSERT INTO "JobSchedule" (id, cron, "jobName") VALUES (:id, :cron, :job)',
        id="by-sql",
        cron="* * * * *",
        job="sleep",
    )
    versions.append(repo.schedule_version())
    plain_sql(engine, 'UPDATE "JobSchedule" SET "isActive" = false WHERE id = :id', id="by-sql")
    versions.append(repo.schedule_version())
    plain_sql(engine, 'DELETE FROM "JobSchedule" WHERE id = :id', id="by-sql")
    versions.append(repo.schedule_version())

    assert versions == sorted(set(versions)), versions


def test_schedule_version_increases_after_repository_changes(
    repo: Repository, schedule_factory: MakeSpec
):
    versions = [repo.schedule_version()]
    added = repo.add_schedule(schedule_factory())
    versions.append(repo.schedule_version())
    repo.update_schedule(added.id, is_active=False)
    versions.append(repo.schedule_version())
    repo.delete_schedule(added.id)
    versions.append(repo.schedule_version())

    assert versions == sorted(set(versions)), versions


def test_schedule_version_ignores_history_writes(repo: Repository):
    before = repo.schedule_version()

    start(repo)
    finish(repo)

    assert repo.schedule_version() == before


def test_plain_sql_insert_uses_the_column_defaults(repo: Repository, engine: Engine):
    plain_sql(
        engine,
        'INSERT INTO "JobSchedule" (id, cron, "jobName") VALUES (:id, :cron, :job)',
        id="by-sql",
        cron="* * * * *",
        job="sleep",
    )

    schedule = repo.get_schedule("by-sql")
    assert schedule.is_active is True
    assert (schedule.retry_backoff, schedule.overlap) == ("fixed", "allow")
    assert is_aware_utc(schedule.created_at)
    assert is_aware_utc(schedule.updated_at)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_malformed_param_written_by_plain_sql_reads_as_invalid_json(
    repo: Repository, engine: Engine, schedule_factory: MakeSpec
):
    good = repo.add_schedule(schedule_factory())
    plain_sql(
        engine,
        'INSERT INTO "JobSchedule" (id, cron, "jobName", param) VALUES (:id, :cron, :job, :p)',
        id="bad-json",
        cron="* * * * *",
        job="sleep",
        p='{"unterminated": ',
    )

    schedules = {schedule.id: schedule for schedule in repo.list_schedules()}

    assert schedules[good.id] == good
    assert schedules["bad-json"].param == InvalidJson('{"unterminated": ')
    assert repo.get_schedule("bad-json").param == InvalidJson('{"unterminated": ')


@pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"], indirect=True)
def test_postgres_jsonb_refuses_a_malformed_param(repo: Repository, engine: Engine):
    with pytest.raises(DBAPIError, match="invalid input syntax for type json"):
        plain_sql(
            engine,
            'INSERT INTO "JobSchedule" (id, cron, "jobName", param) VALUES (:id, :cron, :job, :p)',
            id="bad-json",
            cron="* * * * *",
            job="sleep",
            p='{"unterminated": ',
        )

    assert repo.list_schedules() == []


# -- history: writing ------------------------------------------------------------------


def test_start_attempt_records_a_processing_row(repo: Repository):
    history_id = start(repo, param=UNICODE_PARAM)

    attempt = repo.get_attempt(history_id)
    assert attempt.id == history_id
    assert attempt.status is JobStatus.PROCESSING
    assert attempt.start_at == T0
    assert attempt.end_at is None
    assert attempt.duration_s is None
    assert (attempt.job_name, attempt.param) == ("processData", UNICODE_PARAM)
    assert (attempt.schedule_id, attempt.flow_run_id, attempt.attempt) == (
        "schedule-1",
        "run-1",
        1,
    )


def test_start_attempt_twice_keeps_one_row_and_the_same_id(repo: Repository):
    first = start(repo, param=["first"])

    second = start(repo, param=["replayed"], start_at=T0 + timedelta(minutes=1))

    assert second == first
    assert repo.count_history() == 1
    attempt = repo.get_attempt(first)
    assert (attempt.param, attempt.start_at) == (["first"], T0)


def test_start_attempt_of_another_attempt_adds_a_row(repo: Repository):
    first = start(repo, attempt=1)
    second = start(repo, attempt=2)
    other_run = start(repo, flow_run_id="run-2", attempt=1)

    assert len({first, second, other_run}) == 3
    assert repo.count_history() == 3


def test_start_attempt_without_start_at_uses_now(repo: Repository):
    before = datetime.now(UTC)

    history_id = start(repo, start_at=None)

    start_at = repo.get_attempt(history_id).start_at
    assert is_aware_utc(start_at)
    assert before <= start_at <= datetime.now(UTC)


def test_finish_attempt_closes_the_started_row(repo: Repository):
    history_id = start(repo)

    written = finish(
        repo,
        status=JobStatus.FAILED,
        error="RuntimeError: boom",
        end_at=T0 + timedelta(seconds=7),
        peak_memory_bytes=2**40,
    )

    assert written is True
    assert repo.count_history() == 1
    attempt = repo.get_attempt(history_id)
    assert attempt.status is JobStatus.FAILED
    assert attempt.error == "RuntimeError: boom"
    assert attempt.start_at == T0
    assert attempt.end_at == T0 + timedelta(seconds=7)
    assert attempt.duration_s == 7.0
    assert attempt.peak_memory_bytes == 2**40


def test_finish_attempt_keeps_first_outcome(repo: Repository):
    history_id = start(repo)
    assert finish(repo, status=JobStatus.SUCCESS, end_at=T0 + timedelta(seconds=1)) is True
    first = repo.get_attempt(history_id)

    written = finish(
        repo,
        status=JobStatus.FAILED,
        error="late replay",
        end_at=T0 + timedelta(seconds=9),
        peak_memory_bytes=1,
    )

    assert repo.get_attempt(history_id) == first
    assert repo.count_history() == 1
    assert written is False  # "Returns whether anything was written."


def test_finish_attempt_without_start_writes_a_complete_row(repo: Repository):
    written = finish(
        repo,
        status=JobStatus.FAILED,
        error="TimeoutError: timed out",
        start_at=T0,
        end_at=T0 + timedelta(seconds=3),
        peak_memory_bytes=1024,
    )

    assert written is True
    (attempt,) = repo.list_history(HistoryFilter())
    assert attempt.status is JobStatus.FAILED
    assert attempt.error == "TimeoutError: timed out"
    assert (attempt.start_at, attempt.end_at) == (T0, T0 + timedelta(seconds=3))
    assert (attempt.job_name, attempt.param, attempt.schedule_id) == (
        "processData",
        ["a"],
        "schedule-1",
    )
    assert (attempt.flow_run_id, attempt.attempt, attempt.peak_memory_bytes) == ("run-1", 1, 1024)


def test_finish_attempt_without_start_or_start_at_starts_at_the_end(repo: Repository):
    finish(repo, end_at=T0)

    (attempt,) = repo.list_history(HistoryFilter())
    assert (attempt.start_at, attempt.end_at) == (T0, T0)


def test_start_attempt_after_finish_changes_nothing(repo: Repository):
    finish(repo, status=JobStatus.SUCCESS)
    (finished,) = repo.list_history(HistoryFilter())

    history_id = start(repo)

    assert history_id == finished.id
    assert repo.get_attempt(history_id) == finished


def test_finish_attempt_refuses_processing_status(repo: Repository):
    with pytest.raises(ValueError, match="SUCCESS or FAILED"):
        finish(repo, status=JobStatus.PROCESSING)

    assert repo.count_history() == 0


def test_manual_runs_have_no_schedule_id(repo: Repository):
    history_id = start(repo, schedule_id=None)

    assert repo.get_attempt(history_id).schedule_id is None


# -- history: reading ------------------------------------------------------------------


@pytest.fixture
def seeded_history(repo: Repository) -> dict[str, int]:
    """Six attempts an hour apart, oldest first, keyed by a short label."""
    rows = [
        ("a", "processData", JobStatus.SUCCESS, "schedule-1"),
        ("b", "sleep", JobStatus.FAILED, "schedule-2"),
        ("c", "processData", JobStatus.FAILED, "schedule-1"),
        ("d", "httpCall", JobStatus.SUCCESS, None),
        ("e", "processData", JobStatus.SUCCESS, "schedule-1"),
        ("f", "processData", JobStatus.PROCESSING, "schedule-3"),
    ]
    ids: dict[str, int] = {}
    for hour, (label, job_name, status, schedule_id) in enumerate(rows):
        start_at = T0 + timedelta(hours=hour)
        ids[label] = start(
            repo,
            flow_run_id=f"run-{label}",
            job_name=job_name,
            schedule_id=schedule_id,
            start_at=start_at,
        )
        if status is not JobStatus.PROCESSING:
            finish(
                repo,
                flow_run_id=f"run-{label}",
                status=status,
                job_name=job_name,
                schedule_id=schedule_id,
                end_at=start_at + timedelta(minutes=1),
            )
    return ids


def listed(repo: Repository, **query: Any) -> list[str]:
    """Flow run ids of ``list_history``, without the ``run-`` prefix."""
    return [
        (attempt.flow_run_id or "").removeprefix("run-")
        for attempt in repo.list_history(HistoryFilter(**query))
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param({}, ["f", "e", "d", "c", "b", "a"], id="all-newest-first"),
        pytest.param({"job_name": "processData"}, ["f", "e", "c", "a"], id="job"),
        pytest.param({"job_name": "nope"}, [], id="unknown-job"),
        pytest.param({"status": JobStatus.FAILED}, ["c", "b"], id="status-failed"),
        pytest.param({"status": JobStatus.PROCESSING}, ["f"], id="status-processing"),
        pytest.param({"since": T0 + timedelta(hours=3)}, ["f", "e", "d"], id="since-inclusive"),
        pytest.param({"until": T0 + timedelta(hours=2)}, ["b", "a"], id="until-exclusive"),
        pytest.param(
            {"since": T0 + timedelta(hours=1), "until": T0 + timedelta(hours=4)},
            ["d", "c", "b"],
            id="since-and-until",
        ),
        pytest.param(
            {"since": datetime(2026, 3, 1, 16, 0, tzinfo=ZoneInfo("Europe/Berlin"))},
            ["f", "e", "d"],
            id="since-in-another-zone",
        ),
        pytest.param({"schedule_id": "schedule-1"}, ["e", "c", "a"], id="schedule"),
        pytest.param({"limit": 2}, ["f", "e"], id="limit"),
        pytest.param({"limit": 2, "offset": 2}, ["d", "c"], id="limit-offset"),
        pytest.param({"offset": 5}, ["a"], id="offset"),
        pytest.param({"offset": 6}, [], id="offset-past-end"),
        pytest.param(
            {"job_name": "processData", "status": JobStatus.SUCCESS, "limit": 1},
            ["e"],
            id="combined",
        ),
    ],
)
def test_list_history_filters_and_orders_newest_first(
    repo: Repository, seeded_history: dict[str, int], query: dict[str, Any], expected: list[str]
):
    assert listed(repo, **query) == expected


def test_list_history_orders_same_start_by_id_descending(repo: Repository):
    ids = [start(repo, flow_run_id=f"run-{i}") for i in range(3)]

    assert [a.id for a in repo.list_history(HistoryFilter())] == sorted(ids, reverse=True)


def test_list_processing_returns_unfinished_attempts_oldest_id_first(
    repo: Repository, seeded_history: dict[str, int]
):
    second = start(repo, flow_run_id="run-g")

    assert [a.id for a in repo.list_processing()] == [seeded_history["f"], second]


def test_get_attempt_raises_history_not_found_for_a_missing_id(repo: Repository):
    with pytest.raises(errors.HistoryNotFound, match="12345"):
        repo.get_attempt(12345)


def test_history_timestamps_come_back_as_utc(repo: Repository):
    berlin_start = datetime(2026, 7, 1, 14, 0, 0, 123456, tzinfo=ZoneInfo("Europe/Berlin"))

    history_id = start(repo, start_at=berlin_start)
    finish(repo, end_at=berlin_start + timedelta(seconds=2))

    attempt = repo.get_attempt(history_id)
    assert attempt.start_at == berlin_start
    assert attempt.start_at.tzinfo is not None
    assert is_aware_utc(attempt.start_at)
    assert is_aware_utc(attempt.end_at)
    assert attempt.start_at.replace(tzinfo=None) == datetime(2026, 7, 1, 12, 0, 0, 123456)  # noqa: DTZ001


def _refusal_message(exc: BaseException) -> str:
    """The refusal raised by the UTC column type, seen through SQLAlchemy's wrapper if any."""
    cause = exc.orig if isinstance(exc, StatementError) else exc
    assert isinstance(cause, ValueError), repr(exc)
    return str(cause)


NAIVE_WRITES = [
    pytest.param(lambda repo: start(repo, start_at=NAIVE), id="start_attempt-start_at"),
    pytest.param(lambda repo: finish(repo, end_at=NAIVE), id="finish_attempt-end_at"),
    pytest.param(
        lambda repo: finish(repo, start_at=NAIVE, end_at=T0), id="finish_attempt-start_at"
    ),
]
NAIVE_QUERIES = [
    pytest.param(lambda repo: repo.list_history(HistoryFilter(since=NAIVE)), id="since"),
    pytest.param(lambda repo: repo.list_history(HistoryFilter(until=NAIVE)), id="until"),
    pytest.param(lambda repo: repo.purge_history(NAIVE), id="purge_history"),
]


@pytest.mark.parametrize("write", NAIVE_WRITES)
def test_naive_datetimes_are_refused_on_write(repo: Repository, write: Callable[[Repository], Any]):
    with pytest.raises((ValueError, StatementError)) as raised:
        write(repo)

    assert "naive datetime" in _refusal_message(raised.value)
    assert repo.count_history() == 0


@pytest.mark.parametrize("query", NAIVE_QUERIES)
def test_naive_datetimes_are_refused_in_queries(
    repo: Repository, seeded_history: dict[str, int], query: Callable[[Repository], Any]
):
    with pytest.raises((ValueError, StatementError)) as raised:
        query(repo)

    assert "naive datetime" in _refusal_message(raised.value)
    assert repo.count_history() == len(seeded_history)


def test_naive_datetime_refusal_reaches_the_caller_as_a_value_error(repo: Repository):
    # The repository is the boundary of SQLAlchemy: its callers (hooks, CLI, API) must not
    # have to catch sqlalchemy.exc.StatementError to learn that they passed a naive time.
    with pytest.raises(ValueError, match="naive datetime"):
        start(repo, start_at=NAIVE)


# -- history: purging ------------------------------------------------------------------


def insert_history(engine: Engine, start_times: list[datetime]) -> None:
    """Bulk rows for the purge tests (the repository writes one attempt at a time)."""
    rows = [
        {
            "jobName": "sleep",
            "param": None,
            "status": JobStatus.SUCCESS,
            "startAt": start_at,
            "endAt": start_at,
            "flowRunId": f"bulk-{i}",
            "attempt": 1,
        }
        for i, start_at in enumerate(start_times)
    ]
    with engine.begin() as connection:
        connection.execute(insert(JobHistory), rows)


def test_purge_history_deletes_exactly_the_old_rows_in_batches(repo: Repository, engine: Engine):
    cutoff = T0
    old = [cutoff - timedelta(days=1, minutes=i) for i in range(250)]
    recent = [cutoff + timedelta(minutes=i) for i in range(30)]  # the first is exactly at cutoff
    insert_history(engine, old + recent)

    purged = repo.purge_history(cutoff, batch_size=100)

    assert purged == 250
    assert repo.count_history() == 30
    remaining = repo.list_history(HistoryFilter(limit=1_000))
    assert sorted(a.start_at for a in remaining) == recent


def test_purge_history_counts_a_multiple_of_the_batch_size(repo: Repository, engine: Engine):
    insert_history(engine, [T0 - timedelta(minutes=i + 1) for i in range(200)])

    assert repo.purge_history(T0, batch_size=100) == 200
    assert repo.count_history() == 0


def test_purge_history_with_nothing_old_deletes_nothing(repo: Repository, engine: Engine):
    insert_history(engine, [T0, T0 + timedelta(days=1)])

    assert repo.purge_history(T0, batch_size=100) == 0
    assert repo.count_history() == 2


def test_purge_history_accepts_a_cutoff_in_another_zone(repo: Repository, engine: Engine):
    insert_history(engine, [T0 - timedelta(minutes=1), T0 + timedelta(minutes=1)])
    cutoff = T0.astimezone(ZoneInfo("America/Los_Angeles"))

    assert repo.purge_history(cutoff) == 1
    assert [a.start_at for a in repo.list_history(HistoryFilter())] == [T0 + timedelta(minutes=1)]


# -- database errors -------------------------------------------------------------------


@pytest.fixture
def unreachable_repo() -> Iterator[Repository]:
    engine = db.create_db_engine(UNREACHABLE_POSTGRES_URL)
    yield Repository(engine)
    engine.dispose()


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda repo: repo.list_schedules(), id="list_schedules"),
        pytest.param(lambda repo: repo.get_schedule("x"), id="get_schedule"),
        pytest.param(lambda repo: repo.schedule_version(), id="schedule_version"),
        pytest.param(lambda repo: repo.list_history(HistoryFilter()), id="list_history"),
        pytest.param(lambda repo: start(repo), id="start_attempt"),
        pytest.param(lambda repo: repo.ping(), id="ping"),
    ],
)
def test_unreachable_database_raises_database_unavailable(
    unreachable_repo: Repository, call: Callable[[Repository], Any]
):
    with pytest.raises(errors.DatabaseUnavailable, match="cannot be reached"):
        call(unreachable_repo)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda repo: repo.list_schedules(), id="list_schedules"),
        pytest.param(lambda repo: repo.get_schedule("x"), id="get_schedule"),
        pytest.param(lambda repo: repo.schedule_version(), id="schedule_version"),
        pytest.param(lambda repo: repo.list_history(HistoryFilter()), id="list_history"),
        pytest.param(lambda repo: start(repo), id="start_attempt"),
        pytest.param(lambda repo: repo.purge_history(T0), id="purge_history"),
    ],
)
def test_unmigrated_database_raises_migrations_pending(
    unmigrated_engine: Engine, call: Callable[[Repository], Any]
):
    with pytest.raises(errors.MigrationsPending):
        call(Repository(unmigrated_engine))


def test_unmigrated_database_still_answers_ping(unmigrated_engine: Engine):
    Repository(unmigrated_engine).ping()
