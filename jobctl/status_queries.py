"""The SQL behind `jobctl status`: the latest attempt and the last success of each schedule.

Both read by index (``JobHistory (scheduleId, startAt, id)``, migration 0004): one probe
per schedule rather than a scan of the whole history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Text, cast, func, or_, select
from sqlalchemy.orm import Session, aliased

from jobctl.missed_run_model import MissedRun
from jobctl.models import JobHistory, JobSchedule, JobStatus
from jobctl.repository import Repository
from jobctl.run_origin_model import RunOrigin


@dataclass(frozen=True, kw_only=True)
class LatestAttempt:
    schedule_id: str
    history_id: int
    status: JobStatus
    attempt: int | None
    start_at: datetime
    end_at: datetime | None
    error: str | None

    @property
    def duration_s(self) -> float | None:
        return None if self.end_at is None else (self.end_at - self.start_at).total_seconds()


def latest_attempts(repository: Repository) -> dict[str, LatestAttempt]:
    """The newest attempt (by start) of every schedule that has one."""
    inner = aliased(JobHistory)
    newest_id = (
        select(inner.id)
        .where(inner.scheduleId == cast(JobSchedule.id, Text))
        .order_by(inner.startAt.desc(), inner.id.desc())
        .limit(1)
        .correlate(JobSchedule)
        .scalar_subquery()
    )
    ids = select(newest_id).select_from(JobSchedule).scalar_subquery()
    statement = select(
        JobHistory.scheduleId,
        JobHistory.id,
        JobHistory.status,
        JobHistory.attempt,
        JobHistory.startAt,
        JobHistory.endAt,
        JobHistory.error,
    ).where(JobHistory.id.in_(ids))
    with repository.session() as session:
        return {
            row[0]: LatestAttempt(
                schedule_id=row[0],
                history_id=row[1],
                status=row[2],
                attempt=row[3],
                start_at=row[4],
                end_at=row[5],
                error=row[6],
            )
            for row in session.execute(statement)
        }


def last_successes(repository: Repository) -> dict[str, datetime]:
    """When the last successful attempt of each schedule ended."""
    inner = aliased(JobHistory)
    last_end = (
        select(inner.endAt)
        .where(
            inner.scheduleId == cast(JobSchedule.id, Text),
            inner.status == JobStatus.SUCCESS,
        )
        .order_by(inner.startAt.desc(), inner.id.desc())
        .limit(1)
        .correlate(JobSchedule)
        .scalar_subquery()
    )
    statement = select(cast(JobSchedule.id, Text), last_end)
    with repository.session() as session:
        return {row[0]: row[1] for row in session.execute(statement) if row[1] is not None}


@dataclass(frozen=True, kw_only=True)
class RecentAttempt:
    start_at: datetime
    end_at: datetime | None
    status: JobStatus
    attempt: int | None


def recent_attempts(repository: Repository, since: datetime) -> dict[str, list[RecentAttempt]]:
    """The attempts of scheduled runs of each schedule that started since ``since``, and
    those still PROCESSING, oldest first. Runs a backfill created are left out: they stand
    for fire times of the past, not for the ones due now."""
    statement = (
        select(
            JobHistory.scheduleId,
            JobHistory.startAt,
            JobHistory.endAt,
            JobHistory.status,
            JobHistory.attempt,
        )
        .outerjoin(RunOrigin, RunOrigin.flowRunId == JobHistory.flowRunId)
        .where(
            JobHistory.scheduleId.is_not(None),
            RunOrigin.flowRunId.is_(None),
            or_(JobHistory.startAt >= since, JobHistory.status == JobStatus.PROCESSING),
        )
        .order_by(JobHistory.startAt, JobHistory.id)
    )
    found: dict[str, list[RecentAttempt]] = {}
    with repository.session() as session:
        for row in session.execute(statement):
            found.setdefault(row[0], []).append(
                RecentAttempt(start_at=row[1], end_at=row[2], status=row[3], attempt=row[4])
            )
    return found


def latest_missed(repository: Repository) -> dict[str, datetime]:
    """The latest recorded missed due time of each schedule."""
    statement = select(MissedRun.scheduleId, func.max(MissedRun.dueAt)).group_by(
        MissedRun.scheduleId
    )
    with repository.session() as session:
        return {row[0]: row[1] for row in session.execute(statement)}


def missed_counts(session: Session) -> dict[tuple[str, str], int]:
    """Missed runs recorded per (job, schedule), in the caller's transaction (a scrape's)."""
    statement = select(MissedRun.jobName, MissedRun.scheduleId, func.count()).group_by(
        MissedRun.jobName, MissedRun.scheduleId
    )
    return {(row[0], row[1]): int(row[2]) for row in session.execute(statement)}


def missed_since(repository: Repository, since: datetime) -> int:
    """How many missed runs were due since ``since`` (for `jobctl up`'s status line)."""
    statement = select(func.count()).select_from(MissedRun).where(MissedRun.dueAt >= since)
    with repository.session() as session:
        return int(session.scalar(statement) or 0)
