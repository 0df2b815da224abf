"""What a running job may ask about its run: the time it was scheduled for.

``scheduled_time()`` is the run's logical time, not when it started: a job that processes
"yesterday" should count from it, so that a late run, a retry or a backfill processes the
day it was meant for. It is Prefect's ``expected_start_time`` of the flow run, which
Prefect sets once, from the run's first state, and keeps across retries:

- a run of the row's cron: the fire time the scheduler planned;
- a backfilled run: the fire time it stands for (``jobctl backfill`` schedules it there);
- a manual run (``jobctl call``, ``POST /v1/job/call-job``, the Prefect UI): the call.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect.context import FlowRunContext

from jobctl.errors import JobctlError


class NotInARun(JobctlError):
    """There is no flow run here, so no scheduled time (called outside a job's run)."""


def scheduled_time() -> datetime:
    """The time this job's run was scheduled for, in UTC (aware).

    Raises ``NotInARun`` outside a flow run, where "now" would be a silent guess: a job
    called directly, in a test, should get its time as an argument instead.
    """
    context = FlowRunContext.get()
    run = context.flow_run if context is not None else None
    if run is None or run.expected_start_time is None:
        raise NotInARun("jobctl.runtime.scheduled_time() is only known inside a job's flow run")
    expected = run.expected_start_time
    # A plain datetime: Prefect's are pendulum's on Python < 3.13.
    return datetime.fromtimestamp(expected.timestamp(), UTC)
