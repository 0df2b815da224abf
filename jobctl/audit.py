"""The audit trail of JobSchedule changes: read it, purge it, and say what changed.

Triggers write it (migration 0006), whoever writes the table; jobctl's faces name their
caller through ``Repository.acting_as``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from jobctl import errors
from jobctl.audit_model import ScheduleAudit
from jobctl.repository import PURGE_BATCH_SIZE, Repository

ACTIONS = ("insert", "update", "delete")
# Columns that say nothing about what a change did: the row's identity and timestamps.
BOOKKEEPING = ("id", "createdAt", "updatedAt")
DEFAULT_LIMIT = 100


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One change of one JobSchedule row; ``before``/``after`` hold the row's columns as
    JSON (``before`` is None for an insert, ``after`` for a delete)."""

    id: int
    at: datetime
    action: str
    schedule_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    actor: str
    db_user: str | None
    application: str | None

    def changes(self) -> dict[str, tuple[Any, Any]]:
        """``{column: (before, after)}`` of the columns that differ, bookkeeping aside;
        for an insert the columns it set, for a delete the ones the row had set."""
        before, after = self.before or {}, self.after or {}
        return {
            column: (before.get(column), after.get(column))
            for column in dict.fromkeys([*before, *after])
            if column not in BOOKKEEPING and before.get(column) != after.get(column)
        }

    def to_json(self) -> dict[str, Any]:
        """The entry as the API and ``schedule log --json`` show it (column names)."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "action": self.action,
            "scheduleId": self.schedule_id,
            "actor": self.actor,
            "dbUser": self.db_user,
            "application": self.application,
            "before": self.before,
            "after": self.after,
        }


def _entry(row: ScheduleAudit) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        action=row.action,
        schedule_id=row.scheduleId,
        before=row.before,
        after=row.after,
        actor=row.actor,
        db_user=row.dbUser,
        application=row.application,
    )


def list_entries(
    repository: Repository,
    *,
    schedule_id: str | None = None,
    since: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[AuditEntry]:
    """Changes, newest first: of one row (deleted or not) or of every row.

    Raises ``ScheduleNotFound`` for an id that names no row and no recorded change.
    """
    if schedule_id is not None and "\x00" in schedule_id:
        raise _not_found(schedule_id)  # PostgreSQL text cannot hold NUL: no row has it
    statement = select(ScheduleAudit)
    if schedule_id is not None:
        statement = statement.where(ScheduleAudit.scheduleId == schedule_id)
    if since is not None:
        statement = statement.where(ScheduleAudit.at >= since)
    statement = statement.order_by(ScheduleAudit.at.desc(), ScheduleAudit.id.desc()).limit(limit)
    with repository.session() as session:
        entries = [_entry(row) for row in session.scalars(statement)]
        if entries or schedule_id is None:
            return entries
        recorded = session.scalar(
            select(ScheduleAudit.id).where(ScheduleAudit.scheduleId == schedule_id).limit(1)
        )
    if recorded is None and repository.get_schedule_or_none(schedule_id) is None:
        raise _not_found(schedule_id)
    return entries


def _not_found(schedule_id: str) -> errors.ScheduleNotFound:
    return errors.ScheduleNotFound(
        f"no schedule has the id {schedule_id!r}, and no change to one is recorded"
    )


def count_before(repository: Repository, older_than: datetime) -> int:
    """How many changes were made before ``older_than`` (what ``purge`` would delete)."""
    with repository.session() as session:
        statement = select(func.count()).where(ScheduleAudit.at < older_than)
        return int(session.scalar(statement) or 0)


def purge(repository: Repository, older_than: datetime, batch_size: int = PURGE_BATCH_SIZE) -> int:
    """Delete changes made before ``older_than``, one short transaction a batch."""
    return repository.delete_in_batches(ScheduleAudit.id, ScheduleAudit.at < older_than, batch_size)
