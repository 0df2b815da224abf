"""What the chaos soak (``python -m bench chaos``, ``bench/chaos/``) found, each as a
deterministic test of its own. The seed that found it is in each docstring.

Fixed findings are tested where their code is tested (``test_api.py``: call-job's 503;
``test_reconciler_over_fake.py``: an attempt backfilled alone); this module holds those
that need a real server and worker.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort

from tests.conftest import ScheduleFactory
from tests.fixtures.prefect import WorkerFactory
from tests.fixtures.processes import wait_for
from tests.fixtures.sync import SyncTarget

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"], indirect=True),
]


def _runs(deployment_id: object, after: datetime | None = None) -> list[FlowRun]:
    async def read() -> list[FlowRun]:
        async with get_client() as client:
            return await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                flow_run_filter=FlowRunFilter(
                    expected_start_time=FlowRunFilterExpectedStartTime(after_=after)
                )
                if after
                else None,
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=50,
            )

    return asyncio.run(read())


def test_an_edit_after_a_worker_took_the_next_run_does_not_run_that_fire_time_twice(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    """Found by the chaos soak (seed 1, a 3-minute soak with 8 rows): a cron edit reached
    Prefect 35 s late (the watcher was catching up after a Prefect restart), after a worker
    had taken the next run (40 s prefetch); that fire time ran twice.
    Done: a row every minute and a warm worker taking runs 40 s ahead; once the worker
    holds the next run (Pending), the row's description is edited and synced.
    Checked: the fire time of that run is executed by exactly one run, the one taken.
    Before the fix it ran twice: Prefect's upsert replaced the deployment's schedule, and
    the scheduler's new run for that fire time had a new idempotency key."""
    row = sync_target.repository.add_schedule(
        schedule_factory(cron="* * * * *", timezone="UTC", overlap="allow", max_retries=0)
    )
    sync_target.sync()
    deployment = sync_target.deployments()[row.id]
    start_worker(
        sync_target.settings.work_pool,
        database_url=database_url,
        PREFECT_WORKER_PREFETCH_SECONDS="40",
    )

    def taken() -> FlowRun | None:
        soon = datetime.now(UTC) + timedelta(seconds=15)
        for run in _runs(deployment.id, after=soon):
            if run.state is not None and run.state.type is StateType.PENDING:
                return run
        return None

    held = wait_for(taken, timeout_s=120, interval_s=0.5, what="a run taken ahead of its time")
    fire = held.expected_start_time
    assert fire is not None
    sync_target.repository.update_schedule(row.id, description="edited while its run is taken")
    sync_target.sync()

    def ended() -> list[FlowRun] | None:
        if datetime.now(UTC) < fire + timedelta(seconds=20):
            return None
        runs = [r for r in _runs(deployment.id, after=fire - timedelta(seconds=1))
                if r.expected_start_time == fire]  # fmt: skip
        final = all(r.state is not None and r.state.is_final() for r in runs)
        return runs if final else None

    runs = wait_for(ended, timeout_s=150, interval_s=1, what="the fire time's runs final")
    executed = [run for run in runs if run.run_count > 0]
    assert [run.id for run in executed] == [held.id], [(r.id, r.state_name) for r in runs]
