"""``jobctl_maintenance``: one row per maintenance pause, on or ended (migration 0005).

A table of jobctl's own: the original system's columns, ``isActive`` included, are never
touched by a pause. At most one pause is open (``endedAt`` null): a unique index on a
constant, partial to the open rows, makes a second concurrent ``pause`` fail.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from jobctl.models import Base, DateTimeUTC

OPEN_INDEX = "jobctl_maintenance_one_open_idx"


class MaintenancePause(Base):
    __tablename__ = "jobctl_maintenance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reason: Mapped[str] = mapped_column(Text)
    setBy: Mapped[str] = mapped_column(Text)
    startedAt: Mapped[datetime] = mapped_column(DateTimeUTC)
    until: Mapped[datetime | None] = mapped_column(DateTimeUTC)
    endedAt: Mapped[datetime | None] = mapped_column(DateTimeUTC)
    endedBy: Mapped[str | None] = mapped_column(Text)
    # When the runs that fell due during the pause were caught up (once per row).
    caughtUpAt: Mapped[datetime | None] = mapped_column(DateTimeUTC)
