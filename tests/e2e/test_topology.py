"""Production topology: PostgreSQL tables and Prefect server, two workers on one pool."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from jobctl.models import JobStatus
from jobctl.records import HistoryFilter
from tests.conftest import ScheduleFactory
from tests.e2e.test_runs import NEVER_DUE
from tests.fixtures.prefect import WorkerFactory
from tests.fixtures.processes import base_env, wait_for
from tests.fixtures.sync import SyncTarget

JOBCTL = str(Path(sys.executable).with_name("jobctl"))
RUNS = 200
WORKER_LIMIT = 5  # flow processes per worker at once


@pytest.mark.slow  # about ten minutes on two cores: `make test-slow`
@pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"], indirect=True)
def test_two_workers_execute_each_of_200_runs_exactly_once(
    sync_target: SyncTarget,
    schedule_factory: ScheduleFactory,
    start_worker: WorkerFactory,
    database_url: str,
) -> None:
    row = sync_target.repository.add_schedule(
        schedule_factory(cron=NEVER_DUE, param=["x"], overlap="allow", max_retries=0,
                         timeout_ms=0)
    )  # fmt: skip
    sync_target.sync()
    deployment = sync_target.deployments()[row.id]

    async def create_runs() -> list[UUID]:
        async with get_client() as client:
            limit = asyncio.Semaphore(10)

            async def one() -> UUID:
                async with limit:
                    return (await client.create_flow_run_from_deployment(deployment.id)).id

            return list(await asyncio.gather(*(one() for _ in range(RUNS))))

    run_ids = asyncio.run(create_runs())
    for _ in range(2):
        start_worker(sync_target.settings.work_pool, database_url=database_url, limit=WORKER_LIMIT)

    async def states() -> Counter[str]:
        async with get_client() as client:
            counts: Counter[str] = Counter()
            for start in range(0, RUNS, 200):
                runs = await client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(
                        id=FlowRunFilterId(any_=run_ids[start : start + 200])
                    ),
                    limit=200,
                )
                counts.update(run.state.type.value for run in runs if run.state)
            return counts

    wait_for(
        lambda: asyncio.run(states())["COMPLETED"] == RUNS,
        timeout_s=1500,
        interval_s=5,
        what=f"{RUNS} runs completed",
    )

    attempts = sync_target.repository.list_history(
        HistoryFilter(schedule_id=row.id, limit=10 * RUNS)
    )
    per_run = Counter(a.flow_run_id for a in attempts)
    assert set(per_run) == {str(run_id) for run_id in run_ids}
    assert set(per_run.values()) == {1}  # each executed exactly once
    assert {a.status for a in attempts} == {JobStatus.SUCCESS}


@pytest.mark.parametrize("database_url", ["postgresql"], ids=["postgres"], indirect=True)
def test_two_sync_processes_at_once_converge(
    sync_target: SyncTarget, schedule_factory: ScheduleFactory, database_url: str
) -> None:
    rows = [sync_target.repository.add_schedule(schedule_factory()) for _ in range(20)]
    env = base_env(
        PREFECT_API_URL=sync_target.server.api_url,
        JOBCTL_DATABASE_URL=database_url,
        JOBCTL_WORK_POOL=sync_target.settings.work_pool,
    )
    syncs = [
        subprocess.Popen(
            [JOBCTL, "sync"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(2)
    ]
    outputs = [sync.communicate(timeout=180)[0].decode() for sync in syncs]

    assert [sync.returncode for sync in syncs] == [0, 0], outputs
    assert set(sync_target.deployments()) == {row.id for row in rows}  # one per row
    assert sync_target.sync().plan.is_noop
