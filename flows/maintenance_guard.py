"""A scheduled run that starts while a maintenance pause is on skips itself.

The sync pauses every deployment for the pause, which stops Prefect's scheduler; but a
batch the scheduler read just before a deployment was paused can still insert runs after
the pause deleted the scheduled ones (seen on a real server), and those would run during
the maintenance. Each scheduled run therefore checks the flag when it starts and ends
Cancelled, named ``Skipped`` like a misfire, without a history row. Runs asked for by
hand, and the catch-up runs made when a pause ends, are not scheduled runs: they run.

The same race leaves runs behind when one row is disabled (its deployment paused), and a
worker takes a paused deployment's runs: a scheduled run whose row is disabled when it
starts skips itself too (found by the chaos soak, seed 18: a row disabled under load ran
at two fire times while it was off). So does one whose row was deleted: a worker takes
runs up to its prefetch ahead (40 s under ``jobctl up``), and deleting the deployment
leaves a taken run alone, which then ran after its row was gone.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.states import Cancelled
from sqlalchemy.exc import SQLAlchemyError

from flows.history import HistoryRecorder, schedule_id_of_this_process
from jobctl import errors
from jobctl.repository import Repository

logger = logging.getLogger("jobctl.flows")

SKIPPED_STATE_NAME = "Skipped"


def _scheduled_run_starting() -> bool:
    """This is the first attempt of a run Prefect's scheduler created."""
    context = FlowRunContext.get()
    run = None if context is None else context.flow_run
    return run is not None and run.auto_scheduled and run.run_count <= 1


def skipped_for_maintenance(recorder: HistoryRecorder) -> State | None:
    """A Cancelled "Skipped" state if this run was scheduled and a pause is on now."""
    if not _scheduled_run_starting():
        return None
    try:
        pause = recorder.repository.get_maintenance_or_none()
    except (errors.JobctlError, SQLAlchemyError) as exc:
        # The database is away: run, as the deployment's state says, rather than guess.
        logger.warning("maintenance pause not checked (%s); the run goes ahead", exc)
        return None
    if pause is None or not pause.is_on(datetime.now(UTC)):
        return None
    return Cancelled(name=SKIPPED_STATE_NAME, message=f"skipped: {pause.describe()}")


def skipped_for_inactive_row(recorder: HistoryRecorder) -> State | None:
    """A Cancelled "Skipped" state if this run was scheduled and its row is now disabled
    or deleted."""
    schedule_id = schedule_id_of_this_process()
    if schedule_id is None or not _scheduled_run_starting():
        return None
    return row_inactive(recorder.repository, schedule_id)


def row_inactive(repository: Repository, schedule_id: str) -> State | None:
    """The Skipped state of a scheduled run of ``schedule_id`` if the row is disabled or
    gone; None if it is active, or if the database cannot tell (the run goes ahead, as its
    deployment's state says)."""
    try:
        row = repository.get_schedule_or_none(schedule_id)
    except (errors.JobctlError, SQLAlchemyError) as exc:
        logger.warning("row %s not checked (%s); the run goes ahead", schedule_id, exc)
        return None
    if row is None:
        return Cancelled(
            name=SKIPPED_STATE_NAME,
            message=f"skipped: no row {schedule_id} in the worker's database (deleted)",
        )
    if not row.is_active:
        return Cancelled(name=SKIPPED_STATE_NAME, message="skipped: its row is disabled")
    return None
