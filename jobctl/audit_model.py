"""``jobctl_schedule_audit``: every change to a JobSchedule row, written by triggers
(migration 0006), and ``jobctl_audit_actor``, where jobctl names itself to them on SQLite.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from jobctl.models import Base, DateTimeUTC, JsonValue


class ScheduleAudit(Base):
    __tablename__ = "jobctl_schedule_audit"
    __table_args__ = (
        Index("jobctl_schedule_audit_scheduleId_at_id_idx", "scheduleId", "at", "id"),
        Index("jobctl_schedule_audit_at_idx", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTimeUTC)
    action: Mapped[str] = mapped_column(Text)  # insert | update | delete
    scheduleId: Mapped[str] = mapped_column(Text)
    before: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    after: Mapped[Any] = mapped_column(JsonValue, nullable=True)
    actor: Mapped[str] = mapped_column(Text)  # cli:<user>, api:<token name>, sql[:<db user>]
    dbUser: Mapped[str | None] = mapped_column(Text)  # PostgreSQL's session_user
    application: Mapped[str | None] = mapped_column(Text)  # PostgreSQL's application_name


class AuditActor(Base):
    """Who makes the write of the current transaction, for the SQLite triggers: written
    and deleted inside that transaction, so never committed."""

    __tablename__ = "jobctl_audit_actor"

    actor: Mapped[str] = mapped_column(Text, primary_key=True)
