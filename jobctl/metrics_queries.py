"""The aggregate SQL behind ``GET /metrics``: JobHistory summed per schedule, job and status.

Kept apart from ``repository`` for now (same style: SQL here, frozen rows out); it runs
in a ``Repository.session()`` so that driver errors are translated the same way.

A scrape must not scan a million rows: ``jobctl.metrics`` folds rows once they are
*settled* (their numbers can no longer change) into running totals, and asks this
module only about the rows after its high-water mark and the few it still waits on.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from jobctl.models import JobHistory, JobSchedule, JobStatus
from jobctl.repository import Repository

# Upper bounds of the histogram buckets (``+Inf`` is implied).
DURATION_BUCKETS_S = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3_600.0, 14_400.0)
MEMORY_BUCKETS_BYTES = tuple(float(2**n * 1024 * 1024) for n in (5, 6, 7, 8, 9, 10, 11, 12))
# SQLite and PostgreSQL bind lists of ids in chunks this long.
ID_CHUNK = 500


@dataclass(frozen=True, kw_only=True)
class Group:
    """The attempts of one (schedule, job, status) in a range of JobHistory ids.

    ``settled`` groups never change again (see ``settled_expression``); the others are
    read again on every scrape. Bucket counts are cumulative, as Prometheus wants them.
    """

    schedule_id: str | None
    job_name: str
    status: JobStatus
    settled: bool
    attempts: int
    finally_failed: int
    last_end_at: datetime | None
    duration_count: int
    duration_sum_s: float
    duration_buckets: tuple[int, ...]
    memory_count: int
    memory_sum_bytes: float
    memory_buckets: tuple[int, ...]


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


def settled_expression(settle_before: datetime) -> ColumnElement[bool]:
    """Whether an attempt's numbers are final.

    SUCCESS is; PROCESSING is not; a FAILED attempt is once it was retried (a later
    attempt exists), or it was the last its schedule allows (``maxRetries`` + 1, the
    policy of now), or it ended before ``settle_before`` (no retry came in time).
    """
    allowed = func.coalesce(JobSchedule.maxRetries, 0) + 1
    return case(
        (JobHistory.status == JobStatus.SUCCESS, literal(True)),
        (JobHistory.status == JobStatus.PROCESSING, literal(False)),
        (_later_attempt_exists(), literal(True)),
        (func.coalesce(JobHistory.attempt, 1) >= allowed, literal(True)),
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
                    func.coalesce(JobHistory.attempt, 1)
                    >= func.coalesce(JobSchedule.maxRetries, 0) + 1,
                    JobHistory.endAt < settle_before,
                ),
            ),
            1,
        ),
        else_=0,
    )


def _bucket_counts(value: ColumnElement[float], bounds: Sequence[float]) -> list[Any]:
    return [func.sum(case((value <= bound, 1), else_=0)) for bound in bounds]


def _range_condition(after_id: int, up_to_id: int | None, ids: Sequence[int]) -> Any:
    in_range: Any = JobHistory.id > after_id
    if up_to_id is not None:
        in_range = and_(in_range, JobHistory.id <= up_to_id)
    if ids:
        in_range = or_(in_range, JobHistory.id.in_(ids))
    return in_range


def max_history_id(repository: Repository) -> int:
    with repository.session() as session:
        return int(session.scalar(select(func.max(JobHistory.id))) or 0)


@dataclass(frozen=True, kw_only=True)
class Selection:
    """The attempts with ``after_id < id <= up_to_id`` (no upper bound: None) or whose id
    is in ``ids``; FAILED ones that ended before ``settle_before`` are settled."""

    after_id: int
    up_to_id: int | None
    ids: Collection[int]
    settle_before: datetime

    def chunks(self) -> list[Any]:
        """WHERE conditions that together select these attempts: the listed ids go in
        chunks, the range with the first chunk only."""
        id_list = sorted(self.ids)
        chunks = [id_list[i : i + ID_CHUNK] for i in range(0, len(id_list), ID_CHUNK)] or [[]]
        return [
            _range_condition(self.after_id, self.up_to_id, chunk)
            if index == 0
            else JobHistory.id.in_(chunk)
            for index, chunk in enumerate(chunks)
        ]


def aggregate(repository: Repository, selection: Selection) -> list[Group]:
    """Groups of the selected attempts by schedule, job, status and settled."""
    settle_before = selection.settle_before
    groups: list[Group] = []
    with repository.session() as session:
        dialect = session.get_bind().dialect.name
        duration = _seconds_between(JobHistory.startAt, JobHistory.endAt, dialect)
        memory = cast(JobHistory.peakMemoryBytes, Float)
        settled = settled_expression(settle_before).label("settled")
        for condition in selection.chunks():
            statement = (
                select(
                    JobHistory.scheduleId,
                    JobHistory.jobName,
                    JobHistory.status,
                    settled,
                    func.count(),
                    func.coalesce(func.sum(_finally_failed(settle_before)), 0),
                    func.max(JobHistory.endAt),
                    func.count(duration),
                    func.coalesce(func.sum(duration), 0.0),
                    *_bucket_counts(duration, DURATION_BUCKETS_S),
                    func.count(memory),
                    func.coalesce(func.sum(memory), 0.0),
                    *_bucket_counts(memory, MEMORY_BUCKETS_BYTES),
                )
                .select_from(JobHistory)
                .outerjoin(JobSchedule, JobSchedule.id == JobHistory.scheduleId)
                .where(condition)
                .group_by(JobHistory.scheduleId, JobHistory.jobName, JobHistory.status, settled)
            )
            groups.extend(_group_of(row) for row in session.execute(statement))
    return groups


def _group_of(row: Any) -> Group:
    values = list(row)
    schedule_id, job_name, status, settled, attempts, failed, last_end = values[:7]
    rest = values[7:]
    duration_count, duration_sum = rest[0], rest[1]
    duration_buckets = rest[2 : 2 + len(DURATION_BUCKETS_S)]
    rest = rest[2 + len(DURATION_BUCKETS_S) :]
    memory_count, memory_sum = rest[0], rest[1]
    memory_buckets = rest[2 : 2 + len(MEMORY_BUCKETS_BYTES)]
    return Group(
        schedule_id=schedule_id,
        job_name=job_name,
        status=status,
        settled=bool(settled),
        attempts=int(attempts),
        finally_failed=int(failed),
        last_end_at=last_end,
        duration_count=int(duration_count),
        duration_sum_s=float(duration_sum),
        duration_buckets=tuple(int(n or 0) for n in duration_buckets),
        memory_count=int(memory_count),
        memory_sum_bytes=float(memory_sum),
        memory_buckets=tuple(int(n or 0) for n in memory_buckets),
    )


def unsettled_ids(repository: Repository, selection: Selection) -> set[int]:
    """Which of the selected attempts are not settled yet."""
    found: set[int] = set()
    with repository.session() as session:
        for condition in selection.chunks():
            statement = (
                select(JobHistory.id)
                .select_from(JobHistory)
                .outerjoin(JobSchedule, JobSchedule.id == JobHistory.scheduleId)
                .where(condition, ~settled_expression(selection.settle_before))
            )
            found.update(session.scalars(statement))
    return found


def settle_before(now: datetime, settle_s: float) -> datetime:
    return now - timedelta(seconds=settle_s)


def row_identity(repository: Repository, history_id: int) -> tuple[Any, ...] | None:
    """What tells the row ``history_id`` from a later one that took its id again (SQLite
    reuses the ids of deleted newest rows)."""
    with repository.session() as session:
        row = session.execute(
            select(JobHistory.flowRunId, JobHistory.attempt, JobHistory.startAt).where(
                JobHistory.id == history_id
            )
        ).first()
        return None if row is None else tuple(row)
