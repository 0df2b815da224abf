"""After an outage, only the most recent missed run of a schedule runs; the rest are skipped."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.states import Scheduled

from jobctl.models import JobStatus
from jobctl.records import HistoryFilter
from tests.conftest import ScheduleFactory
from tests.e2e.test_runs import NEVER_DUE, _wait_final
from tests.fixtures.prefect import WorkerFactory
from tests.fixtures.sync import SyncTarget


@pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"], indirect=True)
def test_missed_runs_past_the_grace_are_skipped_except_the_latest(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    row = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, misfire_grace_ms=30_000, max_retries=0, overlap="allow")
    )
    sync_target.sync()
    deployment = sync_target.deployments()[row.id]
    now = datetime.now(UTC)

    async def missed_runs() -> list[UUID]:
        # Three periods missed while no worker polled the pool.
        async with get_client() as client:
            return [
                (
                    await client.create_flow_run_from_deployment(
                        deployment.id, state=Scheduled(scheduled_time=now - timedelta(minutes=m))
                    )
                ).id
                for m in (3, 2, 1)
            ]

    oldest, older, latest = asyncio.run(missed_runs())
    start_worker(sync_target.settings.work_pool, database_url=database_url)

    runs = {run_id: _wait_final(run_id) for run_id in (oldest, older, latest)}

    assert runs[latest].state is not None and runs[latest].state.is_completed()
    for skipped in (oldest, older):
        state = runs[skipped].state
        assert state is not None and state.is_cancelled() and state.name == "Skipped"
        assert "after its scheduled time" in (state.message or "")
    attempts = sync_target.repository.list_history(HistoryFilter(schedule_id=row.id))
    assert [(a.flow_run_id, a.status) for a in attempts] == [(str(latest), JobStatus.SUCCESS)]


@pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"], indirect=True)
def test_a_late_run_with_no_later_one_still_runs(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    row = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, misfire_grace_ms=0, max_retries=0, overlap="allow")
    )
    sync_target.sync()
    deployment = sync_target.deployments()[row.id]

    async def one_late_run() -> UUID:
        async with get_client() as client:
            late = datetime.now(UTC) - timedelta(minutes=5)
            run = await client.create_flow_run_from_deployment(
                deployment.id, state=Scheduled(scheduled_time=late)
            )
            return run.id

    run_id = asyncio.run(one_late_run())
    start_worker(sync_target.settings.work_pool, database_url=database_url)

    run = _wait_final(run_id)
    assert run.state is not None and run.state.is_completed()
