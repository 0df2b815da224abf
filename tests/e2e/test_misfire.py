"""After an outage, only the most recent missed run of a schedule runs; the rest are skipped."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
)
from prefect.client.schemas.objects import FlowRun
from prefect.states import Scheduled

from jobctl.records import HistoryFilter
from tests.conftest import ScheduleFactory
from tests.e2e.test_runs import NEVER_DUE, _wait_final
from tests.fixtures.prefect import WorkerFactory
from tests.fixtures.sync import SyncTarget

ON_POSTGRES = pytest.mark.parametrize(
    "database_url", ["postgresql"], ids=["postgres"], indirect=True
)


def _backfill(deployment_id: UUID, start: datetime, end: datetime) -> list[FlowRun]:
    """Runs created exactly as Prefect's scheduler creates them, for past minutes."""

    async def schedule() -> list[FlowRun]:
        async with get_client() as client:
            response = await client.request(
                "POST",
                "/deployments/{id}/schedule",
                path_params={"id": deployment_id},
                json={"start_time": start.isoformat(), "end_time": end.isoformat()},
            )
            response.raise_for_status()
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                flow_run_filter=FlowRunFilter(
                    expected_start_time=FlowRunFilterExpectedStartTime(after_=start, before_=end)
                ),
            )
            return sorted(runs, key=lambda run: run.expected_start_time or end)

    return asyncio.run(schedule())


@ON_POSTGRES
def test_missed_scheduled_runs_past_the_grace_are_skipped_except_the_latest(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    # Fires at the three minutes it missed only: no later run falls due, however long the
    # worker takes to start these (a later due run would rightly have the latest skipped).
    fires = sorted((minute - timedelta(minutes=back)).minute for back in (2, 1, 0))
    row = sync_target.repository.add_schedule(
        schedule_factory(cron=f"{','.join(map(str, fires))} * * * *", timezone="UTC",
                         misfire_grace_ms=30_000, max_retries=0, overlap="allow")
    )  # fmt: skip
    sync_target.sync()
    deployment = sync_target.deployments()[row.id]
    # Three periods missed while no worker polled the pool: the last three minutes.
    missed = _backfill(deployment.id, minute - timedelta(minutes=2, seconds=30), minute)
    assert len(missed) == 3 and all(run.auto_scheduled for run in missed)
    oldest, older, latest = (run.id for run in missed)

    start_worker(sync_target.settings.work_pool, database_url=database_url)
    runs = {run_id: _wait_final(run_id) for run_id in (oldest, older, latest)}

    assert runs[latest].state is not None and runs[latest].state.is_completed()
    for skipped in (oldest, older):
        state = runs[skipped].state
        assert state is not None and state.is_cancelled() and state.name == "Skipped"
        assert "after its scheduled time" in (state.message or "")
    attempts = sync_target.repository.list_history(HistoryFilter(schedule_id=row.id))
    assert str(latest) in {a.flow_run_id for a in attempts}
    assert not {str(oldest), str(older)} & {a.flow_run_id for a in attempts}


@ON_POSTGRES
def test_late_runs_asked_for_by_hand_all_run(
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

    async def late_runs() -> list[UUID]:
        async with get_client() as client:
            return [
                (
                    await client.create_flow_run_from_deployment(
                        deployment.id,
                        state=Scheduled(scheduled_time=datetime.now(UTC) - timedelta(minutes=m)),
                    )
                ).id
                for m in (5, 4)
            ]

    run_ids = asyncio.run(late_runs())
    start_worker(sync_target.settings.work_pool, database_url=database_url)

    for run_id in run_ids:
        run = _wait_final(run_id)
        assert run.state is not None and run.state.is_completed()
