"""``jobctl_alert_target_problem``: the alert targets the last sync found no block for.

A table of jobctl's own (migration 0008). Only the sync can tell, since it asks Prefect,
whether an ``alertTo`` names a notification block; it keeps here what it found, so that
``jobctl status``, the metrics and the missed-run monitor, which read the table only, say
"rejected" of the rows the sync rejected for it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text
from sqlalchemy.orm import Mapped, mapped_column

from jobctl.models import Base, DateTimeUTC


class AlertTargetProblem(Base):
    __tablename__ = "jobctl_alert_target_problem"

    slug: Mapped[str] = mapped_column(Text, primary_key=True)  # <block type>/<block name>
    reason: Mapped[str] = mapped_column(Text)
    foundAt: Mapped[datetime] = mapped_column(DateTimeUTC)  # by a sync: still found since
