"""A scheduled run that starts while a maintenance pause is on skips itself.

The sync pauses every deployment for the pause, which stops Prefect's scheduler; but a
batch the scheduler read just before a deployment was paused can still insert runs after
the pause deleted the scheduled ones (seen on a real server), and those would run during
the maintenance. Each scheduled run therefore checks the flag when it starts and ends
Cancelled, named ``Skipped`` like a misfire, without a history row. Runs asked for by
hand, and the catch-up runs made when a pause ends, are not scheduled runs: they run.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.states import Cancelled
from sqlalchemy.exc import SQLAlchemyError

from flows.history import HistoryRecorder
from jobctl import errors

logger = logging.getLogger("jobctl.flows")

SKIPPED_STATE_NAME = "Skipped"


def skipped_for_maintenance(recorder: HistoryRecorder) -> State | None:
    """A Cancelled "Skipped" state if this run was scheduled and a pause is on now."""
    context = FlowRunContext.get()
    run = None if context is None else context.flow_run
    if run is None or not run.auto_scheduled or run.run_count > 1:
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
