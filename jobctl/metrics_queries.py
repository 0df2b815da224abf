"""The aggregate SQL behind ``GET /metrics``: JobHistory summed per schedule, job and status.

Kept apart from ``repository`` for now (same style: SQL here, frozen rows out). The reads
take the session of one ``Repository.session()`` (driver errors translated the same way):
a scrape asks all its questions in one transaction.

A scrape must not scan a million rows: ``jobctl.metrics`` folds rows once they are
*settled* (their numbers can no longer change) into running totals, and asks this
module only about the rows after its high-water mark and the few it still waits on.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    ARRAY,
    Float,
    Integer,
    all_,
    and_,
    any_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from jobctl.models import JobctlState, JobHistory, JobSchedule, JobStatus
from jobctl.repository import SCHEDULE_VERSION_KEY, Repository

# Upper bounds of the histogram buckets (``+Inf`` is implied).
DURATION_BUCKETS_S = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3_600.0, 14_400.0)
MEMORY_BUCKETS_BYTES = tuple(float(2**n * 1024 * 1024) for n in (5, 6, 7, 8, 9, 10, 11, 12))
# SQLite and PostgreSQL bind lists of ids in chunks this long.
ID_CHUNK = 500


class ScheduleGroup(NamedTuple):
    """The attempts of one (schedule, job, status) in a selection of JobHistory rows.

    ``foldable`` groups hold settled attempts (see ``settled_expression``) up to the id
    the caller folds to: they never change again; the others are read again on every
    scrape. Named tuples, not frozen dataclasses: a scrape at 10,000
    schedules builds thousands of them.
    """

    schedule_id: str | None
    job_name: str
    status: JobStatus
    foldable: bool
    attempts: int
    finally_failed: int
    last_end_at: datetime | None


class JobGroup(NamedTuple):
    """Duration and peak memory of the finished attempts of one job; the bucket counts
    are cumulative, as Prometheus wants them."""

    job_name: str
    foldable: bool
    duration_count: int
    duration_sum_s: float
    duration_buckets: tuple[int, ...]
    memory_count: int
    memory_sum_bytes: float
    memory_buckets: tuple[int, ...]


class Aggregate(NamedTuple):
    schedules: list[ScheduleGroup]
    jobs: list[JobGroup]


def _seconds_between(start: Any, end: Any, dialect: str) -> ColumnElement[float]:
    if dialect == "postgresql":
        return cast(func.extract("epoch", end - start), Float)
    return cast((func.julianday(end) - func.julianday(start)) * 86_400.0, Float)


def _later_attempt_exists() -> ColumnElement[bool]:
    later = aliased(JobHistory)
    return exists().where(
        later.flowRunId == JobHistory.flowRunId,
        later.attempt > JobHistory.attempt,
    )


def _attempts_allowed() -> ColumnElement[int]:
    """``maxRetries`` + 1 of the attempt's schedule (1 without one), looked up by primary
    key only for the FAILED attempts that reach this branch: a join would read every row."""
    max_retries = (
        select(JobSchedule.maxRetries)
        .where(JobSchedule.id == JobHistory.scheduleId)
        .correlate(JobHistory)
        .scalar_subquery()
    )
    return func.coalesce(max_retries, 0) + 1


def settled_expression(settle_before: datetime) -> ColumnElement[bool]:
    """Whether an attempt's numbers are final.

    SUCCESS is; PROCESSING is not; a FAILED attempt is once it was retried (a later
    attempt exists), or it was the last its schedule allows (``maxRetries`` + 1, the
    policy of now), or it ended before ``settle_before`` (no retry came in time).
    """
    return case(
        (JobHistory.status == JobStatus.SUCCESS, literal(True)),
        (JobHistory.status == JobStatus.PROCESSING, literal(False)),
        (_later_attempt_exists(), literal(True)),
        (func.coalesce(JobHistory.attempt, 1) >= _attempts_allowed(), literal(True)),
        (JobHistory.endAt < settle_before, literal(True)),
        else_=literal(False),
    )


def _finally_failed(settle_before: datetime) -> ColumnElement[int]:
    """1 for a FAILED attempt that ended its run: settled, and no later attempt."""
    return case(
        (
            and_(
                JobHistory.status == JobStatus.FAILED,
                ~_later_attempt_exists(),
                or_(
                    func.coalesce(JobHistory.attempt, 1) >= _attempts_allowed(),
                    JobHistory.endAt < settle_before,
                ),
            ),
            1,
        ),
        else_=0,
    )


def _bucket_counts(value: ColumnElement[float], bounds: Sequence[float]) -> list[Any]:
    return [func.sum(case((value <= bound, 1), else_=0)) for bound in bounds]


def _range_condition(after_id: int, up_to_id: int | None, listed: Any) -> Any:
    in_range: Any = JobHistory.id > after_id
    if up_to_id is not None:
        in_range = and_(in_range, JobHistory.id <= up_to_id)
    if listed is not None:
        in_range = or_(in_range, listed)
    return in_range


def _not_listed(ids: list[int], dialect: str) -> ColumnElement[bool]:
    if not ids:
        return literal(True)
    if dialect == "postgresql":
        return JobHistory.id != all_(bindparam("open_ids", ids, type_=ARRAY(Integer)))
    return JobHistory.id.not_in(ids)


def max_history_id(session: Session) -> int:
    return int(session.scalar(select(func.max(JobHistory.id))) or 0)


@dataclass(frozen=True, kw_only=True)
class Selection:
    """The attempts with ``after_id < id <= up_to_id`` (no upper bound: None) or whose id
    is in ``ids``; FAILED ones that ended before ``settle_before`` are settled."""

    after_id: int
    up_to_id: int | None
    ids: Collection[int]
    settle_before: datetime

    def chunks(self, dialect: str) -> list[Any]:
        """WHERE conditions that together select these attempts. PostgreSQL gets the ids
        as one array parameter (hundreds of placeholders cost more to send than to run);
        SQLite gets them in chunks, the range with the first chunk only."""
        id_list = sorted(self.ids)
        if dialect == "postgresql":
            listed = JobHistory.id == any_(bindparam("ids", id_list, type_=ARRAY(Integer)))
            return [_range_condition(self.after_id, self.up_to_id, listed if id_list else None)]
        chunks = [id_list[i : i + ID_CHUNK] for i in range(0, len(id_list), ID_CHUNK)]
        conditions = [JobHistory.id.in_(chunk) for chunk in chunks]
        first = conditions.pop(0) if conditions else None
        return [_range_condition(self.after_id, self.up_to_id, first), *conditions]


def aggregate(
    session: Session, selection: Selection, *, fold_up_to: int, open_ids: Collection[int]
) -> Aggregate:
    """The selected attempts summed per schedule, job, status and foldable (an id up to
    ``fold_up_to`` and not in ``open_ids``), and per job and foldable.

    ``open_ids`` are the unsettled ones (``unsettled_ids``, asked first): one that settled
    since is counted as not foldable this time and folded the next, never twice.

    Two statements rather than one with every column per schedule: the driver's cost is
    per value read, and the histograms need only one row per job.
    """
    settle_before = selection.settle_before
    result = Aggregate([], [])
    dialect = session.get_bind().dialect.name
    duration = _seconds_between(JobHistory.startAt, JobHistory.endAt, dialect)
    memory = cast(JobHistory.peakMemoryBytes, Float)
    foldable = case(
        (and_(JobHistory.id <= fold_up_to, _not_listed(sorted(open_ids), dialect)), True),
        else_=False,
    ).label("foldable")
    for condition in selection.chunks(dialect):
        per_schedule = (
            select(
                JobHistory.scheduleId,
                JobHistory.jobName,
                JobHistory.status,
                foldable,
                func.count(),
                func.coalesce(func.sum(_finally_failed(settle_before)), 0),
                func.max(JobHistory.endAt),
            )
            .where(condition)
            .group_by(JobHistory.scheduleId, JobHistory.jobName, JobHistory.status, foldable)
        )
        result.schedules.extend(
            ScheduleGroup(row[0], row[1], row[2], bool(row[3]), int(row[4]), int(row[5]), row[6])
            for row in session.execute(per_schedule)
        )
        per_job = (
            select(
                JobHistory.jobName,
                foldable,
                func.count(duration),
                func.coalesce(func.sum(duration), 0.0),
                *_bucket_counts(duration, DURATION_BUCKETS_S),
                func.count(memory),
                func.coalesce(func.sum(memory), 0.0),
                *_bucket_counts(memory, MEMORY_BUCKETS_BYTES),
            )
            .where(condition, JobHistory.status != JobStatus.PROCESSING)
            .group_by(JobHistory.jobName, foldable)
        )
        result.jobs.extend(_job_group_of(row) for row in session.execute(per_job))
    return result


_DURATIONS = slice(4, 4 + len(DURATION_BUCKETS_S))
_MEMORY_AT = 4 + len(DURATION_BUCKETS_S)
_MEMORY = slice(_MEMORY_AT + 2, _MEMORY_AT + 2 + len(MEMORY_BUCKETS_BYTES))


def _job_group_of(row: Any) -> JobGroup:
    """A row of ``aggregate``'s per-job statement, in its column order."""
    return JobGroup(
        row[0],
        bool(row[1]),
        int(row[2]),
        float(row[3]),
        tuple(int(n or 0) for n in row[_DURATIONS]),
        int(row[_MEMORY_AT]),
        float(row[_MEMORY_AT + 1]),
        tuple(int(n or 0) for n in row[_MEMORY]),
    )


