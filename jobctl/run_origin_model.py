"""``jobctl_run_origin``: the flow runs a backfill created, with their range and fire time.

A table of jobctl's own (migration 0007), keyed by the run, not a JobHistory column: the
original system's table keeps its columns, and every attempt of a run shares its origin.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from jobctl.models import Base, DateTimeUTC


class RunOrigin(Base):
    __tablename__ = "jobctl_run_origin"
    __table_args__ = (
        Index("jobctl_run_origin_scheduleId_logicalTime_idx", "scheduleId", "logicalTime"),
    )

    flowRunId: Mapped[str] = mapped_column(Text, primary_key=True)
    scheduleId: Mapped[str] = mapped_column(Text)
    # ``backfill 2027-03-27T23:00:00Z/2027-03-28T22:00:00Z``: what created the run.
    origin: Mapped[str] = mapped_column(Text)
    # The fire time the run stands for (its logical time).
    logicalTime: Mapped[datetime] = mapped_column(DateTimeUTC)
    createdAt: Mapped[datetime] = mapped_column(DateTimeUTC)
