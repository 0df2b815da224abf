"""The ``jobctl_run_origin`` table: which runs a backfill created, for which fire time.

``JobHistory`` readers (``Repository.list_history``) join it on the run to show each
attempt's origin; runs with no row here came from the schedule or were started by hand.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from jobctl.repository import Repository
from jobctl.run_origin_model import RunOrigin


def record(
    repository: Repository,
    *,
    flow_run_id: str,
    schedule_id: str,
    origin: str,
    logical_time: datetime,
    now: datetime,
) -> None:
    """Record the run's origin once: the first backfill that created the run keeps it."""
    with repository.session() as session:
        dialect = session.get_bind().dialect.name
        insert = (postgresql if dialect == "postgresql" else sqlite).insert
        session.execute(
            insert(RunOrigin)
            .values(
                flowRunId=flow_run_id,
                scheduleId=schedule_id,
                origin=origin,
                logicalTime=logical_time,
                createdAt=now,
            )
            .on_conflict_do_nothing(index_elements=["flowRunId"])
        )


def logical_times(repository: Repository, schedule_id: str) -> dict[str, datetime]:
    """The fire time of each run that backfills of ``schedule_id`` created, by run id."""
    statement = select(RunOrigin.flowRunId, RunOrigin.logicalTime).where(
        RunOrigin.scheduleId == schedule_id
    )
    with repository.session() as session:
        return {row[0]: row[1] for row in session.execute(statement)}