def unsettled_ids(session: Session, selection: Selection) -> set[int]:
    """Which of the selected attempts are not settled yet."""
    found: set[int] = set()
    dialect = session.get_bind().dialect.name
    for condition in selection.chunks(dialect):
        statement = (
            select(JobHistory.id)
            .select_from(JobHistory)
            .where(condition, ~settled_expression(selection.settle_before))
        )
        found.update(session.scalars(statement))
    return found


def settle_before(now: datetime, settle_s: float) -> datetime:
    return now - timedelta(seconds=settle_s)


def row_identity(session: Session, history_id: int) -> tuple[Any, ...] | None:
    """What tells the row ``history_id`` from a later one that took its id again (SQLite
    reuses the ids of deleted newest rows)."""
    row = session.execute(
        select(JobHistory.flowRunId, JobHistory.attempt, JobHistory.startAt).where(
            JobHistory.id == history_id
        )
    ).first()
    return None if row is None else tuple(row)


# -- the sync's health, written by the sync watcher into jobctl_state ------------------------

SYNC_KEYS = {
    "last_success_ms": "sync_last_success_ms",  # Unix milliseconds
    "duration_ms": "sync_duration_ms",
    "drift": "sync_drift",  # deployments the last full read found changed outside jobctl
}


@dataclass(frozen=True, kw_only=True)
class SyncHealth:
    last_success_at: datetime | None
    duration_s: float | None
    drift: int | None


