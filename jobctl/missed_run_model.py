"""``jobctl_missed_run``: due times of a schedule that no attempt started in time.

A table of jobctl's own (migration 0004), not JobHistory: a missed run is not an attempt,
and the original system's readers of JobHistory keep seeing attempts only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from jobctl.models import Base, DateTimeUTC


class MissedRun(Base):
    __tablename__ = "jobctl_missed_run"
    __table_args__ = (UniqueConstraint("scheduleId", "dueAt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scheduleId: Mapped[str] = mapped_column(Text)
    jobName: Mapped[str] = mapped_column(Text)
    dueAt: Mapped[datetime] = mapped_column(DateTimeUTC)
    detectedAt: Mapped[datetime] = mapped_column(DateTimeUTC)
    reason: Mapped[str | None] = mapped_column(Text)
    alertedAt: Mapped[datetime | None] = mapped_column(DateTimeUTC)
