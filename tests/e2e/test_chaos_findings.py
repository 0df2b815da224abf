"""What the chaos soak (``python -m bench chaos``, ``bench/chaos/``) found, each as a
deterministic test of its own. The seed that found it is in each docstring.

Fixed findings are tested where their code is tested (``test_api.py``: call-job's 503;
``test_reconciler_over_fake.py``: an attempt backfilled alone); this module holds those
that need a real server and worker.
"""

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
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.states import AwaitingRetry, Crashed

from deployments.spec import HEARTBEAT_S
from jobctl.prefect.gateway.client import ClientGateway
from tests.conftest import ScheduleFactory
from tests.e2e.test_history import _worker_and_processing_run
from tests.e2e.test_runs import NEVER_DUE, _run_now
from tests.fixtures.prefect import WorkerFactory
from tests.fixtures.processes import kill_worker_and_its_runs, wait_for
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


def test_the_heartbeats_of_a_run_without_timeout_reach_the_reconciler(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    """Found by the chaos soak (seed 18, 30 minutes): a run without a timeout whose flow
    process was killed stayed Running: the zombie automation did not fire through repeated
    Prefect server restarts. The reconciler's fallback crashes such a run once its flow
    process has sent no heartbeat for minutes (its decision:
    ``tests/unit/test_reconciler_over_fake.py::test_a_run_without_timeout_silent_for_
    minutes_is_crashed``); here, its evidence on a real server and worker.
    Done: a row without a timeout (a 600 s sleep) run now on a warm worker.
    Checked: the gateway reads the run's last heartbeat from Prefect's events, a recent one
    (the run is alive: the fallback leaves it)."""
    worker, run_id = _worker_and_processing_run(
        sync_target, start_worker, database_url,
        schedule_factory(cron=NEVER_DUE, job_name="sleep", param=600, timeout_ms=0,
                         max_retries=0),
    )  # fmt: skip

    async def last_heartbeat() -> datetime | None:
        async with get_client() as client:
            since = datetime.now(UTC) - timedelta(minutes=10)
            found = await ClientGateway(client).read_last_heartbeats({run_id}, since=since)
            return found.get(run_id)

    try:
        seen = wait_for(
            lambda: asyncio.run(last_heartbeat()),
            timeout_s=HEARTBEAT_S * 2 + 30,
            interval_s=2,
            what="a heartbeat of the run in Prefect's events",
        )
        assert datetime.now(UTC) - seen < timedelta(seconds=HEARTBEAT_S * 2 + 30)
    finally:
        kill_worker_and_its_runs(worker)


def test_a_crashed_run_that_had_an_in_process_retry_is_offered_to_the_workers_again(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory
) -> None:
    """Found by the chaos soak (seed 18, 30 minutes): failing runs whose process died
    during Prefect's in-process retry were crashed, and the reconciler put them back
    AwaitingRetry; no worker ever took them (Prefect's query for the workers leaves out a
    run marked for an in-process retry, and the mark stays on the run).
    Done: a run of a real deployment marked for an in-process retry, crashed, then put
    back AwaitingRetry through the gateway, as the reconciler does.
    Checked: the run is among the scheduled runs the pool offers its workers."""
    row = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, job_name="fail", param="x", max_retries=2)
    )
    sync_target.sync()
    run_id = _run_now(sync_target, row.id)

    async def crash_and_retry() -> list[UUID]:
        async with get_client() as client:
            run = await client.read_flow_run(run_id)
            policy = run.empirical_policy.model_copy(update={"retry_type": "in_process"})
            await client.update_flow_run(run_id, empirical_policy=policy)
            await client.set_flow_run_state(run_id, Crashed(message="its process died"), force=True)
            now = datetime.now(UTC)
            await ClientGateway(client).force_run_state(run_id, AwaitingRetry(scheduled_time=now))
            offered = await client.get_scheduled_flow_runs_for_work_pool(
                sync_target.settings.work_pool, scheduled_before=now + timedelta(seconds=10)
            )
            return [item.flow_run.id for item in offered]

    assert run_id in asyncio.run(crash_and_retry())