def record_sync(
    repository: Repository, *, finished_at: datetime, duration_s: float, drift: int | None
) -> None:
    """Note a successful sync (the watcher calls this after each one)."""
    values = {
        SYNC_KEYS["last_success_ms"]: int(finished_at.timestamp() * 1000),
        SYNC_KEYS["duration_ms"]: round(duration_s * 1000),
    }
    if drift is not None:
        values[SYNC_KEYS["drift"]] = drift
    with repository.session() as session:
        dialect = session.get_bind().dialect.name
        insert = (postgresql if dialect == "postgresql" else sqlite).insert
        for key, value in values.items():
            statement = insert(JobctlState).values(key=key, value=value)
            session.execute(
                statement.on_conflict_do_update(index_elements=["key"], set_={"value": value})
            )


def sync_health(session: Session) -> SyncHealth:
    rows = session.execute(
        select(JobctlState.key, JobctlState.value).where(
            JobctlState.key.in_(list(SYNC_KEYS.values()))
        )
    )
    found = {str(key): int(value) for key, value in rows}
    last = found.get(SYNC_KEYS["last_success_ms"])
    duration = found.get(SYNC_KEYS["duration_ms"])
    return SyncHealth(
        last_success_at=None if last is None else datetime.fromtimestamp(last / 1000, tz=UTC),
        duration_s=None if duration is None else duration / 1000,
        drift=found.get(SYNC_KEYS["drift"]),
    )


def schedule_version(session: Session) -> int:
    """The counter that triggers bump on every change to JobSchedule (as
    ``Repository.schedule_version``, in the caller's transaction)."""
    value = session.scalar(select(JobctlState.value).where(JobctlState.key == SCHEDULE_VERSION_KEY))
    return int(value or 0)
