"""Backfill: run a row's job once per past fire time of its cron in a range.

Each run is a run of the row's deployment (its param, priority, timeout and retries),
created in a ``Scheduled`` state at its fire time: Prefect records that time as the run's
``expected_start_time``, which is its logical time (``jobctl.runtime.scheduled_time()``)
and stays the same through retries. An idempotency key per (row, fire time) makes a
second backfill of the same times, or of an overlapping range, create no second run: a
backfill stopped halfway resumes by running it again.

The row's overlap policy holds: with ``allow`` every run is created at once; with
``skip`` or ``queue`` (deployment concurrency 1) the next run is created when the
previous one has ended, so no two run at once; one that Prefect still refuses, because a
run of the schedule took the slot meanwhile, is tried again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from prefect.client.schemas.objects import FlowRun

from deployments.spec import deployment_name
from jobctl import backfill_plan, errors, registry, run_origins, validation
from jobctl.models import utcnow
from jobctl.prefect.gateway import PrefectGateway
from jobctl.repository import Repository

POLL_S = 0.1
ONE_AT_A_TIME = frozenset({"skip", "queue"})
# How Prefect cancels a run of a ``skip`` row whose concurrency slot is taken.
REFUSED = "Deployment concurrency limit reached."
MAX_TRIES = 12  # waits of 0.5 s doubling, at most 30 s: about 3 minutes in all


@dataclass(frozen=True)
class Backfill:
    """What a backfill of one row over ``[start, end)`` runs."""

    schedule_id: str
    job_name: str
    cron: str
    timezone: str
    overlap: str
    start: datetime
    end: datetime
    fire_times: tuple[datetime, ...]

    @property
    def origin(self) -> str:
        return backfill_plan.origin(self.start, self.end)

    @property
    def one_at_a_time(self) -> bool:
        return self.overlap in ONE_AT_A_TIME


@dataclass(frozen=True)
class BackfillRun:
    fire_time: datetime
    flow_run_id: str
    # The run's state when reported: final ("Completed", "Failed", "Cancelled"...) when
    # the backfill waited for it, else the state it was created in.
    state: str


def plan(
    repository: Repository,
    schedule_id: str,
    start: datetime,
    end: datetime,
    *,
    default_timezone: str,
    max_runs: int = backfill_plan.DEFAULT_MAX_RUNS,
    now: datetime | None = None,
) -> Backfill:
    """The fire times of row ``schedule_id`` in ``[start, end)``, or ``BackfillRefused``
    (``ScheduleNotFound``, ``InvalidSchedule``) saying why it cannot be backfilled."""
    row = repository.get_schedule(schedule_id)
    good = validation.validated(row, registry.job_names(), row.id)
    if not good.is_active:
        raise errors.BackfillRefused(
            f"schedule {row.id} is disabled (isActive false): its deployment is paused and "
            "its runs would not start; enable it first"
        )
    timezone = str(row.timezone or default_timezone)
    times = backfill_plan.fire_times(
        str(good.cron), timezone, start, end, max_runs=max_runs, now=now or utcnow()
    )
    return Backfill(
        schedule_id=row.id,
        job_name=str(good.job_name),
        cron=str(good.cron),
        timezone=timezone,
        overlap=str(good.overlap or "allow"),
        start=start,
        end=end,
        fire_times=tuple(times),
    )


async def execute(
    backfill: Backfill,
    gateway: PrefectGateway,
    repository: Repository,
    *,
    wait: bool = True,
    on_run: Callable[[BackfillRun], None] | None = None,
    poll_s: float = POLL_S,
) -> list[BackfillRun]:
    """Create the backfill's runs and, with ``wait``, wait for each to end. Rows whose
    overlap is ``skip`` or ``queue`` always wait: their runs go one after the other.

    ``on_run`` hears of each run when it ends (or is created, without waiting).
    """
    deployment_id = await _deployment_id(gateway, backfill)
    done: list[BackfillRun] = []

    def report(item: BackfillRun) -> None:
        done.append(item)
        if on_run is not None:
            on_run(item)

    created: list[tuple[datetime, FlowRun]] = []
    for fire_time in backfill.fire_times:
        if backfill.one_at_a_time:
            report(
                await _run_alone(gateway, repository, backfill, deployment_id, fire_time, poll_s)
            )
            continue
        run = await _create_run(gateway, repository, backfill, deployment_id, fire_time)
        if wait:
            created.append((fire_time, run))
        else:
            report(BackfillRun(fire_time, str(run.id), _state_name(run)))
    for fire_time, run in created:
        report(await _ended(gateway, fire_time, run.id, poll_s))
    return done


async def _deployment_id(gateway: PrefectGateway, backfill: Backfill) -> UUID:
    name = f"{backfill.job_name}/{deployment_name(backfill.schedule_id)}"
    deployment = await gateway.find_deployment(name)
    if deployment is None:
        raise errors.BackfillRefused(
            f"schedule {backfill.schedule_id} has no deployment {name} yet: run `jobctl sync`"
        )
    if deployment.paused:
        raise errors.BackfillRefused(
            f"the deployment {name} is paused (a maintenance pause, or a row the sync "
            "rejected): its runs would not start; see `jobctl status`"
        )
    return deployment.id


async def _run_alone(
    gateway: PrefectGateway,
    repository: Repository,
    backfill: Backfill,
    deployment_id: UUID,
    fire_time: datetime,
    poll_s: float,
) -> BackfillRun:
    """The run of ``fire_time`` of a ``skip`` or ``queue`` row, once it ended.

    The previous backfill run has ended, but a run of the schedule may hold the row's
    concurrency slot; on a ``skip`` row Prefect then cancels ours at once. It is created
    again, under a key of its own, after a wait that doubles each time (0.5 s, 1 s, ...
    up to 30 s): the fire time runs when the slot is free, and a backfill run again later
    finds the tries already made.
    """
    for try_number in range(1, MAX_TRIES + 1):
        run = await _create_run(gateway, repository, backfill, deployment_id, fire_time, try_number)
        ended = await _ended_run(gateway, run.id, poll_s)
        state = ended.state
        refused = state is not None and state.is_cancelled() and state.message == REFUSED
        if not refused or try_number == MAX_TRIES:
            break
        await asyncio.sleep(min(0.5 * 2 ** (try_number - 1), 30.0))
    return BackfillRun(fire_time, str(ended.id), _state_name(ended))


async def _create_run(
    gateway: PrefectGateway,
    repository: Repository,
    backfill: Backfill,
    deployment_id: UUID,
    fire_time: datetime,
    try_number: int = 1,
) -> FlowRun:
    """The run of ``fire_time``: created now, or the one an earlier backfill created."""
    try:
        run = await gateway.create_scheduled_run(
            deployment_id,
            # Scheduled at the fire time, already past: a worker takes it at once, and
            # Prefect keeps that time as the run's expected start.
            scheduled_time=fire_time,
            tags=[backfill_plan.tag(backfill.start, backfill.end)],
            idempotency_key=backfill_plan.idempotency_key(
                backfill.schedule_id, fire_time, try_number
            ),
        )
    except errors.PrefectRefused as exc:
        raise errors.BackfillRefused(
            f"Prefect refused the run of {backfill_plan.utc_text(fire_time)}: {exc}"
        ) from exc
    run_origins.record(
        repository,
        flow_run_id=str(run.id),
        schedule_id=backfill.schedule_id,
        origin=backfill.origin,
        logical_time=fire_time,
        now=utcnow(),
    )
    return run


async def _ended(
    gateway: PrefectGateway, fire_time: datetime, run_id: UUID, poll_s: float
) -> BackfillRun:
    run = await _ended_run(gateway, run_id, poll_s)
    return BackfillRun(fire_time, str(run_id), _state_name(run))


async def _ended_run(gateway: PrefectGateway, run_id: UUID, poll_s: float) -> FlowRun:
    """Wait for the run to reach a final state (a run that waits for a worker waits)."""
    while True:
        run = await gateway.read_run(run_id)
        if run.state is not None and run.state.is_final():
            return run
        await asyncio.sleep(poll_s)


def _state_name(run: FlowRun) -> str:
    if run.state is None:
        return "?"
    return run.state.name or run.state.type.value.title()
